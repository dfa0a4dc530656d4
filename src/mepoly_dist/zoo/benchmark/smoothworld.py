r"""Smooth World navigation (section 5.1) as a reproducible benchmark.

Usage (from the repository root)::

    python benchmarks/smoothworld.py [--layouts four_walls two_walls] [--methods mepoly gaussian]
                                     [--seeds 0 1 2] [--steps N] [--workers 2] [--threads 1] [--quick]
                                     [--hp KEY=VALUE ...] [--policy-kwargs KEY=VALUE ...]
                                     [--backend local|ray [--address ADDR]] [--reuse] [--report-only]
                                     [--late K] [--records TABLE.jsonl] [--out DIR] [--name NAME]

Methods: ``mepoly``, ``gaussian``, ``gmm``, ``nsf``, ``fpo`` (:mod:`mepoly_dist.zoo.baselines`), with the presets.

Every (layout, method, seed) is one ``mepoly train`` run with the presets of ``presets/ppo.yml``
(PPO, 64 batched envs x 32 steps per iteration), in ``runs/bench-smoothworld/{layout}__{method}__{seed}``.
The final evaluation runs 100 stochastic episodes from each of the layout's fixed starts
(``Layout.eval_starts``: the centre of four_walls, the left side of two_walls, ...) and reports
the success rate, the goal region each episode ended in (counts) and the normalized goal entropy
``H(goal) / log K``; on the single-goal layouts (tree_in_the_middle, two_slits, cshape) the
successes' route counts past the obstacle and their route entropy (:attr:`Layout.routes`) take
the goal entropy's place; ``eval_curve.csv`` (20 episodes per checkpoint) gives the steps to reach
0.9 success.  The goal split of a policy drifts during training while its success stays at 1, so
the table also gives the goal entropy of the last ``--late`` checkpoints (100 episodes each, cached
in the run's ``checkpoint_goal_eval.csv``): their mean, min and max.  ``--report-only`` tabulates
the finished runs of ``--runs-dir`` and trains nothing.  Writes ``OUT/smoothworld.md`` (NAME with ``--name``;
OUT defaults to ``benchmarks/results/smoothworld``) and ``OUT/NAME.png`` and ``OUT/NAME_drift.png``
(trajectory fans and drift fields of the lowest seed with a saved model).

Below the per-run table, a summary over seeds per (layout, method) and, on the layouts of
:data:`TARGET_LAYOUTS`, whether MePoly's goal entropy is the highest of the methods run, with a
success rate of at least 0.95.

``--records TABLE.jsonl`` adds each run's small text records (metrics, curves, cached checkpoint
evaluations, config, timing; no models; :mod:`mepoly_dist.zoo.benchmark.records`) to a records table,
one line per run, with the mean drift length of the runs drawn in the drift figure.  A records table
is itself a valid ``--runs-dir`` for ``--report-only``: the late goal entropy then comes from the cached
checkpoint evaluations, and since a table holds no models the figures are not redrawn: the report
refers to figures already in OUT (drawn from the models when the runs were made, their panels named
from the records' drift lengths), or says that there are none.  So runs made in different sessions
or on different machines are tabulated together, and ``python benchmarks/reports.py`` rebuilds the
committed reports from their tables.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from .records import RunRecord, Runs, is_table, update_table
from .results import NOISE_Z, compare_means, markdown_table, mean_se, results_header, write_report
from .sweep import add_backend_arguments, run_parallel, train_run

__all__ = ["TARGET_LAYOUTS", "TARGET_SUCCESS", "run_name", "steps_to_success", "late_goal_entropy", "summarize",
           "train_time", "target_verdicts", "draw_fans", "draw_drift", "figure", "recorded_panels", "main"]

#: layouts of the paper's claim checked in the reports: MePoly's goal entropy the highest, with success >= TARGET_SUCCESS
TARGET_LAYOUTS = ("four_walls", "two_walls", "three_goals")
TARGET_SUCCESS = 0.95
#: how a drift-field panel names its run's mean drift length (the record's ``notes["drift_mean"]``)
DRIFT_NOTE = "mean |drift| {:.2f}"
DRIFT_TEXT = ("Drift fields of the same models: the mean velocity E[clip(a)] of 64 actions at each free cell "
              "(`evaluation.smooth_world_drift`; the clip acts per axis, so full speed is 1 along an axis and sqrt 2 = 1.41 "
              "on a diagonal). A long yellow arrow is a nearly deterministic action; a short dark one, a diffuse density or "
              "modes that cancel. Circles: the fixed starts.")


def run_name(layout: str, method: str, seed: int) -> str:
    """The name of a run's directory (and of its record): ``{layout}__{method}__{seed}``."""
    return f"{layout}__{method}__{seed}"


