#!/usr/bin/env python
r"""Benchmark of the MePoly normalizer: quadrature accuracy, speed and memory, scaling with D.

Usage (from the repository root)::

    python benchmarks/normalizer.py [--quick] [--seed 0] [--out benchmarks/results]

Prints Markdown tables and writes them to ``OUT/normalizer.md``, with the plots
``OUT/normalizer_accuracy.png`` and ``OUT/normalizer_scaling.png``.

Sections
--------
1. **Accuracy per node.**  ``|A error|`` of every quadrature rule at node counts 256 .. 65536
   on the natural parameters that project the paper's lemniscate and two-moons Boltzmann
   targets ``exp(r / alpha)`` (alpha 0.2 and 0.05) onto the order-14 Legendre basis, against
   a 1024 x 1024 tensor Gauss-Legendre float64 reference.  The reference is evaluated with an
   independent separable formula (``E = T(x) L T(y)^T`` with numpy's Legendre Vandermonde
   matrices), not with the package's feature code or normalizer.
2. **Speed and peak memory** of ``log_prob + entropy`` + backward at batch 4096, D = 2,
   order 14, float32, one thread: the package's streaming normalizer (its default node-feature
   operator, sum-factorized for these tensor rules, and the dense one), plain autograd on the
   materialized ``batch x nodes`` grid (the paper's formulation), and the floor (a bare matmul
   of the same shape + logsumexp, no grad).  Times are the best of interleaved repeats in this
   process; peak memory is measured per variant in a fresh subprocess (``VmHWM`` reset via
   ``/proc/self/clear_refs``).  Then the dense against the Kronecker operator at batch 171
   and 4096 on ``gauss_legendre:80`` and ``gauss_legendre:64``, the normalizer work of one PPO
   iteration of the paper's bandit (60 minibatches of 171), the paper's PPO-iteration workload
   with a network head (1024 samples, 10 epochs x 6 minibatches), and the tiling of the stream.
3. **Scaling with D** (1..8): nodes, number of parameters, time and ``|A error|`` of the
   package default, tensor Gauss-Legendre and Sobol' rules on random natural parameters of a
   fixed scale, against 10^6..10^8-node tensor Gauss-Legendre references evaluated by
   :func:`separable_log_partition` (numpy only).

The default rule of each D is read from ``mepoly_dist.quadrature.default_rule`` at run time.

``--quick`` shrinks every size for a smoke run (under a minute); its numbers are not the
reported ones.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import gc
import itertools
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

# one thread everywhere (numpy/scipy's BLAS too): the machine is shared; set before numpy loads
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_model, markdown_table, mem_total_gib  # noqa: E402
from numpy.polynomial import legendre  # noqa: E402
from scipy.special import logsumexp as np_logsumexp  # noqa: E402

from mepoly_dist import MePoly, MePolyFamily, basis  # noqa: E402
from mepoly_dist.normalizer import log_partition_and_entropy  # noqa: E402
from mepoly_dist.quadrature import default_rule  # noqa: E402
from mepoly_dist.fit import project_energy  # noqa: E402
from mepoly_dist.zoo.targets import boltzmann_log_density, target_points  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOL = 1e-6  # the accuracy target of section 1
NODE_BUDGET = 8192
TARGETS = [("lemniscate", 0.2), ("lemniscate", 0.05), ("two_moons", 0.2), ("two_moons", 0.05)]
SCALE = 3.0  # section 2/3 random parameters: pointwise std of the energy <= SCALE (= SCALE at the corners)


# ----------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------
def md_table(header, rows, align=None):
    return markdown_table(header, rows, align).rstrip("\n")


def fmt_err(e):
    return "0" if e == 0 else f"{e:.1e}"


def fmt_t(t):
    return f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"


def fmt_mib(m):
    return f"{m:.0f} MiB" if m >= 10 else f"{m:.1f} MiB"


def random_params(dim, order, batch, gen, scale=SCALE, dtype=torch.float64):
    """``lambda_alpha ~ N(0, scale^2 / (F - 1))`` for alpha != 0, ``lambda_0 = 0``: with Legendre
    features (|phi| <= 1) the energy has pointwise std <= scale, equal to scale at the corners."""
    f = basis.num_features(dim, order)
    lam = torch.randn(batch, f, generator=gen, dtype=torch.float64) * (scale / math.sqrt(max(f - 1, 1)))
    lam[:, 0] = 0.0
    return lam.to(dtype)


def timed(fn, *args):
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def interleaved_best(variants: dict, repeats: int, warmup=True):
    """Run every variant ``repeats`` times in round-robin order (so that load from other
    processes hits them alike); return ``{name: (best, median)}``."""
    if warmup:
        for fn in variants.values():
            fn()
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            times[name].append(timed(fn))
    return {name: (min(ts), float(np.median(ts))) for name, ts in times.items()}


# ----------------------------------------------------------------------------------------
# the implementations compared in section 2
# ----------------------------------------------------------------------------------------
def streaming_step(fam, lam, x):
    """The package: ``MePoly(...).log_prob(x) + entropy()``, backward."""
    lam = lam.detach().requires_grad_()
    dist = MePoly(lam, fam)
    (dist.log_prob(x) + dist.entropy()).sum().backward()
    return lam.grad


_TWINS = {}


def twin(fam, node_operator):
    """The same family with the node-feature operator forced (``"dense"`` or ``"kronecker"``)."""
    if fam.node_operator.kind == node_operator:
        return fam
    key = (id(fam), node_operator)
    if key not in _TWINS:
        _TWINS[key] = (fam, MePolyFamily(fam.dim, fam.order, fam.basis, fam.quadrature, dtype=fam.dtype, node_operator=node_operator))
    return _TWINS[key][1]


def streaming_dense_step(fam, lam, x):
    """``streaming_step`` with the dense node-feature operator (the stored ``(N, F)`` matrix)."""
    return streaming_step(twin(fam, "dense"), lam, x)


def functional_step(fam, lam, x, chunk, rows=None):
    """What ``streaming_step`` does, through the functional normalizer with a fixed tiling
    (``rows`` batch rows, default all, by ``chunk`` nodes) and the family's operator."""
    lam = lam.detach().requires_grad_()
    A, H = log_partition_and_entropy(lam, fam.node_operator, fam.log_weights, chunk, rows)
    ((fam.features(x) * lam).sum(-1) - A + H).sum().backward()
    return lam.grad


def streaming_forward(fam, lam, x):
    with torch.no_grad():
        dist = MePoly(lam, fam)
        return dist.log_prob(x) + dist.entropy()


def materialized_terms(lam, feats, logw, x_feats):
    """The paper's formulation with plain autograd on the ``batch x nodes`` grid."""
    e = lam @ feats.T  # (B, N) energies at the nodes
    logits = e + logw
    A = torch.logsumexp(logits, dim=-1)
    p = torch.softmax(logits, dim=-1)
    H = A - (p * e).sum(-1)
    log_prob = (x_feats * lam).sum(-1) - A
    return log_prob, H


def materialized_step(fam, lam, x):
    lam = lam.detach().requires_grad_()
    log_prob, H = materialized_terms(lam, fam.node_features, fam.log_weights, fam.features(x))
    (log_prob + H).sum().backward()
    return lam.grad


