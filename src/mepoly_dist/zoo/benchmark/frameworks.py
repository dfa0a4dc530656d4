r"""One policy, three frameworks: PPO-MePoly on the paper's bandit in SB3, TorchRL and the single-file PPO.

Usage (from the repository root, where ``examples/`` is)::

    python benchmarks/frameworks.py [--targets lemniscate] [--frameworks sb3 torchrl cleanrl]
                                    [--seeds 0 1 2] [--workers 2] [--reuse] [--runs-dir runs/bench-frameworks]
                                    [--out benchmarks/results/frameworks]

The same configuration in each (the paper's bandit, section 5.2: 1024 one-step episodes per
iteration, 100 iterations, 10 epochs of 6 minibatches, learning rate 2e-3 annealed to 0,
entropy coefficient 0.2 without advantage normalization, order 14, tanh MLPs [64, 64]):

* ``sb3``: ``mepoly train`` (:func:`mepoly_dist.zoo.train.train`, the presets of ``presets/ppo.yml``);
* ``torchrl``: ``examples/torchrl_ppo.py --env-id mepoly/Bandit-v0`` (:mod:`mepoly_dist.torchrl`,
  ``ClipPPOLoss``);
* ``cleanrl``: ``examples/cleanrl_ppo_mepoly.py``, the single-file PPO on torch, gymnasium and
  the core only.

Each run is scored by the same function, :func:`mepoly_dist.zoo.metrics.bandit_metrics` on
:math:`10^5` policy samples: coverage of the target points, TV to the Boltzmann target
:math:`\exp(r / \alpha)` and mean reward.  The examples run as subprocesses (one torch thread
each) and write their results with ``--metrics-json``; ``--reuse`` skips runs whose results file
exists.  Writes ``OUT/frameworks.md``: the runs, and mean ± standard error over seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from .results import format_mean_se, markdown_table, results_header, write_report
from .sweep import add_backend_arguments, run_parallel, train_run

__all__ = ["FRAMEWORKS", "EXAMPLES", "run_framework", "summarize", "main"]

FRAMEWORKS = ("sb3", "torchrl", "cleanrl")
#: the example scripts of the frameworks other than SB3, relative to the repository root
EXAMPLES = {"torchrl": "examples/torchrl_ppo.py", "cleanrl": "examples/cleanrl_ppo_mepoly.py"}
_EXAMPLE_ARGS = {"torchrl": ["--env-id", "mepoly/Bandit-v0"], "cleanrl": []}


def run_framework(framework: str, target: str, seed: int, run_dir: str) -> dict:
    """One run; returns its results (``coverage``, ``tv_to_target``, ``mean_reward``, ``train_seconds``)."""
    run_dir = Path(run_dir)
    if framework == "sb3":
        metrics = train_run(target, "mepoly", seed, str(run_dir))
        return {key: metrics[key] for key in ("coverage", "tv_to_target", "mean_reward", "train_seconds", "num_timesteps")}
    run_dir.mkdir(parents=True, exist_ok=True)
    results = run_dir / "results.json"
    command = [sys.executable, str(Path(EXAMPLES[framework]).resolve()), *_EXAMPLE_ARGS[framework], "--target", target, "--seed", str(seed),
               "--metrics-json", str(results)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(run_dir / "log.txt", "w") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True, env=env,
                       cwd=run_dir if framework == "cleanrl" else None)  # CleanRL writes runs/{run_name} where it runs
    return json.loads(results.read_text())


def _finished(framework: str, run_dir: Path) -> dict | None:
    path = run_dir / ("metrics.json" if framework == "sb3" else "results.json")
    return json.loads(path.read_text()) if path.exists() else None


def summarize(results: dict, targets, frameworks, seeds) -> str:
    """The per-run table and the mean ± standard error over seeds of each (target, framework)."""
    per_run, summary = [], []
    for target in targets:
        for framework in frameworks:
            found = [(s, results[(target, framework, s)]) for s in seeds if (target, framework, s) in results]
            for seed, r in found:
                per_run.append([target, framework, seed, f"{r['coverage']:.3f}", f"{r['tv_to_target']:.3f}",
                                f"{r['mean_reward']:.3f}", f"{r['train_seconds']:.0f}"])
            if found:
                summary.append([target, framework, len(found),
                                *(format_mean_se([r[key] for _, r in found], digits=3)
                                  for key in ("coverage", "tv_to_target", "mean_reward")),
                                format_mean_se([r["train_seconds"] for _, r in found], digits=0)])
    return ("## Summary (mean ± standard error over seeds)\n\n"
            + markdown_table(["target", "framework", "seeds", "coverage", "TV to exp(r/alpha)", "mean reward", "train s"], summary)
            + "\n## Runs\n\n"
            + markdown_table(["target", "framework", "seed", "coverage", "TV", "mean reward", "train s"], per_run))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=["lemniscate"], choices=["lemniscate", "two_moons"])
    parser.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    add_backend_arguments(parser)
    parser.add_argument("--reuse", action="store_true", help="skip runs whose results file exists")
    parser.add_argument("--runs-dir", default="runs/bench-frameworks")
    parser.add_argument("--out", default="benchmarks/results/frameworks")
    args = parser.parse_args(argv)
    missing = [EXAMPLES[f] for f in args.frameworks if f in EXAMPLES and not Path(EXAMPLES[f]).exists()]
    if missing:
        parser.error(f"run from the repository root: {', '.join(missing)} not found")
    header = results_header("One policy, three frameworks: PPO-MePoly on the paper's bandit (section 5.2)", args.seeds)
    results, jobs = {}, {}
    for key in [(t, f, s) for t in args.targets for f in args.frameworks for s in args.seeds]:
        run_dir = Path(args.runs_dir) / "__".join(map(str, key))
        run_dir = run_dir.resolve()
        finished = _finished(key[1], run_dir) if args.reuse else None
        if finished is not None:
            results[key] = finished
        else:
            jobs[key] = (run_framework, (key[1], key[0], key[2], str(run_dir)))

    def report(key, r):
        print(f"{key}: coverage {r['coverage']:.3f}  TV {r['tv_to_target']:.3f}  reward {r['mean_reward']:.3f}  "
              f"{r['train_seconds']:.0f} s", flush=True)

    results.update(run_parallel(jobs, args.workers, report, args.backend, args.address))
    text = header + "\n" + summarize(results, args.targets, args.frameworks, args.seeds)
    write_report(args.out, "frameworks.md", text)


if __name__ == "__main__":
    main()