def _record(run) -> RunRecord:
    """A :class:`RunRecord` as is, or the record of a run directory."""
    return run if isinstance(run, RunRecord) else RunRecord.from_run_dir(run)


def steps_to_success(run, threshold: float = 0.9):
    """The first in-training evaluation (``eval_curve``) with a success rate of at least ``threshold``:
    its steps, or None.  ``run``: a :class:`RunRecord` or a run directory."""
    for row in _record(run).rows("eval_curve"):
        if float(row["success_rate"]) >= threshold:
            return int(row["timesteps"])
    return None


def late_goal_entropy(run, layout: str, last: int, episodes: int = 100) -> list[tuple[int, float, float]]:
    """(steps, success, goal entropy) of the run's last ``last`` checkpoints, ``episodes`` episodes
    from each fixed start (seed 0, as the final evaluation), cached in ``checkpoint_goal_eval.csv``.

    ``run``: a :class:`RunRecord` or a run directory.  A record without checkpoints (a records
    table's) gives the cached evaluations of its last checkpoints; a run directory's missing
    evaluations are made and added to its cache (and to the record).

    A policy's goal split drifts from checkpoint to checkpoint while its success stays at 1 (the
    in-training evaluations of one four_walls run read 0.87, 0.61, 0.58, 0.90, 0.77, 0.14), so the final
    model's goal entropy alone is one draw of that drift; its mean over the late checkpoints is a
    steadier measure of how many goals the training keeps."""
    run = _record(run)
    cached = {(int(r["timesteps"]), int(r["episodes"])): (float(r["success_rate"]), float(r["goal_entropy"]))
              for r in run.rows("checkpoint_goal_eval")}
    checkpoints = run.checkpoints()[-last:]
    if not checkpoints:  # records: the cached evaluations of the last checkpoints
        steps = sorted(t for t, n in cached if n == episodes)[-last:]
        return [(t, *cached[(t, episodes)]) for t in steps]
    import torch

    from mepoly_dist.zoo.rollouts import evaluate_smooth_world_policy
    from mepoly_dist.zoo.train import load_model

    torch.set_num_threads(1)
    rows = []
    for path in checkpoints:
        steps = int(path.stem.split("_")[1])
        if (steps, episodes) not in cached:
            _, model = load_model(run.path, path=path)
            found, _ = evaluate_smooth_world_policy(model.policy, layout, episodes=episodes, seed=0)
            cached[(steps, episodes)] = (found["success_rate"], found["goal_entropy"])
        rows.append((steps, *cached[(steps, episodes)]))
    header = ["timesteps", "episodes", "success_rate", "goal_entropy"]
    table = [(steps, n, *values) for (steps, n), values in sorted(cached.items())]
    with (run.path / "checkpoint_goal_eval.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(table)
    run.set_rows("checkpoint_goal_eval", header, table)
    return rows


def summarize(results: dict, late_means: dict | None = None) -> dict:
    """Per ``(layout, method)``, over seeds: the seeds, the mean, standard error and lowest success
    rate, the mean, standard error, lowest and highest final goal entropy (each run's mean over its
    fixed starts), the mean of the runs' late goal entropies where they have one
    (``late_means[(layout, method, seed)]``), and on layouts with routes the mean, lowest and
    highest route entropy of the runs that report one (``route_seeds``; None where none does).
    Standard errors are :func:`~mepoly_dist.zoo.benchmark.results.mean_se`'s (NaN for one seed)."""
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
        summary[key] = dict(seeds=[seed for seed, _ in runs], success=float(success.mean()), success_se=mean_se(success)[1],
                            success_min=float(success.min()),
                            entropy=float(entropy.mean()), entropy_se=mean_se(entropy)[1], entropy_min=float(entropy.min()),
                            entropy_max=float(entropy.max()),
                            late=float(np.mean(late)) if late else None, late_seeds=len(late),
                            route=float(route.mean()) if routed else None, route_min=float(route.min()) if routed else None,
                            route_max=float(route.max()) if routed else None, route_seeds=[seed for seed, _ in routed])
    return summary


def train_time(metrics: dict) -> str:
    """A run's training seconds, with its torch thread count where it is not one (``timing.json``'s
    ``torch_threads``: a list where a resumed run changed it, ``None`` for a session recorded before
    the count was kept, shown as ``?``).  The benchmark runs recorded before then had one thread."""
    threads = metrics.get("torch_threads", 1)
    if threads == 1:
        return f"{metrics['train_seconds']:.0f}"
    threads = "/".join("?" if t is None else str(t) for t in threads) if isinstance(threads, list) else str(threads)
    return f"{metrics['train_seconds']:.0f} ({threads} threads)"


def _with_se(mean: float, se: float) -> str:
    return f"{mean:.2f}" if np.isnan(se) else f"{mean:.2f} ± {se:.2f}"


def target_verdicts(summary: dict, layouts=TARGET_LAYOUTS, success_threshold: float = TARGET_SUCCESS) -> list[str]:
    """One line per target layout: is MePoly's mean goal entropy over seeds the highest of the methods
    run on it, with its mean success rate >= ``success_threshold``?  Methods are ranked only where
    the difference of the means exceeds the noise (:func:`~mepoly_dist.zoo.benchmark.results.compare_means`:
    :data:`~mepoly_dist.zoo.benchmark.results.NOISE_Z` standard errors of the difference):

    * ``yes``: above every other method, outside the noise, with the success rate;
    * ``no``: below another method outside the noise, or a success rate under the threshold;
    * ``within the noise``: not separable from the best of the others it does not beat;
    * ``unknown noise``: a method has one seed, so no standard error;
    * ``not measured``: no MePoly run or no other method.

    Each line gives every method's mean ± standard error and how MePoly's compares with it."""
    lines = []
    for layout in layouts:
        methods = {method: v for (lay, method), v in summary.items() if lay == layout}
        if "mepoly" not in methods or len(methods) < 2:
            lines.append(f"{layout}: not measured (methods run: {sorted(methods) or 'none'})")
            continue
        mine = methods["mepoly"]
        relation = {m: compare_means((mine["entropy"], mine["entropy_se"]), (v["entropy"], v["entropy_se"]))
                    for m, v in methods.items() if m != "mepoly"}
        if mine["success"] < success_threshold:
            verdict = "no"
        elif all(r == "higher" for r in relation.values()):
            verdict = "yes"
        elif any(r == "lower" for r in relation.values()):
            verdict = "no"
        elif any(r == "unknown noise" for r in relation.values()):
            verdict = "unknown noise"
        else:
            verdict = "within the noise"
        others = ", ".join(f"{m} {_with_se(v['entropy'], v['entropy_se'])} ({relation[m]})"
                           for m, v in sorted(methods.items(), key=lambda item: -item[1]["entropy"]) if m != "mepoly")
        same_seeds = len({tuple(v["seeds"]) for v in methods.values()}) == 1
        seeds = ", ".join(f"{m} {v['seeds']}" for m, v in methods.items() if m != "mepoly")
        lines.append(f"{layout}: {verdict}: MePoly goal entropy {_with_se(mine['entropy'], mine['entropy_se'])} (success "
                     f"{mine['success']:.2f}, seeds {mine['seeds']}); MePoly against {others}"
                     + ("" if same_seeds else f"; the methods' seeds differ ({seeds})"))
    return lines


def draw_fans(ax, policy, layout: str) -> None:
    """Trajectory fans: 30 episodes re-rolled from each of the layout's fixed starts."""
    from mepoly_dist.zoo.envs.layouts import LAYOUTS
    from mepoly_dist.zoo.plotting import draw_trajectories
    from mepoly_dist.zoo.rollouts import rollout_from_start

    for start in LAYOUTS[layout].eval_starts:
        paths, _ = rollout_from_start(policy, layout, start, episodes=30)
        draw_trajectories(ax, paths, linewidth=1.2, ends=False)


def draw_drift(ax, policy, layout: str) -> float:
    """The drift field :math:`E[clip(a)]` at every free cell (64 actions each), with the fixed
    starts; returns its mean length over the free cells (the panel's :data:`DRIFT_NOTE`)."""
    from mepoly_dist.zoo.envs.layouts import LAYOUTS
    from mepoly_dist.zoo.plotting import draw_drift_field
    from mepoly_dist.zoo.rollouts import smooth_world_drift

    field = smooth_world_drift(policy, layout)
    draw_drift_field(ax, field)
    for x, y in LAYOUTS[layout].eval_starts:
        ax.plot(x, y, marker="o", markersize=7, markerfacecolor="white", markeredgecolor="black")
    return float(field["speed"].mean())


def figure(path: Path, runs, layouts, methods, seeds=(0,), draw=draw_fans, note: str = DRIFT_NOTE,
           values: dict | None = None) -> str | None:
    """A layouts x methods grid of panels, each ``draw(ax, policy, layout)`` for the saved model of
    the lowest of ``seeds`` whose run has one (trajectory fans by default, :func:`draw_drift` for the
    drift fields).  ``runs``: a runs directory or :class:`~mepoly_dist.zoo.benchmark.records.Runs`.

    A number ``draw`` returns is formatted with ``note`` (a string is taken as is), added to the
    panel's title and to the returned list of which seed each panel shows, and stored in ``values``
    by run name.  None, and no file, when no run has a model (a report from records only): a grid
    of bare layouts is not a measurement."""
    runs = runs if isinstance(runs, Runs) else Runs(runs)

    def model_run(layout, method):
        for seed in sorted(seeds):
            record = runs.get(run_name(layout, method, seed))
            if record is not None and record.has_model():
                return seed, record
        return None

    panels = {(layout, method): model_run(layout, method) for layout in layouts for method in methods}
    if not any(panels.values()):
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
            title = f"{layout}: {method}"
            if panels[(layout, method)] is not None:
                seed, record = panels[(layout, method)]
                _, model = load_model(record.path)
                value = draw(ax, model.policy, layout)
                text = note.format(value) if isinstance(value, (int, float)) else value
                if values is not None and value is not None:
                    values[record.name] = value
                title += f", seed {seed}" + (f"\n{text}" if text else "")
                shown.append(f"{layout} {method} seed {seed}" + (f" ({text})" if text else ""))
            ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return ", ".join(shown)


def recorded_panels(runs: Runs, layouts, methods, seeds) -> tuple[str, str] | None:
    """What :func:`figure` returned for the fans and the drift fields when the runs had their models,
    rebuilt from the records: per (layout, method) the lowest of ``seeds`` whose record has the
    mean drift length of its model (``notes["drift_mean"]``).  None where no record has one."""
    fans, drifts = [], []
    for layout in layouts:
        for method in methods:
            for seed in sorted(seeds):
                record = runs.finished(run_name(layout, method, seed))
                if record is not None and "drift_mean" in record.notes:
                    fans.append(f"{layout} {method} seed {seed}")
                    drifts.append(f"{layout} {method} seed {seed} ({DRIFT_NOTE.format(record.notes['drift_mean'])})")
                    break
    return (", ".join(fans), ", ".join(drifts)) if fans else None


def _figures_text(name: str, fans: str | None, drifts: str | None) -> str:
    if fans is None:
        return "\nNo figures: none of these runs has a saved model (the report is made from their records).\n"
    return (f"\n![trajectory fans]({name}.png)\n\nTrajectory fans (30 episodes per start): {fans}.\n"
            f"\n![drift fields]({name}_drift.png)\n\n{DRIFT_TEXT} Panels: {drifts}.\n")


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
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per run (default 1: one core per worker).  One run alone on two idle cores "
                             "is faster on 2 (the flow's PPO iteration here: 12-13 s, against 14 s for each of two 1-thread "
                             "runs side by side), but slows many-fold while another process competes for the cores")
    parser.add_argument("--reuse", action="store_true", help="skip runs whose run directory already has metrics.json")
    parser.add_argument("--report-only", action="store_true", help="tabulate the finished runs of RUNS_DIR; train nothing")
    parser.add_argument("--late", type=int, default=4,
                        help="checkpoints at the end of training whose goal entropy is averaged (100 episodes each); 0: skip")
    parser.add_argument("--quick", action="store_true", help="20k steps, one seed (smoke run)")
    parser.add_argument("--runs-dir", default="runs/bench-smoothworld",
                        help="the run directories; with --report-only also a records table (*.jsonl)")
    parser.add_argument("--records", default=None, metavar="TABLE",
                        help="add each run's text records (metrics, curves, cached checkpoint evaluations) to this records "
                             "table (*.jsonl, created or updated)")
    parser.add_argument("--out", default="benchmarks/results/smoothworld")
    parser.add_argument("--name", default=None, help="results file name (default smoothworld, smoothworld_quick with --quick)")
    args = parser.parse_args(argv)
    if args.records and not is_table(args.records):
        parser.error(f"--records takes a records table (*.jsonl), got {args.records}")
    if is_table(args.runs_dir) and not args.report_only:
        parser.error("a records table holds no models to train or resume: use --report-only with it")
    if args.threads < 1:
        parser.error(f"--threads must be a positive integer, got {args.threads}")
    if args.quick:
        args.steps, args.seeds = 20_480, args.seeds[:1]
    runs_dir, out = Path(args.runs_dir), Path(args.out)
    runs = Runs(runs_dir)
    header = results_header("Smooth World benchmark: PPO on the paper's navigation layouts (section 5.1)", args.seeds,
                            threads=args.threads, extra=f"* hyperparameter overrides: {args.hp or 'none (presets)'}"
                            + f"\n* policy_kwargs overrides: {args.policy_kwargs or 'none (presets)'}"
                            + ("\n* algorithm: MaxEntPPO for the PPO-based methods (entropy in the returns)" if args.maxent else ""))
    jobs, results, records = {}, {}, {}
    for key in [(l, m, s) for l in args.layouts for m in args.methods for s in args.seeds]:
        finished = runs.finished(run_name(*key)) if args.reuse or args.report_only else None
        if finished is not None:
            results[key], records[key] = finished.metrics, finished
        elif not args.report_only:
            algo = "maxent_ppo" if args.maxent and not key[1].startswith("fpo") else None
            jobs[key] = (train_run, (*key, str(runs_dir / run_name(*key)), args.steps, args.hp, args.policy_kwargs, algo,
                                      args.threads))

    def report(key, m):
        print(f"{key}: success {m['success_rate']:.2f}  goal entropy {m['goal_entropy']:.2f}  "
              f"goals {[s['goal_counts'] for s in m['starts']]}  {m['train_seconds']:.0f} s", flush=True)

    trained = run_parallel(jobs, args.workers, report, args.backend, args.address, args.threads)
    results.update(trained)
    records.update({key: RunRecord.from_run_dir(runs_dir / run_name(*key)) for key in trained})
    rows, late_means = [], {}
    for (layout, method, seed), m in sorted(results.items()):
        record = records[(layout, method, seed)]
        reach = steps_to_success(record)
        late = "-"
        if args.late > 0:
            entropies = np.array([h for _, _, h in late_goal_entropy(record, layout, args.late)])
            late = f"{entropies.mean():.2f} [{entropies.min():.2f}, {entropies.max():.2f}]" if entropies.size else "no checkpoints"
            if entropies.size:
                late_means[(layout, method, seed)] = float(entropies.mean())
        for start in m["starts"]:
            route = f"{start['route_counts']} ({start['route_entropy']:.2f})" if "route_counts" in start else "-"
            rows.append([layout, method, seed, tuple(start["start"]), f"{start['success_rate']:.2f}", start["goal_counts"],
                         f"{start['goal_entropy']:.2f}", late, route, reach if reach is not None else "not reached",
                         m["num_timesteps"], train_time(m)])
    table = markdown_table(["layout", "method", "seed", "start", "success", "goal counts", "goal entropy / log K",
                            f"late goal entropy: mean [min, max] of the last {args.late} checkpoints",
                            "route counts (route entropy / log 2) of the successes", "steps to 0.9 success", "steps", "train s"], rows)
    summary = summarize(results, late_means)
    summary_table = markdown_table(["layout", "method", "seeds", "success: mean ± s.e. [min]", "goal entropy / log K: mean ± s.e. [min, max]",
                                    f"late goal entropy: mean over seeds of the last-{args.late} mean",
                                    "route entropy: mean [min, max] (seeds)"],
                                   [[*key, len(v["seeds"]), f"{_with_se(v['success'], v['success_se'])} [{v['success_min']:.2f}]",
                                     f"{_with_se(v['entropy'], v['entropy_se'])} [{v['entropy_min']:.2f}, {v['entropy_max']:.2f}]",
                                     "-" if v["late"] is None else f"{v['late']:.2f} ({v['late_seeds']} seeds)",
                                     "-" if v["route"] is None else
                                     f"{v['route']:.2f} [{v['route_min']:.2f}, {v['route_max']:.2f}] ({len(v['route_seeds'])})"]
                                    for key, v in summary.items()])
    verdicts = "".join(f"* {line}\n" for line in target_verdicts(summary))
    name = args.name or ("smoothworld_quick" if args.quick else "smoothworld")
    out.mkdir(parents=True, exist_ok=True)
    drift_means = {}
    fans = figure(out / f"{name}.png", runs, args.layouts, args.methods, args.seeds)
    drifts = figure(out / f"{name}_drift.png", runs, args.layouts, args.methods, args.seeds, draw=draw_drift, values=drift_means)
    if fans is None and (out / f"{name}.png").exists() and (out / f"{name}_drift.png").exists():
        # records only: the figures drawn from the models when the runs were made stay, named from the records
        fans, drifts = recorded_panels(runs, args.layouts, args.methods, args.seeds) or (None, None)
    if args.records:
        for record in records.values():
            if record.name in drift_means:
                record.notes["drift_mean"] = drift_means[record.name]
        update_table(args.records, [records[key] for key in sorted(results)])
    text = (header + "\n" + table + "\n## Over seeds\n\n" + summary_table
            + "\nMean ± standard error over seeds (sample standard deviation / sqrt(seeds)).\n"
            + f"\nIs MePoly's goal entropy the highest of the methods, with success >= {TARGET_SUCCESS}? Methods are ranked "
            f"only where the difference of the means exceeds {NOISE_Z:g} standard errors of the difference.\n\n" + verdicts
            + _figures_text(name, fans, drifts))
    write_report(out, f"{name}.md", text)


if __name__ == "__main__":
    main()
