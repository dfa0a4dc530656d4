"""Training runs: ``mepoly train ENV --policy mepoly|gaussian|gmm|fpo`` and ``mepoly eval RUN_DIR``.

A run is a :class:`~mepoly_dist.zoo.config.RunConfig` (:func:`~mepoly_dist.zoo.config.resolve_config`:
the preset with the command line's overrides, checked) trained on its task's environment.

A run directory (default ``runs/{env}__{policy}__{seed}__{time}``, CleanRL's naming) holds
everything a run produces, rl-zoo3 style:

* ``config.yml``: the resolved preset (``presets/ppo.yml``) with command-line overrides and seed;
* ``checkpoints/model_{steps}_steps.zip``: periodic SB3 checkpoints (``checkpoint_every`` steps);
  running the same ``train`` command on the same directory resumes from the latest one, so
  an interrupted run loses at most one interval;
* ``model.zip``: the final model (``PPO.load``-able);
* ``tb/``: TensorBoard logs (SB3's keys, ``eval/*`` at every checkpoint, ``mepoly/*`` diagnostics of the head);
* ``*.monitor.csv``: per-episode rewards (SB3's ``VecMonitor``), ``eval_curve.csv``;
* after training, ``metrics.json`` and the plots: ``density.png`` (bandit: the policy's density
  beside the Boltzmann target), ``trajectories.png`` (Smooth World fans from the fixed starts),
  ``learning_curves.png``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import yaml

from .config import ConfigError, RunConfig, algorithm_classes, learned_ent_coef, policy_class, resolved_policy_class
from .tasks import find_task

__all__ = ["train", "evaluate_run", "latest_checkpoint", "load_model", "build_model", "make_env"]

def make_env(config: RunConfig, seed: int, monitor_path: Path | None = None):
    """The training VecEnv of the run's task (:func:`~mepoly_dist.zoo.tasks.find_task`) under SB3's
    ``VecMonitor``, which records the task's ``monitor_keywords`` per episode."""
    from stable_baselines3.common.vec_env import VecMonitor

    task = find_task(config.env_id)
    env = task.make_vec_env(config.env_id, config.n_envs, seed, config.env_kwargs)
    return VecMonitor(env, filename=str(monitor_path) if monitor_path else None, info_keywords=task.monitor_keywords)


def latest_checkpoint(run_dir) -> Path | None:
    """The checkpoint with the most steps in ``run_dir/checkpoints`` (None if there is none)."""
    found = []
    for path in Path(run_dir, "checkpoints").glob("model_*_steps.zip"):
        match = re.fullmatch(r"model_(\d+)_steps\.zip", path.name)
        if match:
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


def _policy_kwargs(config: RunConfig) -> dict:
    kwargs = dict(config.policy_kwargs)
    if "activation_fn" in kwargs and isinstance(kwargs["activation_fn"], str):
        kwargs["activation_fn"] = getattr(torch.nn, kwargs["activation_fn"])
    return kwargs


def linear_schedule(initial: float):
    """rl-zoo3's ``lin_<value>``: decays linearly from ``initial`` to 0 over the run."""

    def schedule(progress_remaining: float) -> float:
        return progress_remaining * initial

    return schedule


def _hyperparams(config: RunConfig) -> dict:
    """``config.hyperparams`` as algorithm keyword arguments: ``lin_<value>`` strings turned into linear
    schedules, a learned ``ent_coef="auto_<x>"`` into its initial value ``x`` (``target_entropy`` is the
    :class:`~mepoly_dist.zoo.EntropyTarget` callback's, not the algorithm's)."""
    learned = learned_ent_coef(config, action_dim=1)
    out = {}
    for key, value in config.hyperparams.items():
        if key == "target_entropy":
            continue
        if key == "ent_coef" and learned is not None:
            value = learned[0]
        if isinstance(value, str) and value.startswith("lin_"):
            value = linear_schedule(float(value[4:]))
        out[key] = value
    return out


def build_model(config: RunConfig, env, run_dir: Path | None = None, verbose: int = 0):
    """A fresh model of ``config`` on ``env`` (its algorithm, policy class, policy kwargs and
    hyperparameters; TensorBoard logs under ``run_dir/tb`` when ``run_dir`` is given)."""
    algo = algorithm_classes()[config.algo]
    with warnings.catch_warnings():
        # the paper's 6 minibatches of 1024 samples: SB3 warns that 171 does not divide 1024
        warnings.filterwarnings("ignore", message=".*mini-batch size.*")
        return algo(
            policy_class(config.policy, config.algo),
            env,
            policy_kwargs=_policy_kwargs(config),
            seed=config.seed,
            tensorboard_log=None if run_dir is None else str(Path(run_dir) / "tb"),
            verbose=verbose,
            **_hyperparams(config),
        )