def floor_step(fam, lam, x):
    """Floor: one matmul of the same shape (+ the log-weights) and a logsumexp, no grad."""
    with torch.no_grad():
        return torch.logsumexp(torch.addmm(fam.log_weights, lam, fam.node_features.T), dim=-1)


def floor_chunked_step(fam, lam, x, chunk=256):
    """Stricter floor: the same matmul + logsumexp in cache-sized node chunks, no grad."""
    with torch.no_grad():
        feats, logw = fam.node_features, fam.log_weights
        parts = [
            torch.logsumexp(torch.addmm(logw[s : s + chunk], lam, feats[s : s + chunk].T), dim=-1)
            for s in range(0, feats.shape[0], chunk)
        ]
        return torch.logsumexp(torch.stack(parts, -1), dim=-1)


VARIANTS = {
    "streaming": streaming_step,
    "streaming_dense": streaming_dense_step,
    "streaming_fwd": streaming_forward,
    "materialized": materialized_step,
    "floor": floor_step,
    "floor_chunked": floor_chunked_step,
}
VARIANT_LABEL = {
    "streaming": "(a) streaming: MePoly log_prob + entropy, backward",
    "streaming_dense": "(a2) the same with the dense operator",
    "streaming_fwd": "(a') streaming, forward only (no grad)",
    "materialized": "(b) materialized grid, plain autograd",
    "floor": "(c) floor: matmul + logsumexp, no grad",
    "floor_chunked": "(c') floor in 256-node chunks, no grad",
}


