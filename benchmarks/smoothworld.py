#!/usr/bin/env python
r"""Smooth World navigation (section 5.1) as a reproducible benchmark.

Usage (from the repository root)::

    python benchmarks/smoothworld.py [--layouts four_walls two_walls] [--methods mepoly gaussian]
                                     [--seeds 0 1 2] [--steps N] [--workers 2] [--quick]
                                     [--hp KEY=VALUE ...] [--policy-kwargs KEY=VALUE ...]
                                     [--backend local|ray [--address ADDR]] [--reuse] [--report-only]
                                     [--late K]

Methods: ``mepoly``, ``gaussian``, ``gmm``, ``fpo`` (:mod:`mepoly_dist.zoo.baselines`), with the presets.

Every (layout, method, seed) is one ``mepoly train`` run with the presets of ``presets/ppo.yml``
(PPO, 64 batched envs x 32 steps per iteration), in ``runs/bench-smoothworld/...``.  The final
evaluation runs 100 stochastic episodes from each of the layout's fixed starts
(``Layout.eval_starts``: the centre of four_walls, the left side of two_walls, ...) and reports
the success rate, the goal region each episode ended in (counts) and the normalized goal entropy
``H(goal) / log K``; on the single-goal layouts (tree_in_the_middle, two_slits, cshape) the
successes' route counts past the obstacle and their route entropy (:attr:`Layout.routes`) take
the goal entropy's place; ``eval_curve.csv`` (20 episodes per checkpoint) gives the steps to reach
0.9 success.  The goal split of a policy drifts during training while its success stays at 1, so
the table also gives the goal entropy of the last ``--late`` checkpoints (100 episodes each, cached
in the run's ``checkpoint_goal_eval.csv``): their mean, min and max.  ``--report-only`` tabulates
the finished runs of ``--runs-dir`` and trains nothing.  Writes ``OUT/smoothworld.md`` (NAME with ``--name``)
and ``OUT/smoothworld.png`` (trajectory fans of the lowest seed with a saved model).

Below the per-run table, a summary over seeds per (layout, method) and the issue's target on the
layouts of :data:`TARGET_LAYOUTS`: MePoly's goal entropy the highest of the methods run, with a
success rate of at least 0.95.

``--records DIR`` keeps each run's small text records (``metrics.json``, ``eval_curve.csv``,
``checkpoint_goal_eval.csv``, ``config.yml``, ``timing.json``; no models) in ``DIR/<run>/``.  A
records directory is itself a valid ``--runs-dir`` for ``--report-only`` (the late goal entropy then
comes from the cached checkpoint evaluations, the figures leave runs without a model empty, and with no
model at all no figure is written), so
runs made in different sessions or on different machines are tabulated together.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_backend_arguments, load_finished, markdown_table, results_header, run_parallel, train_run  # noqa: E402

#: layouts of the issue's target: MePoly's goal entropy the highest, with success >= TARGET_SUCCESS
TARGET_LAYOUTS = ("four_walls", "two_walls", "three_goals")
TARGET_SUCCESS = 0.95
#: a run's small text records, kept by ``--records`` (models and TensorBoard logs are left out)
RECORD_FILES = ("metrics.json", "eval_curve.csv", "checkpoint_goal_eval.csv", "config.yml", "timing.json")


def steps_to_success(run_dir: Path, threshold: float = 0.9):
    path = run_dir / "eval_curve.csv"
    if not path.exists():
        return None
    with path.open() as handle:
        for row in csv.DictReader(handle):
            if float(row["success_rate"]) >= threshold:
                return int(row["timesteps"])
    return None


def late_goal_entropy(run_dir: Path, layout: str, last: int, episodes: int = 100) -> list[tuple[int, float, float]]:
    """(steps, success, goal entropy) of the run's last ``last`` checkpoints, ``episodes`` episodes
    from each fixed start (seed 0, as the final evaluation), cached in ``checkpoint_goal_eval.csv``.

    A policy's goal split drifts from checkpoint to checkpoint while its success stays at 1 (the
    in-training evaluations of one four_walls run read 0.87, 0.61, 0.58, 0.90, 0.77, 0.14), so the final
    model's goal entropy alone is one draw of that drift; its mean over the late checkpoints is a
    steadier measure of how many goals the training keeps."""
    import torch

    from mepoly_dist.zoo.rollouts import evaluate_smooth_world_policy
    from mepoly_dist.zoo.train import load_model

    torch.set_num_threads(1)
    checkpoints = sorted((run_dir / "checkpoints").glob("model_*_steps.zip"), key=lambda p: int(p.stem.split("_")[1]))[-last:]
    cache_path = run_dir / "checkpoint_goal_eval.csv"
    cached = {}
    if cache_path.exists():
        with cache_path.open() as handle:
            cached = {(int(r["timesteps"]), int(r["episodes"])): (float(r["success_rate"]), float(r["goal_entropy"]))
                      for r in csv.DictReader(handle)}
    if not checkpoints:  # a records directory: the cached evaluations of the last checkpoints
        steps = sorted(t for t, n in cached if n == episodes)[-last:]
        return [(t, *cached[(t, episodes)]) for t in steps]
    rows = []
    for path in checkpoints:
        steps = int(path.stem.split("_")[1])
        if (steps, episodes) not in cached:
            _, model = load_model(run_dir, path=path)
            found, _ = evaluate_smooth_world_policy(model.policy, layout, episodes=episodes, seed=0)
            cached[(steps, episodes)] = (found["success_rate"], found["goal_entropy"])
        rows.append((steps, *cached[(steps, episodes)]))
    with cache_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timesteps", "episodes", "success_rate", "goal_entropy"])
        writer.writerows([(steps, n, *values) for (steps, n), values in sorted(cached.items())])
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layouts", nargs="+", default=["four_walls", "two_walls"])
    parser.add_argument("--methods", nargs="+", default=["mepoly", "gaussian"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=None, help="environment steps per run (default: the preset's)")
    parser.add_argument("--hp", nargs="*", default=[], metavar="KEY=VALUE", help="hyperparameter overrides for every run")
    parser.add_argument("--policy-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                        help="policy_kwargs overrides for every run (order=12 for MePoly, n_components=8 for GMM, ...)")
    parser.add_argument("--maxent", action="store_true",
                        help="train the PPO-based methods with MaxEntPPO (ent_coef * entropy in the returns); FPO keeps its trainer")
    add_backend_arguments(parser)
    parser.add_argument("--reuse", action="store_true", help="skip runs whose run directory already has metrics.json")
    parser.add_argument("--report-only", action="store_true", help="tabulate the finished runs of RUNS_DIR; train nothing")
    parser.add_argument("--late", type=int, default=4,
                        help="checkpoints at the end of training whose goal entropy is averaged (100 episodes each); 0: skip")
    parser.add_argument("--quick", action="store_true", help="20k steps, one seed (smoke run)")
    parser.add_argument("--runs-dir", default="runs/bench-smoothworld")
    parser.add_argument("--records", default=None, metavar="DIR",
                        help="keep each run's text records (metrics, curves, cached checkpoint evaluations) in DIR/<run>/")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--name", default=None, help="results file name (default smoothworld, smoothworld_quick with --quick)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.seeds = 20_480, args.seeds[:1]
    runs_dir, out = Path(args.runs_dir), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    header = results_header("Smooth World benchmark: PPO on the paper's navigation layouts (section 5.1)", args.seeds,
                            extra=f"* hyperparameter overrides: {args.hp or 'none (presets)'}"
                            + f"\n* policy_kwargs overrides: {args.policy_kwargs or 'none (presets)'}"
                            + ("\n* algorithm: MaxEntPPO for the PPO-based methods (entropy in the returns)" if args.maxent else ""))
    jobs, results = {}, {}
    for key in [(l, m, s) for l in args.layouts for m in args.methods for s in args.seeds]:
        run_dir = runs_dir / "__".join(map(str, key))
        finished = load_finished(run_dir) if args.reuse or args.report_only else None
        if finished is not None:
            results[key] = finished
        elif not args.report_only:
            algo = "maxent_ppo" if args.maxent and not key[1].startswith("fpo") else None
            jobs[key] = (train_run, (*key, str(run_dir), args.steps, args.hp, args.policy_kwargs, algo))

    def report(key, m):
        print(f"{key}: success {m['success_rate']:.2f}  goal entropy {m['goal_entropy']:.2f}  "
              f"goals {[s['goal_counts'] for s in m['starts']]}  {m['train_seconds']:.0f} s", flush=True)

    results.update(run_parallel(jobs, args.workers, report, args.backend, args.address))
    rows, late_means = [], {}
    for (layout, method, seed), m in sorted(results.items()):
        run_dir = runs_dir / f"{layout}__{method}__{seed}"
        reach = steps_to_success(run_dir)
        late = "-"
        if args.late > 0:
            entropies = np.array([h for _, _, h in late_goal_entropy(run_dir, layout, args.late)])
            late = f"{entropies.mean():.2f} [{entropies.min():.2f}, {entropies.max():.2f}]" if entropies.size else "no checkpoints"
            if entropies.size:
                late_means[(layout, method, seed)] = float(entropies.mean())
        if args.records:
            keep_records(run_dir, Path(args.records) / run_dir.name)
        for start in m["starts"]:
            route = f"{start['route_counts']} ({start['route_entropy']:.2f})" if "route_counts" in start else "-"
            rows.append([layout, method, seed, tuple(start["start"]), f"{start['success_rate']:.2f}", start["goal_counts"],
                         f"{start['goal_entropy']:.2f}", late, route, reach if reach is not None else "not reached",
                         m["num_timesteps"], f"{m['train_seconds']:.0f}"])
    table = markdown_table(["layout", "method", "seed", "start", "success", "goal counts", "goal entropy / log K",
                            f"late goal entropy: mean [min, max] of the last {args.late} checkpoints",
                            "route counts (route entropy / log 2) of the successes", "steps to 0.9 success", "steps", "train s"], rows)
    summary = summarize(results, late_means)
    summary_table = markdown_table(["layout", "method", "seeds", "success: mean [min]", "goal entropy / log K: mean [min, max]",
                                    f"late goal entropy: mean over seeds of the last-{args.late} mean",
                                    "route entropy: mean [min, max] (seeds)"],
                                   [[*key, len(v["seeds"]), f"{v['success']:.2f} [{v['success_min']:.2f}]",
                                     f"{v['entropy']:.2f} [{v['entropy_min']:.2f}, {v['entropy_max']:.2f}]",
                                     "-" if v["late"] is None else f"{v['late']:.2f} ({v['late_seeds']} seeds)",
                                     "-" if v["route"] is None else
                                     f"{v['route']:.2f} [{v['route_min']:.2f}, {v['route_max']:.2f}] ({len(v['route_seeds'])})"]
                                    for key, v in summary.items()])
    verdicts = "".join(f"* {line}\n" for line in target_verdicts(summary))
    name = args.name or ("smoothworld_quick" if args.quick else "smoothworld")
    shown = figure(out / f"{name}.png", runs_dir, args.layouts, args.methods, args.seeds)
    drifts = figure(out / f"{name}_drift.png", runs_dir, args.layouts, args.methods, args.seeds, draw=draw_drift)
    figures = ("\nNo figures: none of these runs has a saved model (the report is made from their records).\n" if shown is None else
               f"\n![trajectory fans]({name}.png)\n\nTrajectory fans (30 episodes per start): {shown}.\n"
               + f"\n![drift fields]({name}_drift.png)\n\nDrift fields of the same models: the mean velocity E[clip(a)] of 64 "
               "actions at each free cell (`evaluation.smooth_world_drift`; the clip acts per axis, so full speed is 1 along "
               "an axis and sqrt 2 = 1.41 on a diagonal). A long yellow arrow is a nearly deterministic action; a short dark "
               "one, a diffuse density or modes that cancel. Circles: the fixed starts. "
               f"Panels: {drifts}.\n")
    text = (header + "\n" + table + "\n## Over seeds\n\n" + summary_table
            + f"\nTarget (goal entropy of MePoly the highest, success >= {TARGET_SUCCESS}):\n\n" + verdicts + figures)
    (out / f"{name}.md").write_text(text)
    print(text)


def keep_records(run_dir: Path, dest: Path) -> None:
    """Copy a run's small text records (:data:`RECORD_FILES`, those it has) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in RECORD_FILES:
        if (run_dir / name).exists() and (run_dir / name).resolve() != (dest / name).resolve():
            shutil.copy2(run_dir / name, dest / name)


