"""ManiSkill itself: an environment on the CPU simulator, and motion-planned demos converted and loaded.

Skipped, with the reason, where mani_skill is not importable or no usable Vulkan device is
found (see :func:`mepoly_maniskill.install_check.find_installation_problem`). The demos are
planned in a subprocess through the command line: under numpy 2 ManiSkill's motion planner
(mplib 0.1.1) segfaults, which then fails the test with that diagnosis instead of killing pytest,
so these tests prove the ``numpy<2`` pin of the ``mepoly-maniskill`` distribution.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mani_skill", reason="mani_skill is not installed (pip install -e integrations/maniskill)")

from mepoly_maniskill.dataset import TrainingPairs, load_demonstrations  # noqa: E402
from mepoly_maniskill.install_check import check_installation, find_installation_problem  # noqa: E402

_problem = find_installation_problem()
pytestmark = pytest.mark.skipif(_problem is not None, reason=_problem or "")

# state observation sizes of the three cube tasks with the Panda arm
STATE_OBS_DIM = {"PushCube-v1": 35, "PickCube-v1": 42, "StackCube-v1": 48}


def test_env_creation_and_short_rollout():
    result = check_installation("PushCube-v1", num_steps=20)
    assert result.obs_dim == STATE_OBS_DIM["PushCube-v1"] and result.action_dim == 8
    assert result.numpy_version.startswith("1.")
    assert result.steps_per_second > 10


@pytest.mark.parametrize("env_id", sorted(STATE_OBS_DIM))
def test_one_motion_planned_demo_converted_and_loaded(env_id, tmp_path):
    command = [sys.executable, "-m", "mepoly_maniskill.cli", "demos", env_id, "-n", "1", "--out", str(tmp_path), "--seed", "1"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)
    assert completed.returncode != -11, f"the motion planner segfaulted (numpy {np.__version__}; mplib 0.1.1 needs numpy<2):\n{completed.stderr[-2000:]}"
    assert completed.returncode == 0, completed.stderr[-4000:]

    folder = tmp_path / env_id / "motionplanning"
    converted = folder / "trajectory.state.pd_ee_delta_pos.physx_cpu.h5"
    assert (folder / "trajectory.h5").exists() and converted.exists()
    metadata = json.loads(converted.with_suffix(".json").read_text())
    assert metadata["env_info"]["env_id"] == env_id
    assert metadata["env_info"]["env_kwargs"]["control_mode"] == "pd_ee_delta_pos"
    assert metadata["env_info"]["env_kwargs"]["obs_mode"] == "state"
    assert len(metadata["episodes"]) == 1 and metadata["episodes"][0]["success"]
    report = json.loads((folder / "demos_report.json").read_text())
    assert report["num_demos"] == 1 and report["trajectory_path"] == str(converted)

    # ManiSkill's own loader reads the file
    from mani_skill.trajectory.dataset import ManiSkillTrajectoryDataset

    maniskill_dataset = ManiSkillTrajectoryDataset(str(converted))
    assert maniskill_dataset.actions.shape[1] == 4 and maniskill_dataset.obs.shape[1] == STATE_OBS_DIM[env_id]
    # and so does ours
    (demo,) = load_demonstrations(converted)
    assert demo.actions.shape == (maniskill_dataset.actions.shape[0], 4)
    assert demo.observations.shape == (demo.num_steps + 1, STATE_OBS_DIM[env_id])
    assert np.all(np.abs(demo.actions) <= 1.0 + 1e-6)
    obs_histories, action_chunks = TrainingPairs([demo], obs_horizon=2, action_horizon=16).arrays()
    assert obs_histories.shape == (demo.num_steps, 2, STATE_OBS_DIM[env_id]) and action_chunks.shape == (demo.num_steps, 16, 4)


def test_scripted_pusht_demo_recorded_and_loaded(tmp_path):
    from mepoly_maniskill.pusht_expert import record_pusht_demos

    report = record_pusht_demos(1, tmp_path, seed=2000, max_attempts=5)
    assert report.num_demos == 1, f"the PushT expert failed {report.attempts} episodes in a row"
    path = tmp_path / "PushT-v1" / "scripted" / "trajectory.state.pd_ee_delta_pos.physx_cpu.h5"
    assert report.trajectory_path == str(path)
    metadata = json.loads(path.with_suffix(".json").read_text())
    assert metadata["env_info"]["env_id"] == "PushT-v1" and metadata["episodes"][0]["success"]
    (demo,) = load_demonstrations(path)
    assert demo.actions.shape[1] == 3 and demo.observations.shape == (demo.num_steps + 1, 31)
