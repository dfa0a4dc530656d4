"""The documentation site against the project: every Python example of its pages runs as written,
and the site builds in Sphinx's strict mode (every warning an error), as CI builds it.

Examples are the ```` ```python ```` blocks of ``docs/**/*.md`` and the ``.. code-block:: python``
blocks of ``docs/**/*.rst``.  The blocks of one page run in order, in one namespace, in a fresh
interpreter whose working directory is a temporary folder (so files they write go there), with
RuntimeWarnings as errors.  A comment on the line before a block marks one that cannot run
everywhere, visibly in the page source:

* ``% docs-test: requires mani_skill mepoly_il`` (Markdown) or ``.. docs-test: requires mani_skill``
  (reST): run only where those modules can be imported (the ManiSkill and imitation-learning
  guides; run them with the ManiSkill virtual environment's interpreter);
* ``% docs-test: skip REASON``: never run, for the reason given.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# written by docs/conf.py at build time, not pages of their own
GENERATED = ("_build", "api/generated", "benchmarks")

_MARKER = re.compile(r"^(?:%|\.\.)\s*docs-test:\s*(?P<kind>\S+)\s*(?P<arg>.*?)\s*$")
_MD_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?:python|py|\{code-block\}\s+python)\s*$")
_RST_BLOCK = re.compile(r"^(?P<indent> *)\.\. (?:code-block|code|sourcecode):: (?:python|py)\s*$")


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the first line of code
    code: str
    requires: list[str] = field(default_factory=list)
    skip: str | None = None


def _marker(lines: list[str], start: int, page: str) -> tuple[list[str], str | None]:
    """The docs-test marker on the nearest non-blank line above line index ``start``."""
    i = start - 1
    while i >= 0 and not lines[i].strip():
        i -= 1
    if i < 0:
        return [], None
    match = _MARKER.match(lines[i].strip())
    if not match:
        return [], None
    kind, arg = match.group("kind"), match.group("arg")
    if kind == "requires" and arg:
        return arg.split(), None
    if kind == "skip" and arg:
        return [], arg
    raise ValueError(f"{page}:{i + 1}: unknown docs-test marker {lines[i].strip()!r} (use 'requires MODULE ...' or 'skip REASON')")


def _markdown_blocks(page: str, text: str) -> list[Block]:
    lines, blocks, i = text.splitlines(), [], 0
    while i < len(lines):
        match = _MD_FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, indent = match.group("fence"), len(match.group("indent"))
        requires, skip = _marker(lines, i, page)
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        body = [line[indent:] for line in lines[i + 1 : j]]
        # MyST directive options (":caption: ...") at the top of a {code-block}
        start = 0
        while start < len(body) and body[start].startswith(":"):
            start += 1
        blocks.append(Block(page, i + 2 + start, "\n".join(body[start:]) + "\n", requires, skip))
        i = j + 1
    return blocks


def _rst_blocks(page: str, text: str) -> list[Block]:
    lines, blocks = text.splitlines(), []
    for i, line in enumerate(lines):
        match = _RST_BLOCK.match(line)
        if not match:
            continue
        requires, skip = _marker(lines, i, page)
        j = i + 1
        while j < len(lines) and lines[j].strip().startswith(":"):  # the directive's options
            j += 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        first = j
        base = len(match.group("indent"))
        while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > base):
            j += 1
        code = textwrap.dedent("\n".join(lines[first:j]))
        blocks.append(Block(page, first + 1, code.rstrip("\n") + "\n", requires, skip))
    return blocks


def _pages() -> list[Path]:
    pages = []
    for path in sorted([*DOCS.rglob("*.md"), *DOCS.rglob("*.rst")]):
        rel = path.relative_to(DOCS).as_posix()
        if not any(rel == g or rel.startswith(g + "/") for g in GENERATED):
            pages.append(path)
    return pages


def _blocks(path: Path) -> list[Block]:
    page = path.relative_to(ROOT).as_posix()
    text = path.read_text()
    return _markdown_blocks(page, text) if path.suffix == ".md" else _rst_blocks(page, text)


PAGES_WITH_CODE = [path for path in _pages() if _blocks(path)]

# Runs the blocks in one namespace; each compiled with its page and line as the file name, so a
# traceback points into the page.  Prints one JSON line of timings at the end.
_RUNNER = """
import json, sys, time
blocks = json.loads(sys.stdin.read())
namespace = {"__name__": "__main__"}
timings = []
for block in blocks:
    start = time.perf_counter()
    exec(compile("\\n" * (block["line"] - 1) + block["code"], block["page"], "exec"), namespace)
    timings.append([block["line"], round(time.perf_counter() - start, 2)])
