"""The README's usage example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _example(marker: str = "<!-- readme-example -->") -> str:
    text = README.read_text()
    assert marker in text
    match = re.search(r"```python\n(.*?)```", text[text.index(marker) :], re.S)
    assert match, "no python block after the readme-example marker"
    return match.group(1)


def test_readme_example_runs_as_written(tmp_path):
    code = _example()
    assert "MePoly" in code and "sample" in code
    result = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    # print(actions.shape, dist.entropy().shape, kl.shape, dist.mode.shape)
    assert result.stdout.strip() == "torch.Size([32, 2]) torch.Size([32]) torch.Size([32]) torch.Size([32, 2])"


def test_readme_rl_example_runs_as_written(tmp_path):
    code = _example("<!-- readme-rl-example -->")
    assert "MePolyActorCriticPolicy" in code
    result = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "(1,)"
