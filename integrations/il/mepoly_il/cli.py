"""``mepoly-il``: train and evaluate MePoly / Diffusion Policy imitation learning on ManiSkill::

    mepoly-il train PushCube-v1 --demos PATH --method mepoly|dp [--preset cpu|gpu] [--seed S]
                    [--out RUN_DIR] [--set mepoly.stage1.steps=100 ...] [--eval-episodes N]
    mepoly-il eval RUN_DIR [--episodes 100] [--deterministic] [--act-horizon K] [--out-dir DIR]

``train`` resumes from ``RUN_DIR/checkpoints/latest.pt`` when rerun on the same directory;
``eval`` writes ``RUN_DIR/eval/eval.json`` (success_once, success_at_end, latency per chunk)
and ``RUN_DIR/eval/strip.png`` (or the same files under ``--out-dir``). ``--act-horizon``
executes the first K actions of each predicted chunk before replanning (default: the run's
method section's ``act_horizon`` where its preset sets one, else ``data.act_horizon``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

__all__ = ["main", "train_command", "eval_command"]


def train_command(task: str, demos: str, method: str = "mepoly", preset: str = "cpu", seed: int = 0, out: str | None = None,
                  overrides: list[str] | None = None, eval_episodes: int = 0, progress: bool = True, device: str | None = None) -> dict:
    """``mepoly-il train``; returns the training summary (with ``eval`` when ``eval_episodes > 0``)."""
    from .train import train

    if not Path(demos).is_file():
        raise FileNotFoundError(f"--demos {demos}: no such trajectory file (see `mepoly-maniskill demos`)")
    out = out or f"runs/{task}__{method}__{preset}__{seed}"
    summary = train(task, demos, method, out, preset=preset, seed=seed, overrides=overrides, progress=progress, device=device)
    if eval_episodes > 0:
        summary["eval"] = eval_command(out, episodes=eval_episodes, progress=progress)
    return summary


def eval_command(run_dir: str, episodes: int = 100, deterministic: bool | None = None, progress: bool = True,
                 act_horizon: int | None = None, out_dir: str | None = None) -> dict:
    """``mepoly-il eval``: rollouts of a trained run; returns the metrics (also ``eval.json`` in ``out_dir``,
    by default ``RUN_DIR/eval``)."""
    from .evaluate import evaluate_policy
    from .train import execution_horizon, load_policy

    policy, config = load_policy(run_dir, deterministic)
    act_horizon = execution_horizon(config) if act_horizon is None else act_horizon
    out_dir = Path(out_dir) if out_dir is not None else Path(run_dir) / "eval"
    result = evaluate_policy(policy, config["task"], episodes, act_horizon=act_horizon,
                             max_episode_steps=config["eval"].get("max_episode_steps"),
                             strip_episodes=config["eval"].get("strip_episodes", 2), out_dir=out_dir, progress=progress)
    result["deterministic"] = getattr(policy, "deterministic", None)
    (out_dir / "eval.json").write_text(json.dumps(result, indent=1))
    return result


def main(argv=None) -> int:
    from .train import PRESETS

    parser = argparse.ArgumentParser(prog="mepoly-il", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a policy on ManiSkill demonstrations")
    train.add_argument("task", help="ManiSkill task id, e.g. PushCube-v1 (presets: PushCube-v1, PickCube-v1, StackCube-v1, PushT-v1)")
    train.add_argument("--demos", required=True, help="trajectory.state.pd_ee_delta_pos.physx_cpu.h5 of the task")
    train.add_argument("--method", choices=("mepoly", "dp"), default="mepoly")
    train.add_argument("--preset", choices=PRESETS, default="cpu")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", default=None, help="run directory (default runs/TASK__METHOD__PRESET__SEED)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                       help="override a preset entry, e.g. mepoly.stage1.steps=500 (repeatable)")
    train.add_argument("--eval-episodes", type=int, default=0, help="evaluate this many episodes after training")
    train.add_argument("--device", default="auto", help="auto (CUDA where available), cpu, cuda, cuda:1, ...; evaluation runs on the CPU")
    evaluate = commands.add_parser("eval", help="evaluate a trained run in ManiSkill")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--episodes", type=int, default=100)
    evaluate.add_argument("--deterministic", action="store_true", default=None, help="MePoly: decode the prior's mode instead of a sample")
    evaluate.add_argument("--act-horizon", type=int, default=None, help="actions executed per chunk before replanning (default: the run's)")
    evaluate.add_argument("--out-dir", default=None, help="where eval.json and strip.png go (default RUN_DIR/eval)")
    for sub in (train, evaluate):
        sub.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 1)), help="torch threads (default OMP_NUM_THREADS or 1)")
        sub.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(max(1, args.threads))
    try:
        if args.command == "train":
            result = train_command(args.task, args.demos, args.method, args.preset, args.seed, args.out, args.overrides,
                                   args.eval_episodes, progress=not args.no_progress, device=args.device)
        else:
            result = eval_command(args.run_dir, args.episodes, args.deterministic, progress=not args.no_progress,
                                  act_horizon=args.act_horizon, out_dir=args.out_dir)
    except (ValueError, FileNotFoundError, KeyError) as error:
        print(f"mepoly-il {args.command}: error: {error}", file=sys.stderr)
        return 2
    result = {key: value for key, value in result.items() if key != "per_episode"}
    if "eval" in result:
        result["eval"] = {key: value for key, value in result["eval"].items() if key != "per_episode"}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