# ----------------------------------------------------------------------------------------
# peak memory in a fresh subprocess
# ----------------------------------------------------------------------------------------
def _status_kib(field):
    return int(re.search(field + r":\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def memory_child(cfg):
    """Entry point of the ``--memory-child`` subprocess: one variant, one measured call."""
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(cfg["seed"])
    fam = MePolyFamily(2, cfg["order"], quadrature=cfg["spec"], dtype=torch.float32)
    lam = random_params(2, cfg["order"], cfg["batch"], gen, dtype=torch.float32)
    x = torch.rand(cfg["batch"], 2, generator=gen, dtype=torch.float64).float() * 2 - 1
    fn = VARIANTS[cfg["variant"]]
    fn(fam, lam, x)  # warm-up: lazy initialisation of kernels/thread pools is not counted
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM) to the current RSS
    fn(fam, lam, x)
    peak = _status_kib("VmHWM")
    print(json.dumps({"peak_mib": (peak - before) / 1024, "base_mib": before / 1024}))


def measure_memory(variant, spec, batch, order, seed):
    cfg = dict(variant=variant, spec=spec, batch=batch, order=order, seed=seed)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--memory-child", json.dumps(cfg)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------
# section 1: accuracy per node on the paper's targets
# ----------------------------------------------------------------------------------------
def _exponents(dim: int, order: int) -> np.ndarray:
    """All exponent vectors with total degree <= order (any order of rows), numpy only."""
    rows = [a for a in itertools.product(range(order + 1), repeat=dim) if sum(a) <= order]
    return np.array(rows, dtype=np.int64).reshape(-1, dim)


def _grid_features(dim: int, order: int, points: int):
    """Legendre features ``(points**dim, F)`` and log-weights of a tensor Gauss-Legendre grid
    (numpy's ``leggauss`` and ``legvander``; none of the package's code)."""
    x, w = legendre.leggauss(points)
    table = legendre.legvander(x, order)  # (p, n + 1)
    exps = _exponents(dim, order)
    idx = np.stack(np.meshgrid(*([np.arange(points)] * dim), indexing="ij"), -1).reshape(-1, dim)
    phi = np.ones((idx.shape[0], exps.shape[0]))
    for d in range(dim):
        phi *= table[idx[:, d]][:, exps[:, d]]
    return phi, np.log(w)[idx].sum(-1), exps


def separable_log_partition(lam, exponents, order: int, points: int, max_block: int = 2**22) -> np.ndarray:
    r"""Independent float64 reference: ``log Z`` on a tensor Gauss-Legendre grid with ``points``
    per axis, for each row of ``lam`` ``(K, F)`` (columns ordered as ``exponents`` ``(F, D)``).

    The dimensions are split in two halves, ``x = (y, z)``; since
    :math:`\phi_\alpha(x) = \phi_{\alpha_y}(y)\,\phi_{\alpha_z}(z)`, the energy on the grid is
    the matrix product ``U Lambda V^T`` with ``U``, ``V`` the half-grid features and ``Lambda``
    the parameters rearranged as a matrix -- about ``sqrt(nodes)`` times cheaper than
    materializing the features of every node, which makes 10^7..10^8-node references affordable.
    """
    lam = np.atleast_2d(np.asarray(lam, dtype=np.float64))
    exponents = np.asarray(exponents)
    dim = exponents.shape[1]
    k = max(1, dim // 2)
    U, wu, e1 = _grid_features(k, order, points)
    if dim > k:
        V, wv, e2 = _grid_features(dim - k, order, points)
    else:
        V, wv, e2 = np.ones((1, 1)), np.zeros(1), np.zeros((1, 0), dtype=np.int64)
    row = {tuple(a): i for i, a in enumerate(e1)}
    col = {tuple(a): i for i, a in enumerate(e2)}
    r = np.array([row[tuple(a[:k])] for a in exponents])
    c = np.array([col[tuple(a[k:])] for a in exponents])
    step = max(1, max_block // V.shape[0])
    out = np.empty(lam.shape[0])
    for b in range(lam.shape[0]):
        L = np.zeros((e1.shape[0], e2.shape[0]))
        L[r, c] = lam[b]
        UL = U @ L
        parts = [np_logsumexp(UL[s : s + step] @ V.T + wu[s : s + step, None] + wv[None, :]) for s in range(0, U.shape[0], step)]
        out[b] = np_logsumexp(parts)
    return out


def accuracy_specs(quick):
    if quick:
        per_dim = [16, 64, 90, 256]
        gl_extra = [80]
        sobol = [2**8, 2**16]
    else:
        per_dim = [16, 23, 32, 45, 64, 90, 128, 181, 256]
        gl_extra = [56, 68, 72, 76, 80, 84, 88, 96]
        sobol = [2**k for k in range(8, 17)]
    specs = [("trapezoid", f"trapezoid:{p}") for p in per_dim]
    specs += [("gauss_legendre", f"gauss_legendre:{p}") for p in sorted(set(per_dim + gl_extra))]
    for pp in (4,) if quick else (2, 4, 8):
        panels = sorted({max(1, round(p / pp)) for p in per_dim})
        specs += [(f"composite_gauss_legendre (x{pp})", f"composite_gauss_legendre:{n}x{pp}") for n in panels]
    specs += [("sobol", f"sobol:{n}") for n in sobol]
    return specs


def section_accuracy(args, log):
    order = 14
    t0 = time.perf_counter()
    fam_proj = MePolyFamily(2, order, quadrature="gauss_legendre:16", dtype=torch.float64)
    exps = fam_proj.exponents.numpy()
    lams = []
    for name, alpha in TARGETS:
        pts = target_points(name, seed=args.seed)
        energy = lambda x, pts=pts, alpha=alpha: boltzmann_log_density(x, pts, alpha)  # noqa: E731
        lams.append(project_energy(energy, fam_proj, points_per_dim=128 if args.quick else 256))
    lams = torch.stack(lams)  # (4, 120) float64
    t_proj = time.perf_counter() - t0
    ref_points = 1024
    ref = separable_log_partition(lams.numpy(), exps, order, ref_points)
    ref_check = separable_log_partition(lams.numpy(), exps, order, 2 * ref_points)
    ref_err = float(np.abs(ref - ref_check).max())

    results = []  # dicts: family, spec, nodes, err64 (4,), err32 (4,)
    for family_name, spec in accuracy_specs(args.quick):
        errs = {}
        for dtype in (torch.float64, torch.float32):
            fam = MePolyFamily(2, order, quadrature=spec, dtype=dtype)
            with torch.no_grad():
                A = MePoly(lams.to(dtype), fam).log_partition.double().numpy()
            errs[dtype] = np.abs(A - ref)
        results.append(
            dict(family=family_name, spec=spec, nodes=fam.quadrature.num_nodes, err64=errs[torch.float64], err32=errs[torch.float32])
        )
        del fam
    default_spec = default_rule(2).spec

    lines = ["## 1. Accuracy per node (D = 2, order 14, the paper's targets)", ""]
    lines.append(
        f"Natural parameters: L2 projection (`project_energy`, {128 if args.quick else 256} per axis Gauss-Legendre) of the Boltzmann "
        f"log-density `r(x) / alpha` of `target_points(name, seed={args.seed})` onto the order-14 Legendre basis "
        f"(120 parameters), for the four (target, alpha) pairs below.  Reference: {ref_points} x {ref_points} "
        f"tensor Gauss-Legendre in float64, evaluated independently of the package (numpy Legendre tables, energy on the grid as `T L T^T`); its "
        f"own error, estimated against {2 * ref_points} x {2 * ref_points}, is {ref_err:.1e}.  Reference values "
        + ", ".join(f"A({n}, {a}) = {r:.6f}" for (n, a), r in zip(TARGETS, ref))
        + f".  Errors of each rule are computed with the package (`MePoly(...).log_partition`) in float64 "
        f"(pure quadrature error); the last column repeats the worst case with float32 features and parameters "
        f"(the working precision, which adds rounding error).  Projection took {t_proj:.1f} s."
    )
    lines.append("")
    header = ["rule", "nodes"] + [f"{n} a={a}" for n, a in TARGETS] + ["max (float64)", "max (float32)", f"<= {TOL:.0e} on all four"]
    rows = []
    for r in results:
        mark = " **(default)**" if r["spec"] == default_spec else ""
        rows.append(
            [f"`{r['spec']}`{mark}", r["nodes"]]
            + [fmt_err(e) for e in r["err64"]]
            + [fmt_err(r["err64"].max()), fmt_err(r["err32"].max()), "yes" if r["err64"].max() <= TOL else "no"]
        )
    lines.append(md_table(header, rows, ["---"] + ["--:"] * (len(header) - 2) + [":-:"]))
    lines.append("")

    # best rule within node budgets
    budgets = [256, 1024, 2048, 4096, 8192, 16384, 65536]
    brows = []
    for b in budgets:
        cands = [r for r in results if r["nodes"] <= b]
        if not cands:
            continue
        best = min(cands, key=lambda r: (r["err64"].max(), r["nodes"]))
        brows.append([b, f"`{best['spec']}`", best["nodes"], fmt_err(best["err64"].max())])
    lines.append("Most accurate rule (worst case over the four targets, float64) within a node budget:")
    lines.append("")
    lines.append(md_table(["node budget", "best rule", "nodes", "max abs(A error)"], brows))
    lines.append("")
    winners = {}
    for b in budgets:
        cands = [r for r in results if r["nodes"] <= b]
        if cands:
            winners.setdefault(min(cands, key=lambda r: (r["err64"].max(), r["nodes"]))["family"], []).append(b)
    top = max(winners, key=lambda k: len(winners[k]))
    lines.append(
        f"Most accurate per node: **{top}** (best within the budgets {', '.join(f'{b:,}' for b in winners[top])}); "
        + "; ".join(f"{k} at {', '.join(f'{b:,}' for b in v)}" for k, v in winners.items() if k != top)
        + "."
    )
    lines.append("")

    # per-family: fewest nodes reaching TOL on all four
    frows = []
    for fam_name in dict.fromkeys(r["family"] for r in results):
        ok = [r for r in results if r["family"] == fam_name and r["err64"].max() <= TOL]
        if ok:
            r = min(ok, key=lambda r: r["nodes"])
            frows.append([fam_name, f"`{r['spec']}`", r["nodes"], fmt_err(r["err64"].max())])
        else:
            frows.append([fam_name, "none tested", "-", "-"])
    lines.append(f"Fewest nodes per rule family reaching abs(A error) <= {TOL:.0e} on all four targets:")
    lines.append("")
    lines.append(md_table(["rule family", "smallest passing rule", "nodes", "max abs(A error)"], frows))
    lines.append("")

    # the targets of the issue
    within = [r for r in results if r["nodes"] <= NODE_BUDGET and r["err64"].max() <= TOL]
    target_met = bool(within)
    best_within = min(within, key=lambda r: r["nodes"]) if within else None
    default = next((r for r in results if r["spec"] == default_spec), None)
    gl_pass = sorted(
        (r for r in results if r["family"] == "gauss_legendre" and r["err64"].max() <= TOL), key=lambda r: r["nodes"]
    )
    smallest_gl = gl_pass[0] if gl_pass else None
    trap = next((r for r in results if r["spec"] == "trapezoid:256"), None)
    lines.append("**Targets.**")
    lines.append("")
    if best_within:
        lines.append(
            f"* Some rule with at most {NODE_BUDGET:,} nodes reaches abs(A error) <= {TOL:.0e} on all four: "
            f"**{'MET' if target_met else 'NOT MET'}** -- the smallest is `{best_within['spec']}` "
            f"({best_within['nodes']:,} nodes, worst {fmt_err(best_within['err64'].max())}); passing rules within the budget: "
            + ", ".join(f"`{r['spec']}`" for r in sorted(within, key=lambda r: r["nodes"]))
            + "."
        )
    else:
        lines.append(f"* Some rule with at most {NODE_BUDGET:,} nodes reaches abs(A error) <= {TOL:.0e} on all four: **NOT MET**.")
    if default is not None:
        lines.append(
            f"* The package default for D = 2, `{default_spec}` ({default['nodes']:,} nodes): errors "
            + " / ".join(fmt_err(e) for e in default["err64"])
            + f" (float64; {fmt_err(default['err32'].max())} worst in float32) -- "
            + ("meets" if default["err64"].max() <= TOL else "misses")
            + f" {TOL:.0e}."
        )
    gl90 = next((r for r in results if r["spec"] == "gauss_legendre:90"), None)
    if gl90 is not None and default_spec != "gauss_legendre:90":
        lines.append(
            f"* `gauss_legendre:90` (8,100 nodes, the default before this measurement): errors "
            + " / ".join(fmt_err(e) for e in gl90["err64"])
            + f" (float64; {fmt_err(gl90['err32'].max())} worst in float32)."
        )
    if smallest_gl is not None:
        lines.append(
            f"* Smallest tested Gauss-Legendre rule meeting {TOL:.0e} on all four: `{smallest_gl['spec']}` "
            f"({smallest_gl['nodes']:,} nodes, worst {fmt_err(smallest_gl['err64'].max())}); "
            + (
                f"so a default smaller than `{default_spec}` would also meet the target (passing: "
                + ", ".join(f"`{r['spec']}`" for r in gl_pass if r["nodes"] < default["nodes"])
                + ")."
                if default is not None and smallest_gl["nodes"] < default["nodes"]
                else f"no tested Gauss-Legendre rule smaller than the default `{default_spec}` meets it."
            )
        )
    lines.append(
        f"* In float32 (the working precision) the rounding of A itself is of the order of this target: for A ~ 20 "
        f"one float32 ulp is {float(np.spacing(np.float32(20.0))):.1e}, so the float32 column bottoms out near 1e-6 "
        f"whatever the rule."
    )
    if trap is not None:
        lines.append(
            "* Paper's `trapezoid:256` (65,536 nodes): "
            + " / ".join(fmt_err(e) for e in trap["err64"])
            + f" (sanity anchor: 1.7e-5 / 8.6e-6 / 3.5e-6 / 1.3e-7)."
        )
    lines.append("")
    log("\n".join(lines))
    summary = dict(
        target_met=target_met,
        best_within=best_within and best_within["spec"],
        default=default_spec,
        default_err=default and default["err64"].tolist(),
        smallest_gl=smallest_gl and smallest_gl["spec"],
    )
    return lines, results, lams, summary


def plot_accuracy(results, out, default_spec):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5), sharex=True, sharey=True)
    families = list(dict.fromkeys(r["family"] for r in results))
    styles = {
        "trapezoid": ("C3", "s", "-"),
        "gauss_legendre": ("C0", "o", "-"),
        "composite_gauss_legendre (x2)": ("C2", "^", "--"),
        "composite_gauss_legendre (x4)": ("C1", "v", "--"),
        "composite_gauss_legendre (x8)": ("C4", "D", "--"),
        "sobol": ("C7", "x", ":"),
    }
    floor = 1e-16
    for k, (ax, (tname, alpha)) in enumerate(zip(axes.flat, TARGETS)):
        for fam_name in families:
            rs = sorted((r for r in results if r["family"] == fam_name), key=lambda r: r["nodes"])
            color, marker, ls = styles.get(fam_name, ("k", ".", "-"))
            ax.plot(
                [r["nodes"] for r in rs],
                [max(r["err64"][k], floor) for r in rs],
                color=color,
                marker=marker,
                ls=ls,
                ms=4,
                label=fam_name,
            )
        d = next((r for r in results if r["spec"] == default_spec), None)
        if d is not None:
            ax.scatter([d["nodes"]], [max(d["err64"][k], floor)], s=160, facecolors="none", edgecolors="k", zorder=5, label=f"default {default_spec}")
        ax.axhline(TOL, color="k", lw=0.8, ls="--")
        ax.axvline(NODE_BUDGET, color="gray", lw=0.8, ls=":")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"{tname}, alpha = {alpha}")
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("quadrature nodes")
    for ax in axes[:, 0]:
        ax.set_ylabel("|A error| (float64)")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"MePoly log-partition error vs nodes (D=2, order 14); dashed: {TOL:.0e}, dotted: {NODE_BUDGET} nodes")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------------------
