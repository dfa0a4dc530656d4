"""Shared helpers of the benchmark scripts: the machine/software header every results file
starts with, Markdown tables, one training run, and sweeps of runs in local processes or on Ray Tune."""

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
           "run_parallel", "add_backend_arguments", "load_finished"]

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


def write_report(out, name: str, text: str) -> Path:
    """Write ``text`` to ``out/name`` (creating ``out``), print it, and return the path."""
    path = Path(out) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text)
    return path


def markdown_table(header: list[str], rows: list[list], align: list[str] | None = None) -> str:
    """A Markdown table (first column left-aligned, the others right-aligned unless ``align``), ending in a newline."""
    align = align or ["---"] + ["--:"] * (len(header) - 1)
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def plot_action_samples(ax, samples_path: Path, bins: int = 64) -> None:
    """A 2-D histogram of a run's saved action samples (``action_samples.npy``, shape (N, 2)) on
    the action square, x horizontal; leaves the panel empty when the run has no samples."""
    import numpy as np

    if samples_path.exists():
        samples = np.load(samples_path)
        hist, _, _ = np.histogram2d(samples[:, 1], samples[:, 0], bins=bins, range=[[-1, 1], [-1, 1]])
        ax.imshow(hist, origin="lower", extent=(-1, 1, -1, 1), cmap="magma")


def train_run(env: str, method: str, seed: int, run_dir: str, steps: int | None = None, hp=(), policy_kwargs=(), algo: str | None = None) -> dict:
    """One ``mepoly train`` run (one torch thread) for a benchmark; returns its final metrics.

    ``method`` is a policy name with optional ``+variant`` suffixes from :data:`VARIANTS`;
    ``hp`` and ``policy_kwargs`` are ``key=value`` overrides as on the command line, ``algo`` replaces
    the preset's algorithm (``--algo`` of ``mepoly train``).
    """
    import json
    import time

    import torch

    from mepoly_dist.zoo.train import resolve_config, train

    torch.set_num_threads(1)
    policy, *variants = method.split("+")
    overrides = [f"{k}={json.dumps(v)}" for name in variants for k, v in VARIANTS[name].items()] + list(hp)
    config = resolve_config(env, policy, seed, hp=overrides, policy_kwargs=list(policy_kwargs), n_timesteps=steps,
                            algo=algo)
    start = time.perf_counter()
    metrics = train(config, run_dir, progress_bar=False)
    metrics["wall_clock_s"] = time.perf_counter() - start
    return metrics


def load_finished(run_dir) -> dict | None:
    """The metrics of a finished run (its ``metrics.json``), or None: what ``--reuse`` skips."""
    import json

    path = Path(run_dir) / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else None


def add_backend_arguments(parser) -> None:
    """``--workers``, ``--backend local|ray`` and ``--address`` (the same sweep on either backend)."""
    parser.add_argument("--workers", type=int, default=2, help="runs at a time (local processes, or Ray trials)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="local: a process pool on this machine; ray: Ray Tune trials (pip install mepoly-dist[sweep])")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join (e.g. ray://head:10001 or 'auto'); default: a local Ray instance")


def run_parallel(jobs: dict, workers: int, report, backend: str = "local", address: str | None = None) -> dict:
    """Run ``jobs[key] = (function, args)``, at most ``workers`` at a time; ``report(key, result)`` as each ends.

    ``backend="local"``: a ``ProcessPoolExecutor`` of ``workers`` processes.  ``backend="ray"``:
    one Ray Tune trial per job (1 CPU each, ``max_concurrent_trials=workers``) on the cluster at
    ``address`` (None: a local Ray instance with ``workers`` CPUs).  Either way the results come
    back as ``{key: function(*args)}``, so the tables are built the same way.
    """
    if backend == "ray":
        return _run_ray(jobs, workers, report, address)
    if backend != "local":
        raise ValueError(f"unknown backend {backend!r}; expected 'local' or 'ray'")
    from concurrent.futures import ProcessPoolExecutor, as_completed

    results = {}
    with ProcessPoolExecutor(workers) as pool:
        futures = {pool.submit(fn, *args): key for key, (fn, args) in jobs.items()}
        for future in as_completed(futures):
            key = futures[future]
            results[key] = future.result()
            report(key, results[key])
    return results


def _run_ray(jobs: dict, workers: int, report, address: str | None) -> dict:
    """The Ray Tune backend of :func:`run_parallel`: a grid search over the job indices."""
    import json
    import tempfile

    try:
        import ray
        from ray import tune
    except ImportError as error:
        raise ImportError("the ray backend needs Ray Tune: pip install 'mepoly-dist[sweep]'") from error
    keys = list(jobs)
    if not keys:
        return {}
    payload = [jobs[k] for k in keys]
    bench_dir = str(Path(__file__).resolve().parent)

    def trainable(config):
        if bench_dir not in sys.path:  # the job functions live in this directory's modules
            sys.path.insert(0, bench_dir)
        fn, args = payload[config["index"]]
        # JSON keeps Tune's result flattening away from nested metrics (Smooth World's per-start lists)
        return {"metrics_json": json.dumps(fn(*args))}

    started = not ray.is_initialized()
    if started:
        init = dict(address=address) if address else dict(num_cpus=workers, include_dashboard=False)
        # workers import the job functions by module name (``_common.train_run``): put this
        # directory (and the caller's PYTHONPATH, e.g. a worktree's src/) on their path; on a
        # cluster every node needs mepoly_dist installed and the repository at the same path
        pythonpath = os.pathsep.join(p for p in (bench_dir, os.environ.get("PYTHONPATH", "")) if p)
        ray.init(runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "PYTHONPATH": pythonpath}}, log_to_driver=False, **init)
    try:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={"index": tune.grid_search(list(range(len(keys))))},
            tune_config=tune.TuneConfig(max_concurrent_trials=workers),
            run_config=tune.RunConfig(name="mepoly-sweep", storage_path=tempfile.mkdtemp(prefix="mepoly-ray-"), verbose=0),
        )
        grid = tuner.fit()
        results = {}
        for result in grid:
            if result.error:
                raise RuntimeError(f"Ray trial {result.config} failed") from result.error
            key = keys[result.config["index"]]
            results[key] = json.loads(result.metrics["metrics_json"])
            report(key, results[key])
        return {k: results[k] for k in keys}
    finally:
        if started:
            ray.shutdown()
