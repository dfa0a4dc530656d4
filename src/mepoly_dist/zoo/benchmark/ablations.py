#!/usr/bin/env python
r"""Ablations of MePoly on the paper's bandit (section 5.2, Fig. 3): polynomial order and basis.

Usage (from the repository root)::

    python benchmarks/ablations.py [--targets lemniscate two_moons] [--orders 2 6 10 14]
                                   [--bases legendre monomial] [--seeds 0] [--workers 2]
                                   [--backend local|ray [--address ADDR]] [--reuse] [--quick]

Every (target, basis, order, seed) is one ``mepoly train TARGET --policy mepoly`` run with the
bandit preset (PPO, 100 iterations of 1024 samples, alpha = 0.2) and ``--policy-kwargs
order=N basis=B``; everything else is held fixed.  Metrics as in :mod:`~mepoly_dist.zoo.benchmark.bandit`:
coverage, TV to the Boltzmann target, mean reward, training wall-clock.  Runs go to
``runs/bench-bandit/{target}__mepoly-{basis}-o{order}__{seed}``; the preset itself (Legendre,
order 14) is the bandit benchmark's ``{target}__mepoly__{seed}`` run, so with ``--reuse`` and the
same ``--runs-dir`` it is not trained twice.  Writes ``OUT/bandit_ablations.md`` and
``OUT/bandit_ablations.png`` (sample histograms, one row per target and basis, one column per order);
OUT defaults to ``benchmarks/results/bandit``, beside the bandit benchmark's report.
"""

from __future__ import annotations

import argparse
from math import comb
from pathlib import Path

import numpy as np

from .bandit import add_sweep_arguments, draws_figures, parse_sweep_arguments, plot_action_samples, run_sweep
from .results import format_mean_se, markdown_table, results_header, write_report

__all__ = ["PRESET", "run_name", "summarize", "figure", "main"]

#: the bandit preset's MePoly head; its runs are shared with the bandit benchmark (benchmarks/bandit.py)
PRESET = ("legendre", 14)


def run_name(target: str, basis: str, order: int, seed: int) -> str:
    if (basis, order) == PRESET:
        return f"{target}__mepoly__{seed}"
    return f"{target}__mepoly-{basis}-o{order}__{seed}"


def summarize(results: dict, targets, bases, orders, seeds) -> str:
    rows = []
    for target in targets:
        for basis in bases:
            for order in orders:
                found = [results[(target, basis, order, s)] for s in seeds if (target, basis, order, s) in results]
                if not found:
                    continue
                cols = []
                for key in ("coverage", "tv_to_target", "mean_reward"):
                    values = [m[key] for m in found]
                    cols.append(f"{values[0]:.3f}" if len(found) == 1 else format_mean_se(values, digits=3))
                rows.append([target, basis, order, comb(order + 2, 2), len(found), *cols, found[0]["num_timesteps"],
                             f"{np.mean([m['train_seconds'] for m in found]):.0f}"])
    header = ["target", "basis", "order", "parameters", "seeds", "coverage", "TV to exp(r/alpha)", "mean reward", "samples", "train s / run"]
    return "Mean ± standard error over seeds (sample standard deviation / sqrt(seeds)).\n\n" + markdown_table(header, rows)


def figure(path: Path, runs_dir: Path, results: dict, targets, bases, orders, seed: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [(t, b) for t in targets for b in bases]
    fig, axes = plt.subplots(len(pairs), len(orders), figsize=(2.8 * len(orders), 2.8 * len(pairs)), squeeze=False)
    for r, (target, basis) in enumerate(pairs):
        for c, order in enumerate(orders):
            ax = axes[r, c]
            plot_action_samples(ax, runs_dir / run_name(target, basis, order, seed) / "action_samples.npy")
            m = results.get((target, basis, order, seed))
            tv = f", TV {m['tv_to_target']:.2f}" if m else ""
            ax.set_title(f"{target} {basis} n={order}{tv}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=["lemniscate", "two_moons"])
    parser.add_argument("--orders", nargs="+", type=int, default=[2, 6, 10, 14])
    parser.add_argument("--bases", nargs="+", default=["legendre", "monomial"], choices=["legendre", "monomial"])
    add_sweep_arguments(parser, seeds=[0], quick_iterations=5)
    args = parse_sweep_arguments(parser, argv)
    if any(order < 1 for order in args.orders):
        parser.error(f"orders must be positive, got {args.orders}")
    runs_dir, out = Path(args.runs_dir), Path(args.out)
    header = results_header("Bandit ablations: MePoly's polynomial order and basis (section 5.2, Fig. 3)", args.seeds)
    runs = {}
    for key in [(t, b, n, s) for t in args.targets for b in args.bases for n in args.orders for s in args.seeds]:
        target, basis, order, seed = key
        run_dir = runs_dir / run_name(*key)
        runs[key] = (run_dir, (target, "mepoly", seed, str(run_dir), args.steps, (), [f"order={order}", f"basis={basis}"]))
    results = run_sweep(runs, args)
    name = "bandit_ablations_quick" if args.quick else "bandit_ablations"
    if draws_figures(args):
        figure(out / f"{name}.png", runs_dir, results, args.targets, args.bases, args.orders, args.seeds[0])
    text = header + "\n" + summarize(results, args.targets, args.bases, args.orders, args.seeds)
    text += f"\n![sample histograms, seed {args.seeds[0]}]({name}.png)\n"
    write_report(out, f"{name}.md", text)


if __name__ == "__main__":
    main()
