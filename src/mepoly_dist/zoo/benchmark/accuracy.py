#!/usr/bin/env python
r"""Accuracy of the MePoly normalizer against the scale of the natural parameters.

Usage (from the repository root)::

    python benchmarks/accuracy.py [--quick] [--seed 0] [--rows 8] [--out benchmarks/results/accuracy]

Prints a Markdown table and writes it to ``OUT/accuracy.md``.

For D = 2 (orders 14 and 8), 3 (order 8), 4 (order 4) and 5 (order 3) and scales
c in (1, 3, 10, 30, 100, 1000), ``--rows`` random rows ``lambda = c * randn(F)`` (raw, not
normalized; at c >= 10 the density is a peak of width down to ~1e-5..1e-6, usually at a face
or corner of the cube, with energies in the thousands) are normalized by the package
(``MePoly(lam, MePolyFamily(dim, order, dtype=torch.float64))``, its default quadrature, float64)
and by the independent reference :func:`mepoly_dist.testing.adaptive_reference` (numpy/scipy
only: globally adaptive cubature by bisection of boxes with tensor Gauss-Legendre panels,
seeded by the energy maxima; validated in ``tests/core/test_accuracy.py``).  Per configuration the
table gives the largest ``|A error|`` and ``|H error|`` over the rows, the package's own
largest estimated error (``MePoly.quadrature_error``, where it exists) and whether it bounds
the actual error on every row, the quadrature nodes per row (``MePoly.quadrature_nodes``
where it exists, else the family's fixed rule), the RuntimeWarnings the package raised, the
package's time for ``log_partition`` + ``entropy`` of the batch (median of 3 after a warm-up)
and the reference's time and estimated error.  Combinations whose reference fails (more
boxes than its limit) are listed as infeasible.

The accuracy targets (``tests/core/test_accuracy.py``): D = 2 at c <= 100: ``|A error| <= 1e-6`` and
``|H error| <= 1e-5``; D = 3..5 at c <= 10: both <= 1e-4.  Other cells are beyond the targets
and are reported for information.

``--quick`` runs a few configurations with 2 rows (under a minute): a smoke run, not the
reported numbers.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from mepoly_dist import MePoly, MePolyFamily
from mepoly_dist.testing import adaptive_reference

from .results import markdown_table, results_header, write_report

__all__ = ["CONFIGS", "SCALES", "TARGETS", "random_rows", "reference", "package", "main"]

CONFIGS = [(2, 14), (2, 8), (3, 8), (4, 4), (5, 3)]
SCALES = (1, 3, 10, 30, 100, 1000)
QUICK_CONFIGS = [(2, 14), (3, 8)]
QUICK_SCALES = (1, 10, 100)
#: (largest c, ``|A|`` target, ``|H|`` target) per dimension
TARGETS = {2: (100, 1e-6, 1e-5), 3: (10, 1e-4, 1e-4), 4: (10, 1e-4, 1e-4), 5: (10, 1e-4, 1e-4)}
REFERENCE_MAX_BOXES = 100_000


def random_rows(dim: int, order: int, c: float, rows: int, seed: int) -> np.ndarray:
    """``c * randn(rows, F)``, seeded by (seed, dim, order, c) as in ``tests/core/test_accuracy.py``."""
    rng = np.random.default_rng([seed, dim, order, int(round(1000 * c))])
    return c * rng.standard_normal((rows, math.comb(order + dim, dim)))


def reference(lams: np.ndarray, dim: int, order: int):
    """``(A, H, largest estimated error, seconds)`` of the rows by the adaptive reference, or the
    reason it is infeasible."""
    t0 = time.perf_counter()
    try:
        results = [adaptive_reference(lam, dim, order, max_boxes=REFERENCE_MAX_BOXES, moments=False) for lam in lams]
    except (RuntimeError, FloatingPointError) as error:
        return f"{type(error).__name__}: {error}"
    return (np.array([r.A for r in results]), np.array([r.H for r in results]), max(r.error for r in results),
            time.perf_counter() - t0)


def package(lams: np.ndarray, family: MePolyFamily):
    """The package's A, H, estimated errors (or None), nodes per row, the RuntimeWarnings and the
    median time of 3 evaluations after a warm-up."""
    params = torch.from_numpy(np.ascontiguousarray(lams))

    def evaluate():
        dist = MePoly(params, family)
        return dist, dist.log_partition, dist.entropy()

    with torch.no_grad(), warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        dist, A, H = evaluate()
        estimate = getattr(dist, "quadrature_error", None)
        nodes = getattr(dist, "quadrature_nodes", None)
    messages = sorted({str(w.message) for w in record if issubclass(w.category, RuntimeWarning)})
    times = []
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(3):
            t0 = time.perf_counter()
            evaluate()
            times.append(time.perf_counter() - t0)
    estimate = None if estimate is None else torch.as_tensor(estimate).double().numpy()
    if nodes is None:
        nodes_text = f"{family.quadrature.num_nodes} (fixed)"
    else:
        nodes = torch.as_tensor(nodes).numpy()
        nodes_text = f"{int(np.median(nodes))} (max {int(nodes.max())})"
    return A.numpy(), H.numpy(), estimate, nodes_text, messages, float(np.median(times))


def fmt_err(e) -> str:
    return "0" if e == 0 else f"{e:.1e}"


def fmt_t(t: float) -> str:
    return f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few configurations with 2 rows, for a smoke run (< 1 minute)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=int, default=None, help="random rows per configuration (default 8; 2 with --quick)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/accuracy"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = args.rows or (2 if args.quick else 8)
    configs = QUICK_CONFIGS if args.quick else CONFIGS
    scales = QUICK_SCALES if args.quick else SCALES
    t_start = time.perf_counter()

    title = "MePoly normalizer accuracy against scale" + (" (--quick smoke run: not the reported numbers)" if args.quick else "")
    head = results_header(title, args.seed)
    print(head, flush=True)

    header = ["D", "order", "c", "max abs(A err)", "max abs(H err)", "target met", "max est. error (package)", "est. >= actual",
              "nodes per row", "warnings", "package time", "reference time", "reference est. error"]
    table = []
    notes = []
    for dim, order in configs:
        family = MePolyFamily(dim, order, dtype=torch.float64)
        for c in scales:
            lams = random_rows(dim, order, float(c), rows, args.seed)
            ref = reference(lams, dim, order)
            if isinstance(ref, str):
                table.append([dim, order, c] + ["reference infeasible"] + [""] * (len(header) - 4))
                notes.append(f"D = {dim}, order {order}, c = {c}: reference infeasible ({ref})")
                print(f"D={dim} order={order} c={c}: reference infeasible ({ref})", flush=True)
                continue
            A_ref, H_ref, ref_err, ref_time = ref
            A, H, estimate, nodes_text, messages, pkg_time = package(lams, family)
            errA, errH = np.abs(A - A_ref), np.abs(H - H_ref)
            c_max, tol_A, tol_H = TARGETS.get(dim, (0, 0.0, 0.0))
            if c > c_max:
                met = "(beyond targets)"
            else:
                met = "yes" if errA.max() <= tol_A and errH.max() <= tol_H and not messages else "**no**"
            if estimate is None:
                est_text, bound_text = "n/a", "n/a"
            else:
                est_text = fmt_err(float(np.max(estimate)))
                bound_text = "yes" if np.all(estimate >= errA) else f"**no** ({int(np.sum(estimate < errA))} rows)"
            table.append([dim, order, c, fmt_err(errA.max()), fmt_err(errH.max()), met, est_text, bound_text, nodes_text,
                          len(messages), fmt_t(pkg_time), fmt_t(ref_time), fmt_err(ref_err)])
            for m in messages:
                notes.append(f"D = {dim}, order {order}, c = {c}: {m}")
            print(" | ".join(str(x) for x in table[-1]), flush=True)

    lines = [
        head,
        "## Accuracy against scale",
        "",
        f"{rows} rows `lambda = c * randn(F)` per configuration (seeded by seed, D, order, c), float64, the family's default "
        "quadrature.  Errors against `mepoly_dist.testing.adaptive_reference` (adaptive cubature, numpy/scipy only); "
        "`est. >= actual`: whether the package's per-row `quadrature_error` bounds its actual `abs(A error)` on every row; "
        "`target met`: D = 2, c <= 100: abs(A err) <= 1e-6, abs(H err) <= 1e-5; D = 3..5, c <= 10: both <= 1e-4, "
        "and no RuntimeWarning.  Times: the package's `log_partition` + `entropy` of the whole batch (median of 3, after a "
        "warm-up), the reference's for all rows.",
        "",
        markdown_table(header, table, ["--:"] * 3 + ["--:"] * 2 + [":-:"] + ["--:", ":-:", "--:", "--:", "--:", "--:", "--:"]),
    ]
    if notes:
        lines += ["Warnings and skipped configurations:", ""] + [f"* {n}" for n in notes] + [""]
    lines.append(f"Run time: {time.perf_counter() - t_start:.0f} s.")
    lines.append("")
    path = write_report(args.out, "accuracy.md", "\n".join(lines))
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
