"""The README against the project: its Python examples run as written, and the commands it quotes
are the ones CI runs (``.ci/run``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI_SCRIPT = ROOT / ".ci" / "run"
COMMAND_MARKERS = ("<!-- main-command -->", "<!-- test-command -->", "<!-- integrations-test-command -->")


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


def _readme_command(marker: str) -> str:
    text = README.read_text()
    assert marker in text, f"README.md has no {marker}"
    match = re.search(r"```bash\n(.*?)\n```", text[text.index(marker) :], re.S)
    assert match, f"no bash block after {marker}"
    return match.group(1).strip()


def _ci_readme_commands() -> list[str]:
    """The commands of ``.ci/run`` announced by a ``# README:`` comment (the line after it)."""
    lines = CI_SCRIPT.read_text().splitlines()
    return [lines[i + 1].strip() for i, line in enumerate(lines) if line.startswith("# README:")]


def test_readme_commands_are_the_ones_ci_runs():
    readme = [_readme_command(marker) for marker in COMMAND_MARKERS]
    ci = _ci_readme_commands()
    assert sorted(readme) == sorted(ci), f"README commands {readme} differ from .ci/run's {ci}"
    assert all(command.startswith(("python3 -m venv", "bash ")) for command in readme)  # from nothing: a venv first
    assert "torch==2.13.0" in readme[0] and "torch==2.13.0" in readme[1]  # the CPU build, not a CUDA one
