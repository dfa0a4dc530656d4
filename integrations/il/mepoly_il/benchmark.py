"""ManiSkill imitation learning, the paper's Table 1: MePoly (latent VAE + MePoly prior) vs Diffusion Policy.

Trains and evaluates methods x tasks x seeds through the ``mepoly-il`` command functions
(``mepoly_il.cli.train_command`` / ``eval_command``), one run at a time in this process (one torch
thread).  Each finished run is added to a **records table** (:mod:`mepoly_dist.zoo.benchmark.records`,
``benchmarks/results/maniskill_il/records/runs.jsonl`` by default: the run's ``eval.json``,
``summary.json`` and ``config.yml``, one line per run), so the report outlives the run directories;
a rerun under a recorded name with other results is refused, never silently replaced.  The report,
``benchmarks/results/maniskill_il/maniskill_il.md``, is written from the records: the paper's two rows
beside this project's (success rate, mean ± standard error over the seeds that ran, 100 evaluation
episodes each), whether each difference lies outside the noise, and one line per run with its
command, demo count, model size, preset, training time and inference latency per action chunk.
Cells without a finished run say "not run".

    python benchmarks/maniskill_il.py --tasks PushCube-v1 --methods mepoly dp --seeds 0 --preset cpu --episodes 100
    python benchmarks/maniskill_il.py --report-only       # rewrite the report from the records
    python benchmarks/maniskill_il.py --tasks StackCube-v1 --demos StackCube-v1=demos-500/...h5 --runs runs/maniskill_il_500
    python benchmarks/maniskill_il.py --tasks PickCube-v1 --methods dp --set dp.train.steps=30000 \
        --runs runs/maniskill_il_500_dp_30k --records .../records/dp_30k.jsonl --out .../maniskill_il_dp_30k.md

A run is recorded as ``<runs root name>/<task>__<method>__<preset>__<seed>``, so the runs of each
demonstration set keep apart under their own ``--runs`` root.  Table 1 takes, per task, the runs on
the most demonstrations (both methods on the same set), and a second table lists every
demonstration count.  Finished runs (``RUN_DIR/eval/eval.json`` with the requested episode count)
are reused, not rerun; an interrupted training resumes from its checkpoint.  ``--set`` trains every run
with a preset value overridden (a longer schedule, say); such runs go to their own ``--runs`` root and
``--records`` table, and each run's command in the report carries the override.  Run it in the
ManiSkill venv (``[il]`` extra).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import time
from pathlib import Path

from mepoly_dist.zoo.benchmark.records import RunRecord, is_table, read_table, update_table
from mepoly_dist.zoo.benchmark.results import NOISE_Z, compare_means, git_commit, markdown_table, mean_se, results_header, write_report

__all__ = ["TASKS", "METHODS", "PAPER", "RECORDS", "paper_mean_se", "run_dir", "run_one", "record_of", "finished_runs",
           "main_table_runs", "preset_drift", "schedule", "commands", "verdicts", "write_report_text", "main"]

TASKS = ("PushCube-v1", "PickCube-v1", "StackCube-v1", "PushT-v1")
METHODS = ("mepoly", "dp")
LABELS = {"mepoly": "MePoly (this project)", "dp": "DP (this project)"}
#: Table 1 of the paper: success rate mean / std over 3 seeds, 100 evaluation episodes each
PAPER_SEEDS = 3
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
#: the records table of the repository's runs (``--records``), relative to its root
RECORDS = Path("benchmarks/results/maniskill_il/records/runs.jsonl")


def paper_mean_se(mean: float, std: float, seeds: int = PAPER_SEEDS) -> tuple[float, float]:
    """A paper cell as ``(mean, standard error)``.  The paper gives the standard deviation over its seeds
    without saying whether it divided by n or n - 1; the standard error is taken as ``std / sqrt(n - 1)``,
    the reading with ddof 0, which is the larger of the two, so that no difference is called outside
    the noise on the smaller reading's account."""
    return mean, std / math.sqrt(seeds - 1)


def run_dir(root: Path, task: str, method: str, preset: str, seed: int) -> Path:
    return root / f"{task}__{method}__{preset}__{seed}"


