r"""rl-zoo3 plug-in: the ``mepoly/*`` environments and MePoly's hyperparameter search space for SB3's training framework.

rl-zoo3 (``python -m rl_zoo3.train``) imports the modules named by ``--gym-packages`` after it
has parsed its arguments.  Importing this one

* registers the paper's environments with gymnasium
  (:func:`~mepoly_dist.zoo.envs.register_envs`: ``mepoly/Bandit-v0``, ``mepoly/SmoothWorld-v0``);
* installs :func:`sample_mepoly_params` as rl-zoo3's Optuna sampler and
  :func:`convert_mepoly_params` as its converter for the on-policy algorithms that fit MePoly
  (:data:`ON_POLICY_ALGOS`: ``ppo``, ``a2c``, ``trpo``, ``ppo_lstm``), in
  ``rl_zoo3.hyperparams_opt.HYPERPARAMS_SAMPLER`` / ``HYPERPARAMS_CONVERTER``.  The sampler
  changes nothing for any other policy: when the hyperparameters file does not name a MePoly
  policy, it is rl-zoo3's own sampler.

The policy needs no alias: rl-zoo3 imports a ``policy`` given as a dotted path, so a
hyperparameters file says ``policy: mepoly_dist.sb3.MePolyActorCriticPolicy`` and its MePoly
options go in ``policy_kwargs`` (``order``, ``lambda_clip``, ``quadrature``, ``blocks``, ...).
``--gym-packages mepoly_dist.zoo.envs`` gives the environments alone, with rl-zoo3's samplers
untouched.  Commands (``examples/rl_zoo3/ppo.yml`` holds the bandit's and Pendulum's settings)::

    # train: the run goes to logs/ppo/mepoly-Bandit-v0_1/ (model zip, Monitor files, evaluations)
    python -m rl_zoo3.train --algo ppo --env mepoly/Bandit-v0 \
        --gym-packages mepoly_dist.zoo.rl_zoo3 -conf examples/rl_zoo3/ppo.yml --seed 0
    # watch it: episode rewards of the policy's mode
    python -m rl_zoo3.enjoy --algo ppo --env mepoly/Bandit-v0 \
        --gym-packages mepoly_dist.zoo.rl_zoo3 -f logs --no-render -n 10
    # tune: 6 Optuna trials of 8192 steps, MePoly's order and ent_coef in the search space
    python -m rl_zoo3.train --algo ppo --env mepoly/Bandit-v0 \
        --gym-packages mepoly_dist.zoo.rl_zoo3 -conf examples/rl_zoo3/ppo.yml \
        -optimize --n-trials 6 -n 8192 --n-evaluations 2 --sampler random --seed 0

The search space is rl-zoo3's own for the algorithm (``rl_zoo3.hyperparams_opt.sample_ppo_params``
and its siblings, called as they are) with two changes:

* ``order``, the polynomial's total degree, one of :data:`ORDER_CHOICES`
  (:math:`\binom{n + D}{D}` natural parameters for order :math:`n` and action dimension
  :math:`D`), goes into ``policy_kwargs``;
* ``ent_coef`` is drawn log-uniformly from :data:`ENT_COEF_RANGE` instead of rl-zoo3's
  :math:`[10^{-8}, 0.1]`.  A MePoly density lives on the action cube, so its entropy is bounded,
  :math:`\mathcal H \le D \log 2` (the uniform density), and the bonus :math:`\alpha\,\mathcal H`
  (paper eq. 12) cannot run away: the paper's bandit uses :math:`\alpha = 0.2` and Smooth
  World 0.3, where the MaxEnt optimum :math:`\propto \exp(r/\alpha)` keeps several modes.
  TRPO has no entropy coefficient, so there only ``order`` is added.

rl-zoo3 replaces the file's ``policy_kwargs`` by the sampled ones (``net_arch`` and
``activation_fn``).  This sampler keeps the file's other keys (``lambda_clip``, ``quadrature``,
``blocks``, ...): the trial's ``policy_kwargs`` are the file's, updated with the sampled
``net_arch``, ``activation_fn`` and ``order``.  The sampler reads the file's ``policy`` and
``policy_kwargs`` back from the user attributes that rl-zoo3 gives the study before the first
trial (``str`` of each hyperparameter), so ``policy_kwargs`` must be plain data there (numbers,
strings, lists, mappings); an ``activation_fn`` in the file is tuned anyway and can go.

After tuning rl-zoo3 prints the best trial's ``Params`` (``order``, ``ent_coef``, rl-zoo3's
``batch_size_pow``, ...) and ``User Attributes``, and writes them to
``logs/ppo/report_<env>_...csv``.  The user attribute ``policy_kwargs`` is the trial's complete
policy keyword arguments as rl-zoo3 reads them from a hyperparameters file or ``-params``, e.g.
``dict(order=10, net_arch=dict(pi=[64], vf=[64]), activation_fn=nn.Tanh)``.
:func:`convert_mepoly_params` turns a trial's ``Params`` into the algorithm's keyword
arguments with ``order`` inside ``policy_kwargs``; rl-zoo3 applies it for
``--storage ... --study-name ... --trial-id N``, where (as for every algorithm) the trial's
``policy_kwargs`` replace the file's: add ``-params policy_kwargs:"<the trial's attribute>"``
to keep the untuned MePoly keys too.

Only on-policy algorithms fit: MePoly has no ``rsample``, so SAC, TD3, TQC and DDPG, whose actor
losses differentiate through sampled actions, cannot use it.
"""