def summarize(results: dict, late_means: dict | None = None) -> dict:
    """Per ``(layout, method)``, over seeds: the seeds, the mean and lowest success rate, the mean,
    lowest and highest final goal entropy (each run's mean over its fixed starts), the mean of the
    runs' late goal entropies where they have one (``late_means[(layout, method, seed)]``), and on
    layouts with routes the mean, lowest and highest route entropy of the runs that report one
    (``route_seeds``; None where none does)."""
    late_means = late_means or {}
    groups: dict = {}
    for (layout, method, seed), m in sorted(results.items()):
        groups.setdefault((layout, method), []).append((seed, m))
    summary = {}
    for key, runs in groups.items():
        success = np.array([m["success_rate"] for _, m in runs])
        entropy = np.array([m["goal_entropy"] for _, m in runs])
        late = [late_means[(*key, seed)] for seed, _ in runs if (*key, seed) in late_means]
        routed = [(seed, m["route_entropy"]) for seed, m in runs if "route_entropy" in m]
        route = np.array([h for _, h in routed])
        summary[key] = dict(seeds=[seed for seed, _ in runs], success=float(success.mean()), success_min=float(success.min()),
                            entropy=float(entropy.mean()), entropy_min=float(entropy.min()), entropy_max=float(entropy.max()),
                            late=float(np.mean(late)) if late else None, late_seeds=len(late),
                            route=float(route.mean()) if routed else None, route_min=float(route.min()) if routed else None,
                            route_max=float(route.max()) if routed else None, route_seeds=[seed for seed, _ in routed])
    return summary


