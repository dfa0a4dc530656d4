"""Shared helpers of the benchmark scripts: the machine/software header every results file
starts with, and Markdown tables."""

from __future__ import annotations

import datetime
import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path

__all__ = ["cpu_model", "mem_total_gib", "git_commit", "results_header", "markdown_table", "command_line", "VARIANTS", "train_run",
           "run_parallel"]

#: method-name suffixes (``mepoly+normadv``) -> SB3 hyperparameter overrides
VARIANTS = {
    "normadv": {"normalize_advantage": True},  # SB3's default advantage normalization
    "noent": {"ent_coef": 0.0},  # no entropy bonus (SB3's Gaussian std grows without bound under one)
}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_total_gib() -> float:
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        return kb / 2**20
    except (OSError, AttributeError):
        return float("nan")


def git_commit() -> str:
    try:
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def results_header(title: str, seed, extra: str = "") -> str:
    """Title plus command, date, machine, software versions, commit and seed."""
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
        f"* command: `{command_line()}`",
        f"* date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M:%S} UTC",
        f"* machine: {cpu_model()}, {os.cpu_count()} cores, {mem_total_gib():.0f} GiB RAM, {platform.system()} {platform.release()}; "
        f"load average at start {load:.2f}",
        f"* software: {versions}; torch threads per process: 1",
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


def train_run(env: str, method: str, seed: int, run_dir: str, steps: int | None = None, hp=()) -> dict:
    """One ``mepoly train`` run (one torch thread) for a benchmark; returns its final metrics.

    ``method`` is a policy name with optional ``+variant`` suffixes from :data:`VARIANTS`.
    """
    import json
    import time

    import torch

    from mepoly_dist.train import resolve_config, train

    torch.set_num_threads(1)
    policy, *variants = method.split("+")
    overrides = [f"{k}={json.dumps(v)}" for name in variants for k, v in VARIANTS[name].items()] + list(hp)
    config = resolve_config(env, policy, seed, hp=overrides, n_timesteps=steps)
    start = time.perf_counter()
    metrics = train(config, run_dir, progress_bar=False)
    metrics["wall_clock_s"] = time.perf_counter() - start
    return metrics


def run_parallel(jobs: dict, workers: int, report) -> dict:
    """Run ``jobs[key] = (function, args)`` in ``workers`` processes; ``report(key, result)`` as each ends."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    results = {}
    with ProcessPoolExecutor(workers) as pool:
        futures = {pool.submit(fn, *args): key for key, (fn, args) in jobs.items()}
        for future in as_completed(futures):
            key = futures[future]
            results[key] = future.result()
            report(key, results[key])
    return results
