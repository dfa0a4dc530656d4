"""ManiSkill imitation learning, the paper's Table 1: MePoly (latent VAE + MePoly prior) vs Diffusion Policy.

Trains and evaluates methods x tasks x seeds through the ``mepoly-il`` command functions
(``mepoly_il.cli.train_command`` / ``eval_command``), one run at a time in this process (one torch
thread), and writes ``benchmarks/results/maniskill_il/maniskill_il.md``: the paper's two rows beside this
project's (success rate mean / std over the seeds that ran, 100 evaluation episodes each), and one
line per run with its command, demo count, model size, preset, training time and inference latency
per action chunk.  Cells without a finished run say "not run".

    python benchmarks/maniskill_il.py --tasks PushCube-v1 --methods mepoly dp --seeds 0 --preset cpu --episodes 100
    python benchmarks/maniskill_il.py --report-only       # rewrite the table from the finished runs
    python benchmarks/maniskill_il.py --tasks StackCube-v1 --demos StackCube-v1=demos-500/...h5 --runs runs/maniskill_il_500
    python benchmarks/maniskill_il.py --report-only --report-runs runs/maniskill_il runs/maniskill_il_500

Runs on another demonstration set go to their own ``--runs`` root; the report reads every root given
to ``--report-runs``: Table 1 takes, per task, the runs on the most demonstrations (both methods on
the same set), and a second table lists every demonstration count.

Finished runs (``RUN_DIR/eval/eval.json`` with the requested episode count) are reused, not rerun;
an interrupted training resumes from its checkpoint.  Run it in the ManiSkill venv (``[il]`` extra).
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

import numpy as np

from mepoly_dist.zoo.benchmark.results import markdown_table, results_header, write_report

__all__ = ["TASKS", "METHODS", "PAPER", "run_dir", "run_one", "finished_runs", "main_table_runs", "preset_drift", "schedule",
           "write_report_text", "main"]

TASKS = ("PushCube-v1", "PickCube-v1", "StackCube-v1", "PushT-v1")
METHODS = ("mepoly", "dp")
LABELS = {"mepoly": "MePoly (this project)", "dp": "DP (this project)"}
#: Table 1 of the paper: success rate mean / std over 3 seeds, 100 evaluation episodes each
PAPER = {
    "MePoly (paper)": [(0.901, 0.018), (0.945, 0.025), (0.446, 0.049), (0.279, 0.020)],
    "DP (paper)": [(0.856, 0.015), (0.992, 0.002), (0.410, 0.001), (0.298, 0.013)],
}
DEFAULT_DEMOS = {
    "PushCube-v1": "demos/PushCube-v1/motionplanning/trajectory.state.pd_ee_delta_pos.physx_cpu.h5",
    "PickCube-v1": "demos/PickCube-v1/motionplanning/trajectory.state.pd_ee_delta_pos.physx_cpu.h5",
    "StackCube-v1": "demos/StackCube-v1/motionplanning/trajectory.state.pd_ee_delta_pos.physx_cpu.h5",
    "PushT-v1": "demos/PushT-v1/scripted/trajectory.state.pd_ee_delta_pos.physx_cpu.h5",
}
#: the report of the repository (``--out``), relative to its root
RESULTS = Path("benchmarks/results/maniskill_il/maniskill_il.md")


def run_dir(root: Path, task: str, method: str, preset: str, seed: int) -> Path:
    return root / f"{task}__{method}__{preset}__{seed}"


def _finished(path: Path, episodes: int | None = None) -> dict | None:
    eval_path, summary_path = path / "eval" / "eval.json", path / "summary.json"
    if not (eval_path.exists() and summary_path.exists()):
        return None
    result = json.loads(eval_path.read_text())
    if episodes is not None and result["episodes"] != episodes:
        return None
    import yaml

    return {"eval": result, "summary": json.loads(summary_path.read_text()), "config": yaml.safe_load((path / "config.yml").read_text())}


def run_one(root: Path, task: str, method: str, preset: str, seed: int, demos: str, episodes: int) -> dict:
    from .cli import eval_command, train_command

    path = run_dir(root, task, method, preset, seed)
    done = _finished(path, episodes)
    if done:
        print(f"reusing {path}", flush=True)
        return done
    start = time.perf_counter()
    train_command(task, demos, method, preset, seed, str(path), progress=False)
    print(f"trained {path} in {time.perf_counter() - start:.0f} s", flush=True)
    result = eval_command(str(path), episodes, progress=False)
    print(f"evaluated {path}: success_once {result['success_once']:.3f}, success_at_end {result['success_at_end']:.3f}", flush=True)
    return _finished(path, episodes)


def _mean_std(values, note: str = "") -> str:
    """``"mean / std (N seeds<note>)"``; ``note`` is appended inside the brackets."""
    values = np.asarray(values, dtype=float)
    if len(values) == 1:
        return f"{values[0]:.3f} (1 seed, no std{note})"
    return f"{values.mean():.3f} / {values.std():.3f} ({len(values)} seeds{note})"


def finished_runs(roots: list[Path], preset_filter: str | None = None) -> list[tuple]:
    """``(task, method, preset, seed, path, done)`` of every finished run under the run roots."""
    runs = []
    for root in roots:
        for path in sorted(root.glob("*__*__*__*")):
            done = _finished(path)
            if done:
                task, method, preset, seed = path.name.split("__")
                if preset_filter in (None, preset):
                    runs.append((task, method, preset, int(seed), path, done))
    return runs


def main_table_runs(runs: list[tuple]) -> list[tuple]:
    """The runs of Table 1's rows: per task, those trained on the most demonstrations (both methods on the
    same data, so a method without runs on that count reads "not run" rather than borrowing a smaller set's).

    Runs on fewer demonstrations stay in the per-demo-count table and the run list.
    """
    most = {}
    for task, _, _, _, _, done in runs:
        most[task] = max(most.get(task, 0), done["summary"]["num_demos"])
    return [run for run in runs if run[5]["summary"]["num_demos"] == most[run[0]]]


def _cell(runs: list[tuple], task: str, method: str, key: str, with_demos: bool = True) -> str:
    values = [done["eval"][key] for t, m, _, _, _, done in runs if t == task and m == method]
    if not values:
        return "not run"
    note = ""
    if with_demos:
        demos = sorted({done["summary"]["num_demos"] for t, m, _, _, _, done in runs if t == task and m == method})
        note = f", {'/'.join(map(str, demos))} demos"
    return _mean_std(values, note)


def _horizon_exceptions() -> str:
    """``", except MePoly on PushT, whose preset executes 2"`` for every preset method section that overrides
    ``data.act_horizon`` (read from the CPU presets, so the sentence follows them)."""
    from .train import execution_horizon, load_preset

    exceptions = []
    for task in TASKS:
        config = load_preset("cpu", task)
        for method in METHODS:
            horizon = execution_horizon({**config, "method": method})
            if horizon != config["data"]["act_horizon"]:
                exceptions.append(f"{LABELS[method].split(' (')[0]} on {task.removesuffix('-v1')}, whose preset executes {horizon}")
    return "".join(f", except {text}" for text in exceptions)


def _leaves(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def preset_drift(config: dict) -> tuple[list[str], int | None]:
    """How a finished run's saved config differs from its preset as the preset reads today.

    Returns the ``--set KEY=VALUE`` overrides that make ``mepoly-il train`` rebuild the run's settings (every
    leaf of the shared sections and of the run's method section whose value changed, e.g. a schedule that
    the preset has since lengthened), and the ``--act-horizon`` to pass to ``mepoly-il eval`` of the retrained
    run when the run executed a different number of actions per chunk than today's preset would (None when
    equal).  A run trained before a preset change thus keeps a command that reproduces it.
    """
    from .train import execution_horizon, load_preset

    method = config["method"]
    current = load_preset(config["preset"], config["task"])
    sections = [key for key in current if key not in METHODS or key == method]
    saved = dict(_leaves({key: config[key] for key in sections if key in config}))
    # values as JSON (valid YAML, which is how --set parses them), each item quoted for a POSIX shell
    overrides = [shlex.quote(f"{key}={json.dumps(saved[key])}") for key, value in _leaves({key: current[key] for key in sections})
                 if key in saved and saved[key] != value]
    horizon = execution_horizon(config)
    return overrides, (horizon if horizon != execution_horizon({**current, "method": method}) else None)


def schedule(config: dict) -> str:
    """Optimizer steps of the run: ``stage 1 + stage 2`` for MePoly, the training steps for DP."""
    if config["method"] == "mepoly":
        return f"{config['mepoly']['stage1']['steps']:,} + {config['mepoly']['stage2']['steps']:,}"
    return f"{config['dp']['train']['steps']:,}"


def write_report_text(roots: list[Path], preset_filter: str | None, command: str) -> str:
    """The report (Markdown) of the finished runs under ``roots``; ``command`` regenerates it."""
    runs = finished_runs(roots, preset_filter)
    main_runs = main_table_runs(runs)
    rows = [[name] + [f"{mean:.3f} / {std:.3f}" for mean, std in cells] for name, cells in PAPER.items()]
    for key in ("success_once", "success_at_end"):
        for method in METHODS:
            rows.append([LABELS[method] if key == "success_once" else f"{LABELS[method]}, {key}"]
                        + [_cell(main_runs, task, method, key) for task in TASKS])
    by_demos = []
    for task in TASKS:
        for demos in sorted({done["summary"]["num_demos"] for t, _, _, _, _, done in runs if t == task}):
            subset = [run for run in runs if run[0] == task and run[5]["summary"]["num_demos"] == demos]
            steps = [" / ".join(sorted({schedule(done["config"]) for _, m, _, _, _, done in subset if m == method}))
                     or "not run" for method in METHODS]
            by_demos.append([task, demos] + [_cell(subset, task, method, key, with_demos=False)
                                             for method in METHODS for key in ("success_once", "success_at_end")] + steps)
    details = []
    for task, method, preset, seed, path, done in runs:
        summary, result, config = done["summary"], done["eval"], done["config"]
        seconds = summary["train_seconds"]
        overrides, horizon = preset_drift(config)
        sets = "".join(f" --set {item}" for item in overrides)
        eval_horizon = f" --act-horizon {horizon}" if horizon is not None else ""
        details.append([task, LABELS[method], preset, seed, summary["num_demos"], summary["num_pairs"], f"{summary['parameters']:,}",
                        schedule(config), f"{seconds['total'] / 60:.1f}", f"{1000 * summary['latency_per_chunk']['median_s']:.1f}",
                        f"{1000 * result['chunk_latency_s']:.1f}", result["episodes"], result["act_horizon"], f"{result['success_once']:.3f}",
                        f"{result['success_at_end']:.3f}",
                        f"`mepoly-il train {task} --demos {config['demos']} --method {method} --preset {preset} --seed {seed}{sets} --out {path}` "
                        f"then `mepoly-il eval {path} --episodes {result['episodes']}{eval_horizon}`"])
    text = results_header("ManiSkill imitation learning (paper Table 1)", "per run, see below",
                          extra=f"* runs: {', '.join(f'`{root}`' for root in roots)}; regenerate this file with `{command}`")
    text += (
        "\nSuccess rate, mean / std over seeds (std over seeds with `numpy.std`, ddof 0), 100 evaluation episodes per run "
        "unless the run table says otherwise. The paper's rows are copied from its Table 1 (12M-parameter models, "
        "trained on a GPU; the paper does not say whether its rate is success_once or success_at_end, nor how many "
        "demonstrations it trained on). This project's rows are ManiSkill's success_once (success at any step of the "
        "episode, what ManiSkill's baselines report); the rows marked success_at_end give the stricter metric (success "
        "at the last step). Each column of this project's rows uses the runs trained on the most demonstrations this "
        "project generated for that task (the cell says how many), the same set for both methods; the next table gives "
        "every demonstration count that ran. Evaluation: `physx_cpu`, `pd_ee_delta_pos`, state observations, "
        "episode limits 100 / 100 / 200 / 150, seeds 100000 + i (disjoint from the demonstrations'), 16-action chunks "
        f"of which the policy executes 8 before replanning (ManiSkill's baseline setting){_horizon_exceptions()} "
        "(the run table gives the value of every run). \"not run\": no finished run on this machine, not a result.\n\n"
    )
    text += markdown_table(["Method", "PushCube", "PickCube", "StackCube", "PushT"], rows)
    text += ("\n## By demonstration count\n\nThe CPU preset on more demonstrations (success_once and success_at_end, mean / std "
             "over seeds), with each method's training steps: a row whose steps differ from another row of its task ran "
             "before the preset changed.\n\n")
    text += markdown_table(["task", "demos", "MePoly success_once", "MePoly success_at_end", "DP success_once", "DP success_at_end",
                            "MePoly steps", "DP steps"], by_demos)
    text += "\n## Runs\n\n"
    text += ("Training time: wall clock of the training loops on one torch thread (2-core machine shared with other "
             "engineers' jobs: load averages of 3-10 were seen during these runs, so the times are upper bounds; a run "
             "interrupted and resumed before commit 9fcbf2f counts only the time after its last checkpoint). "
             "Latency: median seconds per action chunk for one observation history on one thread, measured after "
             "training (`summary.json`) and during the evaluation rollouts (`eval.json`). Training steps: MePoly's "
             "stage 1 + stage 2, DP's steps. A run trained before its preset changed carries, in its command, the `--set` "
             "overrides and the `--act-horizon` that rebuild and evaluate it as it ran.\n\n")
    if details:
        text += markdown_table(["task", "method", "preset", "seed", "demos", "training pairs", "parameters", "training steps", "training min",
                                "latency ms/chunk (after training)", "latency ms/chunk (in rollouts)", "eval episodes",
                                "actions per chunk", "success_once", "success_at_end", "commands"], details)
    else:
        text += "No finished runs yet.\n"
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--preset", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--demos", action="append", default=[], metavar="TASK=PATH", help="demonstration file of a task (default demos/...)")
    parser.add_argument("--runs", default="runs/maniskill_il", help="new run directories go here")
    parser.add_argument("--report-runs", nargs="+", default=None, metavar="DIR",
                        help="run roots the report reads (default: --runs), e.g. one root per demonstration count")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--report-only", action="store_true", help="only rewrite the results file from finished runs")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    demos = dict(DEFAULT_DEMOS)
    for item in args.demos:
        task, sep, path = item.partition("=")
        if not sep or task not in TASKS:
            parser.error(f"--demos takes TASK=PATH with TASK in {TASKS}, got {item!r}")
        demos[task] = path
    root = Path(args.runs)
    report_roots = [Path(path) for path in (args.report_runs or [args.runs])]
    command = f"python benchmarks/maniskill_il.py --report-only --report-runs {' '.join(map(str, report_roots))}"
    out = Path(args.out)
    if not args.report_only:
        for task in args.tasks:
            if not Path(demos[task]).is_file():
                parser.error(f"{task}: no demonstrations at {demos[task]} (mepoly-maniskill demos {task} -n 100 --out demos, or --demos {task}=PATH)")
        for seed in args.seeds:
            for task in args.tasks:
                for method in args.methods:
                    run_one(root, task, method, args.preset, seed, demos[task], args.episodes)
                    write_report(out.parent, out.name, write_report_text(report_roots, None, command), echo=False)
    path = write_report(out.parent, out.name, write_report_text(report_roots, None, command))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