# section 2: speed and memory at batch 4096, and the PPO workload
# ----------------------------------------------------------------------------------------
def ppo_iteration(fam, impl, head, obs, actions, epochs, minibatch, gen):
    """One PPO update's worth of log_prob + entropy forward/backward (no optimizer step);
    ``impl``: ``"streaming"`` (the family's operator), ``"streaming_dense"`` or ``"materialized"``."""
    n = obs.shape[0]
    dense = twin(fam, "dense")
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for idx in perm.split(minibatch):
            lam = head(obs[idx])
            x = actions[idx]
            if impl in ("streaming", "streaming_dense"):
                dist = MePoly(lam, fam if impl == "streaming" else dense)
                log_prob, H = dist.log_prob(x), dist.entropy()
            else:
                log_prob, H = materialized_terms(lam, fam.node_features, fam.log_weights, fam.features(x))
            loss = -(log_prob.mean() + 0.01 * H.mean())
            head.zero_grad(set_to_none=True)
            loss.backward()


def ppo_normalizer_work(fam, lam, epochs, minibatch, gen):
    """The normalizer work of one PPO iteration: for each minibatch of rows of ``lam``, forward
    and backward of ``log_partition_and_entropy`` with the package's tiling (no network)."""
    for _ in range(epochs):
        for idx in torch.randperm(lam.shape[0], generator=gen).split(minibatch):
            lam_b = lam[idx].requires_grad_()
            rows, chunk = fam.tile_for(lam_b.shape[0])
            A, H = log_partition_and_entropy(lam_b, fam.node_operator, fam.log_weights, chunk, rows)
            (A.mean() - 0.01 * H.mean()).backward()