def _pickled_classes(config: RunConfig) -> dict:
    """The classes that SB3 pickles by module path into a model zip, from the run's config.

    A model zip stores its policy class (and FPO its rollout buffer class) as a reference to the
    module that defined it.  Runs saved before the package split name modules that have since moved
    (``mepoly_dist.baselines.gmm.GMMActorCriticPolicy`` is now in :mod:`mepoly_dist.zoo.baselines.gmm`,
    ``mepoly_dist.baselines.fpo`` likewise).  The run's ``config.yml`` says which classes they are,
    so :func:`load_model` hands them to ``BaseAlgorithm.load`` as ``custom_objects``, which SB3 uses
    instead of unpickling those entries.  (Learning-rate schedules such as ``linear_schedule``'s
    closure are pickled by value and load from any version.)"""
    objects = {"policy_class": resolved_policy_class(config.policy, config.algo)}
    if config.algo == "fpo":
        from .baselines.fpo import FPORolloutBuffer

        objects["rollout_buffer_class"] = FPORolloutBuffer
    return objects


def load_model(run_dir, env=None, path=None):
    """Load a run's final model (or ``path``, e.g. a checkpoint) with its algorithm class.

    Models saved by earlier versions of the package load too (:func:`_pickled_classes`); one that
    still refers to a module this version lacks raises :class:`ConfigError` saying so.  A directory
    without ``config.yml`` or a missing model is a ``FileNotFoundError``."""
    from .. import __version__

    run_dir = Path(run_dir)
    config_path = run_dir / "config.yml"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory: it has no config.yml (made by `mepoly train`)")
    config = RunConfig.from_dict(yaml.safe_load(config_path.read_text()))
    path = Path(path) if path else run_dir / "model.zip"
    if not path.exists():
        raise FileNotFoundError(f"no model at {path}; train first (or pass a checkpoint)")
    try:
        return config, algorithm_classes()[config.algo].load(path, env=env, device="cpu", custom_objects=_pickled_classes(config))
    except ModuleNotFoundError as error:
        if not str(error.name).startswith("mepoly_dist"):
            raise
        raise ConfigError(f"cannot load {path}: it refers to the module {error.name!r}, which mepoly-dist {__version__} does not have "
                          f"(modules moved when the package was split into mepoly_dist, mepoly_dist.sb3 and mepoly_dist.zoo); "
                          f"load it with the version that saved it") from error


def _eval_curve_callback(config: RunConfig, run_dir: Path, every: int, start_step: int = 0):
    """An SB3 callback that records :func:`_eval_quick` metrics every ``every`` steps and at the end
    of training, to TensorBoard (``eval/*``) and ``run_dir/eval_curve.csv`` (learning curves).

    A run that (re)starts at ``start_step`` (its checkpoint's step) keeps the rows up to that step and
    drops later ones: they belong to the continuation that was lost, which is evaluated again."""
    from stable_baselines3.common.callbacks import BaseCallback

    path = run_dir / "eval_curve.csv"
    if path.exists():
        with path.open() as handle:
            rows = list(csv.reader(handle))
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows(rows[:1] + [row for row in rows[1:] if int(row[0]) <= start_step])

    class EvalCurve(BaseCallback):
        def __init__(self):
            super().__init__()
            self.next_step = 0
            self.last_step = None

        def _record(self) -> None:
            self.last_step = self.num_timesteps
            metrics = _eval_quick(config, self.model.policy)
            for key, value in metrics.items():
                self.logger.record(f"eval/{key}", value)
            new = not path.exists()
            with path.open("a", newline="") as handle:
                writer = csv.writer(handle)
                if new:
                    writer.writerow(["timesteps", *metrics])
                writer.writerow([self.num_timesteps, *metrics.values()])

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_step:
                self.next_step = self.num_timesteps + every
                self._record()
            return True

        def _on_training_end(self) -> None:
            # the curve ends at the final model, also when the run is not a multiple of ``every``
            if self.last_step != self.num_timesteps:
                self._record()
                self.logger.dump(self.num_timesteps)

    return EvalCurve()


