"""The cost benchmark: marginal seconds per iteration, the preset's iteration counts, and a measured report."""

from __future__ import annotations

import json

import pytest
from synthetic_demos import write_trajectory_file

pytest.importorskip("diffusers", reason="diffusers is not installed (pip install -e integrations/il)")

from mepoly_il.cost import main, marginal_seconds, stage_steps  # noqa: E402
from mepoly_il.train import preset_config  # noqa: E402

TINY = ["mepoly.vae.d_model=16", "mepoly.vae.heads=2", "mepoly.vae.decoder_layers=1", "mepoly.prior.hidden=[16]", "mepoly.prior.order=4",
        "mepoly.stage1.batch_size=16", "mepoly.stage2.batch_size=16", "dp.model.down_dims=[8,16,32]", "dp.model.diffusion_steps=5",
        "dp.train.batch_size=16"]


def test_marginal_seconds_by_hand():
    short, long = {"stage1": 3.0, "stage2": 2.0, "total": 5.0}, {"stage1": 7.0, "stage2": 2.5, "total": 9.5}
    assert marginal_seconds(short, long, 10, 30) == {"stage1": 0.2, "stage2": 0.025}
    with pytest.raises(ValueError, match="within the timing noise"):
        marginal_seconds(short, {"stage1": 3.0, "stage2": 2.5}, 10, 30)
    with pytest.raises(ValueError, match="more iterations"):
        marginal_seconds(short, long, 30, 30)


def test_reference_iterations_are_maniskills_schedule():
    """ManiSkill's DP baseline: 30,000 iterations on the cube tasks and 50,000 on PushT; MePoly gets the same."""
    assert stage_steps(preset_config("reference", "PickCube-v1"), "dp") == {"dp": 30_000}
    assert stage_steps(preset_config("reference", "PushT-v1"), "dp") == {"dp": 50_000}
    assert stage_steps(preset_config("reference", "PushT-v1"), "mepoly") == {"stage1": 34_000, "stage2": 16_000}
    assert stage_steps(preset_config("reference", "PushT-v1", ["mepoly.stage2.steps=5"]), "mepoly")["stage2"] == 5


def test_report_from_two_measured_trainings(tmp_path):
    demos = write_trajectory_file(tmp_path / "trajectory.h5", [30, 25], 35, 4)
    out = tmp_path / "results"
    args = ["--demos", f"PushCube-v1={demos}", "--preset", "reference", "--steps", "2", "12", "--device", "cpu", "--out", str(out),
            "--name", "tiny"]
    assert main(args + [arg for item in TINY for arg in ("--set", item)]) == 0
    rows = json.loads((out / "tiny.json").read_text())
    assert [row["method"] for row in rows] == ["dp", "mepoly"]
    for row in rows:
        assert row["iterations"] == stage_steps(preset_config("reference", "PushCube-v1"), row["method"])
        assert all(seconds > 0 for seconds in row["seconds_per_iteration"].values())
        hours = sum(row["seconds_per_iteration"][stage] * count for stage, count in row["iterations"].items()) / 3600
        assert row["run_hours"] == pytest.approx(hours)
        assert row["batch_size"] == dict.fromkeys(row["iterations"], 16) and row["latency_median_s"] > 0
    text = (out / "tiny.md").read_text()
    assert "python" in text and "| PushCube-v1 | dp | cpu |" in text and "20,000 + 10,000" in text


def test_bad_input_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--demos", f"PushCube-v1={tmp_path / 'none.h5'}"])
    assert "existing trajectory file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--demos", f"PushCube-v1={tmp_path}", "--steps", "5", "5"])
    assert "0 < SHORT < LONG" in capsys.readouterr().err
