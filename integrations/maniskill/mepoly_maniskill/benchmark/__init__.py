"""The ManiSkill benchmarks of the project, as importable code behind the repository's thin scripts
``benchmarks/maniskill_rl.py`` (:mod:`~mepoly_maniskill.benchmark.rl`: PPO learning curves with
MePoly and the Gaussian) and ``benchmarks/maniskill_speed.py`` (:mod:`~mepoly_maniskill.benchmark.speed`:
training and evaluation cost side by side).  Their reports are written with
:mod:`mepoly_dist.zoo.benchmark.results`, into ``benchmarks/results/maniskill_rl/`` and
``benchmarks/results/maniskill_speed/``.
"""
