"""The frameworks benchmark's report: every run, and mean ± standard error over seeds (checked with scipy)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mepoly_dist.zoo.benchmark import frameworks


def test_summary_gives_every_run_and_the_standard_error_over_seeds():
    tv = {0: 0.089, 1: 0.095, 2: 0.101}
    results = {("lemniscate", "torchrl", s): dict(coverage=1.0, tv_to_target=v, mean_reward=0.92, train_seconds=120 + s)
               for s, v in tv.items()}
    results[("lemniscate", "sb3", 0)] = dict(coverage=1.0, tv_to_target=0.09, mean_reward=0.91, train_seconds=30)
    text = frameworks.summarize(results, ["lemniscate"], ["sb3", "torchrl", "cleanrl"], [0, 1, 2])
    values = list(tv.values())
    assert f"| lemniscate | torchrl | 3 | 1.000 ± 0.000 | {np.mean(values):.3f} ± {stats.sem(values):.3f} |" in text
    assert "| lemniscate | sb3 | 1 | 1.000 (1 seed) | 0.090 (1 seed) |" in text
    assert "cleanrl" not in text  # no run, no row
    assert all(f"| lemniscate | torchrl | {s} | 1.000 | {v:.3f} |" in text for s, v in tv.items())


def test_the_benchmark_names_the_missing_examples_outside_the_repository_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        frameworks.main(["--frameworks", "cleanrl", "--out", str(tmp_path / "out")])