def previous_chunk(batch):
    """Nodes per step of the package before the tiling of large batches (all rows at once)."""
    return max(256, (1 << 18) // batch)


def section_speed(args, log):
    order, dim = 14, 2
    batch = 512 if args.quick else 4096
    repeats = 2 if args.quick else 7
    default_spec = default_rule(dim).spec
    specs = [default_spec, "trapezoid:128" if args.quick else "trapezoid:256"]
    gen = torch.Generator().manual_seed(args.seed)
    lam = random_params(dim, order, batch, gen, dtype=torch.float32)
    x = torch.rand(batch, dim, generator=gen, dtype=torch.float64).float() * 2 - 1
    timing, checks, memory = {}, {}, {}
    for spec in specs:
        fam = MePolyFamily(dim, order, quadrature=spec, dtype=torch.float32)
        # correctness: the streaming and the materialized implementation agree, and so do the operators
        g_s = streaming_step(fam, lam, x)
        g_d = streaming_dense_step(fam, lam, x)
        g_m = materialized_step(fam, lam, x)
        with torch.no_grad():
            lp_m, H_m = materialized_terms(lam, fam.node_features, fam.log_weights, fam.features(x))
            d = MePoly(lam, fam)
            lp_s, H_s = d.log_prob(x), d.entropy()
        checks[spec] = dict(
            operator=fam.node_operator.kind,
            grad=float((g_s - g_m).abs().max()),
            grad_dense=float((g_s - g_d).abs().max()),
            grad_scale=float(g_m.abs().max()),
            logp=float((lp_s - lp_m).abs().max()),
            H=float((H_s - H_m).abs().max()),
        )
        fns = {name: (lambda f=f: f(fam, lam, x)) for name, f in VARIANTS.items()}
        log(f"  timing {spec} ({fam.quadrature.num_nodes} nodes), {repeats} interleaved repeats ...")
        timing[spec] = interleaved_best(fns, repeats)
        timing[spec]["_nodes"] = fam.quadrature.num_nodes
        timing[spec]["_operator"] = fam.node_operator.kind
        timing[spec]["_tile"] = fam.tile_for(batch)
        del fam
        _TWINS.clear()
        gc.collect()
        for name in VARIANTS:
            if args.quick and spec != default_spec and name != "streaming":
                continue
            memory[(spec, name)] = measure_memory(name, spec, batch, order, args.seed)

    # dense against Kronecker operator, through MePoly (the package's tiling), at two batch sizes
    op_specs = [default_spec, "gauss_legendre:64"]
    op_batches = [171, batch]
    op_times = {}
    for spec in op_specs:
        kron = MePolyFamily(dim, order, quadrature=spec, dtype=torch.float32, node_operator="kronecker")
        dense = MePolyFamily(dim, order, quadrature=spec, dtype=torch.float32, node_operator="dense")
        for b in op_batches:
            lam_b, x_b = lam[:b], x[:b]
            fns = {
                "kronecker": lambda lam_b=lam_b, x_b=x_b: streaming_step(kron, lam_b, x_b),
                "dense": lambda lam_b=lam_b, x_b=x_b: streaming_step(dense, lam_b, x_b),
                "previous": lambda lam_b=lam_b, x_b=x_b: functional_step(dense, lam_b, x_b, previous_chunk(b)),
            }
            log(f"  operators {spec}, batch {b} ...")
            op_times[(spec, b)] = interleaved_best(fns, repeats if b > 1000 else 3 * repeats)
            op_times[(spec, b)]["_tile"] = (kron.tile_for(b), dense.tile_for(b))
        del kron, dense

    # the normalizer work of one PPO iteration of the paper's bandit: 10 epochs x 6 minibatches of <= 171
    n_samples, epochs, minibatch = 1024, (1 if args.quick else 10), 171
    ppo_repeats = 1 if args.quick else 3
    lam_ppo = random_params(dim, order, n_samples, gen, dtype=torch.float32)
    ppo_norm = {}
    for spec in op_specs:
        fams = {k: MePolyFamily(dim, order, quadrature=spec, dtype=torch.float32, node_operator=k) for k in ("kronecker", "dense")}
        fns = {k: (lambda f=f: ppo_normalizer_work(f, lam_ppo, epochs, minibatch, gen)) for k, f in fams.items()}
        log(f"  PPO normalizer work {spec} ...")
        for k, (best, med) in interleaved_best(fns, ppo_repeats + 2, warmup=True).items():
            ppo_norm[(spec, k)] = (best * (10 / epochs), med * (10 / epochs))
        del fams

    # the PPO workload with a network head
    obs_dim = 16
    ppo = {}
    impls = ("streaming", "streaming_dense", "materialized")
    for spec in specs:
        fam = MePolyFamily(dim, order, quadrature=spec, dtype=torch.float32)
        torch.manual_seed(args.seed)
        head = torch.nn.Linear(obs_dim, fam.num_params)
        with torch.no_grad():
            head.weight.mul_(SCALE / math.sqrt(fam.num_params))
        obs = torch.randn(n_samples, obs_dim, generator=gen)
        actions = torch.rand(n_samples, dim, generator=gen) * 2 - 1
        fns = {impl: (lambda impl=impl: ppo_iteration(fam, impl, head, obs, actions, epochs, minibatch, gen)) for impl in impls}
        log(f"  PPO workload {spec} ...")
        for impl, (best, _) in interleaved_best(fns, ppo_repeats, warmup=False).items():
            ppo[(spec, impl)] = best * (10 / epochs)
        del fam
        _TWINS.clear()

    # tiling of the stream: all rows at once with a fixed chunk, against the package's tiles
    chunks = [256, 1024] if args.quick else [256, 512, 1024, 2048, 6400]
    tile_times, package_tile = {}, {}
    for kind in ("kronecker", "dense"):
        fam = MePolyFamily(dim, order, quadrature=default_spec, dtype=torch.float32, node_operator=kind)
        for b in (minibatch, batch):
            lam_b, x_b = lam[:b], x[:b]
            package_tile[(kind, b)] = fam.tile_for(b)
            fns = {c: (lambda c=c, lam_b=lam_b, x_b=x_b: functional_step(fam, lam_b, x_b, c)) for c in chunks}
            fns["package"] = lambda lam_b=lam_b, x_b=x_b: streaming_step(fam, lam_b, x_b)
            log(f"  tiling {kind}, batch {b} ...")
            tile_times[(kind, b)] = interleaved_best(fns, repeats if b == batch else 3 * repeats)
        del fam

    lines = [f"## 2. Speed and peak memory (batch {batch}, D = {dim}, order {order}, float32, 1 thread)", ""]
    tiles = "; ".join(f"`{s}`: {timing[s]['_operator']} operator, tiles of {timing[s]['_tile'][0]} rows x {timing[s]['_tile'][1]} nodes" for s in specs)
    lines.append(
        f"Work per call: `log_prob(x) + entropy()` for a batch of {batch} natural-parameter vectors "
        f"(random, energy pointwise std <= {SCALE:g}) and {batch} actions, summed, then backward to the parameters. "
        f"(a) the package (`MePoly`, streaming custom autograd with the family's default node-feature operator -- {tiles}); "
        f"(a2) the same with `node_operator=\"dense\"` (the stored `(N, F)` feature matrix); "
        f"(b) the paper's formulation with plain autograd: `e = lam @ Phi.T; logits = e + logw; A = logsumexp; "
        f"p = softmax; H = A - sum(p * e); log_prob = lam . phi(x) - A`; (c) the floor: `logsumexp(addmm(logw, lam, Phi.T))` "
        f"without grad (one dense matmul of the same shape); (c') the same floor in 256-node chunks (no `batch x nodes` matrix). "
        f"The sum-factorized operator does fewer multiply-adds than the dense matmul of the floors, so (a) can beat them. "
        f"Time: best (median) of {repeats} repeats, variants interleaved round-robin in one process. "
        f"Peak memory: each variant in a fresh subprocess (`MALLOC_MMAP_THRESHOLD_=65536`, warm-up call, "
        f"`malloc_trim`), peak RSS (`VmHWM`, reset through `/proc/self/clear_refs`) during one call minus the RSS "
        f"before it, i.e. the memory the call itself needs on top of parameters, inputs and the family's node features. "
        f"For scale: one `batch x nodes` float32 matrix is "
        + " and ".join(f"{batch * timing[s]['_nodes'] * 4 / 2**20:.0f} MiB (`{s}`)" for s in specs)
        + "."
    )
    lines.append("")
    header = ["rule", "nodes", "variant", "time best (median)", "x floor (c)", "x chunked floor (c')", "peak memory", "memory / materialized"]
    rows = []
    summary = {}
    for spec in specs:
        t = timing[spec]
        floor_t, floor_c = t["floor"][0], t["floor_chunked"][0]
        mat_mem = memory.get((spec, "materialized"), {}).get("peak_mib")
        for name in VARIANTS:
            best, med = t[name]
            mem = memory.get((spec, name), {}).get("peak_mib")
            rows.append(
                [
                    f"`{spec}`" + (" (default)" if spec == default_spec else ""),
                    f"{t['_nodes']:,}",
                    VARIANT_LABEL[name],
                    f"{fmt_t(best)} ({fmt_t(med)})",
                    f"{best / floor_t:.2f}",
                    f"{best / floor_c:.2f}",
                    fmt_mib(mem) if mem is not None else "-",
                    f"{mem / mat_mem:.3f}" if (mem is not None and mat_mem) else "-",
                ]
            )
        s_mem = memory.get((spec, "streaming"), {}).get("peak_mib")
        summary[spec] = dict(
            t_stream=t["streaming"][0],
            t_dense=t["streaming_dense"][0],
            t_mat=t["materialized"][0],
            t_floor=floor_t,
            t_floor_chunked=floor_c,
            mem_stream=s_mem,
            mem_mat=mat_mem,
        )
    lines.append(md_table(header, rows, ["---", "--:", "---", "--:", "--:", "--:", "--:", "--:"]))
    lines.append("")
    lines.append(
        "Agreement (float32): "
        + "; ".join(
            f"`{s}`: (a) vs (b) max abs diff of grad {c['grad']:.1e} (grad scale {c['grad_scale']:.1f}), log_prob {c['logp']:.1e}, "
            f"entropy {c['H']:.1e}; (a) vs (a2) grad {c['grad_dense']:.1e}"
            for s, c in checks.items()
        )
        + "."
    )
    lines.append("")
    lines.append("**Targets.**")
    lines.append("")
    for spec in specs:
        s = summary[spec]
        if s["mem_stream"] is not None and s["mem_mat"]:
            ok = s["mem_stream"] <= s["mem_mat"] / 10
            lines.append(
                f"* `{spec}`: streaming peak memory {fmt_mib(s['mem_stream'])} vs materialized {fmt_mib(s['mem_mat'])} "
                f"(ratio 1/{s['mem_mat'] / max(s['mem_stream'], 1e-9):.0f}): target <= 1/10 **{'MET' if ok else 'NOT MET'}**."
            )
        ok = s["t_stream"] <= 2 * s["t_floor"]
        ok_c = s["t_stream"] <= 2 * s["t_floor_chunked"]
        lines.append(
            f"* `{spec}`: streaming time {fmt_t(s['t_stream'])} = {s['t_stream'] / s['t_floor']:.2f} x the floor (c) "
            f"({fmt_t(s['t_floor'])}): target <= 2x **{'MET' if ok else 'NOT MET'}**; against the chunked floor (c') "
            f"{s['t_stream'] / s['t_floor_chunked']:.2f} x ({'within' if ok_c else 'over'} 2x). "
            f"Speed-up over the materialized autograd: {s['t_mat'] / s['t_stream']:.1f} x; over the dense operator (a2): "
            f"{s['t_dense'] / s['t_stream']:.2f} x."
        )
    lines.append("")

    lines.append(
        f"**Dense vs Kronecker operator** (`MePolyFamily(..., node_operator=...)`): the work of (a) through `MePoly` with each "
        f"operator and the package's tiling (`family.tile_for(batch)`, rows x nodes per step), and the package before the "
        f"Kronecker operator and the tiling ('previous': dense, all rows at once, {previous_chunk(batch)} nodes per step at "
        f"batch {batch}, `max(256, 2^18 / batch)` in general); best (median) of {repeats} repeats at batch {batch}, "
        f"{3 * repeats} at batch 171, interleaved:"
    )
    lines.append("")
    orow = []
    for (spec, b), t in op_times.items():
        (kr, kc), (dr, dc) = t["_tile"]
        orow.append(
            [
                f"`{spec}`",
                b,
                f"{fmt_t(t['previous'][0])} ({fmt_t(t['previous'][1])})",
                f"{fmt_t(t['dense'][0])} ({fmt_t(t['dense'][1])})",
                f"{fmt_t(t['kronecker'][0])} ({fmt_t(t['kronecker'][1])})",
                f"{t['dense'][0] / t['kronecker'][0]:.2f}",
                f"{t['previous'][0] / t['kronecker'][0]:.2f}",
                f"{kr} x {kc}",
            ]
        )
    lines.append(
        md_table(
            ["rule", "batch", "previous (dense, untiled)", "dense", "Kronecker", "dense / Kronecker", "previous / Kronecker", "tile (rows x nodes)"],
            orow,
        )
    )
    lines.append("")
    lines.append(
        f"**Normalizer work of one PPO iteration** of the paper's bandit ({n_samples} samples, 10 epochs x "
        f"{math.ceil(n_samples / minibatch)} minibatches of <= {minibatch} = {10 * math.ceil(n_samples / minibatch)} minibatches): "
        f"forward and backward of `log_partition_and_entropy` on random natural parameters (energy std <= {SCALE:g}) with "
        f"the package's tiling, no network; best (median) of {ppo_repeats + 2}"
        + (f"; --quick ran {epochs} epoch and scales by 10" if args.quick else "")
        + ":"
    )
    lines.append("")
    nrow = []
    for spec in op_specs:
        (db, dm), (kb, km) = ppo_norm[(spec, "dense")], ppo_norm[(spec, "kronecker")]
        nrow.append([f"`{spec}`", f"{db:.3f} s ({dm:.3f} s)", f"{kb:.3f} s ({km:.3f} s)", f"{db / kb:.2f}"])
    lines.append(md_table(["rule", "dense s/iteration", "Kronecker s/iteration", "speed-up"], nrow))
    lines.append("")
    lines.append(
        f"**PPO-iteration workload** ({n_samples} samples, 10 epochs x {math.ceil(n_samples / minibatch)} minibatches of "
        f"<= {minibatch}, order {order}, D = {dim}; a `Linear({obs_dim}, 120)` head predicts lambda; forward + backward of "
        f"`-(log_prob.mean() + 0.01 entropy.mean())` per minibatch, no optimizer step; best of {ppo_repeats}"
        + (f"; --quick ran {epochs} epoch and scales by 10" if args.quick else "")
        + "):"
    )
    lines.append("")
    prow = []
    for spec in specs:
        prow.append(
            [
                f"`{spec}`",
                f"{timing[spec]['_nodes']:,}",
                f"{ppo[(spec, 'streaming')]:.2f} s ({timing[spec]['_operator']})",
                f"{ppo[(spec, 'streaming_dense')]:.2f} s",
                f"{ppo[(spec, 'materialized')]:.2f} s",
            ]
        )
    lines.append(md_table(["rule", "nodes", "streaming (package) s/iteration", "streaming, dense operator", "materialized autograd s/iteration"], prow))
    lines.append("")
    lines.append("Reference point: the paper's reference implementation needs about 54 s per iteration on one core of this machine.")
    lines.append("")
    lines.append(
        f"**Tiling of the stream**, `{default_spec}`: the work of (a) through the functional "
        f"`log_partition_and_entropy(lam, family.node_operator, logw, chunk)` with all rows at once and a fixed chunk "
        f"(rounded down to whole 80-node slabs by the Kronecker operator), next to the package's tiles (`MePoly`, "
        f"`family.tile_for(batch)`: `chunk_size` = {MePolyFamily(1, 0).chunk_size} nodes, more for small batches, and "
        f"as many rows as keep a step near 2^18 (row, node) pairs); best of {repeats} ({3 * repeats} at batch {minibatch}):"
    )
    lines.append("")
    crow = []
    for (kind, b), t in tile_times.items():
        rows_, chunk_ = package_tile[(kind, b)]
        crow.append([kind, b] + [fmt_t(t[c][0]) for c in chunks] + [f"{fmt_t(t['package'][0])} ({rows_} x {chunk_})"])
    lines.append(md_table(["operator", "batch"] + [f"all rows, chunk {c}" for c in chunks] + ["package (rows x chunk)"], crow))
    lines.append("")
    log("\n".join(lines))
    return lines, dict(
        summary=summary, timing=timing, memory=memory, ppo=ppo, ppo_norm=ppo_norm, op_times=op_times, batch=batch, tile_times=tile_times
    )


# ----------------------------------------------------------------------------------------
# section 3: scaling with D
# ----------------------------------------------------------------------------------------
def order_for_dim(dim):
    return {1: 14, 2: 14, 3: 8}.get(dim, 4)


def gl_points_for_dim(dim):
    """Points per axis of the tensor Gauss-Legendre rule with about 8192 nodes (the defaults for D <= 3)."""
    return {1: 256, 2: 90, 3: 20, 4: 10, 5: 6, 6: 5, 7: 4, 8: 3}[dim]


#: reference grids of section 3: (points, points of the coarser check) per axis
REF_POINTS = {1: (4096, 2048), 2: (1024, 768), 3: (200, 160), 4: (48, 40), 5: (24, 20), 6: (14, 12), 7: (11, 10), 8: (9, 8)}
REF_POINTS_QUICK = {1: (1024, 512), 2: (256, 192), 3: (64, 48), 4: (20, 16), 5: (12, 10), 6: (8, 7), 7: (7, 6), 8: (6, 5)}


def reference_log_partition(dim, order, lam, quick):
    """Independent reference for section 3 and an estimate of its own error: a large tensor
    Gauss-Legendre rule through :func:`separable_log_partition`; the uncertainty is its
    difference to a coarser one (conservative: that mostly measures the coarser rule's error)."""
    big, small = (REF_POINTS_QUICK if quick else REF_POINTS)[dim]
    exps = basis.exponent_set(dim, order).numpy()
    a = separable_log_partition(lam.numpy(), exps, order, big)
    b = separable_log_partition(lam.numpy(), exps, order, small)
    return torch.from_numpy(a), torch.from_numpy(np.abs(a - b)), f"GL {big}^{dim} = {big**dim:.1e} (vs {small}^{dim})"


def section_scaling(args, log):
    dims = [1, 2, 4, 8] if args.quick else list(range(1, 9))
    batch = 256
    n_acc = 16 if args.quick else 32
    repeats = 1 if args.quick else 5
    rows = []
    for dim in dims:
        order = order_for_dim(dim)
        gen = torch.Generator().manual_seed(args.seed * 1000 + dim)
        lam_acc = random_params(dim, order, n_acc, gen)
        lam_t = random_params(dim, order, batch, gen, dtype=torch.float32)
        x = torch.rand(batch, dim, generator=gen, dtype=torch.float64).float() * 2 - 1
        t0 = time.perf_counter()
        ref, ref_unc, ref_name = reference_log_partition(dim, order, lam_acc, args.quick)
        t_ref = time.perf_counter() - t0
        default_spec = default_rule(dim).spec
        specs = [default_spec, f"gauss_legendre:{gl_points_for_dim(dim)}", "sobol:8192"] + ([] if args.quick else ["sobol:65536"])
        specs = list(dict.fromkeys(specs))
        for spec in specs:
            gc.collect()
            t0 = time.perf_counter()
            fam64 = MePolyFamily(dim, order, quadrature=spec, dtype=torch.float64)
            t_build = time.perf_counter() - t0
            with torch.no_grad():
                err = (MePoly(lam_acc, fam64).log_partition - ref).abs()
            nodes = fam64.quadrature.num_nodes
            del fam64
            fam = MePolyFamily(dim, order, quadrature=spec, dtype=torch.float32)
            operator = fam.node_operator.kind
            fns = {"s": lambda: streaming_step(fam, lam_t, x)}
            if operator != "dense":
                fns["d"] = lambda: streaming_dense_step(fam, lam_t, x)
            times = interleaved_best(fns, repeats)
            t_stream, t_dense = times["s"][0], times.get("d", (None,))[0]
            del fam
            _TWINS.clear()
            gc.collect()
            row = dict(
                dim=dim,
                order=order,
                F=basis.num_features(dim, order),
                spec=spec,
                default=spec == default_spec,
                nodes=nodes,
                operator=operator,
                t=t_stream,
                t_dense=t_dense,
                t_build=t_build,
                err_max=float(err.max()),
                err_med=float(err.median()),
                ref=ref_name,
                ref_unc=float(ref_unc.max()),
                ref_unc_med=float(ref_unc.median()),
                t_ref=t_ref,
            )
            rows.append(row)
            log(f"  D={dim} {spec}: {row}")
    lines = [f"## 3. Scaling with D (batch {batch}, float32 timing, 1 thread)", ""]
    lines.append(
        f"Orders: 14 for D = 1, 2; 8 for D = 3; 4 for D >= 4 (so that num_params stays <= 495). Natural parameters: "
        f"`lambda_alpha ~ N(0, {SCALE:g}^2 / (F - 1))` for alpha != 0 (seed {args.seed}), so the energy has pointwise "
        f"standard deviation <= {SCALE:g} (equal at the corners); {batch} such vectors for the timing, {n_acc} for the "
        f"accuracy. Time: `log_prob + entropy`, backward (the package's streaming path, float32), best of {repeats}, with "
        f"the family's default node-feature operator and, where that is the Kronecker one, with the dense one next to it "
        f"(interleaved). "
        f"abs(A error): float64, max and median over the {n_acc} vectors, against an independent reference computed "
        f"with its own code: a tensor Gauss-Legendre rule of 10^6..10^8 nodes evaluated by `separable_log_partition` "
        f"(numpy Legendre tables, energy as `U Lambda V^T` over two halves of the dimensions), uncertainty = its "
        f"difference to a coarser tensor rule (conservative). "
        f"Rules: the package default of each D, tensor Gauss-Legendre with about 8192 nodes "
        f"(p = 256, 90, 20, 10, 6, 5, 4, 3 points per axis), `sobol:8192` and `sobol:65536`. "
        f"'build' is the time to construct the family (node features in float64)."
    )
    lines.append("")
    header = ["D", "order", "num_params", "rule", "nodes", "operator", "time (a)", "time, dense operator", "build", "max abs(A err)", "median abs(A err)", "reference", "ref. uncertainty max (median)"]
    trows = []
    for r in rows:
        trows.append(
            [
                r["dim"],
                r["order"],
                r["F"],
                f"`{r['spec']}`" + (" (default)" if r["default"] else ""),
                f"{r['nodes']:,}",
                r["operator"],
                fmt_t(r["t"]),
                fmt_t(r["t_dense"]) if r["t_dense"] is not None else "-",
                fmt_t(r["t_build"]),
                fmt_err(r["err_max"]),
                fmt_err(r["err_med"]),
                r["ref"],
                f"{fmt_err(r['ref_unc'])} ({fmt_err(r['ref_unc_med'])})",
            ]
        )
    lines.append(md_table(header, trows, ["--:", "--:", "--:", "---", "--:", "---", "--:", "--:", "--:", "--:", "--:", "---", "--:"]))
    lines.append("")
    log("\n".join(lines))
    return lines, rows


def plot_scaling(rows, speed, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(14, 10))
    series = {
        "package default": ("k", "o", lambda r: r["default"]),
        "tensor Gauss-Legendre, p = 256, 90, 20, 10, 6, 5, 4, 3": ("C0", "s", lambda r: r["spec"] == f"gauss_legendre:{gl_points_for_dim(r['dim'])}"),
        "sobol:8192": ("C7", "x", lambda r: r["spec"] == "sobol:8192"),
        "sobol:65536": ("C2", "^", lambda r: r["spec"] == "sobol:65536"),
    }
    for label, (color, marker, pick) in series.items():
        rs = sorted((r for r in rows if pick(r)), key=lambda r: r["dim"])
        if not rs:
            continue
        d = [r["dim"] for r in rs]
        style = dict(color=color, marker=marker, mfc="none" if label == "package default" else color, ms=9 if label == "package default" else 6)
        axes[0, 0].plot(d, [r["t"] for r in rs], label=label, **style)
        axes[0, 1].plot(d, [max(r["err_max"], 1e-16) for r in rs], label=label + " (max)", **style)
        axes[0, 1].plot(d, [max(r["err_med"], 1e-16) for r in rs], ls="--", alpha=0.5, label=label + " (median)", **style)
    ref = {}
    for r in rows:
        ref[r["dim"]] = r["ref_unc"]
    axes[0, 1].plot(sorted(ref), [max(ref[d], 1e-16) for d in sorted(ref)], color="k", ls=":", label="reference uncertainty (max)")
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_xlabel("D")
    axes[0, 0].set_ylabel("log_prob + entropy + backward (s), batch 256")
    axes[0, 0].set_title("time vs D (orders 14, 14, 8, then 4)")
    axes[0, 1].set_yscale("log")
    axes[0, 1].set_xlabel("D")
    axes[0, 1].set_ylabel("|A error| (float64)")
    axes[0, 1].set_title("log-partition error vs D (random lambda, energy std <= 3)")
    for ax in axes[0]:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    # section 2: time and peak memory per variant, D = 2
    specs = list(speed["timing"])
    names = ["streaming", "streaming_dense", "materialized", "floor", "floor_chunked"]
    width = 0.16
    for ax, what in ((axes[1, 0], "time"), (axes[1, 1], "memory")):
        for i, name in enumerate(names):
            if what == "time":
                vals = [speed["timing"][s][name][0] for s in specs]
            else:
                vals = [speed["memory"].get((s, name), {}).get("peak_mib", np.nan) for s in specs]
            bars = ax.bar(np.arange(len(specs)) + (i - 2) * width, vals, width, label=VARIANT_LABEL[name])
            for b, v in zip(bars, vals):
                if np.isfinite(v):
                    label = (f"{v:.2f}" if v < 10 else f"{v:.0f}") if what == "memory" else (f"{v * 1e3:.0f} ms" if v < 1 else f"{v:.1f} s")
                    ax.annotate(label, (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(np.arange(len(specs)))
        ax.set_xticklabels([f"{s} ({speed['timing'][s]['_nodes']} nodes)" for s in specs], fontsize=8)
        ax.set_yscale("log")
        ax.set_ylim(top=ax.get_ylim()[1] * 15)  # room for the legend above the bars
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    axes[1, 0].set_ylabel("time (s), best of repeats")
    axes[1, 0].set_title(f"log_prob + entropy (+ backward), D=2, order 14, batch {speed['batch']}, float32, 1 thread")
    axes[1, 1].set_ylabel("peak memory of one call (MiB)")
    axes[1, 1].set_title("peak memory (fresh subprocess per variant, VmHWM delta)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------------------
def header_lines(args, argv):
    cmd = shlex.join(["python", "benchmarks/normalizer.py"] + argv)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        commit = commit + (" (with uncommitted changes)" if dirty else "") if commit else "unknown"
    except OSError:
        commit = "unknown"
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    lines = [
        "# MePoly normalizer benchmark" + (" (--quick smoke run: small sizes, not the reported numbers)" if args.quick else ""),
        "",
        f"* command: `{cmd}`",
        f"* date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')}",
        f"* machine: {cpu_model()}, {os.cpu_count()} cores, {mem_total_gib():.0f} GiB RAM, {platform.system()} {platform.release()}; "
        f"load average at start {load[0]:.2f} (the machine was shared with other jobs: compare numbers within one run)",
        f"* software: Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"scipy {__import__('scipy').__version__}; torch threads: {torch.get_num_threads()} (`torch.set_num_threads(1)`)",
        f"* mepoly_dist commit: {commit}",
        f"* seed: {args.seed}",
        "",
    ]
    return lines


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run (< 1 minute)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.memory_child is not None:
        memory_child(json.loads(args.memory_child))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    def log(text):
        print(text, flush=True)

    head = header_lines(args, argv)
    log("\n".join(head))
    t0 = time.perf_counter()
    acc_lines, acc_results, _, acc_summary = section_accuracy(args, log)
    t_acc = time.perf_counter() - t0
    plot_accuracy(acc_results, args.out / "normalizer_accuracy.png", default_rule(2).spec)
    t0 = time.perf_counter()
    speed_lines, speed = section_speed(args, log)
    t_speed = time.perf_counter() - t0
    t0 = time.perf_counter()
    scale_lines, scale_rows = section_scaling(args, log)
    t_scale = time.perf_counter() - t0
    plot_scaling(scale_rows, speed, args.out / "normalizer_scaling.png")
    total = time.perf_counter() - t_start
    tail = [
        "## Plots",
        "",
        "* `normalizer_accuracy.png`: abs(A error) vs nodes per rule, one panel per target (section 1).",
        "* `normalizer_scaling.png`: time and abs(A error) vs D (section 3) and the batch-4096 timings with peak memory (section 2).",
        "",
        f"Run time: {total:.0f} s (accuracy {t_acc:.0f} s, speed/memory {t_speed:.0f} s, scaling {t_scale:.0f} s).",
        "",
    ]
    log("\n".join(tail))
    text = "\n".join(head + acc_lines + speed_lines + scale_lines + tail)
    (args.out / "normalizer.md").write_text(text)
    print(f"wrote {args.out / 'normalizer.md'}, normalizer_accuracy.png, normalizer_scaling.png", flush=True)


if __name__ == "__main__":
    main()
