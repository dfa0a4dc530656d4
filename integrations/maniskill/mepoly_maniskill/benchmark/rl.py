#!/usr/bin/env python
r"""PPO with MePoly vs PPO-Gaussian on ManiSkill 3 tasks (state observations, ``pd_ee_delta_pos``).

Usage (from the repository root, in the ManiSkill environment: ``integrations/maniskill/install.sh``)::

    python benchmarks/maniskill_rl.py [--tasks PushCube-v1] [--methods mepoly gaussian] [--seeds 0]
                                      [--steps N] [--episodes 100] [--reuse] [--runs-dir runs/bench-maniskill]
                                      [--report-only] [--name maniskill_rl] [--out benchmarks/results/maniskill_rl]

Each (task, method, seed) is one ``mepoly train maniskill/<task> --policy <method>`` run with the
presets of ``presets/ppo.yml`` (ManiSkill's PPO baseline settings scaled to 4 CPU environments;
MePoly's head is the product of two 2-D blocks of order 6), in ``RUNS/{task}__{method}__{seed}``,
one after the other (each run already uses 4 simulator processes).  ``--reuse`` keeps runs that
have finished (their ``metrics.json`` exists) and resumes interrupted ones from their last checkpoint.

Learning curves: every checkpoint of every run (``checkpoint_every`` steps) is evaluated on the
same ``--episodes`` evaluation episodes (seeds from 10,000) with *sampled* actions (the policies as
they act in training), ManiSkill's ``success_once``; the results are cached in the run's
``checkpoint_eval.csv`` (runs whose in-training evaluation already used sampled actions on the same
episodes, ``eval_curve.csv``, are read from there).  "Steps to 0.9" is the first checkpoint whose success_once is at least 0.9.
The final model is also evaluated with the policy's mode (``deterministic=True``, ManiSkill's
convention).  The table and the figure also give each checkpoint's mean episode return (the
task's normalized dense reward), which shows progress on a task before any episode succeeds.
Writes ``OUT/NAME.md`` and ``OUT/NAME.png`` (``--name``, default ``maniskill_rl``).

``--report-only`` trains and evaluates nothing new: it tabulates the runs of ``--runs-dir`` as they
are, a run stopped before its step budget with the checkpoints it reached (its in-training
evaluations) and no final evaluation; rerunning without it (with ``--reuse``) resumes such a run.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

import numpy as np
import yaml

from mepoly_dist.zoo.benchmark.results import markdown_table, results_header, write_report
from mepoly_dist.zoo.benchmark.sweep import load_finished, train_run

__all__ = ["TARGET", "checkpoint_curve", "stopped_run", "figure", "main"]

TARGET = 0.9


def checkpoint_curve(run_dir: Path, task: str, episodes: int) -> list[tuple[int, float, float, float]]:
    """(steps, success_once, success_at_end, mean return) with sampled actions for every checkpoint,
    cached in ``checkpoint_eval.csv`` (mean return NaN in caches written before it was recorded)."""
    import torch

    from mepoly_dist.zoo.train import load_model
    from ..evaluation import evaluate_success

    torch.set_num_threads(1)
    config = yaml.safe_load((run_dir / "config.yml").read_text())
    in_training = run_dir / "eval_curve.csv"
    if in_training.exists() and config.get("eval_episodes") == episodes:
        with in_training.open() as handle:
            rows = list(csv.DictReader(handle))
        if rows and "success_once_sampled" in rows[0]:
            # the run already evaluated the same episodes with sampled actions during training
            # (in the rollout of each checkpoint: same parameters); no need to repeat it
            return [(int(r["timesteps"]), float(r["success_once_sampled"]), float(r["success_at_end_sampled"]),
                     float(r.get("mean_return_sampled", "nan"))) for r in rows]
    cache = run_dir / "checkpoint_eval.csv"
    done = {}
    if cache.exists():
        with cache.open() as handle:
            for row in csv.DictReader(handle):
                if int(row["episodes"]) == episodes:
                    done[int(row["timesteps"])] = (float(row["success_once"]), float(row["success_at_end"]),
                                                   float(row.get("mean_return", "nan")))
    checkpoints = sorted((int(re.search(r"(\d+)", p.name).group(1)), p) for p in (run_dir / "checkpoints").glob("model_*_steps.zip"))
    for steps, path in checkpoints:
        if steps in done:
            continue
        config, model = load_model(run_dir, path=path)
        found = evaluate_success(model, task, episodes, seed=10_000, n_envs=config.n_envs, deterministic=False, **config.env_kwargs)
        done[steps] = (found["success_once"], found["success_at_end"], found["mean_return"])
        new = not cache.exists()
        with cache.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["timesteps", "success_once", "success_at_end", "mean_return", "episodes"])
            writer.writerow([steps, *done[steps], episodes])
        print(f"  {run_dir.name} @ {steps}: success_once {done[steps][0]:.2f}", flush=True)
    return [(s, *done[s]) for s in sorted(done)]


def stopped_run(run_dir: Path) -> dict:
    """What a run stopped before its budget has to show: the steps of its last checkpoint and the
    training seconds recorded with it (``timing.json``); no final evaluation."""
    steps = [int(re.search(r"(\d+)", p.name).group(1)) for p in (run_dir / "checkpoints").glob("model_*_steps.zip")]
    timing = run_dir / "timing.json"
    seconds = json.loads(timing.read_text())["train_seconds"] if timing.exists() else None
    return {"num_timesteps": max(steps, default=0), "train_seconds": seconds, "stopped": True}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["PushCube-v1"])
    parser.add_argument("--methods", nargs="+", default=["mepoly", "gaussian"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=None, help="environment steps per run (default: the preset's)")
    parser.add_argument("--episodes", type=int, default=100, help="evaluation episodes per checkpoint")
    parser.add_argument("--reuse", action="store_true", help="keep finished runs (resume unfinished ones)")
    parser.add_argument("--runs-dir", default="runs/bench-maniskill")
    parser.add_argument("--out", default="benchmarks/results/maniskill_rl")
    parser.add_argument("--report-only", action="store_true",
                        help="tabulate the runs of RUNS_DIR as they are (finished or stopped); train nothing")
    parser.add_argument("--name", default="maniskill_rl", help="results file stem: OUT/NAME.md and OUT/NAME.png")
    args = parser.parse_args(argv)
    runs_dir, out = Path(args.runs_dir), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    header = results_header("PPO on ManiSkill 3: MePoly vs Gaussian (state observations, pd_ee_delta_pos, CPU simulator)", args.seeds)

    rows, curves = [], {}
    for task in args.tasks:
        for method in args.methods:
            for seed in args.seeds:
                run_dir = runs_dir / f"{task}__{method}__{seed}"
                metrics = load_finished(run_dir) if args.reuse or args.report_only else None
                if metrics is None and args.report_only:
                    if not (run_dir / "config.yml").exists():
                        continue  # never started
                    metrics = stopped_run(run_dir)
                elif metrics is None:
                    print(f"training {run_dir}", flush=True)
                    metrics = train_run(f"maniskill/{task}", method, seed, str(run_dir), args.steps)
                curve = checkpoint_curve(run_dir, task, args.episodes)
                curves[(task, method, seed)] = curve
                reached = next((s for s, once, *_ in curve if once >= TARGET), None)
                config = yaml.safe_load((run_dir / "config.yml").read_text())
                seconds = metrics.get("train_seconds")
                steps_per_s = metrics["num_timesteps"] / seconds if seconds else float("nan")
                final = ["-"] * 3 if metrics.get("stopped") else [
                    f"{metrics[k]:.2f}" for k in ("success_once_sampled", "success_once_mode", "success_at_end_mode")]
                trained = f"{metrics['num_timesteps']} (stopped at {config['n_timesteps']})" if metrics.get("stopped") else metrics["num_timesteps"]
                rows.append([task, method, seed, json.dumps(config["policy_kwargs"].get("blocks")) if method == "mepoly" else "-",
                             trained, reached if reached is not None else f"not within {metrics['num_timesteps']}",
                             f"{curve[-1][1]:.2f}" if curve else "-", f"{curve[-1][3]:.1f}" if curve else "-", *final,
                             f"{seconds / 60:.0f}" if seconds else "-", f"{steps_per_s:.0f}"])
    table = markdown_table(
        ["task", "method", "seed", "MePoly blocks", "steps trained", f"steps to success_once >= {TARGET} (sampled, {args.episodes} ep.)",
         "last checkpoint success_once (sampled)", "last checkpoint mean return (sampled)", "final success_once (sampled)", "final success_once (mode)", "final success_at_end (mode)",
         "train min", "steps/s (incl. evaluations)"], rows)
    text = header + (f"\nEvaluation: {args.episodes} episodes per checkpoint, evaluation seeds from 10,000; `train min` and steps/s include "
                     "the in-training evaluations and share the machine with whatever else ran (see load average).\n\n") + table
    figure(out / f"{args.name}.png", curves)
    text += f"\n![learning curves]({args.name}.png)\n"
    write_report(out, f"{args.name}.md", text)


def figure(path: Path, curves: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    tasks = sorted({k[0] for k in curves})
    # top row: success_once; bottom row: mean episode return (progress before any success shows)
    fig, axes = plt.subplots(2, len(tasks), figsize=(5.5 * len(tasks), 7), squeeze=False, sharex="col")
    for column, task in enumerate(tasks):
        for (t, method, seed), curve in sorted(curves.items()):
            if t != task or not curve:
                continue
            steps, once, _, mean_return = np.array(curve).T
            style = dict(marker="o", color={"mepoly": "tab:red", "gaussian": "tab:blue"}.get(method),
                         linestyle=("-", "--", ":", "-.")[seed % 4], label=f"{method} (seed {seed})")
            axes[0, column].plot(steps, once, **style)
            axes[1, column].plot(steps, mean_return, **style)
        axes[0, column].axhline(TARGET, color="grey", linestyle=":", linewidth=1)
        axes[0, column].set_title(f"{task}: success_once, sampled actions")
        axes[0, column].set_ylim(-0.02, 1.02)
        axes[0, column].legend()
        axes[1, column].set_title(f"{task}: mean return, sampled actions")
        axes[1, column].set_xlabel("environment steps")
        axes[1, column].xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:.0f}k"))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
