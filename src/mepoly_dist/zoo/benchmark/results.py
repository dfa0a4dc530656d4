"""What every benchmark report is made of: the header (command, date, machine, software, commit,
seed), Markdown tables, means with their standard errors and the comparison of two such means,
and writing the report next to its hand-written notes."""

from __future__ import annotations

import datetime
import math
import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path

__all__ = ["NOTES_MARKER", "NOISE_Z", "cpu_model", "mem_total_gib", "git_commit", "command_line", "results_header", "markdown_table",
           "mean_se", "format_mean_se", "compare_means", "write_report"]

#: the line that separates a report's generated part from the notes written by hand below it;
#: :func:`write_report` keeps everything from this line on when it rewrites the report
NOTES_MARKER = "<!-- notes: written by hand; rebuilding the report keeps everything below this line -->"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what :func:`platform.processor` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_total_gib() -> float:
    """The machine's memory in GiB (``/proc/meminfo``; NaN where there is none)."""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        return kb / 2**20
    except (OSError, AttributeError):
        return float("nan")


def git_commit(paths: tuple[str, ...] = ()) -> str:
    """The short commit of the checkout this package runs from, ``(with uncommitted changes)`` when
    its tree (or, where ``paths`` are given, the tree under those paths of the checkout, e.g. the code
    folders, leaving out results a benchmark is writing) differs from it; the package version when it
    is not run from a git checkout."""
    from mepoly_dist import __version__

    here = Path(__file__).resolve().parent
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=here, capture_output=True, text=True, check=True)
        root = Path(top.stdout.strip())
        if not (root / "src" / "mepoly_dist").is_dir():
            raise FileNotFoundError(root)
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *paths], cwd=root, capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return f"unknown (mepoly_dist {__version__}, not a git checkout)"


def command_line(argv: list[str] | None = None) -> str:
    """The command that is running, as it can be typed again: ``python <script> <arguments>``."""
    argv = sys.argv if argv is None else argv
    return "python " + " ".join(shlex.quote(a) for a in argv)


def results_header(title: str, seed, extra: str = "", command: str | None = None, threads: int = 1) -> str:
    """Title plus command (default: this process's, :func:`command_line`), date, machine, software
    versions and torch ``threads`` per process, commit and seed; ``extra`` lines are appended."""
    import numpy as np
    import torch

    versions = f"Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}"
    try:
        import stable_baselines3

        versions += f", stable-baselines3 {stable_baselines3.__version__}"
    except ImportError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"# {title}",
        "",
        f"* command: `{command or command_line()}`",
        f"* date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M:%S} UTC",
        f"* machine: {cpu_model()}, {os.cpu_count()} cores, {mem_total_gib():.0f} GiB RAM, {platform.system()} {platform.release()}; "
        f"load average at start {load:.2f}",
        f"* software: {versions}; torch threads per process: {threads}",
        f"* mepoly_dist commit: {git_commit()}",
        f"* seed: {seed}",
    ]
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n"


def markdown_table(header: list[str], rows: list[list], align: list[str] | None = None) -> str:
    """A Markdown table (first column left-aligned, the others right-aligned unless ``align``), ending in a newline."""
    align = align or ["---"] + ["--:"] * (len(header) - 1)
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


#: two means differ "outside the noise" when their difference exceeds this many standard errors of
#: the difference (about a 95% two-sided normal interval; with 3-5 seeds a t interval is wider)
NOISE_Z = 2.0


def mean_se(values) -> tuple[float, float]:
    """Mean and standard error over seeds, :math:`s / \\sqrt n` with the sample standard deviation
    :math:`s` (ddof 1); the standard error is NaN for a single value (no spread is measured)."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        raise ValueError("mean_se needs at least one value")
    mean = sum(values) / n
    if n == 1:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def format_mean_se(values, digits: int = 2) -> str:
    """``"mean ± s.e."`` of ``values`` (``"mean (1 seed)"`` for one value)."""
    mean, se = mean_se(values)
    return f"{mean:.{digits}f} (1 seed)" if math.isnan(se) else f"{mean:.{digits}f} ± {se:.{digits}f}"


def compare_means(a: tuple[float, float], b: tuple[float, float], z: float = NOISE_Z) -> str:
    """``"higher"``, ``"lower"`` or ``"within the noise"``: mean ``a`` against mean ``b``, each a
    ``(mean, standard error)``, where the difference counts only beyond ``z`` standard errors of the
    difference, :math:`z \\sqrt{se_a^2 + se_b^2}`; ``"unknown noise"`` where a standard error is
    missing (one seed)."""
    (mean_a, se_a), (mean_b, se_b) = a, b
    if math.isnan(se_a) or math.isnan(se_b):
        return "unknown noise"
    margin = z * math.hypot(se_a, se_b)
    if mean_a - mean_b > margin:
        return "higher"
    if mean_b - mean_a > margin:
        return "lower"
    return "within the noise"


def write_report(out, name: str, text: str, echo: bool = True) -> Path:
    """Write the report ``text`` to ``out/name`` (creating ``out``), print it unless ``echo`` is
    False, and return the path.

    Where the file exists and holds :data:`NOTES_MARKER`, the marker and everything below it (the
    notes written by hand: readings, how the runs were made) are kept below the new text, so a
    rerun or a rebuild from records replaces the measured part only.
    """
    path = Path(out) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    notes = ""
    if path.exists():
        old = path.read_text()
        if NOTES_MARKER in old:
            notes = "\n" + old[old.index(NOTES_MARKER):]
    path.write_text(text.rstrip("\n") + "\n" + notes)
    if echo:
        print(text)
    return path
