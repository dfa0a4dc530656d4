"""The Table 1 report (:mod:`mepoly_il.benchmark`, ``benchmarks/maniskill_il.py``) keeps a command that
rebuilds each run after its preset changed."""

from __future__ import annotations

import copy
import shlex

import pytest

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