def target_verdicts(summary: dict, layouts=TARGET_LAYOUTS, success_threshold: float = TARGET_SUCCESS) -> list[str]:
    """One line per target layout: is MePoly's mean goal entropy over seeds the highest of the methods
    run on it (ties count as highest), with its mean success rate >= ``success_threshold``?  A
    layout without a MePoly run or without any other method is "not measured"."""
    lines = []
    for layout in layouts:
        methods = {method: v for (lay, method), v in summary.items() if lay == layout}
        if "mepoly" not in methods or len(methods) < 2:
            lines.append(f"{layout}: not measured (methods run: {sorted(methods) or 'none'})")
            continue
        mine = methods["mepoly"]
        best_other, other = max(((v["entropy"], m) for m, v in methods.items() if m != "mepoly"))
        met = mine["entropy"] >= best_other and mine["success"] >= success_threshold
        same_seeds = len({tuple(v["seeds"]) for v in methods.values()}) == 1
        lines.append(f"{layout}: {'MET' if met else 'NOT MET'}: MePoly goal entropy {mine['entropy']:.2f} (success "
                     f"{mine['success']:.2f}, seeds {mine['seeds']}) vs the best other, {other}, {best_other:.2f} "
                     f"(seeds {methods[other]['seeds']})" + ("" if same_seeds else "; the methods' seeds differ"))
    return lines