from __future__ import annotations

import ast
import keyword
import math
import re
from functools import partial
from typing import Any

from rl_zoo3 import hyperparams_opt
from rl_zoo3.utils import get_class_by_name
from torch import nn

from ..sb3.distributions import MePolyDistribution
from .envs import register_envs

__all__ = [
    "ON_POLICY_ALGOS",
    "ORDER_CHOICES",
    "ENT_COEF_RANGE",
    "sample_mepoly_params",
    "convert_mepoly_params",
    "policy_kwargs_source",
    "install_samplers",
]

#: rl-zoo3's sampler of each algorithm that fits MePoly (all on-policy: no ``rsample`` needed)
ON_POLICY_ALGOS = {
    "ppo": hyperparams_opt.sample_ppo_params,
    "a2c": hyperparams_opt.sample_a2c_params,
    "trpo": hyperparams_opt.sample_trpo_params,
    "ppo_lstm": hyperparams_opt.sample_ppo_lstm_params,
}
#: the polynomial orders the sampler chooses from (Optuna categorical parameter ``order``)
ORDER_CHOICES = (4, 6, 8, 10, 12, 14, 16)
#: bounds of the entropy coefficient, drawn log-uniformly (Optuna parameter ``ent_coef``)
ENT_COEF_RANGE = (1e-4, 0.5)

_CLASS_REPR = re.compile(r"<class '(?P<path>[\w.]+)'>")


class _MePolyTrial:
    """An Optuna trial whose ``ent_coef`` suggestion is drawn from :data:`ENT_COEF_RANGE` (log
    scale); every other call goes to the trial itself."""

    def __init__(self, trial):
        self._trial = trial

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float:
        if name == "ent_coef":
            (low, high), step, log = ENT_COEF_RANGE, None, True
        return self._trial.suggest_float(name, low, high, step=step, log=log)

    def __getattr__(self, name: str):
        return getattr(self._trial, name)


def _file_hyperparameters(trial) -> tuple[type | None, dict[str, Any]]:
    """The policy class (None for a name such as ``"MlpPolicy"``) and the ``policy_kwargs`` of
    the hyperparameters file, from the study's user attributes that rl-zoo3 sets."""
    attributes = trial.study.user_attrs
    if "policy" not in attributes:
        raise ValueError(
            "the MePoly sampler reads the hyperparameters file's policy and policy_kwargs from the study's user attributes, "
            "which rl-zoo3's ExperimentManager.hyperparameters_optimization sets before the first trial; this study has none"
        )
    match = _CLASS_REPR.fullmatch(attributes["policy"])
    policy = get_class_by_name(match["path"]) if match else None
    text = attributes.get("policy_kwargs", "{}")
    try:
        policy_kwargs = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError(
            f"the MePoly sampler keeps the file's policy_kwargs, but cannot read them back from the study ({text}): "
            "write them as plain data (numbers, strings, lists, mappings); activation_fn and net_arch are tuned anyway"
        ) from None
    return policy, dict(policy_kwargs)


def _is_mepoly_policy(policy: type | None) -> bool:
    head = getattr(policy, "head_distribution", None)
    return isinstance(head, type) and issubclass(head, MePolyDistribution)