def _finished(path: Path, episodes: int | None = None) -> dict | None:
    """``{"eval", "summary", "config", "run_dir"}`` of a finished run directory (None while it has not
    finished, or where its evaluation ran another number of episodes than ``episodes``)."""
    eval_path, summary_path = path / "eval" / "eval.json", path / "summary.json"
    if not (eval_path.exists() and summary_path.exists()):
        return None
    result = json.loads(eval_path.read_text())
    if episodes is not None and result["episodes"] != episodes:
        return None
    import yaml

    return {"eval": result, "summary": json.loads(summary_path.read_text()), "config": yaml.safe_load((path / "config.yml").read_text()),
            "run_dir": str(path), "notes": {}}


def run_one(root: Path, task: str, method: str, preset: str, seed: int, demos: str, episodes: int,
            overrides: list[str] | None = None) -> dict:
    """Train (with the preset's ``--set`` ``overrides``, if any) and evaluate one run, or reuse it where it finished."""
    from .cli import eval_command, train_command

    path = run_dir(root, task, method, preset, seed)
    done = _finished(path, episodes)
    if done:
        trained_with = done["config"].get("overrides") or []
        if sorted(trained_with) != sorted(overrides or []):
            raise ValueError(f"{path} finished with the overrides {trained_with}, not the requested {list(overrides or [])}: "
                             "give these runs another --runs root")
        print(f"reusing {path}", flush=True)
        return done
    start = time.perf_counter()
    train_command(task, demos, method, preset, seed, str(path), overrides=overrides, progress=False)
    print(f"trained {path} in {time.perf_counter() - start:.0f} s", flush=True)
    result = eval_command(str(path), episodes, progress=False)
    print(f"evaluated {path}: success_once {result['success_once']:.3f}, success_at_end {result['success_at_end']:.3f}", flush=True)
    return _finished(path, episodes)


#: the folders of the code a run trains with (the commit a record names is checked for changes under them)
CODE_PATHS = ("src", "integrations")


def record_of(path: Path, commit: str | None = None) -> RunRecord:
    """The record of a finished run directory, named ``<root name>/<run name>``: its evaluation as the
    metrics, its summary as the timing, its config, the directory it ran in (``notes.run_dir``) and,
    where given, the commit of the code it ran with (``notes.commit``)."""
    done = _finished(Path(path))
    if done is None:
        raise ValueError(f"{path}: not a finished run (no eval/eval.json and summary.json)")
    notes = {"run_dir": str(path)} | ({"commit": commit} if commit else {})
    return RunRecord(f"{Path(path).parent.name}/{Path(path).name}", metrics=done["eval"], config=done["config"],
                     timing=done["summary"], notes=notes)


def _from_record(record: RunRecord) -> dict:
    return {"eval": record.metrics, "summary": record.timing, "config": record.config,
            "run_dir": record.notes.get("run_dir", f"runs/{record.name}"), "notes": record.notes}


def finished_runs(sources: list[Path], preset_filter: str | None = None) -> list[tuple]:
    """``(task, method, preset, seed, name, done)`` of every finished run in the sources: records tables
    (``*.jsonl``) or run roots (``ROOT/<task>__<method>__<preset>__<seed>/``); a run named in two sources
    counts once (the first source's)."""
    found = {}
    for source in sources:
        source = Path(source)
        if is_table(source):
            if not source.exists():
                raise FileNotFoundError(f"{source}: no such records table")
            items = [(name, _from_record(record)) for name, record in read_table(source).items() if record.metrics]
        else:
            items = [(f"{source.name}/{path.name}", _finished(path)) for path in sorted(source.glob("*__*__*__*"))]
        for name, done in items:
            if done is not None and name not in found:
                found[name] = done
    runs = []
    for name, done in sorted(found.items()):
        task, method, preset, seed = name.rsplit("/", 1)[-1].split("__")
        if preset_filter in (None, preset):
            runs.append((task, method, preset, int(seed), name, done))
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


def _values(runs: list[tuple], task: str, method: str, key: str) -> list[float]:
    return [done["eval"][key] for t, m, _, _, _, done in runs if t == task and m == method]


def _mean_se_text(values, note: str = "") -> str:
    """``"mean ± s.e. (sd S; N seeds<note>)"``, the standard deviation with ddof 1 beside the standard error."""
    mean, se = mean_se(values)
    if math.isnan(se):
        return f"{mean:.3f} (1 seed, no spread{note})"
    return f"{mean:.3f} ± {se:.3f} (sd {se * math.sqrt(len(values)):.3f}; {len(values)} seeds{note})"


