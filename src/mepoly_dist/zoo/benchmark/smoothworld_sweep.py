#!/usr/bin/env python
r"""One table for a configuration sweep on Smooth World, made from finished runs or their records.

Usage (from the repository root)::

    python benchmarks/smoothworld_sweep.py --layouts three_goals --seeds 0 1 2 [--late 4] [--name NAME] \
        --variant "MePoly, order 8 (preset)" mepoly benchmarks/results/smoothworld/records/preset.jsonl \
        --variant "MePoly, order 4" mepoly benchmarks/results/smoothworld/records/order4.jsonl \
        --variant "PPO-GMM, K = 8" gmm runs/bench-sw-gmmk8 ...
    python benchmarks/smoothworld_sweep.py --variants-file benchmarks/results/smoothworld/records/three_goals_sweep.yml ...

:mod:`~mepoly_dist.zoo.benchmark.smoothworld` (``benchmarks/smoothworld.py``) trains and tabulates one
configuration per call (``--hp`` / ``--policy-kwargs`` apply to every run), each into its own runs
directory and records table.  A sweep (entropy coefficient, polynomial order, number of mixture
components, budget) is several such configurations; this script puts them side by side.  Each
``--variant LABEL METHOD RUNS`` is the runs ``<layout>__<METHOD>__<seed>`` of the requested seeds in
``RUNS``, a runs directory or a records table (``*.jsonl``, :mod:`~mepoly_dist.zoo.benchmark.records`).
``--variants-file FILE`` reads the variants from a YAML list of ``{label, method, runs}`` (``runs``
relative to the file), so that a sweep of many variants has a short command.  The configuration column is read
from each run's own ``config.yml`` (the policy_kwargs, entropy coefficient and steps it was trained
with), so a label cannot claim a setting its runs did not have; a variant whose seeds were trained
with different settings is reported as such.

Per (layout, variant): the final goal entropy ``H(goal) / log K`` of each seed (100 episodes from
the layout's fixed starts), their mean and its standard error, the mean of each run's late goal entropy (its last ``--late``
checkpoints, :func:`~mepoly_dist.zoo.benchmark.smoothworld.late_goal_entropy`), the success rate and the steps to 0.9 success.
The verdict line per layout compares each family's best configuration (the highest mean goal
entropy among its variants with a mean success of at least 0.95): MePoly's against the best of the
other methods, so that every method is credited with its best setting of the sweep.  It ranks the
two only where their difference exceeds the noise
(:func:`~mepoly_dist.zoo.benchmark.results.compare_means`: ``NOISE_Z`` standard errors of the
difference), and says so where a variant has one seed (no standard error, so no ranking).  Writes
``OUT/NAME.md`` and ``OUT/NAME.png`` (per-seed goal entropies by variant).

Crediting each family with its best of many noisy variants favours the family with more variants
(the maximum of noisy means is biased upwards), so the report also gives the **matched**
comparisons (:func:`matched_comparisons`): every MePoly variant against every variant of another
method trained with the same settings (the ``algo``, ``n_timesteps`` and ``hyperparams`` of
``config.yml``; the policy heads' own kwargs may differ), each on the seeds both have.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import yaml

from .records import RunRecord, Runs
from .results import compare_means, format_mean_se, markdown_table, mean_se, results_header, write_report
from .smoothworld import TARGET_SUCCESS, late_goal_entropy, run_name, steps_to_success, summarize

__all__ = ["run_setting", "training_setting", "read_variants", "collect",
           "family_verdicts", "matched_comparisons", "figure", "main"]


def _config(run) -> dict | None:
    """The ``config.yml`` of a run (a :class:`RunRecord` or a run directory), None without one."""
    return (run if isinstance(run, RunRecord) else RunRecord.from_run_dir(run)).config


def run_setting(run) -> str:
    """The training settings a run's ``config.yml`` records that a sweep varies: its policy_kwargs
    (without the network architecture), entropy coefficient (with its target entropy when the
    coefficient is learned, ``auto_<initial>``), learning rate (a ``lin_`` schedule as written),
    algorithm and steps.  ``run``: a :class:`~mepoly_dist.zoo.benchmark.records.RunRecord` or a run directory."""
    config = _config(run)
    if config is None:
        return "no config.yml"
    kwargs = {k: v for k, v in (config.get("policy_kwargs") or {}).items() if k not in ("net_arch", "activation_fn")}
    hyper = config.get("hyperparams") or {}
    parts = [", ".join(f"{k}={v}" for k, v in sorted(kwargs.items())) or "default policy_kwargs",
             f"ent_coef={hyper.get('ent_coef', 'default')}"
             + (f", target_entropy={hyper['target_entropy']}" if "target_entropy" in hyper else ""),
             f"learning_rate={hyper.get('learning_rate', 'default')}",
             f"{config.get('algo', 'ppo')}",
             f"{config.get('n_timesteps', '?'):,} steps" if isinstance(config.get("n_timesteps"), int) else "? steps"]
    return "; ".join(parts)


def training_setting(run) -> str | None:
    """What a run was trained with apart from its policy head: ``algo``, ``n_timesteps`` and the
    ``hyperparams`` of its ``config.yml``, as one canonical string (None without a config.yml)."""
    config = _config(run)
    if config is None:
        return None
    return yaml.safe_dump(dict(algo=config.get("algo", "ppo"), n_timesteps=config.get("n_timesteps"),
                               hyperparams=config.get("hyperparams") or {}), sort_keys=True)


def collect(variants, layouts, seeds, late: int):
    """``variants``: ``(label, method, runs)`` with ``runs`` a runs directory or a records table.

    Per (layout, label): the finished runs' metrics by seed, their late goal entropies, their
    settings (the distinct :func:`run_setting` strings), steps to 0.9 success and training seconds,
    the seeds without a finished run, and their summary over seeds (``stats``,
    :func:`~mepoly_dist.zoo.benchmark.smoothworld.summarize`;
    None without a finished run)."""
    found = {}
    sources = {}
    for layout in layouts:
        for label, method, path in variants:
            runs = sources.setdefault(str(path), Runs(path))
            entry = dict(method=method, metrics={}, late={}, settings=[], training=set(), reach={}, seconds=[], missing=[])
            for seed in seeds:
                record = runs.finished(run_name(layout, method, seed))
                if record is None:
                    entry["missing"].append(seed)
                    continue
                metrics = record.metrics
                entry["metrics"][seed] = metrics
                entry["reach"][seed] = steps_to_success(record)
                entry["seconds"].append(metrics.get("train_seconds", float("nan")))
                entry["training"].add(training_setting(record))
                setting = run_setting(record)
                if setting not in entry["settings"]:
                    entry["settings"].append(setting)
                if late > 0:
                    values = [h for _, _, h in late_goal_entropy(record, layout, late)]
                    if values:
                        entry["late"][seed] = float(np.mean(values))
            # the summary over seeds of the Smooth World benchmark: mean / min success, mean goal entropy, late mean
            entry["stats"] = summarize({(layout, label, s): m for s, m in entry["metrics"].items()},
                                       {(layout, label, s): h for s, h in entry["late"].items()}).get((layout, label))
            found[(layout, label)] = entry
    return found


#: why a comparison with a one-seed variant ranks nothing
_ONE_SEED = "a variant has one seed, so no standard error"
#: how a matched pair reads, by :func:`~mepoly_dist.zoo.benchmark.results.compare_means` of MePoly's mean against the other's
_RELATION = {"higher": "MePoly higher, outside the noise", "lower": "MePoly lower, outside the noise",
             "within the noise": "within the noise", "unknown noise": f"no ranking: {_ONE_SEED}"}


def family_verdicts(found: dict, layouts, success_threshold: float = TARGET_SUCCESS) -> list[str]:
    """Per layout: MePoly's best variant against the best variant of the other methods (best: the
    highest mean goal entropy among the variants whose mean success is at least the threshold),
    ranked only outside the noise (:func:`~mepoly_dist.zoo.benchmark.results.compare_means`): MePoly
    highest or lower outside the noise, within the noise, or no ranking where a variant has one seed."""
    lines = []
    for layout in layouts:
        scored = []
        for (lay, label), entry in found.items():
            if lay != layout or not entry["metrics"]:
                continue
            stats = entry["stats"]
            scored.append((stats["entropy"], stats["success"], label, entry["method"], stats["seeds"]))
        passing = [s for s in scored if s[1] >= success_threshold]
        mine = [s for s in passing if s[3] == "mepoly"]
        others = [s for s in passing if s[3] != "mepoly"]
        if not mine or not others:
            lines.append(f"{layout}: no comparison (variants with success >= {success_threshold}: "
                         f"{', '.join(s[2] for s in passing) or 'none'})")
            continue
        best, rival = max(mine), max(others)
        stats = [mean_se([m["goal_entropy"] for m in found[(layout, v[2])]["metrics"].values()]) for v in (best, rival)]
        relation = compare_means(*stats)
        verdict = {"higher": "MePoly highest, outside the noise", "lower": "MePoly lower, outside the noise",
                   "within the noise": f"within the noise (MePoly's mean the {'higher' if best[0] >= rival[0] else 'lower'})",
                   "unknown noise": f"no ranking ({_ONE_SEED})"}[relation]
        gap = (f"; difference {best[0] - rival[0]:+.2f} ± {np.hypot(stats[0][1], stats[1][1]):.2f} (standard errors over seeds combined)"
               if relation != "unknown noise" else "")
        lines.append(f"{layout}: {verdict}: best MePoly variant '{best[2]}' "
                     f"{best[0]:.2f} (success {best[1]:.2f}, seeds {best[4]}) vs the best other, '{rival[2]}', "
                     f"{rival[0]:.2f} (success {rival[1]:.2f}, seeds {rival[4]})" + gap)
    return lines


def matched_comparisons(found: dict, layouts) -> list[str]:
    """Per layout: each MePoly variant against each variant of another method whose runs were all
    trained with one and the same :func:`training_setting` as the MePoly variant's, on the seeds
    both have: the two means of the final goal entropy, their difference and its standard error
    (the two standard errors over seeds combined) and whether it lies outside the noise
    (:func:`~mepoly_dist.zoo.benchmark.results.compare_means`), and at the end the count of pairs in
    which MePoly's mean is the higher, and of those outside the noise."""
    lines = []
    for layout in layouts:
        entries = [(label, e) for (lay, label), e in found.items() if lay == layout and e["metrics"]
                   and len(e["training"]) == 1 and None not in e["training"]]
        pairs = [(a, b) for a in entries for b in entries
                 if a[1]["method"] == "mepoly" and b[1]["method"] != "mepoly" and a[1]["training"] == b[1]["training"]]
        compared = higher = outside = 0
        for (label, mine), (other_label, other) in pairs:
            seeds = sorted(set(mine["metrics"]) & set(other["metrics"]))
            if not seeds:
                continue
            a = [mine["metrics"][s]["goal_entropy"] for s in seeds]
            b = [other["metrics"][s]["goal_entropy"] for s in seeds]
            compared += 1
            higher += bool(np.mean(a) > np.mean(b))
            (mean_a, se_a), (mean_b, se_b) = mean_se(a), mean_se(b)
            relation = compare_means((mean_a, se_a), (mean_b, se_b))
            outside += relation == "higher"
            error = np.hypot(se_a, se_b)
            success = [np.mean([e["metrics"][s]["success_rate"] for s in seeds]) for e in (mine, other)]
            lines.append(f"{layout}: '{label}' {np.mean(a):.2f} vs '{other_label}' {np.mean(b):.2f} on seeds {seeds}: "
                         f"difference {np.mean(a) - np.mean(b):+.2f}" + (f" ± {error:.2f}" if np.isfinite(error) else "")
                         + f", {_RELATION[relation]} (success {success[0]:.2f} / {success[1]:.2f})")
        lines.append(f"{layout}: MePoly's mean is the higher in {higher} of {compared} matched pairs, "
                     f"outside the noise in {outside}")
    return lines


