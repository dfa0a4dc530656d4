"""The package's log-partition and entropy of float64 rows, and the accuracy assertion shared by
the core accuracy tests (``tests/core/test_accuracy.py``) and the bandit-target ones
(``tests/rl/test_bandit_accuracy.py``).  ``tests/`` is on ``sys.path`` through its conftest."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from mepoly_dist import MePoly, MePolyFamily

#: the 2-D targets: |A error| and |H error| of float64 rows at the default rule
TOL_A_2D = 1e-6
TOL_H_2D = 1e-5


def package_values(lams: np.ndarray, dim: int, order: int):
    """The package's float64 ``A`` and ``H`` with the default quadrature, and the messages of the
    RuntimeWarnings it raised (recorded, so that a failure reports the errors themselves)."""
    family = MePolyFamily(dim, order, dtype=torch.float64)
    with torch.no_grad(), warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        dist = MePoly(torch.from_numpy(np.ascontiguousarray(lams)), family)
        A, H = dist.log_partition.numpy().copy(), dist.entropy().numpy().copy()
    return A, H, [str(w.message) for w in record if issubclass(w.category, RuntimeWarning)]


def assert_accurate(A, H, A_ref, H_ref, tol_A, tol_H, messages):
    """Within tolerance, and without a RuntimeWarning (rows this accurate must not be flagged)."""
    errA, errH = np.abs(A - A_ref), np.abs(H - H_ref)
    report = _report(errA, errH, A_ref, H_ref)
    assert errA.max() <= tol_A and errH.max() <= tol_H, report + (f"; warnings: {messages}" if messages else "")
    assert not messages, f"accurate rows flagged ({report}): {messages}"


def _report(errA, errH, A_ref, H_ref) -> str:
    i = int(np.argmax(errA))
    j = int(np.argmax(errH))
    return (f"max |A error| {errA.max():.2e} (row {i}: A_ref = {A_ref[i]:.10g}), "
            f"max |H error| {errH.max():.2e} (row {j}: H_ref = {H_ref[j]:.10g}); "
            f"per row |A err| {', '.join(f'{e:.1e}' for e in errA)}; |H err| {', '.join(f'{e:.1e}' for e in errH)}")
