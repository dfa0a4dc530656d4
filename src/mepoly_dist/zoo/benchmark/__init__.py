"""The benchmarks of the project as importable code, in the spirit of rl-zoo3's own benchmark tooling.

The scripts in the repository's ``benchmarks/`` folder are thin command-line front ends over these
modules (``python benchmarks/bandit.py ...`` calls :func:`mepoly_dist.zoo.benchmark.bandit.main`);
their reports, figures and compacted run records live in ``benchmarks/results/<benchmark>/``.

Shared pieces:

* :mod:`~mepoly_dist.zoo.benchmark.results`: the header every report starts with (command, date,
  machine, software, commit, seed), Markdown tables, and writing a report without losing the
  hand-written notes below its :data:`~mepoly_dist.zoo.benchmark.results.NOTES_MARKER`;
* :mod:`~mepoly_dist.zoo.benchmark.sweep`: one training run (:func:`~mepoly_dist.zoo.benchmark.sweep.train_run`)
  and sweeps of runs in local processes or as Ray Tune trials (:func:`~mepoly_dist.zoo.benchmark.sweep.run_parallel`);
* :mod:`~mepoly_dist.zoo.benchmark.records`: a run's small text records (metrics, curves, config),
  read from its run directory or from a compacted records table (one JSON-lines file per sweep);
* :mod:`~mepoly_dist.zoo.benchmark.reports`: rebuilds every report that is made from records
  (``python benchmarks/reports.py``), without training or evaluating anything.

Benchmarks: :mod:`~mepoly_dist.zoo.benchmark.normalizer` (quadrature accuracy per node, speed and
memory, scaling with D), :mod:`~mepoly_dist.zoo.benchmark.accuracy` (accuracy against the scale of
the parameters), :mod:`~mepoly_dist.zoo.benchmark.core_speed` (sampling and the mode),
:mod:`~mepoly_dist.zoo.benchmark.ppo_speed`, :mod:`~mepoly_dist.zoo.benchmark.envs`,
:mod:`~mepoly_dist.zoo.benchmark.bandit` and :mod:`~mepoly_dist.zoo.benchmark.ablations` (the paper's
bandit), :mod:`~mepoly_dist.zoo.benchmark.smoothworld`, :mod:`~mepoly_dist.zoo.benchmark.smoothworld_sweep`
and :mod:`~mepoly_dist.zoo.benchmark.smoothworld_split` (Smooth World), and
:mod:`~mepoly_dist.zoo.benchmark.maniskill_heads` (MePoly heads for ManiSkill's action dimensions, core
only).  The ManiSkill and imitation-learning benchmarks live with their integrations
(``mepoly_maniskill.benchmark``, ``mepoly_il.benchmark``).

Nothing here is imported by :mod:`mepoly_dist` or by the rest of :mod:`mepoly_dist.zoo`.
"""
