"""Where a Smooth World policy splits between two goals: goal counts from a row of starts.

Usage (from the repository root)::

    python benchmarks/smoothworld_split.py RUN_DIR [RUN_DIR ...] [--goals 0 1] [--x0 9 --x1 17 --dx 0.5]
                                           [--episodes 40] [--out benchmarks/results/smoothworld] [--name NAME]

The goal entropy of three_goals is read from one start, (12.5, 9.5), which lies on the mirror line
between the two lower goals.  Whether a policy keeps both of them from there depends on where
its left/right decision boundary lies along the row ``y = 9.5``, and how wide it is.  This
script runs ``--episodes`` stochastic episodes (seed 0) from each start ``x`` in
``[x0, x1]`` (step ``dx``) on that row, with :func:`mepoly_dist.zoo.rollouts.rollout_from_start`,
and reports, for each run's final model:

* the **split point**: the ``x`` where the share of goal ``a`` among the episodes ending in goal
  ``a`` or ``b`` (``--goals a b``; default 0 = lower left, 1 = lower right) crosses 1/2, by linear
  interpolation between the starts (a policy that is symmetric about the layout's mirror line splits at 12.5);
* its **width**: the distance between the crossings of 0.9 and 0.1 (a sharp decision is narrow);
* the counts at every start.

Prints the tables and writes them to ``OUT/NAME.md`` with the command, machine and seed.  The run
directories need their models (``model.zip``), so this report is not rebuilt from records.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .results import markdown_table, results_header, write_report

__all__ = ["split_counts", "crossing", "split_summary", "count_cell", "main"]


def split_counts(policy, layout: str, xs, y: float, episodes: int = 40, seed: int = 0) -> np.ndarray:
    """``(len(xs), num_goals + 1)`` counts: column 0 the episodes that reached no goal, column ``g + 1`` goal ``g``."""
    from mepoly_dist.zoo.envs.layouts import get_layout
    from mepoly_dist.zoo.rollouts import rollout_from_start

    num_goals = get_layout(layout).num_goals
    rows = []
    for x in xs:
        _, goals = rollout_from_start(policy, layout, (float(x), float(y)), episodes=episodes, seed=seed)
        rows.append(np.bincount(goals + 1, minlength=num_goals + 1))
    return np.stack(rows)


def crossing(xs, share, level: float) -> float:
    """The first ``x`` where ``share`` (falling or rising along ``xs``) crosses ``level``, by linear
    interpolation; ``nan`` if it never does (or where a start had no episode in either goal)."""
    xs, share = np.asarray(xs, dtype=float), np.asarray(share, dtype=float)
    above = share >= level
    for i in range(len(xs) - 1):
        if np.isnan(share[i]) or np.isnan(share[i + 1]) or above[i] == above[i + 1]:
            continue
        return float(xs[i] + (level - share[i]) / (share[i + 1] - share[i]) * (xs[i + 1] - xs[i]))
    return float("nan")


def split_summary(xs, counts: np.ndarray, goals=(0, 1)) -> dict:
    """Split point (share of ``goals[0]`` crosses 1/2) and 90-10 width from :func:`split_counts`' counts."""
    a, b = counts[:, goals[0] + 1].astype(float), counts[:, goals[1] + 1].astype(float)
    with np.errstate(invalid="ignore"):
        share = a / (a + b)
    return {"split": crossing(xs, share, 0.5), "width": abs(crossing(xs, share, 0.1) - crossing(xs, share, 0.9)), "share": share}


def count_cell(row: np.ndarray, goals=(0, 1)) -> str:
    """``"a / b"`` episodes in the two goals of one start's :func:`split_counts` row, ``" (+n)"`` for the rest."""
    a, b = int(row[goals[0] + 1]), int(row[goals[1] + 1])
    rest = int(row.sum()) - a - b
    return f"{a} / {b}" + (f" (+{rest})" if rest else "")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories with a model.zip (mepoly train / benchmarks/smoothworld.py)")
    parser.add_argument("--goals", nargs=2, type=int, default=[0, 1], metavar=("A", "B"))
    parser.add_argument("--y", type=float, default=None, help="the row of starts (default: the y of the layout's first fixed start)")
    parser.add_argument("--x0", type=float, default=9.0)
    parser.add_argument("--x1", type=float, default=17.0)
    parser.add_argument("--dx", type=float, default=0.5)
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--out", default="benchmarks/results/smoothworld")
    parser.add_argument("--name", default="smoothworld_split")
    args = parser.parse_args(argv)

    import torch

    from mepoly_dist.zoo.envs.layouts import get_layout
    from mepoly_dist.zoo.train import load_model

    torch.set_num_threads(1)
    xs = np.round(np.arange(args.x0, args.x1 + args.dx / 2, args.dx), 6)
    summary_rows, count_rows = [], []
    for run in args.runs:
        config, model = load_model(run)
        layout = config.env_kwargs.get("layout", "four_walls")
        y = args.y if args.y is not None else float(get_layout(layout).eval_starts[0][1])
        counts = split_counts(model.policy, layout, xs, y, args.episodes)
        found = split_summary(xs, counts, args.goals)
        label = f"{Path(run).parent.name}/{Path(run).name}"
        print(f"{label}: split at x = {found['split']:.2f}, width {found['width']:.2f}", flush=True)
        summary_rows.append([label, layout, config.policy, f"{found['split']:.2f}", f"{found['width']:.2f}"])
        count_rows.append([label] + [count_cell(row, args.goals) for row in counts])
    goal_a, goal_b = args.goals
    text = [results_header("Smooth World: where a policy splits between two goals", 0,
                           f"* starts: x = {xs[0]:g} .. {xs[-1]:g} step {args.dx:g} on the row y = {y:g}, {args.episodes} "
                           f"stochastic episodes each (seed 0); goals {goal_a} and {goal_b}"), "",
            markdown_table(["run", "layout", "policy", f"split point x (share of goal {goal_a} = 1/2)", "width (0.9 to 0.1)"],
                           summary_rows), "",
            f"Episodes ending in goal {goal_a} / goal {goal_b} (+ other goals or none) from each start x:", "",
            markdown_table(["run", *[f"{x:g}" for x in xs]], count_rows), ""]
    path = write_report(args.out, f"{args.name}.md", "\n".join(text))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
