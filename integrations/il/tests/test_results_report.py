"""The Table 1 report (:mod:`mepoly_il.benchmark`, ``benchmarks/maniskill_il.py``): made from a records table
that never lets a rerun replace a run, with standard errors and noise verdicts against the paper's rows, and a
command that rebuilds each run after its preset changed."""

from __future__ import annotations

import copy
import shlex
from pathlib import Path

import pytest
from mepoly_dist.zoo.benchmark.results import NOTES_MARKER

pytest.importorskip("mepoly_il")
from mepoly_il.benchmark import preset_drift, schedule  # noqa: E402
from mepoly_il.train import load_preset, parse_override  # noqa: E402


def _saved_config(task: str, method: str) -> dict:
    """What ``mepoly-il train --preset cpu`` writes to RUN/config.yml today."""
    return {**load_preset("cpu", task), "task": task, "method": method, "preset": "cpu", "seed": 0, "demos": "demos.h5", "overrides": []}


def test_a_run_on_todays_preset_needs_no_overrides():
    for task in ("PushCube-v1", "PushT-v1"):
        for method in ("mepoly", "dp"):
            assert preset_drift(_saved_config(task, method)) == ([], None)


def test_a_run_from_an_earlier_preset_gets_the_overrides_that_rebuild_it():
    config = _saved_config("PushT-v1", "mepoly")
    old = copy.deepcopy(config)
    old["mepoly"]["stage1"]["steps"], old["mepoly"]["stage2"]["steps"] = 1234, 567
    del old["mepoly"]["act_horizon"]  # before the method-specific replanning interval existed: data.act_horizon
    old["mepoly"]["prior"]["hidden"] = [64, 32]
    old["dp"]["train"]["steps"] = 1  # the other method's section does not matter to a MePoly run
    overrides, horizon = preset_drift(old)
    assert overrides == ["'mepoly.prior.hidden=[64, 32]'", "mepoly.stage1.steps=1234", "mepoly.stage2.steps=567"]
    # what a shell hands to `mepoly-il train --set` parses back to the run's values
    rebuilt = [parse_override(word) for item in overrides for word in shlex.split(item)]
    assert rebuilt[0] == {"mepoly": {"prior": {"hidden": [64, 32]}}} and rebuilt[1] == {"mepoly": {"stage1": {"steps": 1234}}}
    assert horizon == config["data"]["act_horizon"] == 8
    assert schedule(old) == "1,234 + 567" and schedule({**config, "method": "dp"}) == f"{config['dp']['train']['steps']:,}"


REPO = Path(__file__).resolve().parents[3]
RECORDS = REPO / "benchmarks" / "results" / "maniskill_il" / "records" / "runs.jsonl"


def _body(text: str) -> str:
    """A report without its header (the title, then command, date, machine, software, commit, seed and runs lines)."""
    return text.split("\n\n", 2)[2]


#: the committed reports and the arguments that rebuild each (Table 1's; the runs with a longer DP schedule; MePoly
#: with twice its schedule beside them)
REPORTS = {"maniskill_il.md": [],
           "maniskill_il_dp_30k.md": ["--records", "benchmarks/results/maniskill_il/records/dp_30k.jsonl",
                                      "--out", "benchmarks/results/maniskill_il/maniskill_il_dp_30k.md"],
           "maniskill_il_mepoly_2x.md": ["--records", "benchmarks/results/maniskill_il/records/mepoly_2x.jsonl",
                                         "--report-runs", "benchmarks/results/maniskill_il/records/dp_30k.jsonl",
                                         "--out", "benchmarks/results/maniskill_il/maniskill_il_mepoly_2x.md"]}


@pytest.mark.skipif(not RECORDS.exists(), reason="needs the repository's benchmarks/ folder")
@pytest.mark.parametrize("report", sorted(REPORTS))
def test_the_committed_records_rebuild_the_committed_report(report, tmp_path, monkeypatch):
    """Table 1, the noise verdicts, the per-demo-count table and the run list of each report are made from its
    records tables alone: rebuilt from them, the report is the committed one but for its date, machine and commit
    (and the notes written by hand below it), and its header gives the command that rebuilds it in place."""
    from mepoly_il.benchmark import main

    monkeypatch.chdir(REPO)
    args = REPORTS[report]
    out = tmp_path / report
    sources = args[:-2]  # all but the --out pair: --records TABLE [--report-runs TABLE ...]
    assert main(["--report-only", *sources, "--out", str(out)]) == 0
    committed = (REPO / "benchmarks" / "results" / "maniskill_il" / report).read_text()
    read = [word for word in sources if not word.startswith("--")] or [str(RECORDS.relative_to(REPO))]
    assert f"* runs: {', '.join(f'`{source}`' for source in read)}; regenerate this file with " \
           f"`{shlex.join(['python', 'benchmarks/maniskill_il.py', '--report-only', *args])}`" in committed.splitlines()
    assert _body(out.read_text()).rstrip("\n") == _body(committed).split(NOTES_MARKER)[0].rstrip("\n")


def _finished_run(root: Path, task: str, method: str, seed: int, success: float) -> Path:
    """A run directory as ``mepoly-il train`` + ``eval`` leave it (the files the records keep)."""
    import json

    import yaml

    path = root / f"{task}__{method}__cpu__{seed}"
    (path / "eval").mkdir(parents=True)
    (path / "eval" / "eval.json").write_text(json.dumps({"episodes": 100, "act_horizon": 8, "success_once": success,
                                                         "success_at_end": success / 2, "chunk_latency_s": 0.004}))
    (path / "summary.json").write_text(json.dumps({"num_demos": 500, "num_pairs": 1000, "parameters": 10, "train_seconds": {"total": 60.0},
                                                   "latency_per_chunk": {"median_s": 0.003}}))
    (path / "config.yml").write_text(yaml.safe_dump({**_saved_config(task, method), "seed": seed}))
    return path