def figure(path: Path, found: dict, layouts) -> None:
    """Per layout, one column per variant: each seed's final goal entropy (dots), their mean (bar)
    and the mean late goal entropy (diamond)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(layouts), 1, figsize=(max(6.0, 1.3 * len(found) / len(layouts) + 2), 3.6 * len(layouts)),
                             squeeze=False)
    for ax, layout in zip(axes[:, 0], layouts):
        entries = [(label, e) for (lay, label), e in found.items() if lay == layout]
        for x, (label, entry) in enumerate(entries):
            values = [m["goal_entropy"] for m in entry["metrics"].values()]
            color = "tab:blue" if entry["method"] == "mepoly" else "tab:orange"
            if values:
                ax.bar(x, np.mean(values), color=color, alpha=0.35, width=0.7)
                ax.scatter(np.full(len(values), x) + np.linspace(-0.15, 0.15, len(values)), values, color=color, s=18, zorder=3)
            if entry["late"]:
                ax.scatter([x], [np.mean(list(entry["late"].values()))], marker="D", facecolor="none", edgecolor="black", s=40,
                           zorder=4)
        ax.set_xticks(range(len(entries)), [label for label, _ in entries], rotation=25, ha="right", fontsize=8)
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel("goal entropy / log K")
        ax.set_title(f"{layout}: bars mean over seeds, dots seeds, diamonds late mean", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def read_variants(path) -> list[tuple[str, str, str]]:
    """The variants of a ``--variants-file``: a YAML list of ``{label, method, runs}``, each ``runs``
    (a runs directory or a records table) relative to the file; returns ``(label, method, runs)``."""
    path = Path(path)
    entries = yaml.safe_load(path.read_text()) or []
    variants = []
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) != {"label", "method", "runs"}:
            raise ValueError(f"{path}: each variant is a mapping of label, method and runs, got {entry!r}")
        variants.append((str(entry["label"]), str(entry["method"]), os.path.relpath(path.parent / entry["runs"])))
    return variants


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", nargs=3, action="append", default=[], metavar=("LABEL", "METHOD", "RUNS"),
                        help="a configuration: its label, the method name of its runs and their runs directory or records table")
    parser.add_argument("--variants-file", default=None, metavar="FILE",
                        help="more variants: a YAML list of {label, method, runs}, runs relative to FILE (before any --variant)")
    parser.add_argument("--layouts", nargs="+", default=["three_goals"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--late", type=int, default=4, help="late checkpoints averaged per run (cached evaluations); 0: skip")
    parser.add_argument("--out", default="benchmarks/results/smoothworld")
    parser.add_argument("--name", default="smoothworld_sweep")
    args = parser.parse_args(argv)
    variants = (read_variants(args.variants_file) if args.variants_file else []) + [tuple(v) for v in args.variant]
    if not variants:
        parser.error("give the variants: --variant LABEL METHOD RUNS (repeated) or --variants-file FILE")
    labels = [label for label, _, _ in variants]
    if len(set(labels)) != len(labels):
        parser.error(f"variant labels must be distinct, got {labels}")
    for label, _, runs in variants:
        if not Path(runs).exists():
            parser.error(f"variant {label!r}: no runs directory or records table {runs}")
    out = Path(args.out)
    # the header first: its commit line must see the tree before this report's own files are written
    header = results_header("Smooth World configuration sweep (from run records)", args.seeds,
                            extra="* variants (label: method, runs):\n"
                            + "\n".join(f"  * {label}: {method}, `{runs}`" for label, method, runs in variants))
    found = collect(variants, args.layouts, args.seeds, args.late)
    rows = []
    for (layout, label), entry in found.items():
        if not entry["metrics"]:
            rows.append([layout, label, entry["method"], "-", "no finished run", "-", "-", "-", "-", "-"])
            continue
        entropies = {s: m["goal_entropy"] for s, m in entry["metrics"].items()}
        stats = entry["stats"]
        reach = [entry["reach"][s] for s in entry["metrics"]]
        rows.append([layout, label, entry["method"], " / ".join(entry["settings"]) + (" (settings differ between seeds)"
                                                                                      if len(entry["settings"]) > 1 else ""),
                     ", ".join(f"{s}: {h:.2f}" for s, h in entropies.items())
                     + (f" (no run for seeds {entry['missing']})" if entry["missing"] else ""),
                     format_mean_se(list(entropies.values())),
                     "-" if stats["late"] is None else f"{stats['late']:.2f} ({stats['late_seeds']})",
                     f"{stats['success']:.2f} [{stats['success_min']:.2f}]",
                     ", ".join("never" if r is None else f"{r / 1e6:.2f}M" if r >= 10_000 else f"{r:,}" for r in reach),
                     f"{np.nanmean(entry['seconds']):.0f}"])
    table = markdown_table(["layout", "variant", "method", "settings (from each run's config.yml)",
                            "final goal entropy / log K per seed", "mean ± s.e. over seeds", f"late mean (last {args.late} checkpoints; seeds)",
                            "success: mean [min]", "steps to 0.9 success per seed", "train s (mean)"], rows)
    verdicts = "".join(f"* {line}\n" for line in family_verdicts(found, args.layouts))
    matched = "".join(f"* {line}\n" for line in matched_comparisons(found, args.layouts))
    out.mkdir(parents=True, exist_ok=True)
    figure(out / f"{args.name}.png", found, args.layouts)
    text = (header + "\n" + table + f"\nEach method's best configuration (success >= {TARGET_SUCCESS}):\n\n" + verdicts
            + "\nMatched comparisons (the same training settings, each pair on the seeds both have):\n\n" + matched
            + f"\n![goal entropy by variant]({args.name}.png)\n")
    write_report(out, f"{args.name}.md", text)


if __name__ == "__main__":
    main()
