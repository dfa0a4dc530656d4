"""A training run's settings: :class:`RunConfig`, the presets it starts from, the overrides of
``mepoly train`` and their checks.

:func:`resolve_config` turns an environment (an alias or an id), a policy name and the command
line's overrides into a :class:`RunConfig`: the preset of ``presets/ppo.yml`` (and of the task's
own presets, :mod:`mepoly_dist.zoo.tasks`) for that environment and policy, with ``--hp``,
``--policy-kwargs`` and ``--env-kwargs`` applied.  Every name is checked against what it is
passed to (the algorithm's, the policy's and the environment's constructors) before anything is
built, and a wrong one is a :class:`ConfigError` that names what is accepted.

Policies: ``mepoly`` (:class:`~mepoly_dist.sb3.MePolyActorCriticPolicy`), ``gaussian`` (SB3's
``MlpPolicy``), and the paper's baselines (:mod:`mepoly_dist.zoo.baselines`): ``gmm``
(:class:`~mepoly_dist.zoo.baselines.GMMActorCriticPolicy` under PPO) and ``fpo`` (algorithm
``fpo``: :class:`~mepoly_dist.zoo.baselines.FPO` with its ``MlpPolicy``), and the
normalizing-flow peer ``nsf`` (:class:`~mepoly_dist.zoo.baselines.NSFActorCriticPolicy`, a
neural spline flow under PPO).
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import asdict, dataclass, field
from importlib import resources

import numpy as np
import torch
import yaml

from .tasks import all_aliases, all_presets, constructor_keywords, find_task

__all__ = ["POLICIES", "ALGORITHMS", "PAPER_ALPHA", "ConfigError", "RunConfig", "resolve_config", "load_presets", "algorithm_classes",
           "policy_class", "resolved_policy_class", "learned_ent_coef"]

POLICIES = ("mepoly", "gaussian", "gmm", "nsf", "fpo")
#: the algorithms of ``--algo`` (:func:`_algorithms` maps them to their classes)
ALGORITHMS = ("ppo", "maxent_ppo", "a2c", "trpo", "fpo")
#: the paper's entropy coefficient / target temperature on the bandit (section 5.2)
PAPER_ALPHA = 0.2


class ConfigError(ValueError):
    """A run's settings are wrong: an unknown environment, policy, hyperparameter or keyword, or a
    value that its environment or model rejects.  Raised before a run writes anything (``mepoly
    train`` reports it in one line, with exit code 2); the message names what is accepted."""


def algorithm_classes() -> dict:
    from sb3_contrib import TRPO
    from stable_baselines3 import A2C, PPO

    from .baselines import FPO
    from .maxent import MaxEntPPO

    return {"ppo": PPO, "maxent_ppo": MaxEntPPO, "a2c": A2C, "trpo": TRPO, "fpo": FPO}


def policy_class(policy: str, algo: str = "ppo"):
    if policy == "mepoly":
        from ..sb3 import MePolyActorCriticPolicy

        return MePolyActorCriticPolicy
    if policy == "gmm":
        from .baselines import GMMActorCriticPolicy

        return GMMActorCriticPolicy
    if policy == "nsf":
        from .baselines import NSFActorCriticPolicy

        return NSFActorCriticPolicy
    if policy == "fpo" and algo != "fpo":
        raise ConfigError(f"policy 'fpo' needs algo 'fpo' (flow policy optimization), got {algo!r}")
    return "MlpPolicy"  # SB3's Gaussian, or FPO's flow policy (FPO.policy_aliases)


def resolved_policy_class(policy: str, algo: str) -> type:
    """The class behind ``_policy_class`` (``"MlpPolicy"`` through the algorithm's ``policy_aliases``)."""
    found = policy_class(policy, algo)
    return algorithm_classes()[algo].policy_aliases[found] if isinstance(found, str) else found


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


class _OverrideLoader(yaml.SafeLoader):
    """PyYAML's safe loader (YAML 1.1), which also reads exponent-only floats such as ``1e-3``
    as numbers, as YAML 1.2 and Python do (YAML 1.1 wants ``1.0e-3``; without this, a command
    line's ``learning_rate=1e-3`` would reach the algorithm as the string '1e-3')."""


_OverrideLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"), list("-+0123456789.")
)


def _parse_overrides(items, option: str) -> dict:
    """``key=value`` items as a dict, each value read as YAML (numbers, lists, mappings, strings)."""
    out = {}
    for item in items or ():
        if "=" not in item:
            raise ConfigError(f"{option} expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = yaml.load(value, Loader=_OverrideLoader)
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
    algo = algorithm_classes()[config.algo]
    _check_keywords(set(config.hyperparams) - _RUN_HYPERPARAMS, constructor_keywords(algo), "hyperparameter", f"{algo.__name__}",
                    _SET_BY_RUN)
    for key in _POSITIVE_HYPERPARAMS:
        if key in config.hyperparams:
            _positive_int(f"hyperparameter {key}", config.hyperparams[key])
    policy_class = resolved_policy_class(config.policy, config.algo)
    _check_keywords(config.policy_kwargs, _policy_keywords(policy_class), "policy kwarg", f"{policy_class.__name__} (--policy {config.policy})",
                    _SET_BY_SB3)
    activation = config.policy_kwargs.get("activation_fn")
    if isinstance(activation, str) and not isinstance(getattr(torch.nn, activation, None), type):
        raise ConfigError(f"policy kwarg activation_fn={activation!r} is not a torch.nn module{_did_you_mean(activation, dir(torch.nn))}")
    _check_keywords(config.env_kwargs, find_task(config.env_id).env_keywords(config.env_id), "env kwarg", config.env_id)
    try:
        learned_ent_coef(config, action_dim=1)  # a malformed ent_coef="auto..." / target_entropy
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


def learned_ent_coef(config: RunConfig, action_dim: int) -> tuple[float, float] | None:
    """``(initial ent_coef, target entropy)`` of a run with SAC's ``ent_coef="auto[_<initial>]"`` and
    ``target_entropy`` hyperparameters (:class:`~mepoly_dist.zoo.EntropyTarget`), else ``None``."""
    from .entropy_target import parse_auto_ent_coef

    return parse_auto_ent_coef(config.hyperparams.get("ent_coef"), config.hyperparams.get("target_entropy"), action_dim)
