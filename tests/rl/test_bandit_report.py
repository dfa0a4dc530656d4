"""The bandit benchmark's sweep (:mod:`mepoly_dist.zoo.benchmark.bandit`, ``ablations``): the runs it
trains, the records table it keeps, and the report remade from that table without training."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mepoly_dist.zoo.benchmark import ablations, bandit
from mepoly_dist.zoo.benchmark.records import read_table


def _fake_training(tmp_path, monkeypatch):
    """Replace the sweep's runner (the ablations use the bandit's): each job writes a run directory with random metrics."""
    trained = []

    def fake_run_parallel(jobs, workers, report, backend, address):
        out = {}
        for key, (function, args) in jobs.items():
            assert function is bandit.train_run
            run_dir = tmp_path / "runs" / args[3].split("/")[-1]
            run_dir.mkdir(parents=True)
            rng = np.random.default_rng(len(trained))
            metrics = dict(coverage=float(rng.uniform()), tv_to_target=float(rng.uniform()), mean_reward=float(rng.uniform()),
                           num_timesteps=1024, train_seconds=float(rng.uniform(1, 9)), normalize_advantage=False)
            (run_dir / "metrics.json").write_text(json.dumps(metrics))
            out[key] = metrics
            trained.append(key)
        return out

    monkeypatch.setattr(bandit, "run_parallel", fake_run_parallel)
    return trained


def test_a_sweep_keeps_its_records_and_the_report_remade_from_them_is_the_same(tmp_path, monkeypatch):
    trained = _fake_training(tmp_path, monkeypatch)
    table, out = tmp_path / "records" / "bandit.jsonl", tmp_path / "out"
    common = ["--targets", "lemniscate", "--methods", "mepoly", "gmm", "--seeds", "0", "1", "--out", str(out)]
    bandit.main(common + ["--runs-dir", str(tmp_path / "runs"), "--records", str(table)])
    assert sorted(trained) == [("lemniscate", m, s) for m in ("gmm", "mepoly") for s in (0, 1)]
    assert sorted(read_table(table)) == ["lemniscate__gmm__0", "lemniscate__gmm__1", "lemniscate__mepoly__0", "lemniscate__mepoly__1"]
    first = (out / "bandit.md").read_text()
    figure = (out / "bandit.png").read_bytes()

    trained.clear()
    bandit.main(common + ["--runs-dir", str(table), "--report-only"])
    assert trained == []  # nothing trained
    remade = (out / "bandit.md").read_text()
    body = lambda text: text[text.index("## Summary"):]
    assert body(remade) == body(first)
    assert (out / "bandit.png").read_bytes() == figure  # a table has no saved actions: the figure is kept


def test_report_only_names_the_runs_it_lacks_and_a_table_needs_report_only(tmp_path, monkeypatch, capsys):
    _fake_training(tmp_path, monkeypatch)
    table = tmp_path / "ablations.jsonl"
    ablations.main(["--targets", "lemniscate", "--orders", "2", "--bases", "legendre", "--runs-dir", str(tmp_path / "runs"),
                    "--records", str(table), "--out", str(tmp_path / "out")])
    ablations.main(["--targets", "lemniscate", "--orders", "2", "4", "--bases", "legendre", "--runs-dir", str(table),
                    "--report-only", "--out", str(tmp_path / "out")])
    assert "('lemniscate', 'legendre', 4, 0)" in capsys.readouterr().out  # order 4 was never run
    assert "| lemniscate | legendre | 2 |" in (tmp_path / "out" / "bandit_ablations.md").read_text()
    with pytest.raises(SystemExit):
        bandit.main(["--runs-dir", str(table), "--out", str(tmp_path / "out")])  # a table cannot be trained into
    with pytest.raises(SystemExit):
        bandit.main(["--records", str(tmp_path / "runs"), "--out", str(tmp_path / "out")])  # not a table


def test_the_summary_ranks_mepolys_tv_only_outside_the_noise():
    from mepoly_dist.zoo.benchmark.bandit import summarize

    def run(tv):
        return dict(coverage=1.0, tv_to_target=tv, mean_reward=0.9, num_timesteps=102400, train_seconds=60.0,
                    normalize_advantage=False)

    tvs = {"mepoly": [0.093, 0.091, 0.092], "nsf": [0.078, 0.079, 0.085], "gmm": [0.23, 0.22, 0.24], "fpo": [0.09, 0.20, 0.05]}
    results = {("lemniscate", m, s): run(tv) for m, values in tvs.items() for s, tv in enumerate(values)}
    text = summarize(results, ["lemniscate"], list(tvs), [0, 1, 2])
    assert "higher (worse) than nsf's 0.081 ± 0.002" in text
    assert "lower (better) than gmm's 0.230 ± 0.006" in text
    assert "within the noise of fpo's 0.113 ± 0.045" in text