def draw_fans(ax, policy, layout: str) -> None:
    """Trajectory fans: 30 episodes re-rolled from each of the layout's fixed starts."""
    from mepoly_dist.zoo.envs.layouts import LAYOUTS
    from mepoly_dist.zoo.rollouts import rollout_from_start
    from mepoly_dist.zoo.plotting import draw_trajectories

    for start in LAYOUTS[layout].eval_starts:
        paths, _ = rollout_from_start(policy, layout, start, episodes=30)
        draw_trajectories(ax, paths, linewidth=1.2, ends=False)


def draw_drift(ax, policy, layout: str) -> str:
    """The drift field :math:`E[clip(a)]` at every free cell (64 actions each), with the fixed
    starts; returns its mean length over the free cells for the panel's title."""
    from mepoly_dist.zoo.envs.layouts import LAYOUTS
    from mepoly_dist.zoo.rollouts import smooth_world_drift
    from mepoly_dist.zoo.plotting import draw_drift_field

    field = smooth_world_drift(policy, layout)
    draw_drift_field(ax, field)
    for x, y in LAYOUTS[layout].eval_starts:
        ax.plot(x, y, marker="o", markersize=7, markerfacecolor="white", markeredgecolor="black")
    return f"mean |drift| {field['speed'].mean():.2f}"


def figure(path: Path, runs_dir: Path, layouts, methods, seeds=(0,), draw=draw_fans) -> str | None:
    """A layouts x methods grid of panels, each ``draw(ax, policy, layout)`` for the saved model of
    the lowest of ``seeds`` whose run has one (trajectory fans by default, :func:`draw_drift` for the
    drift fields); a string ``draw`` returns is added to the panel's title and to the returned
    list of which seed each panel shows.  None, and no file, when no run has a model (a report
    from records only): a grid of bare layouts is not a measurement."""
    if not any((runs_dir / f"{layout}__{method}__{seed}" / "model.zip").exists()
               for layout in layouts for method in methods for seed in seeds):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mepoly_dist.zoo.envs.layouts import LAYOUTS
    from mepoly_dist.zoo.plotting import draw_layout
    from mepoly_dist.zoo.train import load_model

    fig, axes = plt.subplots(len(layouts), len(methods), figsize=(4 * len(methods), 4 * len(layouts)), squeeze=False)
    shown = []
    for r, layout in enumerate(layouts):
        for c, method in enumerate(methods):
            ax = axes[r, c]
            draw_layout(ax, LAYOUTS[layout])
            found = [runs_dir / f"{layout}__{method}__{seed}" for seed in sorted(seeds)]
            found = [run_dir for run_dir in found if (run_dir / "model.zip").exists()]
            title = f"{layout}: {method}"
            if found:
                run_dir = found[0]
                seed = run_dir.name.rsplit("__", 1)[1]
                _, model = load_model(run_dir)
                note = draw(ax, model.policy, layout)
                title += f", seed {seed}" + (f"\n{note}" if note else "")
                shown.append(f"{layout} {method} seed {seed}" + (f" ({note})" if note else ""))
            ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return ", ".join(shown)


if __name__ == "__main__":
    main()
