"""Training runs for the benchmarks, one at a time or as a sweep: local processes or Ray Tune trials."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

__all__ = ["VARIANTS", "train_run", "load_finished", "add_backend_arguments", "run_parallel"]

#: method-name suffixes (``mepoly+normadv``) -> SB3 hyperparameter overrides
VARIANTS = {
    "normadv": {"normalize_advantage": True},  # SB3's default advantage normalization
    "noent": {"ent_coef": 0.0},  # no entropy bonus (SB3's Gaussian std grows without bound under one)
}


def train_run(env: str, method: str, seed: int, run_dir: str, steps: int | None = None, hp=(), policy_kwargs=(),
              algo: str | None = None, threads: int = 1) -> dict:
    """One ``mepoly train`` run on ``threads`` torch threads (default one) for a benchmark; returns its final metrics.

    ``method`` is a policy name with optional ``+variant`` suffixes from :data:`VARIANTS`;
    ``hp`` and ``policy_kwargs`` are ``key=value`` overrides as on the command line, ``algo`` replaces
    the preset's algorithm (``--algo`` of ``mepoly train``).
    """
    import torch

    from mepoly_dist.zoo.config import resolve_config
    from mepoly_dist.zoo.train import train

    torch.set_num_threads(threads)
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
    path = Path(run_dir) / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else None


def add_backend_arguments(parser) -> None:
    """``--workers``, ``--backend local|ray`` and ``--address`` (the same sweep on either backend)."""
    parser.add_argument("--workers", type=int, default=2, help="runs at a time (local processes, or Ray trials)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="local: a process pool on this machine; ray: Ray Tune trials (pip install mepoly-dist[sweep])")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join (e.g. ray://head:10001 or 'auto'); default: a local Ray instance")


def run_parallel(jobs: dict, workers: int, report, backend: str = "local", address: str | None = None,
                 threads: int = 1) -> dict:
    """Run ``jobs[key] = (function, args)``, at most ``workers`` at a time; ``report(key, result)`` as each ends.

    ``backend="local"``: a ``ProcessPoolExecutor`` of ``workers`` processes.  ``backend="ray"``:
    one Ray Tune trial per job (``threads`` CPUs each, ``max_concurrent_trials=workers``) on the cluster at
    ``address`` (None: a local Ray instance with ``workers * threads`` CPUs).  ``threads`` is the
    torch thread count the jobs set themselves (:func:`train_run`'s ``threads``).  Either way the results come
    back as ``{key: function(*args)}``, so the tables are built the same way.  The functions must be
    importable by their module name (as :func:`train_run` is) for the worker processes to find them.
    """
    if backend == "ray":
        return _run_ray(jobs, workers, report, address, threads)
    if backend != "local":
        raise ValueError(f"unknown backend {backend!r}; expected 'local' or 'ray'")
    from concurrent.futures import ProcessPoolExecutor, as_completed

    results = {}
    if not jobs:
        return results
    with ProcessPoolExecutor(workers) as pool:
        futures = {pool.submit(fn, *args): key for key, (fn, args) in jobs.items()}
        for future in as_completed(futures):
            key = futures[future]
            results[key] = future.result()
            report(key, results[key])
    return results


def _run_ray(jobs: dict, workers: int, report, address: str | None, threads: int = 1) -> dict:
    """The Ray Tune backend of :func:`run_parallel`: a grid search over the job indices."""
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

    def trainable(config):
        fn, args = payload[config["index"]]
        # JSON keeps Tune's result flattening away from nested metrics (Smooth World's per-start lists)
        return {"metrics_json": json.dumps(fn(*args))}

    started = not ray.is_initialized()
    if started:
        init = dict(address=address) if address else dict(num_cpus=workers * threads, include_dashboard=False)
        # workers import the job functions by module name (mepoly_dist.zoo.benchmark.sweep.train_run): on a
        # cluster every node needs mepoly_dist installed; the caller's PYTHONPATH (e.g. a worktree's src/) goes along
        env_vars = {"OMP_NUM_THREADS": str(threads)}
        if os.environ.get("PYTHONPATH"):
            env_vars["PYTHONPATH"] = os.environ["PYTHONPATH"]
        ray.init(runtime_env={"env_vars": env_vars}, log_to_driver=False, **init)
    try:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": threads}),
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
