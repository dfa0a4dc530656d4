"""What a training run at a preset costs on this machine: seconds per iteration, hours per run, and
the inference latency per action chunk, for MePoly and Diffusion Policy, on the CPU or a GPU.

Each method is trained twice from the same seed through :func:`mepoly_il.train.train`, for ``short``
and then ``long`` iterations per stage (the preset's batch size, model and optimizer; only the step
counts are overridden). The difference of the two runs' stage seconds over the difference of their
steps is the marginal cost of one iteration: start-up, data loading, first-call compilation and
CUDA warm-up are in both runs and cancel. That cost times the preset's iteration count of the task
is the training time of one full run. The latency is the longer run's median seconds per chunk
(batch 1, :func:`mepoly_il.policy.measure_latency`) on the device it trained on.

    python benchmarks/il_cost.py --demos PushT-v1=PATH --preset reference --steps 2 6 --device cpu
    bash benchmarks/gpu_il_cost.sh "$OUT"        # the same on CUDA, for a lent GPU machine

The report goes to ``benchmarks/results/il_cost/<name>.md`` (``.json`` beside it) with the command,
machine and devices; a rerun replaces the measured part and keeps the notes under the marker.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from mepoly_dist.zoo.benchmark.results import markdown_table, results_header, write_report

__all__ = ["STAGES", "stage_steps", "marginal_seconds", "measure", "report_text", "main"]

#: the training stages of each method: (name of the stage's seconds in ``summary["train_seconds"]``,
#: path of its section in the preset)
STAGES = {
    "dp": (("dp", ("dp", "train")),),
    "mepoly": (("stage1", ("mepoly", "stage1")), ("stage2", ("mepoly", "stage2"))),
}
RESULTS = Path("benchmarks/results/il_cost")


def _section(config: dict, path: tuple[str, ...]) -> dict:
    for key in path:
        config = config[key]
    return config


def stage_steps(config: dict, method: str) -> dict[str, int]:
    """Iterations of each training stage of ``method`` in a merged preset ``config``."""
    return {stage: int(_section(config, path)["steps"]) for stage, path in STAGES[method]}


def marginal_seconds(short: dict, long: dict, short_steps: int, long_steps: int) -> dict[str, float]:
    """Seconds per iteration of each stage: the difference of two runs' ``train_seconds`` over the
    difference of their iteration counts."""
    if long_steps <= short_steps:
        raise ValueError(f"the long run must have more iterations than the short one, got {short_steps} and {long_steps}")
    seconds = {stage: (long[stage] - short[stage]) / (long_steps - short_steps) for stage in long if stage != "total"}
    for stage, value in seconds.items():
        if not value > 0:
            raise ValueError(f"stage {stage!r}: {long_steps} iterations took {long[stage]:.3g} s and {short_steps} took "
                             f"{short[stage]:.3g} s, so the difference is within the timing noise; use more --steps")
    return seconds


def measure(task: str, demos: str | Path, method: str, preset: str, steps: tuple[int, int], device: str | None,
            work_dir: Path, seed: int = 0, overrides: list[str] | None = None) -> dict:
    """Trains ``method`` twice (``steps`` iterations per stage) and returns its cost at ``preset``: seconds per
    iteration per stage, the preset's iterations, the hours of one full run, the latency per chunk and
    the model size. ``overrides`` (``KEY.PATH=VALUE``, as ``mepoly-il train --set``) change the preset
    for both the trainings and the iteration counts."""
    from .train import preset_config, train

    if method not in STAGES:
        raise ValueError(f"unknown method {method!r}; expected one of {tuple(STAGES)}")
    short_steps, long_steps = steps
    summaries = []
    for count in (short_steps, long_steps):
        steps_override = [f"{'.'.join(path)}.steps={count}" for _, path in STAGES[method]]
        summaries.append(train(task, demos, method, work_dir / f"{task}__{method}__{count}", preset=preset, seed=seed,
                               overrides=list(overrides or []) + steps_override, progress=False, device=device))
    per_iteration = marginal_seconds(summaries[0]["train_seconds"], summaries[1]["train_seconds"], short_steps, long_steps)
    config = preset_config(preset, task, overrides)
    iterations = stage_steps(config, method)
    batch = {stage: int(_section(config, path)["batch_size"]) for stage, path in STAGES[method]}
    latency = summaries[1]["latency_per_chunk"]
    return {"task": task, "method": method, "preset": preset, "device": latency["device"], "steps": list(steps),
            "seconds_per_iteration": per_iteration, "iterations": iterations, "batch_size": batch,
            "run_hours": sum(per_iteration[stage] * iterations[stage] for stage in iterations) / 3600,
            "latency_median_s": latency["median_s"], "parameters": summaries[1]["parameters"],
            "num_pairs": summaries[1]["num_pairs"]}


def report_text(rows: list[dict], header: str) -> str:
    """The report: one line per task and method."""
    table = []
    for row in rows:
        stages = " / ".join(f"{row['seconds_per_iteration'][s]:.3g}" for s in row["iterations"])
        iterations = " + ".join(f"{n:,}" for n in row["iterations"].values())
        table.append([row["task"], row["method"], row["device"], f"{row['parameters'] / 1e6:.2f}M",
                      " / ".join(str(b) for b in row["batch_size"].values()), stages, iterations,
                      f"{row['run_hours']:.2f}", f"{row['latency_median_s'] * 1e3:.1f}"])
    columns = ["task", "method", "device", "parameters", "batch", "s / iteration (per stage)", "iterations at the preset",
               "hours per run", "latency per chunk (ms, median)"]
    return (header + "\n" + markdown_table(columns, table)
            + "\nSeconds per iteration: the difference of two trainings of "
              f"{rows[0]['steps'][0]} and {rows[0]['steps'][1]} iterations per stage, over the difference of their "
              "iterations (stage 1 / stage 2 for MePoly). Hours per run: those seconds times the preset's iterations; "
              "evaluation not included.\n")


def main(argv=None) -> int:
    from .train import PRESETS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demos", action="append", required=True, metavar="TASK=PATH",
                        help="a task and its trajectory file (repeatable); each task given is measured")
    parser.add_argument("--methods", nargs="+", default=list(STAGES), choices=tuple(STAGES))
    parser.add_argument("--preset", choices=PRESETS, default="reference")
    parser.add_argument("--steps", nargs=2, type=int, default=[20, 220], metavar=("SHORT", "LONG"),
                        help="iterations per stage of the two trainings (default 20 220; on a CPU a few: 2 6)")
    parser.add_argument("--device", default="auto", help="auto (CUDA where available), cpu, cuda, ...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a preset entry, as mepoly-il train --set (repeatable)")
    parser.add_argument("--out", default=str(RESULTS), help="folder of the report")
    parser.add_argument("--name", default=None, help="report name (default il_cost_<preset>_<device type>)")
    args = parser.parse_args(argv)
    if not 0 < args.steps[0] < args.steps[1]:
        parser.error(f"--steps takes SHORT LONG with 0 < SHORT < LONG, got {args.steps}")
    demos = []
    for item in args.demos:
        task, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            parser.error(f"--demos takes TASK=PATH of an existing trajectory file, got {item!r}")
        demos.append((task, path))

    import torch

    from .train import resolve_device

    torch.set_num_threads(1)
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    rows = []
    with tempfile.TemporaryDirectory(prefix="mepoly-il-cost-") as work:
        for task, path in demos:
            for method in args.methods:
                try:
                    rows.append(measure(task, path, method, args.preset, tuple(args.steps), str(device), Path(work), args.seed,
                                        args.overrides))
                except (ValueError, KeyError) as error:
                    parser.error(f"{task}, {method}: {error}")
                print(json.dumps(rows[-1]), flush=True)
    extra = f"* device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'} ({device})"
    name = args.name or f"il_cost_{args.preset}_{device.type}"
    path = write_report(args.out, f"{name}.md", report_text(rows, results_header(f"Imitation learning: the cost of the {args.preset} preset", args.seed, extra)))
    (Path(args.out) / f"{name}.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {path}")
    return 0
