"""mepoly-dist: the MePoly polynomial exponential-family policy distribution.

The core: a ``torch.distributions`` family that imports only torch and numpy.  The layers above
it are subpackages that import their own dependencies: :mod:`mepoly_dist.sb3` (the
Stable-Baselines3 adapter) and :mod:`mepoly_dist.zoo` (the RL application: environments,
baselines, training and the ``mepoly`` command), both installed by the ``[rl]`` extra.

>>> import torch
>>> from mepoly_dist import MePoly, MePolyFamily
>>> family = MePolyFamily(dim=2, order=14)
>>> dist = MePoly(torch.zeros(family.num_params), family)
"""

from .blocks import BlockMePoly, BlockMePolyFamily
from .distribution import MePoly
from .family import MePolyFamily
from .heads import MePolyHead
from .quadrature import QuadratureWarning, CompositeGaussLegendreRule, GaussLegendreRule, QuadratureRule, SobolRule, TrapezoidRule, make_rule

__all__ = [
    "MePoly",
    "MePolyFamily",
    "BlockMePoly",
    "BlockMePolyFamily",
    "MePolyHead",
    "QuadratureRule",
    "QuadratureWarning",
    "TrapezoidRule",
    "GaussLegendreRule",
    "CompositeGaussLegendreRule",
    "SobolRule",
    "make_rule",
]
__version__ = "0.1.0"
