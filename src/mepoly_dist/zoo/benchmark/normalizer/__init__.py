r"""Benchmark of the MePoly normalizer: quadrature accuracy, speed and memory, scaling with D.

Usage (from the repository root)::

    python benchmarks/normalizer.py [--quick] [--seed 0] [--sections accuracy speed scaling]
                                    [--out benchmarks/results/normalizer]

Prints Markdown tables and writes them to ``OUT/normalizer.md``, with the plots
``OUT/normalizer_accuracy.png`` and ``OUT/normalizer_scaling.png``.

**Sections**, one module each (``--sections`` runs some of them; the shared code is in
:mod:`~mepoly_dist.zoo.benchmark.normalizer.common`):

1. **Accuracy per node** (:mod:`~mepoly_dist.zoo.benchmark.normalizer.accuracy`).  ``|A error|`` of every
   quadrature rule at node counts 256 .. 65536 on the natural parameters that project the paper's lemniscate
   and two-moons Boltzmann targets ``exp(r / alpha)`` (alpha 0.2 and 0.05) onto the order-14 Legendre basis,
   against a 1024 x 1024 tensor Gauss-Legendre float64 reference.  The reference is evaluated with an
   independent separable formula (``E = T(x) L T(y)^T`` with numpy's Legendre Vandermonde matrices), not
   with the package's feature code or normalizer.
2. **Speed and peak memory** (:mod:`~mepoly_dist.zoo.benchmark.normalizer.speed`) of ``log_prob + entropy``
   + backward at batch 4096, D = 2, order 14, float32, one thread: the package's streaming normalizer (its
   default node-feature operator, sum-factorized for these tensor rules, and the dense one), plain autograd
   on the materialized ``batch x nodes`` grid (the paper's formulation), and the floor (a bare matmul of the
   same shape + logsumexp, no grad).  Times are the best of interleaved repeats in this process; peak memory
   is measured per variant in a fresh subprocess (``VmHWM`` reset via ``/proc/self/clear_refs``).  Then the
   dense against the Kronecker operator at batch 171 and 4096 on ``gauss_legendre:80`` and
   ``gauss_legendre:64``, the normalizer work of one PPO iteration of the paper's bandit (60 minibatches of
   171), the paper's PPO-iteration workload with a network head (1024 samples, 10 epochs x 6 minibatches),
   and the tiling of the stream.
3. **Scaling with D** (:mod:`~mepoly_dist.zoo.benchmark.normalizer.scaling`, 1..8): nodes, number of
   parameters, time and ``|A error|`` of the package default, tensor Gauss-Legendre and Sobol' rules on
   random natural parameters of a fixed scale, against 10^6..10^8-node tensor Gauss-Legendre references
   evaluated by :func:`~mepoly_dist.zoo.benchmark.normalizer.common.separable_log_partition` (numpy only).

The default rule of each D is read from ``mepoly_dist.quadrature.default_rule`` at run time.

``--quick`` shrinks every size for a smoke run (under a minute); its numbers are not the
reported ones.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["SECTIONS", "main"]

#: the sections of the benchmark, in the order of the report
SECTIONS = ("accuracy", "speed", "scaling")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run (< 1 minute)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="the sections to run (default all)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/normalizer"))
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import json

    import scipy
    import torch

    from mepoly_dist.quadrature import default_rule

    from ..results import results_header, write_report
    from .accuracy import plot_accuracy, section_accuracy
    from .scaling import plot_scaling, section_scaling
    from .speed import memory_child, section_speed

    torch.set_num_threads(1)
    if args.memory_child is not None:
        memory_child(json.loads(args.memory_child))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    def log(text):
        print(text, flush=True)

    sections = [s for s in SECTIONS if s in args.sections]
    title = "MePoly normalizer benchmark" + (" (--quick smoke run: small sizes, not the reported numbers)" if args.quick else "")
    if sections != list(SECTIONS):
        title += f" (sections: {', '.join(sections)})"
    head = [results_header(title, args.seed,
                           extra=f"* also: scipy {scipy.__version__}; torch threads: {torch.get_num_threads()} "
                                 "(`torch.set_num_threads(1)`); the machine may be shared with other jobs: compare numbers within one run")]
    log(head[0])
    lines, seconds, speed = [], {}, None
    if "accuracy" in sections:
        t0 = time.perf_counter()
        acc_lines, acc_results, _, _ = section_accuracy(args, log)
        seconds["accuracy"] = time.perf_counter() - t0
        plot_accuracy(acc_results, args.out / "normalizer_accuracy.png", default_rule(2).spec)
        lines += acc_lines
    if "speed" in sections:
        t0 = time.perf_counter()
        speed_lines, speed = section_speed(args, log)
        seconds["speed/memory"] = time.perf_counter() - t0
        lines += speed_lines
    if "scaling" in sections:
        t0 = time.perf_counter()
        scale_lines, scale_rows = section_scaling(args, log)
        seconds["scaling"] = time.perf_counter() - t0
        plot_scaling(scale_rows, speed, args.out / "normalizer_scaling.png")
        lines += scale_lines
    total = time.perf_counter() - t_start
    plots = []
    if "accuracy" in sections:
        plots.append("* `normalizer_accuracy.png`: abs(A error) vs nodes per rule, one panel per target (section 1).")
    if "scaling" in sections:
        plots.append("* `normalizer_scaling.png`: time and abs(A error) vs D (section 3)"
                     + (" and the batch-4096 timings with peak memory (section 2)." if speed else "."))
    tail = (["## Plots", "", *plots, ""] if plots else []) + [
        f"Run time: {total:.0f} s (" + ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items()) + ").",
        "",
    ]
    log("\n".join(tail))
    path = write_report(args.out, "normalizer.md", "\n".join(head + lines + tail), echo=False)
    print(f"wrote {path}" + "".join(f", {p.split('`')[1]}" for p in plots), flush=True)