def _cell(runs: list[tuple], task: str, method: str, key: str, with_demos: bool = True) -> str:
    values = _values(runs, task, method, key)
    if not values:
        return "not run"
    note = ""
    if with_demos:
        demos = sorted({done["summary"]["num_demos"] for t, m, _, _, _, done in runs if t == task and m == method})
        note = f", {'/'.join(map(str, demos))} demos"
    return _mean_se_text(values, note)


def _verdict(ours: list[float], other: tuple[float, float]) -> str:
    """``"higher (+0.071; noise 0.050)"``: our mean against ``other`` (mean, s.e.) by
    :func:`~mepoly_dist.zoo.benchmark.results.compare_means`, with the difference and its noise margin
    (2 standard errors of the difference)."""
    if not ours:
        return "not run"
    mine = mean_se(ours)
    word = compare_means(mine, other)
    if word == "unknown noise":
        return "unknown noise (1 seed)"
    return f"{word} ({mine[0] - other[0]:+.3f}; noise {NOISE_Z * math.hypot(mine[1], other[1]):.3f})"


def verdicts(runs: list[tuple], key: str = "success_once") -> list[list[str]]:
    """Per task: this project's MePoly against each paper row and against this project's DP, and this
    project's DP against the paper's DP, each ``higher`` / ``lower`` / ``within the noise``."""
    rows = []
    for index, task in enumerate(TASKS):
        mepoly, dp = _values(runs, task, "mepoly", key), _values(runs, task, "dp", key)
        paper_mepoly, paper_dp = (paper_mean_se(*PAPER[row][index]) for row in ("MePoly (paper)", "DP (paper)"))
        rows.append([task.removesuffix("-v1"), _verdict(mepoly, paper_mepoly), _verdict(mepoly, paper_dp),
                     _verdict(mepoly, mean_se(dp)) if dp else "not run", _verdict(dp, paper_dp)])
    return rows


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


def commands(task: str, method: str, preset: str, seed: int, done: dict) -> str:
    """The ``mepoly-il train`` and ``eval`` commands that rebuild a run, with the ``--set`` overrides and the
    ``--act-horizon`` of :func:`preset_drift` where its preset has changed since (a record without its
    config keeps the commands it was recorded with)."""
    config, result, path = done["config"], done["eval"], done["run_dir"]
    if not config:
        return done["notes"]["commands"]
    overrides, horizon = preset_drift(config)
    sets = "".join(f" --set {item}" for item in overrides)
    eval_horizon = f" --act-horizon {horizon}" if horizon is not None else ""
    return (f"`mepoly-il train {task} --demos {config['demos']} --method {method} --preset {preset} --seed {seed}{sets} --out {path}` "
            f"then `mepoly-il eval {path} --episodes {result['episodes']}{eval_horizon}`")


def _schedule(done: dict) -> str:
    return schedule(done["config"]) if done["config"] else done["notes"]["schedule"]