def sample_mepoly_params(trial, n_actions: int, n_envs: int, additional_args: dict, algo: str = "ppo") -> dict[str, Any]:
    """rl-zoo3's search space of ``algo`` plus MePoly's ``order`` and its own ``ent_coef`` range.

    The signature is rl-zoo3's (``HYPERPARAMS_SAMPLER[algo](trial, n_actions, n_envs,
    additional_args)``; :func:`install_samplers` binds ``algo``).  For a hyperparameters file
    whose policy is not a MePoly policy this is rl-zoo3's sampler of ``algo``, unchanged.
    Otherwise it calls that sampler with ``ent_coef`` drawn from :data:`ENT_COEF_RANGE`, draws
    ``order`` from :data:`ORDER_CHOICES`, and returns the sampled keyword arguments with
    ``policy_kwargs`` = the file's ``policy_kwargs`` updated with the sampled ``net_arch``,
    ``activation_fn`` and ``order``; these are also the trial's user attribute ``policy_kwargs``
    (:func:`policy_kwargs_source`).
    """
    if algo not in ON_POLICY_ALGOS:
        raise ValueError(f"MePoly fits the on-policy algorithms {sorted(ON_POLICY_ALGOS)}, got algo={algo!r}")
    rl_zoo3_sampler = ON_POLICY_ALGOS[algo]
    policy, file_policy_kwargs = _file_hyperparameters(trial)
    if not _is_mepoly_policy(policy):
        return rl_zoo3_sampler(trial, n_actions, n_envs, additional_args)
    sampled = rl_zoo3_sampler(_MePolyTrial(trial), n_actions, n_envs, additional_args)
    order = trial.suggest_categorical("order", ORDER_CHOICES)
    policy_kwargs = {**file_policy_kwargs, **sampled.get("policy_kwargs", {}), "order": order}
    trial.set_user_attr("policy_kwargs", policy_kwargs_source(policy_kwargs))
    return {**sampled, "policy_kwargs": policy_kwargs}


def convert_mepoly_params(params: dict[str, Any]) -> dict[str, Any]:
    """A trial's Optuna parameters as the algorithm's keyword arguments: rl-zoo3's
    ``convert_onpolicy_params``, with ``order`` (when the trial has one) moved into
    ``policy_kwargs``.  A trial without ``order`` (not a MePoly one) converts as in rl-zoo3."""
    if "order" not in params:
        return hyperparams_opt.convert_onpolicy_params(params)
    params = dict(params)
    order = params.pop("order")
    hyperparams = hyperparams_opt.convert_onpolicy_params(params)
    hyperparams["policy_kwargs"] = {**hyperparams["policy_kwargs"], "order": order}
    return hyperparams


def policy_kwargs_source(policy_kwargs: dict[str, Any]) -> str:
    """``policy_kwargs`` as the Python expression rl-zoo3 evaluates in a hyperparameters file or
    ``-params policy_kwargs:"..."``, where ``nn`` is ``torch.nn``:
    ``dict(order=10, activation_fn=nn.Tanh)``.  Raises ``ValueError`` for a value it cannot write
    (a class outside ``torch.nn``, an arbitrary object)."""
    if not isinstance(policy_kwargs, dict):
        raise ValueError(f"policy_kwargs must be a dict, got {type(policy_kwargs).__name__}")
    return _source(policy_kwargs)


def _source(value) -> str:
    if isinstance(value, type):
        if getattr(nn, value.__name__, None) is value:
            return f"nn.{value.__name__}"
        raise ValueError(f"cannot write the class {value.__module__}.{value.__qualname__} for rl-zoo3: only torch.nn classes (nn.X) evaluate there")
    if isinstance(value, dict):
        if all(isinstance(key, str) and key.isidentifier() and not keyword.iskeyword(key) for key in value):
            return "dict(" + ", ".join(f"{key}={_source(item)}" for key, item in value.items()) + ")"
        return "{" + ", ".join(f"{_source(key)}: {_source(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_source(item) for item in value) + "]"
    if isinstance(value, tuple):
        return "(" + "".join(f"{_source(item)}, " for item in value).rstrip(" ") + ")"
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"cannot write the non-finite number {value!r} as an rl-zoo3 policy_kwargs value")
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    raise ValueError(f"cannot write {value!r} ({type(value).__name__}) as an rl-zoo3 policy_kwargs value")


def install_samplers() -> None:
    """Make :func:`sample_mepoly_params` and :func:`convert_mepoly_params` rl-zoo3's sampler and
    converter for every algorithm of :data:`ON_POLICY_ALGOS` (done on import; installing twice
    changes nothing).  rl-zoo3 looks both dictionaries up when a trial starts, so this works
    from a ``--gym-packages`` module."""
    for algo in ON_POLICY_ALGOS:
        hyperparams_opt.HYPERPARAMS_SAMPLER[algo] = partial(sample_mepoly_params, algo=algo)
        hyperparams_opt.HYPERPARAMS_CONVERTER[algo] = convert_mepoly_params


register_envs()
install_samplers()
