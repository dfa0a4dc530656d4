"""mepoly_maniskill: ManiSkill 3 integration of mepoly-dist (install check, demonstrations, dataset).

Installed with ``pip install "mepoly-dist[maniskill]"``; the core package :mod:`mepoly_dist` never
imports ManiSkill, and neither does importing this package: ManiSkill is imported by the modules
that need it (:mod:`.install_check`, :mod:`.demos`, :mod:`.pusht_expert`) when they run.
"""

__all__: list[str] = []
