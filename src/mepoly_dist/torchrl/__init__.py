r"""TorchRL adapter: MePoly actors for ``ProbabilisticActor``, ``ClipPPOLoss`` and TorchRL's collectors.

TorchRL builds a policy's distribution as ``distribution_class(**params, **distribution_kwargs)``
from tensors its modules write into a tensordict.  :class:`~mepoly_dist.MePoly` fits that
directly: the module writes the natural parameters :math:`\lambda(s)` under
``"natural_params"`` and ``distribution_kwargs={"family": family}`` names the family.  What
TorchRL asks beyond ``torch.distributions`` is two small things, and this adapter is exactly
those:

* :class:`TorchRLMePoly`: MePoly with ``deterministic_sample``, the attribute TorchRL's
  distributions carry for ``ExplorationType.DETERMINISTIC`` (evaluation, the actor's default
  interaction type).  It is the density's :attr:`~mepoly_dist.MePoly.mode`.  Without it
  tensordict falls back on ``mode`` too, with a warning at every call.
* :class:`NaturalParams`: the natural parameters of a :class:`~mepoly_dist.MePolyHead` as a
  tensor (the head's ``forward`` returns the distribution, a TorchRL module must return
  tensors).  The head holds the family as a submodule, so ``actor.to(device)`` moves the
  family's quadrature buffers in place, and the ``family`` in ``distribution_kwargs`` (a plain
  dict, invisible to ``nn.Module``) is that same moved object.

:func:`mepoly_actor` puts the pieces into a ``ProbabilisticActor``.  Everything else is stock
TorchRL: ``ClipPPOLoss`` takes the PPO ratio from the exact ``log_prob`` (paper eq. 11) and the
entropy bonus from the exact ``entropy()`` (eq. 12; TorchRL uses a class's ``entropy()`` whenever it
overrides ``Distribution.entropy``, a Monte-Carlo estimate only otherwise).  MePoly has no
``rsample``, so losses that differentiate through a reparameterized sample (SAC, TD3, DDPG, ...)
do not apply; score-function losses (PPO, A2C, REINFORCE) do.

**Bounded actions.**  MePoly lives on :math:`[-1, 1]^D`.  Follow TorchRL's
``ActionScaling`` transform: the environment exposes :math:`[-1, 1]^D` to the policy and maps
:math:`a_{env} = loc + scale \cdot a` for the base environment, so the collected ``"action"``
entries, their log-probabilities and the entropy are those of the cube (they differ from the
environment-scale ones by the constant :math:`\sum_i \log scale_i`, which moves neither PPO's
ratio nor any gradient).  :func:`mepoly_actor` refuses an action spec that is not the cube.

Example::

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from torchrl.envs import ExplorationType, set_exploration_type
    >>> from mepoly_dist import MePolyFamily, MePolyHead
    >>> head = MePolyHead(16, MePolyFamily(dim=2, order=6), zero_init=True)
    >>> actor = mepoly_actor(torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh()), head)
    >>> data = actor(TensorDict(observation=torch.randn(5, 3), batch_size=[5]))
    >>> data["action"].shape, data["action_log_prob"].shape
    (torch.Size([5, 2]), torch.Size([5]))
    >>> entropy = actor.get_dist(data).entropy()  # exact; the head starts uniform on [-1, 1]^2
    >>> torch.allclose(entropy, torch.tensor(4.0).log())
    True
    >>> with set_exploration_type(ExplorationType.DETERMINISTIC):
    ...     mode = actor(data)["action"]  # the density's mode
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict.nn import TensorDictModule
from torch import Tensor, nn
from torchrl.data import Bounded, Composite, TensorSpec
from torchrl.modules import ProbabilisticActor

from ..distribution import MePoly
from ..family import MePolyFamily
from ..heads import MePolyHead

__all__ = ["TorchRLMePoly", "NaturalParams", "mepoly_actor", "NATURAL_PARAMS_KEY"]

#: the tensordict key under which :func:`mepoly_actor` writes :math:`\lambda(s)`: the keyword of ``MePoly``
NATURAL_PARAMS_KEY = "natural_params"


class TorchRLMePoly(MePoly):
    r"""Creates the MePoly distribution :math:`p_\lambda` as TorchRL's actors expect it.

    The core :class:`~mepoly_dist.MePoly` (same arguments, same numbers: ``log_prob``,
    ``entropy()``, ``sample()``, ``mode``, the registered KL) plus ``deterministic_sample``.

    Arguments:
        natural_params: :math:`\lambda`, shape ``batch_shape + (family.num_params,)``.
        family: the :class:`~mepoly_dist.MePolyFamily`.
        validate_args: as in ``torch.distributions``.

    Example::

        >>> family = MePolyFamily(dim=1, order=4)
        >>> dist = TorchRLMePoly(torch.tensor([0.0, 2.0, 0.0, 0.0, 0.0]), family)  # p(x) ~ exp(2 x)
        >>> dist.deterministic_sample
        tensor([1.])
    """

    @property
    def deterministic_sample(self) -> Tensor:
        """The action of ``ExplorationType.DETERMINISTIC``: the highest-density point, :attr:`~mepoly_dist.MePoly.mode`."""
        return self.mode


class NaturalParams(nn.Module):
    r"""Creates the module :math:`h \mapsto \lambda(h)` of a :class:`~mepoly_dist.MePolyHead`.

    The head's :meth:`~mepoly_dist.MePolyHead.natural_params`, as a module whose ``forward``
    returns a tensor (what a ``TensorDictModule`` writes into the tensordict); the head, its
    weights and its family are submodules.

    Arguments:
        head: the :class:`~mepoly_dist.MePolyHead` (with a :class:`~mepoly_dist.MePolyFamily`).

    Example::

        >>> params = NaturalParams(MePolyHead(8, MePolyFamily(dim=2, order=6)))
        >>> params(torch.randn(5, 8)).shape  # C(6 + 2, 2) = 28 natural parameters
        torch.Size([5, 28])
    """

    def __init__(self, head: MePolyHead):
        super().__init__()
        if not isinstance(head, MePolyHead):
            raise TypeError(f"head must be a MePolyHead, got {type(head).__name__}")
        if not isinstance(head.family, MePolyFamily):
            raise TypeError(
                f"the TorchRL adapter supports MePolyFamily heads only, got a head on a {type(head.family).__name__}"
            )
        self.head = head

    @property
    def family(self) -> MePolyFamily:
        """The head's :class:`~mepoly_dist.MePolyFamily` (a submodule: it follows ``.to(device)``)."""
        return self.head.family

    def forward(self, features: Tensor) -> Tensor:
        return self.head.natural_params(features)


