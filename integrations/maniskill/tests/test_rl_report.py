"""The PPO learning-curve report (:mod:`mepoly_maniskill.benchmark.rl`, ``benchmarks/maniskill_rl.py``):
finished and stopped runs side by side, read from their run directories without training or evaluating anything."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

pytest.importorskip("mepoly_maniskill")
from mepoly_maniskill.benchmark import rl as maniskill_rl  # noqa: E402


def _run_dir(root: Path, method: str, curve: list[tuple[int, float, float]], budget: int, metrics: dict | None) -> None:
    """A run directory as `mepoly train` leaves it: config, checkpoints, in-training evaluations
    (sampled actions, 100 episodes), timing; metrics.json only once the run has finished."""
    run = root / f"PickCube-v1__{method}__0"
    (run / "checkpoints").mkdir(parents=True)
    config = {"env_id": "maniskill/PickCube-v1", "policy": method, "seed": 0, "n_timesteps": budget, "eval_episodes": 100,
              "policy_kwargs": {"blocks": [2, 2]} if method == "mepoly" else {}}
    (run / "config.yml").write_text(yaml.safe_dump(config))
    with (run / "eval_curve.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timesteps", "success_once_sampled", "success_at_end_sampled", "mean_return_sampled", "seconds_sampled"])
        for steps, once, mean_return in curve:
            writer.writerow([steps, once, 0.0, mean_return, 1.0])
            if steps:
                (run / "checkpoints" / f"model_{steps}_steps.zip").write_bytes(b"")
    (run / "timing.json").write_text(json.dumps({"train_seconds": 600.0}))
    if metrics is not None:
        (run / "metrics.json").write_text(json.dumps({**metrics, "train_seconds": 600.0}))


def test_report_only_tabulates_finished_and_stopped_runs(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    _run_dir(runs, "gaussian", [(4, 0.0, 2.0), (25000, 0.5, 9.0), (50000, 0.92, 20.5)], 50000,
             {"num_timesteps": 50000, "success_once_sampled": 0.93, "success_once_mode": 0.95, "success_at_end_mode": 0.4})
    _run_dir(runs, "mepoly", [(4, 0.0, 2.1), (25000, 0.1, 6.25)], 100000, None)  # stopped after 25k of 100k steps

    maniskill_rl.main(["--tasks", "PickCube-v1", "--report-only", "--runs-dir", str(runs), "--out", str(out), "--name", "partial"])

    text = (out / "partial.md").read_text()
    assert (out / "partial.png").stat().st_size > 0 and not (out / "maniskill_rl.md").exists()
    rows = {line.split(" | ")[1]: [cell.strip() for cell in line.strip("| \n").split(" | ")]
            for line in text.splitlines() if line.startswith("| PickCube-v1")}
    # task, method, seed, blocks, steps, steps to 0.9, last once, last return, final once (sampled / mode), at end, min, steps/s
    assert rows["gaussian"] == ["PickCube-v1", "gaussian", "0", "-", "50000", "50000", "0.92", "20.5", "0.93", "0.95", "0.40", "10", "83"]
    assert rows["mepoly"] == ["PickCube-v1", "mepoly", "0", "[2, 2]", "25000 (stopped at 100000)", "not within 25000", "0.10", "6.2",
                              "-", "-", "-", "10", "42"]
    assert not (runs / "PickCube-v1__mepoly__0" / "metrics.json").exists()  # nothing trained or evaluated