def _eval_quick(config: RunConfig, policy) -> dict:
    """Cheap metrics for learning curves (fewer samples / episodes than the final evaluation)."""
    return find_task(config.env_id).quick_metrics(config, policy)


class _TrainClock:
    """Training wall-clock in ``run_dir/timing.json``: the seconds of earlier (resumed) sessions plus
    this one's, written at every checkpoint as well as at the end, so that a run interrupted and
    resumed from its latest checkpoint still reports the time its steps took.  ``torch_threads``
    is the torch thread count the time was measured with (the seconds depend on it); a run resumed
    with a different count lists the counts in the order they were used (``null`` for sessions
    recorded before the count was kept)."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "timing.json"
        before = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.before = before.get("train_seconds", 0.0)
        threads = before.get("torch_threads", [None] if before else [])  # None: a session before the count was kept
        threads = list(threads) if isinstance(threads, list) else [threads]
        now = torch.get_num_threads()
        self.threads = threads + [now] if not threads or threads[-1] != now else threads
        self.start = time.perf_counter()

    def record(self) -> None:
        threads = self.threads[0] if len(self.threads) == 1 else self.threads
        self.path.write_text(json.dumps({"train_seconds": self.before + time.perf_counter() - self.start,
                                         "torch_threads": threads}, indent=2))

    def callback(self, every: int):
        from stable_baselines3.common.callbacks import BaseCallback

        clock = self

        class RecordAtCheckpoints(BaseCallback):
            def _on_step(self) -> bool:
                if self.n_calls % every == 0:  # the steps of CheckpointCallback(every)
                    clock.record()
                return True

        return RecordAtCheckpoints()


def _new_directories(path: Path) -> Path | None:
    """The outermost directory that ``path.mkdir(parents=True)`` would create (``None`` if ``path`` exists)."""
    path = path.absolute()
    if path.exists():
        return None
    while not path.parent.exists():
        path = path.parent
    return path


def _set_up(config: RunConfig, run_dir: Path, verbose: int):
    """The run's environment and model (a new one, or the latest checkpoint's) and its
    ``config.yml``, written once both are built.  Errors of the environment's or the model's
    constructor (a value they reject) are :class:`ConfigError`."""
    config_path = run_dir / "config.yml"
    checkpoint = latest_checkpoint(run_dir)
    if config_path.exists() and checkpoint is not None:
        saved = RunConfig.from_dict(yaml.safe_load(config_path.read_text()))
        # a resumed run keeps its saved settings; only its length may change (--steps)
        extended = dataclasses.replace(saved, n_timesteps=config.n_timesteps)
        if extended != config:
            print(f"resuming {run_dir} with its saved config (other command-line settings ignored)")
        config = extended
    steps_done = int(re.search(r"(\d+)", checkpoint.name).group(1)) if checkpoint is not None else 0
    try:
        env = make_env(config, seed=config.seed + steps_done, monitor_path=run_dir / f"from_{steps_done}")
    except (ValueError, TypeError) as error:
        raise ConfigError(f"cannot make {config.env_id} with env_kwargs {config.env_kwargs}: {_one_line(error)}") from error
    try:
        if checkpoint is not None:
            _, model = load_model(run_dir, env=env, path=checkpoint)
            model.tensorboard_log = str(run_dir / "tb")
            print(f"resuming from {checkpoint.name} ({model.num_timesteps} of {config.n_timesteps} steps)")
        else:
            try:
                model = build_model(config, env, run_dir, verbose)
            except (ValueError, TypeError, AssertionError) as error:  # SB3 checks its arguments with assert
                raise ConfigError(f"cannot build {config.algo} with policy {config.policy!r} and these settings: {_one_line(error)}") from error
    except BaseException:
        env.close()
        raise
    config_path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    return config, env, model, checkpoint


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def train(config: RunConfig, run_dir, progress_bar: bool = True, verbose: int = 0, evaluate: bool = True) -> dict:
    """Train (or resume) a run in ``run_dir`` and evaluate it; returns the final metrics.

    The environment and the model are built before anything else is written; if that fails
    (:class:`ConfigError` for a value they reject), the directories this call created are removed
    again, while an existing directory (a resumed run) is left as it was."""
    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback

    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is a file, not a run directory")
    created = _new_directories(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        config, env, model, checkpoint = _set_up(config, run_dir, verbose)
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise

    clock = _TrainClock(run_dir)
    remaining = config.n_timesteps - model.num_timesteps
    if remaining > 0:
        every = max(config.checkpoint_every // config.n_envs, 1)
        callbacks = [CheckpointCallback(every, str(run_dir / "checkpoints"), name_prefix="model"), clock.callback(every)]
        if find_task(config.env_id).learning_curves:
            callbacks.append(_eval_curve_callback(config, run_dir, config.checkpoint_every, model.num_timesteps))
        if config.policy == "mepoly":
            from ..sb3 import MePolyDiagnostics

            callbacks.append(MePolyDiagnostics())
        learned = learned_ent_coef(config, action_dim=int(np.prod(env.action_space.shape)))
        if learned is not None:
            from .entropy_target import EntropyTarget

            # a resumed model carries its learned ent_coef; a new one starts from the initial value
            callbacks.append(EntropyTarget(target_entropy=learned[1]))
        model.learn(remaining, callback=CallbackList(callbacks), reset_num_timesteps=checkpoint is None,
                    tb_log_name=config.algo.upper(), progress_bar=progress_bar)
    model.save(run_dir / "model.zip")
    # the final state is also the latest checkpoint, so a longer --steps extends the run
    model.save(run_dir / "checkpoints" / f"model_{model.num_timesteps}_steps.zip")
    clock.record()
    env.close()
    return evaluate_run(run_dir, model=model, config=config) if evaluate else {}


def _learning_curves(run_dir: Path):
    """Training episode rewards from the monitor files: ``(steps, moving average, window)``, the
    moving average over ``window`` consecutive episodes (1 % of them)."""
    from stable_baselines3.common.monitor import load_results

    frame = load_results(str(run_dir)).sort_values("t")
    steps = np.cumsum(frame["l"].to_numpy())
    rewards = frame["r"].to_numpy()
    window = max(len(rewards) // 100, 1)
    smoothed = np.convolve(rewards, np.ones(window) / window, mode="valid")
    return steps[window - 1 :], smoothed, window


#: legend labels of the ``eval_curve.csv`` columns (others: the column name without underscores)
_EVAL_LABELS = {"tv_to_target": "TV to target (lower is better)", "coverage": "coverage", "mean_reward": "mean reward",
                "success_rate": "success rate", "goal_entropy": "goal entropy"}


def _eval_curves(run_dir: Path) -> dict:
    """The checkpoint evaluations of ``eval_curve.csv`` (:func:`_eval_curve_callback`) whose values
    lie in [0, 1] (TV, coverage, rates, normalized entropies: one axis holds them all), by label."""
    path = run_dir / "eval_curve.csv"
    if not path.exists():
        return {}
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return {}
    steps = np.array([float(row["timesteps"]) for row in rows])
    curves = {}
    for key in rows[0]:
        if key == "timesteps" or key.endswith("seconds"):
            continue
        values = np.array([float(row[key]) if row[key] not in ("", None) else np.nan for row in rows])
        finite = values[np.isfinite(values)]
        if finite.size and finite.min() >= 0.0 and finite.max() <= 1.0:
            curves[_EVAL_LABELS.get(key, key.replace("_", " "))] = (steps, values)
    return curves


def evaluate_run(run_dir, model=None, config: RunConfig | None = None, episodes: int = 100, samples: int = 100_000, seed: int = 0) -> dict:
    """Final evaluation: ``metrics.json`` plus the plots, written into ``run_dir``."""
    from . import plotting

    run_dir = Path(run_dir)
    if model is None or config is None:
        config, model = load_model(run_dir)
    model.policy.set_training_mode(False)
    metrics = {"env_id": config.env_id, "env_kwargs": config.env_kwargs, "policy": config.policy, "seed": config.seed,
               "num_timesteps": int(model.num_timesteps)}
    timing_path = run_dir / "timing.json"
    if timing_path.exists():
        metrics.update(json.loads(timing_path.read_text()))
    title = f"{config.name}, {config.policy}, seed {config.seed}, {model.num_timesteps} steps"
    metrics.update(find_task(config.env_id).evaluate(config, model, run_dir, title, episodes, samples, seed))
    try:
        steps, rewards, window = _learning_curves(run_dir)
        plotting.plot_learning_curves(run_dir / "learning_curves.png", {config.policy: (steps, rewards)}, title=title,
                                      smoothing=f"moving average of {window:,} episodes" if window > 1 else "per episode, not smoothed",
                                      evaluations=_eval_curves(run_dir))
    except Exception as error:  # no monitor file (e.g. a model copied without its logs)
        print(f"no learning curve: {error}")
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
