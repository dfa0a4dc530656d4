r"""``MePolyHead``: the network layer that predicts natural parameters and returns the density.

A *lazy distribution* in zuko's sense: an ``nn.Module`` whose ``forward(features)`` returns a
:class:`~mepoly_dist.MePoly` (or a :class:`~mepoly_dist.BlockMePoly` for a
:class:`~mepoly_dist.BlockMePolyFamily`) whose natural parameters are an affine function of
the features :math:`h` (a policy latent, an encoded observation history), optionally bounded
elementwise by :math:`c` (``lambda_clip``):

.. math::

    \lambda(h) = \operatorname{clip}_c(W h + b), \qquad
    p(x \mid h) = \exp\big(\lambda(h)^\top \phi(x) - A(\lambda(h))\big)
    \quad \text{(paper eq. 8-9, 17)}.

**The constant feature.**  :math:`\phi_0 = 1` adds :math:`\lambda_0` to the energy and to
:math:`A(\lambda)` alike, so it never changes the density; the layer predicts only the
non-constant coefficients and the head puts a zero at each constant feature's place (the first
of a :class:`~mepoly_dist.MePolyFamily`, the first of every block of a
:class:`~mepoly_dist.BlockMePolyFamily`).  With :math:`W = 0, b = 0` (``zero_init=True``, or
SB3's orthogonal initialisation with gain 0.01 approximately) the density is uniform on the
cube: the maximum-entropy starting point.

**Clipping** (``clip_mode``), with :math:`c` = ``lambda_clip`` (``None``: no bound; the
streaming normalizer handles any scale):

* ``"clamp"``: :math:`\operatorname{clip}_c(u) = \min(\max(u, -c), c)`, as the paper's RL
  implementation (its default is 5 for the bandit, 10 for Smooth World); a clamped coordinate
  has no gradient.
* ``"tanh"``: :math:`\operatorname{clip}_c(u) = c \tanh(u / c)`, the smooth bound of the
  imitation-learning prior (paper appendix, eq. 17), so a bounded coordinate keeps a gradient.

The family is a submodule, so ``head.to(device)`` moves its quadrature buffers; they are not
in the ``state_dict`` (which holds ``linear.weight`` and ``linear.bias`` only).

Example::

    >>> import torch
    >>> from mepoly_dist import MePolyFamily, MePolyHead
    >>> head = MePolyHead(8, MePolyFamily(dim=2, order=6), zero_init=True)
    >>> dist = head(torch.randn(5, 8))
    >>> dist.batch_shape, dist.event_shape
    (torch.Size([5]), torch.Size([2]))
    >>> torch.allclose(dist.entropy(), torch.full((5,), 4.0).log())  # uniform on [-1, 1]^2
    True
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .blocks import BlockMePoly, BlockMePolyFamily
from .distribution import MePoly
from .family import MePolyFamily

__all__ = ["MePolyHead", "CLIP_MODES"]

#: values of ``MePolyHead(clip_mode=...)``
CLIP_MODES = ("clamp", "tanh")


class MePolyHead(nn.Module):
    r"""Creates a layer from features to a MePoly density: ``head(h)`` is ``MePoly(lambda(h), family)``.

    Arguments:
        in_features: the size of the features :math:`h` (last axis of the input).
        family: a :class:`~mepoly_dist.MePolyFamily` or :class:`~mepoly_dist.BlockMePolyFamily`
            whose first feature (of each block) is the constant.
        lambda_clip: :math:`c`, the bound of every natural parameter (``None``: unbounded).
        clip_mode: ``"clamp"`` (hard, default) or ``"tanh"`` (smooth), see the module docstring.
        zero_init: start with :math:`W = 0, b = 0`, the uniform density (default: torch's
            ``nn.Linear`` initialisation, which SB3's orthogonal initialisation then replaces).
        validate_args: forwarded to the distribution.

    Returns:
        ``forward(h)`` for ``h`` of shape ``(*batch, in_features)``: a distribution of batch shape
        ``batch``; :meth:`natural_params` gives its :math:`\lambda(h)`, ``(*batch, num_params)``.
    """

    def __init__(
        self,
        in_features: int,
        family: MePolyFamily | BlockMePolyFamily,
        lambda_clip: float | None = None,
        clip_mode: str = "clamp",
        zero_init: bool = False,
        validate_args: bool | None = None,
    ):
        super().__init__()
        if not isinstance(family, (MePolyFamily, BlockMePolyFamily)):
            raise TypeError(f"family must be a MePolyFamily or BlockMePolyFamily, got {type(family).__name__}")
        if lambda_clip is not None and not lambda_clip > 0:
            raise ValueError(f"lambda_clip must be positive or None, got {lambda_clip!r}")
        if clip_mode not in CLIP_MODES:
            raise ValueError(f"unknown clip_mode {clip_mode!r}; expected one of {CLIP_MODES}")
        blocks = family.blocks if isinstance(family, BlockMePolyFamily) else [family]
        if any(bool(f.exponents[0].any()) for f in blocks):
            raise ValueError("each family's first feature must be the constant (zero exponent)")
        constants = family.first_param_indices() if isinstance(family, BlockMePolyFamily) else [0]
        free = torch.ones(family.num_params, dtype=torch.bool)
        free[constants] = False
        self.family = family
        self.lambda_clip = None if lambda_clip is None else float(lambda_clip)
        self.clip_mode = clip_mode
        self.validate_args = validate_args
        self.linear = nn.Linear(in_features, family.num_params - len(constants))
        if zero_init:
            nn.init.zeros_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)
        self.register_buffer("free_index", torch.nonzero(free).squeeze(-1), persistent=False)

    def natural_params(self, features: Tensor) -> Tensor:
        r""":math:`\lambda(h)`, shape ``features.shape[:-1] + (family.num_params,)``, zero at the constant features."""
        coefficients = self.linear(features)
        c = self.lambda_clip
        if c is not None:
            coefficients = coefficients.clamp(-c, c) if self.clip_mode == "clamp" else c * torch.tanh(coefficients / c)
        out = coefficients.new_zeros(coefficients.shape[:-1] + (self.family.num_params,))
        return out.index_copy(-1, self.free_index, coefficients)

    def forward(self, features: Tensor) -> MePoly | BlockMePoly:
        return self.family.distribution(self.natural_params(features), validate_args=self.validate_args)

    def extra_repr(self) -> str:
        return f"lambda_clip={self.lambda_clip}, clip_mode={self.clip_mode!r}"
