#!/usr/bin/env python
r"""The paper's bandit (section 5.2) as a reproducible benchmark.

Usage (from the repository root)::

    python benchmarks/bandit.py [--targets lemniscate two_moons] [--methods mepoly gaussian gmm nsf fpo]
                                [--seeds 0 1 2] [--workers 2] [--backend local|ray [--address ADDR]]
                                [--reuse] [--quick] [--records TABLE.jsonl] [--out benchmarks/results/bandit]
    python benchmarks/bandit.py --report-only --runs-dir TABLE.jsonl   # the report from recorded runs

Every (target, method, seed) is one ``mepoly train`` run (:func:`mepoly_dist.zoo.train.train`, the
presets of ``presets/ppo.yml``: 100 PPO iterations of 1024 one-step episodes, 10 epochs x 6
minibatches, entropy coefficient alpha = 0.2, i.e. the paper code's budget of 102,400 samples),
run in ``--workers`` parallel processes with one torch thread each, in
``runs/bench-bandit/{target}__{method}__{seed}``.  Metrics (:mod:`mepoly_dist.zoo.metrics`):
TV between the policy's action histogram (32 x 32 cells, 10^5 samples) and the Boltzmann target
``exp(r / alpha)``, coverage of the target points (4096 samples, radius 0.05), mean reward,
environment samples and wall-clock per run.

Methods: ``mepoly``, ``gaussian`` (SB3's), and the paper's baselines ``gmm`` (PPO with a K = 4
tanh-squashed Gaussian mixture, Monte-Carlo entropy) and ``fpo`` (flow policy optimization), and
the normalizing-flow peer ``nsf`` (a tanh-squashed neural spline flow, Monte-Carlo entropy), see
:mod:`mepoly_dist.zoo.baselines`; all with the same budget and network (presets).  ``--reuse`` skips
runs whose directory already holds ``metrics.json`` (a rerun only trains what is missing);
``--backend ray`` runs the same sweep as Ray Tune trials (``--address`` for a cluster).
``--records TABLE.jsonl`` keeps each finished run's records (:mod:`~mepoly_dist.zoo.benchmark.records`)
in one table, from which ``--report-only --runs-dir TABLE.jsonl`` remakes the report without
training (the sample-histogram figure needs the runs' saved actions, so it is kept as it is).

A method name may carry overrides after ``+`` (:data:`mepoly_dist.zoo.benchmark.sweep.VARIANTS`): ``mepoly+normadv`` is
MePoly with SB3's advantage normalization switched on (the main rows use
``normalize_advantage=False``, under which ``exp(r / alpha)`` is PPO's MaxEnt optimum);
``gaussian+noent`` drops the entropy bonus, which for SB3's state-independent Gaussian only
grows the standard deviation until the clipped actions pile up on the box's faces.  Writes ``OUT/bandit.md`` and
``OUT/bandit.png`` (one sample-histogram panel per method and target, seed 0, beside the target).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .results import NOISE_Z, compare_means, format_mean_se, markdown_table, mean_se, results_header, write_report
from .records import Runs, compact, is_table, update_table
from .sweep import add_backend_arguments, load_finished, run_parallel, train_run

__all__ = ["summarize", "plot_action_samples", "figure", "add_sweep_arguments", "parse_sweep_arguments", "draws_figures", "run_sweep", "main"]


def plot_action_samples(ax, samples_path: Path, bins: int = 64) -> None:
    """A 2-D histogram of a run's saved action samples (``action_samples.npy``, shape (N, 2)) on
    the action square, x horizontal; leaves the panel empty when the run has no samples."""
    if samples_path.exists():
        samples = np.load(samples_path)
        hist, _, _ = np.histogram2d(samples[:, 1], samples[:, 0], bins=bins, range=[[-1, 1], [-1, 1]])
        ax.imshow(hist, origin="lower", extent=(-1, 1, -1, 1), cmap="magma")


def summarize(results: dict, targets, methods, seeds) -> str:
    rows, per_seed = [], []
    for target in targets:
        for method in methods:
            found = [results[(target, method, s)] for s in seeds if (target, method, s) in results]
            if not found:
                continue
            cols = []
            for key in ("coverage", "tv_to_target", "mean_reward"):
                cols.append(format_mean_se([m[key] for m in found], digits=3))
            rows.append([target, method, len(found), *cols, found[0]["num_timesteps"], f"{np.mean([m['train_seconds'] for m in found]):.0f}"])
            for s, m in zip(seeds, found):
                per_seed.append([target, method, s, f"{m['coverage']:.3f}", f"{m['tv_to_target']:.3f}", f"{m['mean_reward']:.3f}",
                                 m["num_timesteps"], f"{m['train_seconds']:.0f}", str(m["normalize_advantage"])])
    header = ["target", "method", "seeds", "coverage", "TV to exp(r/alpha)", "mean reward", "samples", "train s / run"]
    text = "## Summary (mean ± standard error over seeds: sample standard deviation / sqrt(seeds))\n\n" + markdown_table(header, rows)
    text += _tv_ranking(results, targets, methods, seeds)
    text += "\n## Per seed\n\n" + markdown_table(
        ["target", "method", "seed", "coverage", "TV", "mean reward", "samples", "train s", "normalize_advantage"], per_seed)
    return text


def _tv_ranking(results: dict, targets, methods, seeds) -> str:
    """Per target, MePoly's TV against every other method's, ranked only outside the noise
    (:func:`~mepoly_dist.zoo.benchmark.results.compare_means`); empty without a MePoly run."""
    lines = []
    for target in targets:
        tv = {m: mean_se([results[(target, m, s)]["tv_to_target"] for s in seeds if (target, m, s) in results])
              for m in methods if any((target, m, s) in results for s in seeds)}
        if "mepoly" not in tv or len(tv) < 2:
            continue
        words = {"lower": "lower (better) than", "higher": "higher (worse) than", "within the noise": "within the noise of",
                 "unknown noise": "not comparable (one seed) with"}
        against = "; ".join(f"{words[compare_means(tv['mepoly'], tv[m])]} {m}'s {tv[m][0]:.3f} ± {tv[m][1]:.3f}"
                            for m in methods if m in tv and m != "mepoly")
        lines.append(f"* {target}: MePoly's TV {tv['mepoly'][0]:.3f} ± {tv['mepoly'][1]:.3f} is {against}")
    if not lines:
        return ""
    return ("\nMePoly's TV to the target against each method's, ranked only where the difference of the means exceeds "
            f"{NOISE_Z:g} standard errors of the difference:\n\n" + "\n".join(lines) + "\n")


def figure(path: Path, runs_dir: Path, targets, methods) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mepoly_dist.zoo.targets import boltzmann_log_density, target_points

    fig, axes = plt.subplots(len(targets), len(methods) + 1, figsize=(3.2 * (len(methods) + 1), 3.2 * len(targets)), squeeze=False)
    line = np.linspace(-1, 1, 200)
    gx, gy = np.meshgrid(line, line)
    for r, target in enumerate(targets):
        points = target_points(target)
        energy = boltzmann_log_density(np.stack([gx.ravel(), gy.ravel()], -1), points, 0.2).reshape(gx.shape)
        axes[r, 0].imshow(np.exp(energy - energy.max()), origin="lower", extent=(-1, 1, -1, 1), cmap="magma")
        axes[r, 0].set_title(f"{target}: target exp(r/0.2)", fontsize=9)
        for c, method in enumerate(methods, start=1):
            ax = axes[r, c]
            plot_action_samples(ax, runs_dir / f"{target}__{method}__0" / "action_samples.npy")
            ax.set_title(f"{method} (seed 0)", fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def add_sweep_arguments(parser: argparse.ArgumentParser, seeds, quick_iterations: int) -> None:
    """The options every bandit sweep takes: seeds, the backend, ``--reuse``, ``--steps``, ``--quick``
    (``quick_iterations`` PPO iterations per run, one seed), ``--runs-dir`` and ``--out``."""
    parser.add_argument("--seeds", nargs="+", type=int, default=list(seeds))
    add_backend_arguments(parser)
    parser.add_argument("--reuse", action="store_true", help="skip runs whose run directory already has metrics.json")
    parser.add_argument("--steps", type=int, default=None, help="samples per run (default: the preset's 102,400)")
    parser.add_argument("--quick", action="store_true", help=f"{quick_iterations} iterations per run, one seed (smoke run)")
    parser.add_argument("--runs-dir", default="runs/bench-bandit",
                        help="where the runs are trained (one directory each); with --report-only, a records table (*.jsonl) may stand in")
    parser.add_argument("--records", default=None, metavar="TABLE.jsonl",
                        help="add every finished run's records to this table (mepoly_dist.zoo.benchmark.records)")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: make the report from the finished runs of --runs-dir (run directories or a records table)")
    parser.add_argument("--out", default="benchmarks/results/bandit")
    parser.set_defaults(quick_iterations=quick_iterations)


def run_sweep(runs: dict, args) -> dict:
    """Train the runs of a sweep, ``key -> (run_dir, train_run arguments)``, in ``args.workers``
    processes or on Ray (``args.backend``); with ``args.reuse`` a run whose directory already holds
    ``metrics.json`` is read instead, and ``args.records`` collects the finished runs' records in a
    table.  With ``args.report_only`` nothing is trained: the finished runs are read from
    ``args.runs_dir`` (run directories or a records table).  Returns ``key -> metrics`` and prints
    each run as it ends."""
    if args.report_only:
        source = Runs(args.runs_dir)
        results = {}
        for key, (run_dir, _) in runs.items():
            record = source.finished(Path(run_dir).name)
            if record is not None:
                results[key] = record.metrics
        missing = sorted(set(runs) - set(results))
        if missing:
            print(f"not finished in {args.runs_dir}, left out of the report: {missing}", flush=True)
        return results
    jobs, results = {}, {}
    for key, (run_dir, train_arguments) in runs.items():
        finished = load_finished(run_dir) if args.reuse else None
        if finished is not None:
            results[key] = finished
        else:
            jobs[key] = (train_run, train_arguments)

    def report(key, m):
        print(f"{key}: coverage {m['coverage']:.3f}  TV {m['tv_to_target']:.3f}  reward {m['mean_reward']:.3f}  "
              f"{m['train_seconds']:.0f} s", flush=True)

    if results:
        print(f"reusing {len(results)} finished runs: {sorted(results)}", flush=True)
    results.update(run_parallel(jobs, args.workers, report, args.backend, args.address))
    if args.records:
        update_table(args.records, compact(Path(run_dir) for key, (run_dir, _) in runs.items() if key in results))
    return results


def parse_sweep_arguments(parser: argparse.ArgumentParser, argv) -> argparse.Namespace:
    """Parse, apply ``--quick`` and create ``--out``."""
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.seeds = args.quick_iterations * 1024, args.seeds[:1]
    if args.records and not is_table(args.records):
        parser.error(f"--records must name a records table (*.jsonl), got {args.records!r}")
    if is_table(args.runs_dir) and not args.report_only:
        parser.error("a records table as --runs-dir needs --report-only (runs are trained into directories)")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    return args


def draws_figures(args) -> bool:
    """Whether the figures can be drawn: they need the runs' action samples, which a records table
    does not keep (a report made from a table keeps the figures it has)."""
    return not is_table(args.runs_dir)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=["lemniscate", "two_moons"])
    parser.add_argument("--methods", nargs="+", default=["mepoly", "gaussian", "gmm", "nsf", "fpo"])
    add_sweep_arguments(parser, seeds=[0, 1, 2], quick_iterations=10)
    args = parse_sweep_arguments(parser, argv)
    runs_dir, out = Path(args.runs_dir), Path(args.out)
    header = results_header("Bandit benchmark: PPO on the paper's lemniscate and two moons (section 5.2)", args.seeds)
    runs = {}
    for key in [(t, m, s) for t in args.targets for m in args.methods for s in args.seeds]:
        run_dir = runs_dir / "__".join(map(str, key))
        runs[key] = (run_dir, (*key, str(run_dir), args.steps))
    results = run_sweep(runs, args)
    text = header + "\n" + summarize(results, args.targets, args.methods, args.seeds)
    name = "bandit_quick" if args.quick else "bandit"
    if draws_figures(args):
        figure(out / f"{name}.png", runs_dir, args.targets, args.methods)
    text += f"\n![policies]({name}.png)\n"
    write_report(out, f"{name}.md", text)


if __name__ == "__main__":
    main()