def test_runs_are_recorded_once_and_a_rerun_is_refused(tmp_path):
    from mepoly_dist.zoo.benchmark.records import update_table
    from mepoly_il.benchmark import finished_runs, record_of

    root, table = tmp_path / "runs_500", tmp_path / "runs.jsonl"
    paths = [_finished_run(root, "PushCube-v1", "mepoly", seed, 0.9 + seed / 100) for seed in range(2)]
    update_table(table, [record_of(path) for path in paths])
    from_table, from_dirs = finished_runs([table]), finished_runs([root])
    assert [run[4] for run in from_table] == ["runs_500/PushCube-v1__mepoly__cpu__0", "runs_500/PushCube-v1__mepoly__cpu__1"]
    assert [run[:5] for run in from_table] == [run[:5] for run in from_dirs]
    assert [run[5]["eval"]["success_once"] for run in from_table] == [0.9, 0.91]
    assert len(finished_runs([table, root])) == 2  # a run in two sources counts once
    # the same run recorded again changes nothing; a rerun with other results under its name is refused
    update_table(table, [record_of(paths[0])])
    rerun = _finished_run(tmp_path / "again" / "runs_500", "PushCube-v1", "mepoly", 0, 0.5)
    with pytest.raises(ValueError, match="a rerun does not replace a recorded run"):
        update_table(table, [record_of(rerun)])
    assert [run[5]["eval"]["success_once"] for run in finished_runs([table])] == [0.9, 0.91]
    with pytest.raises(ValueError, match="not a finished run"):
        record_of(tmp_path / "nothing_here")


def test_noise_verdicts_against_the_paper_rows():
    """Standard errors and verdicts, computed by hand: the paper's sd over 3 seeds gives s.e. sd / sqrt(2); our
    s.e. is the sample sd (ddof 1) / sqrt(n); a difference counts beyond 2 standard errors of the difference."""
    import math

    from mepoly_il.benchmark import PAPER, paper_mean_se, verdicts

    assert paper_mean_se(0.9, 0.02) == (0.9, pytest.approx(0.02 / math.sqrt(2)))

    def runs(task, method, values):
        return [(task, method, "cpu", seed, f"r/{task}__{method}__cpu__{seed}", {"eval": {"success_once": v}})
                for seed, v in enumerate(values)]

    # PushCube: MePoly 0.96 +- 0.01 (values 0.95, 0.96, 0.97: sd 0.01, s.e. 0.01 / sqrt 3); DP 0.70, 0.72, 0.74
    table = runs("PushCube-v1", "mepoly", [0.95, 0.96, 0.97]) + runs("PushCube-v1", "dp", [0.70, 0.72, 0.74])
    row = verdicts(table)[0]
    paper_mepoly, paper_mepoly_sd = PAPER["MePoly (paper)"][0]
    margin = 2 * math.hypot(0.01 / math.sqrt(3), paper_mepoly_sd / math.sqrt(2))
    assert 0.96 - paper_mepoly > margin and row[1] == f"higher ({0.96 - paper_mepoly:+.3f}; noise {margin:.3f})"
    assert row[3].startswith("higher (+0.240;")
    paper_dp = PAPER["DP (paper)"][0]
    assert row[4].startswith("lower (") == (paper_dp[0] - 0.72 > 2 * math.hypot(0.02 / math.sqrt(3), paper_dp[1] / math.sqrt(2)))
    # a wide spread is within the noise; a single seed has no measured noise; no runs read "not run"
    wide = verdicts(runs("PickCube-v1", "mepoly", [0.5, 1.0, 0.9]))[1]
    assert wide[1].startswith("within the noise") and wide[3] == "not run" and wide[4] == "not run"
    assert verdicts(runs("StackCube-v1", "mepoly", [0.9]))[2][1] == "unknown noise (1 seed)"


def test_runs_with_overrides_need_their_own_records_and_runs_root(tmp_path, capsys):
    """``--set`` lengthens a schedule, say; such runs must not be pooled with the preset's runs in Table 1, so the
    benchmark refuses them the default records table or runs root (before it trains anything)."""
    from mepoly_il.benchmark import main

    demos = tmp_path / "demos.h5"
    demos.write_bytes(b"")
    common = ["--tasks", "PushCube-v1", "--methods", "dp", "--demos", f"PushCube-v1={demos}", "--set", "dp.train.steps=30000"]
    for extra in ([], ["--records", str(tmp_path / "long.jsonl")], ["--runs", str(tmp_path / "runs_long")]):
        with pytest.raises(SystemExit):
            main(common + extra + ["--out", str(tmp_path / "report.md")])
        assert "--set changes the schedule" in capsys.readouterr().err


def test_a_finished_run_is_reused_only_for_the_overrides_it_trained_with(tmp_path):
    """A finished run directory stands in for a new run only when it trained with the same ``--set`` overrides;
    a request for another schedule under its name is refused, not answered with the old schedule's run."""
    from mepoly_il.benchmark import run_one

    root = tmp_path / "runs_500"
    _finished_run(root, "PushCube-v1", "dp", 0, 0.8)
    done = run_one(root, "PushCube-v1", "dp", "cpu", 0, "demos.h5", 100)
    assert done["eval"]["success_once"] == 0.8
    with pytest.raises(ValueError, match="finished with the overrides \\[\\], not the requested \\['dp.train.steps=30000'\\]"):
        run_one(root, "PushCube-v1", "dp", "cpu", 0, "demos.h5", 100, ["dp.train.steps=30000"])
