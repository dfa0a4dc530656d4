"""mepoly_il: latent-VAE imitation learning with a MePoly prior on ManiSkill 3 (paper section 4.2, appendix A).

Its own distribution, ``mepoly-il`` (``pip install -e integrations/il``, which pulls
``mepoly-maniskill``) with the ``mepoly-il`` command; the core package :mod:`mepoly_dist` never imports it.
Modules, one job each:

* :mod:`.data` -- (observation history, action chunk) pairs and the normalization saved with a model;
* :mod:`.vae` -- stage 1, the trajectory VAE (eq. 13, 16);
* :mod:`.prior` -- stage 2, the MePoly prior on the latent cube and its loss (eq. 14, 17-19);
* :mod:`.diffusion_policy` -- the baseline: a state-based Diffusion Policy (1-D temporal U-Net, FiLM);
* :mod:`.policy` -- inference: observation history -> action chunk, receding-horizon execution;
* :mod:`.evaluate` -- ManiSkill rollouts: success_once / success_at_end, an image strip;
* :mod:`.train`, :mod:`.cli` -- ``mepoly-il train`` / ``mepoly-il eval`` with presets per task;
* :mod:`.benchmark` -- the paper's Table 1 from a records table; :mod:`.cost` -- seconds per iteration and hours per run of a preset.

ManiSkill and diffusers are imported by the modules that need them, when they run.
"""

__all__: list[str] = []
__version__ = "0.1.0"
