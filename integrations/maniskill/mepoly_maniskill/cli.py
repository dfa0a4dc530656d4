"""Command line of the ManiSkill integration.

* ``mepoly-maniskill demos ENV_ID -n N --out DIR [--seed S]``: ``N`` successful demonstrations
  in ManiSkill's trajectory format, ``pd_ee_delta_pos`` control and ``state`` observations
  (see :mod:`mepoly_maniskill.demos`); prints where they are and how fast they were made, and
  writes the same as ``demos_report.json`` beside the trajectory file.
* ``mepoly-maniskill check``: the install check (:mod:`mepoly_maniskill.install_check`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mepoly-maniskill", description="ManiSkill 3 tools of mepoly-dist")
    commands = parser.add_subparsers(dest="command", required=True)
    demos = commands.add_parser("demos", help="generate demonstrations in ManiSkill's trajectory format")
    demos.add_argument("env_id", metavar="ENV_ID", help="PushCube-v1, PickCube-v1, StackCube-v1 (motion planning) or PushT-v1 (scripted expert)")
    demos.add_argument("-n", "--num-demos", type=int, default=100, help="successful episodes to make (default: 100)")
    demos.add_argument("--out", default="demos", help="output folder; files go to OUT/ENV_ID/... (default: demos)")
    demos.add_argument("--seed", type=int, default=0, help="seed of the first episode; later ones count up (default: 0)")
    demos.add_argument("--control-mode", default="pd_ee_delta_pos", help="control mode of the final file (default: pd_ee_delta_pos)")
    demos.add_argument("--overwrite", action="store_true", help="replace trajectory files that exist already")
    check = commands.add_parser("check", help="check that ManiSkill runs here (creates PushCube-v1 and steps it)")
    check.add_argument("--env-id", default="PushCube-v1")
    check.add_argument("--steps", type=int, default=200)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check":
        from .install_check import main as install_check_main

        return install_check_main(["--env-id", args.env_id, "--steps", str(args.steps)])
    if args.num_demos < 1:
        raise SystemExit("-n must be at least 1")
    from .demos import generate_demos

    report = generate_demos(args.env_id, args.num_demos, args.out, seed=args.seed, control_mode=args.control_mode, overwrite=args.overwrite)
    summary = report.to_dict()
    Path(report.trajectory_path).with_name("demos_report.json").write_text(json.dumps(summary, indent=2))
    print(
        f"{report.env_id}: {report.num_demos}/{report.requested} demos ({report.attempts} episodes tried) in "
        f"{report.generation_seconds + report.conversion_seconds:.1f} s = {report.demos_per_second:.2f} demos/s "
        f"(generation {report.generation_seconds:.1f} s, conversion {report.conversion_seconds:.1f} s)\n"
        f"  {report.trajectory_path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