def write_report_text(sources: list[Path], preset_filter: str | None, command: str) -> str:
    """The report (Markdown) of the finished runs in ``sources`` (records tables or run roots); ``command``
    regenerates it."""
    runs = finished_runs(sources, preset_filter)
    main_runs = main_table_runs(runs)
    overridden = sorted({item for *_, done in runs for item in (done["config"] or {}).get("overrides") or []})
    rows = [[name] + [f"{mean:.3f} ± {paper_mean_se(mean, std)[1]:.3f} (sd {std:.3f}; {PAPER_SEEDS} seeds)" for mean, std in cells]
            for name, cells in PAPER.items()]
    for key in ("success_once", "success_at_end"):
        for method in METHODS:
            rows.append([LABELS[method] if key == "success_once" else f"{LABELS[method]}, {key}"]
                        + [_cell(main_runs, task, method, key) for task in TASKS])
    by_demos = []
    for task in TASKS:
        for demos in sorted({done["summary"]["num_demos"] for t, _, _, _, _, done in runs if t == task}):
            subset = [run for run in runs if run[0] == task and run[5]["summary"]["num_demos"] == demos]
            steps = [" / ".join(sorted({_schedule(done) for _, m, _, _, _, done in subset if m == method}))
                     or "not run" for method in METHODS]
            by_demos.append([task, demos] + [_cell(subset, task, method, key, with_demos=False)
                                             for method in METHODS for key in ("success_once", "success_at_end")] + steps)
    details = []
    for task, method, preset, seed, name, done in runs:
        summary, result = done["summary"], done["eval"]
        details.append([task, LABELS[method], preset, seed, summary["num_demos"], summary["num_pairs"], f"{summary['parameters']:,}",
                        _schedule(done), f"{summary['train_seconds']['total'] / 60:.1f}",
                        f"{1000 * summary['latency_per_chunk']['median_s']:.1f}", f"{1000 * result['chunk_latency_s']:.1f}",
                        result["episodes"], result["act_horizon"], f"{result['success_once']:.3f}", f"{result['success_at_end']:.3f}",
                        done["notes"].get("commit", "not recorded"), commands(task, method, preset, seed, done)])
    title = "ManiSkill imitation learning (paper Table 1)"
    if overridden:
        title += f", the preset overridden by {', '.join(f'`{item}`' for item in overridden)}"
    text = results_header(title, "per run, see below",
                          extra=f"* runs: {', '.join(f'`{source}`' for source in sources)}; regenerate this file with `{command}`")
    text += (
        "\nSuccess rate, mean ± standard error over training seeds (sd: the standard deviation over seeds, ddof 1; the "
        "standard error is sd / sqrt(seeds)), 100 evaluation episodes per run unless the run table says otherwise. The "
        "paper's rows are copied from its Table 1 (12M-parameter models, trained on a GPU, 3 seeds; the paper does not say "
        "whether its rate is success_once or success_at_end, nor how many demonstrations it trained on, nor whether its "
        "standard deviation divides by n or n - 1: its standard error is taken as sd / sqrt(2), the larger reading). This "
        "project's rows are ManiSkill's success_once (success at any step of the episode, what ManiSkill's baselines "
        "report); the rows marked success_at_end give the stricter metric (success at the last step). Each column of this "
        "project's rows uses the runs trained on the most demonstrations this project generated for that task (the cell "
        "says how many), the same set for both methods; the table after the next gives every demonstration count that ran. "
        "Evaluation: `physx_cpu`, `pd_ee_delta_pos`, state observations, episode limits 100 / 100 / 200 / 150, seeds "
        "100000 + i (disjoint from the demonstrations'), 16-action chunks of which the policy executes 8 before replanning "
        f"(ManiSkill's baseline setting){_horizon_exceptions()} (the run table gives the value of every run). \"not run\": "
        "no finished run on this machine, not a result.\n\n"
    )
    if overridden:
        text += ("**Not the preset's schedule.** These runs trained with the preset's values overridden by "
                 f"{', '.join(f'`--set {item}`' for item in overridden)} (each run's command below gives its own), so "
                 "their rows set a longer or otherwise changed training against the paper's rows; the preset's own runs "
                 "are in Table 1's report, `maniskill_il.md`.\n\n")
    text += markdown_table(["Method", "PushCube", "PickCube", "StackCube", "PushT"], rows)
    text += ("\n## Against the noise\n\nsuccess_once of the table above: a difference counts only where it exceeds "
             f"{NOISE_Z:g} standard errors of the difference (the noise given in brackets, beside the difference of the "
             "means); otherwise it is within the noise. This project's success_once against the paper's rate, whose "
             "metric the paper does not name.\n\n")
    text += markdown_table(["task", "MePoly (this project) vs MePoly (paper)", "MePoly (this project) vs DP (paper)",
                            "MePoly vs DP (this project)", "DP (this project) vs DP (paper)"], verdicts(main_runs))
    text += ("\n## By demonstration count\n\n" + ("The runs" if overridden else "The CPU preset") + " on each demonstration "
             "count (success_once and success_at_end, mean ± standard error over seeds), with each method's training steps"
             + (".\n\n" if overridden else ": a row whose steps differ from another row of its task ran before the preset changed.\n\n"))
    text += markdown_table(["task", "demos", "MePoly success_once", "MePoly success_at_end", "DP success_once", "DP success_at_end",
                            "MePoly steps", "DP steps"], by_demos)
    text += "\n## Runs\n\n"
    text += ("Every finished run of the sources above, none left out. Training time: wall clock of the training loops on "
             "one torch thread (2-core machine shared with other engineers' jobs: load averages of 3-10 were seen during "
             "these runs, so the times are upper bounds; a run interrupted and resumed before commit 9fcbf2f counts only "
             "the time after its last checkpoint). Latency: median seconds per action chunk for one observation history on "
             "one thread, measured after training (`summary.json`) and during the evaluation rollouts (`eval.json`). "
             "Training steps: MePoly's stage 1 + stage 2, DP's steps. A run trained before its preset changed carries, in "
             "its command, the `--set` overrides and the `--act-horizon` that rebuild and evaluate it as it ran. Code: the "
             "commit of `src/` and `integrations/` the run trained with. The runs of seeds 0-2 were recorded from this "
             "report's run table after their run directories were gone, so their values are as that table rounded them, "
             "and their code is that of the table's commit or earlier.\n\n")
    if details:
        text += markdown_table(["task", "method", "preset", "seed", "demos", "training pairs", "parameters", "training steps", "training min",
                                "latency ms/chunk (after training)", "latency ms/chunk (in rollouts)", "eval episodes",
                                "actions per chunk", "success_once", "success_at_end", "code (commit)", "commands"], details)
    else:
        text += "No finished runs yet.\n"
    return text


