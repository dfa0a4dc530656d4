"""Training runs: ``mepoly train ENV --policy mepoly|gaussian|gmm|fpo`` and ``mepoly eval RUN_DIR``.

Policies: ``mepoly`` (:class:`~mepoly_dist.sb3.MePolyActorCriticPolicy`), ``gaussian`` (SB3's
``MlpPolicy``), and the paper's baselines (:mod:`mepoly_dist.zoo.baselines`): ``gmm``
(:class:`~mepoly_dist.zoo.baselines.GMMActorCriticPolicy` under PPO) and ``fpo`` (algorithm
``fpo``: :class:`~mepoly_dist.zoo.baselines.FPO` with its ``MlpPolicy``).

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

import copy
import csv
import dataclasses
import difflib
import json
import re
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import yaml

from .tasks import all_aliases, all_presets, constructor_keywords, find_task

__all__ = ["POLICIES", "ALGORITHMS", "ConfigError", "RunConfig", "resolve_config", "train", "evaluate_run", "latest_checkpoint", "load_model",
           "build_model", "make_env"]

POLICIES = ("mepoly", "gaussian", "gmm", "fpo")
#: the algorithms of ``--algo`` (:func:`_algorithms` maps them to their classes)
ALGORITHMS = ("ppo", "maxent_ppo", "a2c", "trpo", "fpo")
#: the paper's entropy coefficient / target temperature on the bandit (section 5.2)
PAPER_ALPHA = 0.2


class ConfigError(ValueError):
    """A run's settings are wrong: an unknown environment, policy, hyperparameter or keyword, or a
    value that its environment or model rejects.  Raised before a run writes anything (``mepoly
    train`` reports it in one line, with exit code 2); the message names what is accepted."""


def _algorithms() -> dict:
    from sb3_contrib import TRPO
    from stable_baselines3 import A2C, PPO

    from .baselines import FPO
    from .maxent import MaxEntPPO

    return {"ppo": PPO, "maxent_ppo": MaxEntPPO, "a2c": A2C, "trpo": TRPO, "fpo": FPO}


def _policy_class(policy: str, algo: str = "ppo"):
    if policy == "mepoly":
        from ..sb3 import MePolyActorCriticPolicy

        return MePolyActorCriticPolicy
    if policy == "gmm":
        from .baselines import GMMActorCriticPolicy

        return GMMActorCriticPolicy
    if policy == "fpo" and algo != "fpo":
        raise ConfigError(f"policy 'fpo' needs algo 'fpo' (flow policy optimization), got {algo!r}")
    return "MlpPolicy"  # SB3's Gaussian, or FPO's flow policy (FPO.policy_aliases)


def _resolved_policy_class(policy: str, algo: str) -> type:
    """The class behind ``_policy_class`` (``"MlpPolicy"`` through the algorithm's ``policy_aliases``)."""
    found = _policy_class(policy, algo)
    return _algorithms()[algo].policy_aliases[found] if isinstance(found, str) else found


def _did_you_mean(name: str, candidates) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``candidates`` (difflib, as rl-zoo3 does for env ids), else ``""``."""
    close = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_keywords(given, accepted, what: str, owner: str, reserved: dict | None = None) -> None:
    """Raise :class:`ConfigError` for a key of ``given`` that is ``reserved`` (set by the run itself,
    ``key -> how``) or not in ``accepted`` (``None``: anything goes), the keywords of ``owner``."""
    reserved = reserved or {}
    for key in given:
        if key in reserved:
            raise ConfigError(f"{what} {key!r} is set by the run: {reserved[key]}")
        if accepted is not None and key not in accepted:
            names = sorted(set(accepted) - set(reserved))
            raise ConfigError(f"unknown {what} {key!r}{_did_you_mean(key, names)}; {owner} takes: {', '.join(names)}")


def load_presets() -> dict:
    """The presets of every environment id: ``presets/ppo.yml`` with the registered tasks' own
    presets merged over it (:func:`~mepoly_dist.zoo.tasks.all_presets`)."""
    base = yaml.safe_load(resources.files("mepoly_dist.zoo").joinpath("presets/ppo.yml").read_text())
    return all_presets(base)


@dataclass
class RunConfig:
    """Everything that defines a run (written to ``config.yml``)."""

    env_id: str
    policy: str
    seed: int = 0
    name: str = ""
    env_kwargs: dict = field(default_factory=dict)
    algo: str = "ppo"
    n_envs: int = 1
    n_timesteps: int = 100_000
    checkpoint_every: int = 10_000
    #: evaluation episodes per checkpoint on tasks that report success (ManiSkill)
    eval_episodes: int = 20
    policy_kwargs: dict = field(default_factory=dict)
    hyperparams: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown keys in run config: {sorted(unknown)}")
        return cls(**data)

    @property
    def alpha(self) -> float:
        """Temperature of the bandit's Boltzmann target ``exp(r / alpha)`` used by the metrics: the
        entropy coefficient (the MaxEnt optimum's temperature), or the paper's 0.2 for a run
        without an entropy bonus (whose optimum is a point mass: no finite-temperature target)."""
        ent_coef = self.hyperparams.get("ent_coef", 0.0)
        if isinstance(ent_coef, str):  # a learned coefficient ("auto_0.3"): no fixed temperature either
            return PAPER_ALPHA
        return float(ent_coef) if float(ent_coef) > 0 else PAPER_ALPHA


def _parse_overrides(items, option: str) -> dict:
    out = {}
    for item in items or ():
        if "=" not in item:
            raise ConfigError(f"{option} expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise ConfigError(f"{option} {item!r}: the value is not valid YAML ({str(error).splitlines()[0]})") from None
    return out


#: keyword arguments of the algorithm that a run sets itself, and where from
_SET_BY_RUN = {"policy": "use --policy", "env": "use ENV", "policy_kwargs": "use --policy-kwargs", "seed": "use --seed",
               "verbose": "use --verbose", "tensorboard_log": "the run directory's tb/ (use --out)", "_init_setup_model": "SB3 sets it"}
#: hyperparameters that are the run's, not the algorithm's (``target_entropy``: the EntropyTarget callback's)
_RUN_HYPERPARAMS = {"target_entropy"}
#: arguments of a policy's constructor that SB3 passes itself
_SET_BY_SB3 = {"observation_space": "the environment's", "action_space": "the environment's", "lr_schedule": "use --hp learning_rate=..."}
#: hyperparameters of SB3's on-policy algorithms that must be positive integers (SB3 checks some of them only when it trains)
_POSITIVE_HYPERPARAMS = ("n_steps", "batch_size", "n_epochs")


def _policy_keywords(policy_class: type) -> frozenset[str] | None:
    """The ``policy_kwargs`` that ``policy_class`` accepts: its constructor's keywords and, for a
    policy built around an action head (``head_distribution(action_dim, **options)``, e.g. MePoly's),
    the head's options, which its constructor passes on."""
    names = constructor_keywords(policy_class)
    head = getattr(policy_class, "head_distribution", None)
    if names is None or head is None:
        return names
    options = constructor_keywords(head)
    return None if options is None else names | (options - {"action_dim"})


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not float(value).is_integer() or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_config(config: RunConfig) -> None:
    """Everything about ``config`` that can be checked without building the environment or the
    model: the algorithm, the policy, the names of every override and the sizes."""
    if config.algo not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm {config.algo!r}{_did_you_mean(config.algo, ALGORITHMS)}; accepted: {', '.join(ALGORITHMS)}")
    if config.algo == "fpo" and config.policy != "fpo":
        raise ConfigError(f"algo 'fpo' trains only its flow policy (policy 'fpo'), got policy {config.policy!r}")
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or not 0 <= config.seed < 2**32:
        raise ConfigError(f"seed must be an integer in [0, 2**32), got {config.seed!r}")
    for name in ("n_envs", "n_timesteps", "checkpoint_every", "eval_episodes"):
        _positive_int(name, getattr(config, name))
    algo = _algorithms()[config.algo]
    _check_keywords(set(config.hyperparams) - _RUN_HYPERPARAMS, constructor_keywords(algo), "hyperparameter", f"{algo.__name__}",
                    _SET_BY_RUN)
    for key in _POSITIVE_HYPERPARAMS:
        if key in config.hyperparams:
            _positive_int(f"hyperparameter {key}", config.hyperparams[key])
    policy_class = _resolved_policy_class(config.policy, config.algo)
    _check_keywords(config.policy_kwargs, _policy_keywords(policy_class), "policy kwarg", f"{policy_class.__name__} (--policy {config.policy})",
                    _SET_BY_SB3)
    activation = config.policy_kwargs.get("activation_fn")
    if isinstance(activation, str) and not isinstance(getattr(torch.nn, activation, None), type):
        raise ConfigError(f"policy kwarg activation_fn={activation!r} is not a torch.nn module{_did_you_mean(activation, dir(torch.nn))}")
    _check_keywords(config.env_kwargs, find_task(config.env_id).env_keywords(config.env_id), "env kwarg", config.env_id)
    try:
        _learned_ent_coef(config, action_dim=1)  # a malformed ent_coef="auto..." / target_entropy
    except ValueError as error:
        raise ConfigError(str(error)) from None


def resolve_config(env: str, policy: str, seed: int = 0, hp=(), policy_kwargs=(), env_kwargs=(), n_timesteps=None, n_envs=None,
                   checkpoint_every=None, algo: str | None = None) -> RunConfig:
    """Preset for ``env`` (an alias or a gymnasium id) and ``policy``, with overrides applied
    (``algo`` replaces the preset's algorithm, e.g. ``maxent_ppo`` for a ``ppo`` preset).

    Raises :class:`ConfigError` (a ``ValueError``) naming the accepted values for an unknown
    environment, policy or algorithm, for a hyperparameter that is not a keyword of the algorithm's
    constructor, a policy kwarg that the policy does not take, an env kwarg that the environment's
    constructor does not take (where its task knows, :meth:`~mepoly_dist.zoo.tasks.Task.env_keywords`),
    and for sizes that are not positive."""
    if policy not in POLICIES:
        raise ConfigError(f"unknown policy {policy!r}{_did_you_mean(policy, POLICIES)}; accepted: {', '.join(POLICIES)}")
    aliases = all_aliases()
    env_id, alias_kwargs = aliases.get(env, (env, {}))
    try:
        task = find_task(env_id)
    except ValueError as error:
        import gymnasium as gym

        raise ConfigError(f"{error}{_did_you_mean(env, [*aliases, *gym.registry])}") from None
    presets = load_presets()
    fallback = task.default_preset
    preset = copy.deepcopy(presets.get(env_id, presets[fallback])[policy])
    config = RunConfig(
        env_id=env_id,
        policy=policy,
        seed=int(seed),
        name=env.replace("/", "-"),
        env_kwargs={**alias_kwargs, **preset.pop("env_kwargs", {}), **_parse_overrides(env_kwargs, "--env-kwargs")},
        algo=algo or preset.pop("algo"),
        n_envs=_positive_int("n_envs", preset.pop("n_envs") if n_envs is None else n_envs),
        n_timesteps=_positive_int("n_timesteps (--steps)", preset.pop("n_timesteps") if n_timesteps is None else n_timesteps),
        checkpoint_every=_positive_int("checkpoint_every", preset.pop("checkpoint_every") if checkpoint_every is None else checkpoint_every),
        eval_episodes=int(preset.pop("eval_episodes", RunConfig.eval_episodes)),
        policy_kwargs={**preset.pop("policy_kwargs", {}), **_parse_overrides(policy_kwargs, "--policy-kwargs")},
        hyperparams={**preset.pop("hyperparams", {}), **_parse_overrides(hp, "--hp")},
    )
    _check_config(config)
    return config


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


def _learned_ent_coef(config: RunConfig, action_dim: int) -> tuple[float, float] | None:
    """``(initial ent_coef, target entropy)`` of a run with SAC's ``ent_coef="auto[_<initial>]"`` and
    ``target_entropy`` hyperparameters (:class:`~mepoly_dist.zoo.EntropyTarget`), else ``None``."""
    from .entropy_target import parse_auto_ent_coef

    return parse_auto_ent_coef(config.hyperparams.get("ent_coef"), config.hyperparams.get("target_entropy"), action_dim)


def _hyperparams(config: RunConfig) -> dict:
    """``config.hyperparams`` as algorithm keyword arguments: ``lin_<value>`` strings turned into linear
    schedules, a learned ``ent_coef="auto_<x>"`` into its initial value ``x`` (``target_entropy`` is the
    :class:`~mepoly_dist.zoo.EntropyTarget` callback's, not the algorithm's)."""
    learned = _learned_ent_coef(config, action_dim=1)
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
    algo = _algorithms()[config.algo]
    with warnings.catch_warnings():
        # the paper's 6 minibatches of 1024 samples: SB3 warns that 171 does not divide 1024
        warnings.filterwarnings("ignore", message=".*mini-batch size.*")
        return algo(
            _policy_class(config.policy, config.algo),
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
    objects = {"policy_class": _resolved_policy_class(config.policy, config.algo)}
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
        return config, _algorithms()[config.algo].load(path, env=env, device="cpu", custom_objects=_pickled_classes(config))
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
    resumed from its latest checkpoint still reports the time its steps took."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "timing.json"
        self.before = json.loads(self.path.read_text())["train_seconds"] if self.path.exists() else 0.0
        self.start = time.perf_counter()

    def record(self) -> None:
        self.path.write_text(json.dumps({"train_seconds": self.before + time.perf_counter() - self.start}, indent=2))

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
        learned = _learned_ent_coef(config, action_dim=int(np.prod(env.action_space.shape)))
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