print("DOCS-TEST-TIMINGS " + json.dumps(timings))
"""


def _missing(modules: list[str]) -> list[str]:
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def test_pages_have_examples():
    """The pages that should show code do, and every marker is one the runner understands."""
    pages = {path.relative_to(DOCS).as_posix() for path in PAGES_WITH_CODE}
    assert {"getting-started.md", "guides/rl-sb3.md", "guides/maniskill.md", "guides/imitation-learning.md"} <= pages
    blocks = [block for path in PAGES_WITH_CODE for block in _blocks(path)]
    runnable_here = [b for b in blocks if b.skip is None and not b.requires]
    assert len(runnable_here) >= 8, "most examples should run with the [rl] extra alone"


def _command_after(text: str, marker: str) -> str | None:
    if marker not in text:
        return None
    match = re.search(r"```bash\n(.*?)\n```", text[text.index(marker) :], re.S)
    return match.group(1).strip() if match else None


@pytest.mark.parametrize("marker", ["<!-- main-command -->", "<!-- test-command -->"])
def test_getting_started_quotes_the_readme_commands(marker):
    """Getting started shows the README's two commands word for word (the README's are the ones
    CI runs, see tests/test_project.py)."""
    readme = _command_after((ROOT / "README.md").read_text(), marker)
    if readme is None:
        pytest.skip(f"README.md has no {marker} block")
    assert _command_after((DOCS / "getting-started.md").read_text(), marker) == readme


@pytest.mark.parametrize("path", PAGES_WITH_CODE, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_page_examples_run(path: Path, tmp_path):
    blocks = _blocks(path)
    run, skipped = [], []
    for block in blocks:
        if block.skip is not None:
            skipped.append(f"line {block.line}: {block.skip}")
        elif missing := _missing(block.requires):
            skipped.append(f"line {block.line}: needs {', '.join(missing)}")
        else:
            run.append(block)
    if not run:
        pytest.skip("; ".join(skipped))
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", _RUNNER],
        input=json.dumps([block.__dict__ for block in run]),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120 + 60 * len(run),
    )
    assert result.returncode == 0, f"an example of {path.relative_to(ROOT)} failed:\n{result.stderr[-6000:]}"
    timings = json.loads(result.stdout.rsplit("DOCS-TEST-TIMINGS ", 1)[1])
    slow = [(line, seconds) for line, seconds in timings if seconds > 60]
    assert not slow, f"examples should take seconds, not minutes (line, s): {slow}"
    print(f"{path.relative_to(ROOT)}: seconds per example (line, s): {timings}")
    if skipped:
        print(f"{path.relative_to(ROOT)}: not run here: {'; '.join(skipped)}")


def test_strict_sphinx_build(tmp_path):
    """``sphinx-build -W --keep-going -b html docs ...``: the build CI runs, with zero warnings."""
    missing = _missing(["sphinx", "furo", "myst_parser"])
    if missing:
        pytest.skip(f"the docs extra is not installed (missing {', '.join(missing)}): pip install -e '.[docs]'")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")],
        cwd=ROOT,
        env=dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1")),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"strict Sphinx build failed:\n{result.stderr[-8000:]}"
    html = tmp_path / "html"
    for page in ("index", "getting-started", "math", "api/index", "guides/rl-sb3", "guides/maniskill", "guides/imitation-learning", "benchmarks"):
        assert (html / f"{page}.html").is_file(), page
    # the math page renders the core modules' docstrings, with their equations
    math_page = (html / "math.html").read_text()
    assert "log-partition" in math_page and "math notranslate" in math_page