def main(argv=None) -> int:
    from .train import PRESETS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--preset", choices=PRESETS, default="cpu")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--demos", action="append", default=[], metavar="TASK=PATH", help="demonstration file of a task (default demos/...)")
    parser.add_argument("--runs", default="runs/maniskill_il", help="new run directories go here")
    parser.add_argument("--records", default=str(RECORDS), help="the records table each finished run is added to, and that the report reads")
    parser.add_argument("--record", nargs="+", default=[], metavar="RUN_DIR",
                        help="add these finished run directories (e.g. made by mepoly-il train / eval) to the records table")
    parser.add_argument("--report-runs", nargs="+", default=[], metavar="ROOT_OR_TABLE",
                        help="run roots (runs not recorded) or other records tables (*.jsonl) the report reads besides "
                             "--records, e.g. another schedule's table to set the two side by side")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a preset value in every run trained (as mepoly-il train --set), e.g. dp.train.steps=30000; "
                             "needs its own --records and --runs, so that a table never pools two schedules")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--report-only", action="store_true", help="only rewrite the results file from the records (and --report-runs)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    demos = dict(DEFAULT_DEMOS)
    for item in args.demos:
        task, sep, path = item.partition("=")
        if not sep or task not in TASKS:
            parser.error(f"--demos takes TASK=PATH with TASK in {TASKS}, got {item!r}")
        demos[task] = path
    records = Path(args.records)
    if not is_table(records):
        parser.error(f"--records takes a records table (*.jsonl), got {records}")
    if args.overrides and not args.report_only and (records == RECORDS or Path(args.runs) == Path(parser.get_default("runs"))):
        parser.error("--set changes the schedule of the runs it trains: give them their own --records table and --runs root "
                     f"(not {RECORDS} or {parser.get_default('runs')}), so that the preset's table does not pool them")
    sources = [records] + [Path(path) for path in args.report_runs]
    command = "python benchmarks/maniskill_il.py --report-only"
    if records != RECORDS:
        command += f" --records {records}"
    if args.report_runs:
        command += f" --report-runs {' '.join(args.report_runs)}"
    out = Path(args.out)
    if out != RESULTS:
        command += f" --out {out}"  # else the command would rewrite Table 1's report with these runs
    commit = git_commit(CODE_PATHS)  # the code this process trains with, read before it changes under a long run
    if args.record:
        try:
            update_table(records, [record_of(Path(path)) for path in args.record])
        except ValueError as error:
            parser.error(str(error))
    if not args.report_only:
        for task in args.tasks:
            if not Path(demos[task]).is_file():
                parser.error(f"{task}: no demonstrations at {demos[task]} (mepoly-maniskill demos {task} -n 100 --out demos, or --demos {task}=PATH)")
        for seed in args.seeds:
            for task in args.tasks:
                for method in args.methods:
                    run_one(Path(args.runs), task, method, args.preset, seed, demos[task], args.episodes, args.overrides)
                    update_table(records, [record_of(run_dir(Path(args.runs), task, method, args.preset, seed), commit)])
                    write_report(out.parent, out.name, write_report_text(sources, None, command), echo=False)
    if not records.exists():
        parser.error(f"{records}: no such records table (run the benchmark, or --record finished run directories)")
    path = write_report(out.parent, out.name, write_report_text(sources, None, command))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
