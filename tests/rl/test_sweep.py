"""Benchmark sweeps (:func:`mepoly_dist.zoo.benchmark.sweep.run_parallel`): the same jobs on local
processes and on a local Ray Tune instance give results keyed the same way.  Needs the ``[sweep]``
extra: ``pytest -m sweep``."""

from __future__ import annotations

from pathlib import Path

import pytest

from mepoly_dist.zoo.benchmark.sweep import load_finished, run_parallel, train_run

pytestmark = pytest.mark.sweep


def _jobs(root: Path) -> dict:
    # two tiny bandit runs: one PPO iteration (1024 samples) each
    return {(target, "gaussian", 0): (train_run, (target, "gaussian", 0, str(root / target), 1024, ["n_epochs=1"]))
            for target in ("lemniscate", "two_moons")}


def test_two_trial_ray_sweep_runs_locally_and_writes_the_run_dirs(tmp_path):
    pytest.importorskip("ray.tune")
    reported = []
    results = run_parallel(_jobs(tmp_path), workers=2, report=lambda key, m: reported.append(key), backend="ray")
    assert set(results) == {("lemniscate", "gaussian", 0), ("two_moons", "gaussian", 0)} and len(reported) == 2
    for (target, _, _), metrics in results.items():
        assert metrics["num_timesteps"] == 1024 and metrics["env_kwargs"]["target"] == target
        assert 0.0 <= metrics["coverage"] <= 1.0
        finished = load_finished(tmp_path / target)  # what --reuse would pick up
        assert finished["tv_to_target"] == metrics["tv_to_target"]


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="unknown backend 'dask'"):
        run_parallel({}, 1, print, backend="dask")