def _check_action_spec(spec: TensorSpec, family: MePolyFamily) -> None:
    """Raise ``ValueError`` unless ``spec`` is a bounded box of ``family.dim`` coordinates, each ``[-1, 1]``."""
    if not isinstance(spec, Bounded):
        raise ValueError(f"MePoly needs a Bounded action spec ([-1, 1]^{family.dim}), got {type(spec).__name__}")
    if spec.shape[-1:] != torch.Size([family.dim]):
        raise ValueError(f"the action spec has shape {tuple(spec.shape)}; the family's dimension is {family.dim}")
    low, high = spec.space.low, spec.space.high
    if not (bool((low == -1).all()) and bool((high == 1).all())):
        raise ValueError(
            f"MePoly's actions lie in [-1, 1]^{family.dim}, but the action spec's bounds are low={low.tolist()}, "
            f"high={high.tolist()}: add torchrl.envs.ActionScaling() to the environment's transforms, which exposes "
            "[-1, 1] to the policy and rescales its actions for the environment"
        )


def mepoly_actor(
    trunk: nn.Module,
    head: MePolyHead,
    in_keys: Sequence[str] = ("observation",),
    *,
    spec: TensorSpec | None = None,
    return_log_prob: bool = True,
    **kwargs,
) -> ProbabilisticActor:
    r"""Creates a ``ProbabilisticActor`` whose policy is :math:`\pi(a \mid s) = p_{\lambda(s)}(a)`.

    The actor runs ``head.natural_params(trunk(*inputs))`` on the tensordict's ``in_keys``, writes
    :math:`\lambda(s)` under :data:`NATURAL_PARAMS_KEY` and builds
    ``TorchRLMePoly(natural_params, family=head.family)``: it is

    .. code-block:: python

        ProbabilisticActor(
            TensorDictModule(nn.Sequential(trunk, NaturalParams(head)), in_keys, ["natural_params"]),
            in_keys=["natural_params"], spec=spec, distribution_class=TorchRLMePoly,
            distribution_kwargs={"family": head.family}, return_log_prob=return_log_prob, **kwargs)

    Arguments:
        trunk: the network from the inputs to the features :math:`h` (size ``head.linear.in_features``).
        head: a :class:`~mepoly_dist.MePolyHead` on a :class:`~mepoly_dist.MePolyFamily`; its options
            (``lambda_clip``, ``clip_mode``, ``zero_init``) are the policy's.
        in_keys: the tensordict keys passed to ``trunk``.
        spec: the action spec (optional): a ``Bounded`` box that must be :math:`[-1, 1]^D`
            (see the module docstring on ``ActionScaling``), or a ``Composite`` holding it under ``"action"``.
        return_log_prob: write the sampled action's log-probability (PPO's behaviour log-probability)
            under the actor's ``log_prob_key``.
        kwargs: other keyword arguments of ``ProbabilisticActor`` (``default_interaction_type``, ``out_keys``, ...).

    Returns:
        The ``ProbabilisticActor``; ``actor.get_dist(tensordict)`` is the :class:`TorchRLMePoly`.
    """
    params = NaturalParams(head)
    if spec is not None:
        _check_action_spec(spec["action"] if isinstance(spec, Composite) else spec, params.family)
    for key in ("distribution_class", "distribution_kwargs"):
        if key in kwargs:
            raise TypeError(f"mepoly_actor sets {key} itself (TorchRLMePoly on the head's family)")
    module = TensorDictModule(nn.Sequential(trunk, params), in_keys=list(in_keys), out_keys=[NATURAL_PARAMS_KEY])
    return ProbabilisticActor(
        module,
        in_keys=[NATURAL_PARAMS_KEY],
        spec=spec,
        distribution_class=TorchRLMePoly,
        distribution_kwargs={"family": params.family},
        return_log_prob=return_log_prob,
        **kwargs,
    )
