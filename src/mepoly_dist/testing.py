"""Independent float64 reference computations (numpy, scipy, plain torch autograd), in the spirit
of :mod:`torch.testing`: the yardsticks the package is measured against, by its tests and by
``benchmarks/accuracy.py``, and by a user who wants to check a setting of their own.

Nothing here imports the rest of mepoly_dist: an adaptive float64 cubature, tensor Gauss-Legendre
rules, features from numpy's and scipy's Legendre polynomials and their analytic derivatives
are written from the formulas, independently of the code under test.  Needs scipy (the ``[test]``
extra); the core package itself never imports this module.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from numpy.polynomial import legendre as nplegendre
from scipy.special import eval_legendre

# quadrature specs with few nodes (<= ~300), used where the normalizer's python loop runs per node
SMALL_RULES = {
    1: ["gauss_legendre:40", "trapezoid:41", "composite_gauss_legendre:8x4", "sobol:64", "composite_gauss_legendre:5"],
    2: ["gauss_legendre:12", "trapezoid:15", "composite_gauss_legendre:4x3", "sobol:256", "sobol:128:7"],
    3: ["gauss_legendre:6", "trapezoid:6", "composite_gauss_legendre:2x3", "sobol:256"],
}

# rules accurate enough for the smooth densities of the distribution tests (|energy| <= 20)
ACCURATE_RULES = {
    1: ["gauss_legendre:128", "composite_gauss_legendre:4x64", "gauss_legendre:256"],
    2: ["gauss_legendre:64", "composite_gauss_legendre:3x30", "gauss_legendre:90"],
    3: ["gauss_legendre:28", "composite_gauss_legendre:3x12"],
}


def exponent_set_ref(dim: int, order: int) -> set:
    """All multi-indices of total degree <= order (as a set of tuples)."""
    return {a for a in itertools.product(range(order + 1), repeat=dim) if sum(a) <= order}


def features_ref(x, exponents, basis: str = "legendre") -> np.ndarray:
    """prod_d b_{alpha_d}(x_d) with scipy's eval_legendre (or plain powers); (..., D) -> (..., F)."""
    x = np.asarray(x, dtype=np.float64)
    exps = np.asarray(exponents)
    out = np.ones(x.shape[:-1] + (exps.shape[0],))
    for d in range(x.shape[-1]):
        k = exps[:, d]
        xd = x[..., d : d + 1]
        out = out * (eval_legendre(k, xd) if basis == "legendre" else xd ** k)
    return out


def _univariate_derivative(k: int, x: np.ndarray, basis: str, m: int = 1) -> np.ndarray:
    """The m-th derivative of b_k at x: numpy's legder for Legendre, the power rule for monomials."""
    if basis == "legendre":
        c = np.zeros(k + 1)
        c[k] = 1.0
        return nplegendre.legval(x, nplegendre.legder(c, m))
    return math.perm(k, m) * x ** (k - m) if k >= m else np.zeros_like(x)


def jacobian_ref(x, exponents, basis: str = "legendre") -> np.ndarray:
    """d phi / d x by the product rule with numpy's exact Legendre derivative (legder); (..., D, F)."""
    x = np.asarray(x, dtype=np.float64)
    exps = np.asarray(exponents)
    D, F = x.shape[-1], exps.shape[0]
    jac = np.ones(x.shape[:-1] + (D, F))
    for d in range(D):  # derivative w.r.t. x_d
        for f in range(F):
            col = np.ones(x.shape[:-1])
            for e in range(D):
                k = int(exps[f, e])
                xe = x[..., e]
                if e == d:
                    col = col * _univariate_derivative(k, xe, basis)
                else:
                    col = col * (eval_legendre(k, xe) if basis == "legendre" else xe**k)
            jac[..., d, f] = col
    return jac


def hessian_ref(x, exponents, basis: str = "legendre") -> np.ndarray:
    """d^2 phi / dx_d dx_e by the product rule with numpy's exact derivatives; (..., D, D, F)."""
    x = np.asarray(x, dtype=np.float64)
    exps = np.asarray(exponents)
    D, F = x.shape[-1], exps.shape[0]
    hess = np.ones(x.shape[:-1] + (D, D, F))
    for d in range(D):
        for e in range(D):
            for f in range(F):
                col = np.ones(x.shape[:-1])
                for g in range(D):
                    m = (g == d) + (g == e)  # how often axis g is differentiated
                    col = col * _univariate_derivative(int(exps[f, g]), x[..., g], basis, m)
                hess[..., d, e, f] = col
    return hess


def gauss_legendre_grid(dim: int, points: int, panels: int = 1):
    """Tensor (composite) Gauss-Legendre rule on [-1, 1]^dim built from numpy.leggauss: (N, D), (N,)."""
    x, w = nplegendre.leggauss(points)
    half = 1.0 / panels
    centers = -1.0 + half * (2 * np.arange(panels) + 1)
    x1 = (centers[:, None] + half * x[None, :]).reshape(-1)
    w1 = np.tile(w * half, panels)
    nodes = np.stack(np.meshgrid(*([x1] * dim), indexing="ij"), -1).reshape(-1, dim)
    weights = np.prod(np.stack(np.meshgrid(*([w1] * dim), indexing="ij"), -1).reshape(-1, dim), -1)
    return nodes, weights


def cell_grid(dim: int, bins: int, points: int):
    """Gauss-Legendre nodes inside each of bins^dim equal cells of [-1, 1]^dim.

    Returns nodes ``(bins^dim * points^dim, D)``, weights, and the flat cell index of each node
    (row-major over the cells, matching ``np.histogramdd(...).ravel()``).
    """
    x, w = nplegendre.leggauss(points)
    half = 1.0 / bins
    centers = -1.0 + half * (2 * np.arange(bins) + 1)
    x1 = (centers[:, None] + half * x[None, :]).reshape(-1)
    w1 = np.tile(w * half, bins)
    cell1 = np.repeat(np.arange(bins), points)
    nodes = np.stack(np.meshgrid(*([x1] * dim), indexing="ij"), -1).reshape(-1, dim)
    weights = np.prod(np.stack(np.meshgrid(*([w1] * dim), indexing="ij"), -1).reshape(-1, dim), -1)
    cells = np.stack(np.meshgrid(*([cell1] * dim), indexing="ij"), -1).reshape(-1, dim)
    flat = np.ravel_multi_index(tuple(cells.T), (bins,) * dim)
    return nodes, weights, flat


def bounded_params(rng: np.random.Generator, num: int, amplitude: float, batch=()) -> torch.Tensor:
    """Random float64 natural parameters with ``sum |lambda_i| = amplitude``, so ``|energy| <= amplitude``
    for the Legendre and the monomial basis (``|b_k| <= 1`` on the cube)."""
    v = rng.standard_normal(tuple(batch) + (num,))
    v = amplitude * v / np.abs(v).sum(-1, keepdims=True)
    return torch.from_numpy(v)


def materialized(natural_params: torch.Tensor, feats: torch.Tensor, logw: torch.Tensor):
    """Plain autograd on the full ``batch x nodes`` matrix: A, H, E[phi] and the masses p."""
    energy = natural_params @ feats.t()
    s = energy + logw
    A = torch.logsumexp(s, dim=-1)
    p = torch.softmax(s, dim=-1)
    H = A - (p * energy).sum(-1)
    return A, H, p @ feats, p


def exact_exp_linear_integral(c) -> float:
    """int_{[-1,1]^D} exp(c . x) dx = prod_d 2 sinh(c_d) / c_d."""
    out = 1.0
    for cd in np.atleast_1d(c):
        out *= 2.0 if cd == 0 else 2.0 * math.sinh(cd) / cd
    return out


def log_density_on(dist, nodes: np.ndarray, chunk: int = 1 << 15) -> np.ndarray:
    """dist.log_prob on numpy nodes (float64), evaluated in chunks to bound memory."""
    out = []
    with torch.no_grad():
        for start in range(0, nodes.shape[0], chunk):
            x = torch.from_numpy(nodes[start : start + chunk]).to(dist.natural_params.dtype)
            x = x.reshape(x.shape[:1] + (1,) * len(dist.batch_shape) + x.shape[1:])
            out.append(dist.log_prob(x).double().numpy())
    return np.concatenate(out, axis=0)


# ----------------------------------------------------------------------------------------
# Adaptive-cubature reference for sharp densities: A, H and E[phi] to ~1e-10
# ----------------------------------------------------------------------------------------
# Globally adaptive cubature by recursive bisection of boxes, a tensor Gauss-Legendre panel
# rule per box, and the error of a box estimated against its two halves.  The energy maxima
# are located first (Chebyshev-Lobatto grid + L-BFGS-B from the grid's local maxima, clipped
# to the cube); boxes that contain one are bisected until the energy varies by at most a few
# units over their nodes, so that a peak narrower than the panel spacing cannot be missed.
# Everything works in log space (energies minus the maximum) and the energy on a box's panel
# is evaluated separably from per-axis Legendre tables (numpy.polynomial.legendre.legvander).
# Numpy/scipy only: nothing here shares code with the package's quadrature.

#: Gauss-Legendre points per axis of a box's panel, per dimension
ADAPTIVE_PANEL_POINTS = {1: 16, 2: 10, 3: 7, 4: 7, 5: 6}
#: default relative tolerance on the estimated error, per dimension (the estimate is that of
#: the coarser of two values, so the errors are much smaller: see tests/test_accuracy.py)
ADAPTIVE_TOL = {1: 1e-12, 2: 1e-12, 3: 1e-9, 4: 1e-8, 5: 1e-7}
#: grid points per axis of the maximum search (Chebyshev-Lobatto, so faces and corners are on it)
MAXIMUM_SEARCH_POINTS = {1: 2049, 2: 257, 3: 65, 4: 25, 5: 15}
#: a box that contains a local maximum is bisected until its panel's energies lie within this
#: many units of the maximum's energy
FORCE_RANGE = 4.0
#: the tolerance is raised to at least this many ulps of ``sum |natural_params|`` (the rounding floor of the energies)
ROUNDING_FLOOR = 16.0
#: local maxima more than this far below the global maximum are negligible (exp(-60) ~ 1e-26)
CANDIDATE_WINDOW = 60.0


def graded_exponents_ref(dim: int, order: int) -> np.ndarray:
    """The exponents in the package's graded order, derived independently of its code.

    ``itertools.combinations_with_replacement(range(dim), degree)`` lists the sorted index
    tuples lexicographically; the exponent vector of a tuple counts each index, so ascending
    tuples are *descending* exponent vectors: sort by total degree, then descending lex order.
    """
    rows = sorted(exponent_set_ref(dim, order), key=lambda a: (sum(a), tuple(-v for v in a)))
    return np.array(rows, dtype=np.int64).reshape(-1, dim)


def _legendre_derivative_matrix(order: int) -> np.ndarray:
    """``Dm`` with ``P'_k(x) = sum_j legvander(x)[j] Dm[j, k]`` (numpy's legder)."""
    a = order + 1
    Dm = np.zeros((a, a))
    for k in range(1, a):
        c = np.zeros(a)
        c[k] = 1.0
        d = nplegendre.legder(c)
        Dm[: d.size, k] = d
    return Dm


def _contract(C: np.ndarray, mats) -> np.ndarray:
    """``E[k, i_0, .., i_{D-1}] = sum_alpha C[alpha] prod_d mats[d][k, i_d, alpha_d]``.

    ``C``: ``(a,) * D`` coefficients; ``mats[d]``: ``(K, n_d, a)`` per-axis tables of K boxes.
    One batched matmul per axis (sum factorization); returns ``(K, n_0, ..., n_{D-1})``.
    """
    D = C.ndim
    a = C.shape[0]
    K = mats[0].shape[0]
    T = None  # (K, a_d, R, N): coefficient axis d, remaining coefficient axes, nodes done
    N = 1
    for d in range(D):
        V = mats[d]
        n = V.shape[1]
        R = a ** (D - d - 1)
        if T is None:
            out = V @ C.reshape(a, R)  # (K, n, R)
            out = out.reshape(K, n, R, 1)
        else:
            out = (V @ T.reshape(K, a, R * N)).reshape(K, n, R, N)
        # move the new node axis to the end of the done nodes: (K, R, N, n)
        out = out.transpose(0, 2, 3, 1)
        N *= n
        if d + 1 < D:
            T = out.reshape(K, a, R // a, N)
        else:
            T = out.reshape(K, N)
    return T.reshape((K,) + tuple(m.shape[1] for m in mats))


def _moment_contract(Wf: np.ndarray, mats) -> np.ndarray:
    """``M[alpha] = sum_k sum_i Wf[k, i] prod_d mats[d][k, i_d, alpha_d]`` (summed over boxes)."""
    K = Wf.shape[0]
    T = Wf.reshape(K, -1)  # (K, n_0 * ... * n_{D-1}); the leading axis is contracted first
    for V in mats:
        n = V.shape[1]
        # contract the leading node axis with V, append the coefficient axis at the end
        T = (V.transpose(0, 2, 1) @ T.reshape(K, n, -1)).transpose(0, 2, 1).reshape(K, -1)  # (K, rest * a)
    a = mats[0].shape[2]
    return T.sum(0).reshape((a,) * len(mats))


class _Energy:
    """The energy ``natural_params . phi(x)`` as a dense Legendre coefficient tensor ``C[alpha_1..alpha_D]``."""

    def __init__(self, natural_params, exponents, order: int):
        natural_params = np.asarray(natural_params, dtype=np.float64).reshape(-1)
        exps = np.asarray(exponents, dtype=np.int64)
        if exps.shape[0] != natural_params.size:
            raise ValueError(f"natural_params has {natural_params.size} entries for {exps.shape[0]} exponents")
        self.dim = exps.shape[1]
        self.order = order
        self.exponents = exps
        self.C = np.zeros((order + 1,) * self.dim)
        np.add.at(self.C, tuple(exps.T), natural_params)
        self.Dm = _legendre_derivative_matrix(order)

    def vander(self, x):
        return nplegendre.legvander(x, self.order)

    def on_axes(self, axes) -> np.ndarray:
        """Energies on the tensor grids of K boxes: ``axes[d]`` is ``(K, n_d)``."""
        return _contract(self.C, [self.vander(x) for x in axes])

    def value_and_grad(self, x):
        """Energy and gradient at one point ``x`` (D,)."""
        # one contraction over D + 1 "boxes": the values, then each axis differentiated in turn
        mats = []
        for d, xd in enumerate(x):
            V = self.vander(np.array([xd]))  # (1, a)
            m = np.repeat(V[None], self.dim + 1, axis=0)  # (D + 1, 1, a)
            m[d + 1] = V @ self.Dm
            mats.append(m)
        out = _contract(self.C, mats).reshape(-1)
        return float(out[0]), out[1:].copy()


def _local_maxima_mask(E: np.ndarray) -> np.ndarray:
    """Grid points whose energy is >= that of all axis neighbours."""
    mask = np.ones(E.shape, dtype=bool)
    for d in range(E.ndim):
        pad = [(0, 0)] * E.ndim
        pad[d] = (1, 1)
        P = np.pad(E, pad, constant_values=-np.inf)
        sl_lo = [slice(None)] * E.ndim
        sl_hi = [slice(None)] * E.ndim
        sl_lo[d] = slice(0, -2)
        sl_hi[d] = slice(2, None)
        mask &= (E >= P[tuple(sl_lo)]) & (E >= P[tuple(sl_hi)])
    return mask


def energy_maxima_ref(energy: _Energy, grid_points: int | None = None, max_candidates: int = 32):
    """Local maxima of the energy on the cube that matter for the integral.

    A Chebyshev-Lobatto tensor grid (dense near the faces, where polynomial features are
    finest; faces and corners are grid points), its discrete local maxima within
    ``CANDIDATE_WINDOW`` of the best, each refined by L-BFGS-B with the bounds [-1, 1].
    Returns ``(points (m, D), energies (m,))``, best first.
    """
    from scipy.optimize import minimize

    D = energy.dim
    n = grid_points or MAXIMUM_SEARCH_POINTS.get(D, 9)
    t = np.sort(np.cos(np.pi * np.arange(n) / (n - 1)))
    t[0], t[-1] = -1.0, 1.0
    E = energy.on_axes([t[None, :]] * D)[0]
    mask = _local_maxima_mask(E)
    best = E.max()
    idx = np.argwhere(mask & (E >= best - CANDIDATE_WINDOW - 10.0))
    vals = E[tuple(idx.T)]
    order_ = np.argsort(-vals)[:max_candidates]
    points, energies = [], []
    for i in order_:
        x0 = t[idx[i]]

        def neg(x):
            e, g = energy.value_and_grad(np.clip(x, -1.0, 1.0))
            return -e, -g

        res = minimize(neg, x0, jac=True, method="L-BFGS-B", bounds=[(-1.0, 1.0)] * D,
                       options=dict(ftol=1e-16, gtol=1e-12, maxiter=500, maxls=50))
        x = np.clip(res.x, -1.0, 1.0)
        e = energy.value_and_grad(x)[0]
        if e < vals[i]:  # never worse than the grid point
            x, e = x0, vals[i]
        if any(np.max(np.abs(x - p)) < 1e-9 for p in points):
            continue
        points.append(x)
        energies.append(e)
    points = np.array(points).reshape(-1, D)
    energies = np.array(energies)
    keep = energies >= energies.max() - CANDIDATE_WINDOW
    o = np.argsort(-energies[keep])
    return points[keep][o], energies[keep][o]


class AdaptiveResult:
    """What :func:`adaptive_reference` returns."""

    def __init__(self, A, H, moments, error, boxes, nodes, max_point, max_energy):
        self.A = A  #: log Z
        self.H = H  #: entropy
        self.moments = moments  #: E_p[phi] in the order of the exponents given
        self.error = error  #: estimated ``|A error|`` (sum of the boxes' estimates / Z)
        self.boxes = boxes  #: number of leaf boxes
        self.nodes = nodes  #: energy evaluations in the cubature (all panels, halves included)
        self.max_point = max_point
        self.max_energy = max_energy

    def __repr__(self):
        return f"AdaptiveResult(A={self.A!r}, H={self.H!r}, error={self.error:.1e}, boxes={self.boxes}, nodes={self.nodes})"


def _box_axes(lo, hi, t):
    """Per-axis panel nodes ``(K, n)`` of boxes ``lo``, ``hi`` ``(K, D)`` and half-widths."""
    mid = 0.5 * (lo + hi)
    half = 0.5 * (hi - lo)
    return [mid[:, d : d + 1] + half[:, d : d + 1] * t[None, :] for d in range(lo.shape[1])], half


def _panels(energy: _Energy, lo, hi, t, w, M, ranges: bool = True, chunk_nodes=1 << 21):
    """Z = sum W exp(E - M), G = sum W (E - M) exp(E - M), min energy, max energy, (if
    ``ranges``) the per-axis energy range of the panels of K boxes, and the max energy including
    the boxes' faces (the panel nodes with the endpoints +-1 of every axis added: a peak in a thin
    layer at a face of the box shows there before the panel sees it), in chunks of about
    ``chunk_nodes`` nodes."""
    K, D = lo.shape
    n = t.size
    per = max(1, chunk_nodes // n**D)
    Z = np.empty(K)
    G = np.empty(K)
    emin = np.empty(K)
    emax = np.empty(K)
    emax_faces = np.empty(K)
    rng_ = np.zeros((K, D))
    t_ext = np.concatenate([[-1.0], t, [1.0]])
    inner = (slice(None),) + (slice(1, -1),) * D
    for s in range(0, K, per):
        axes, half = _box_axes(lo[s : s + per], hi[s : s + per], t_ext)
        E_ext = energy.on_axes(axes)  # (k, n + 2, ..., n + 2)
        E = E_ext[inner]
        k = E.shape[0]
        W = np.prod(half, axis=1)  # the box's volume factor; node weights are a tensor of w
        Wt = w
        for _ in range(D - 1):
            Wt = np.multiply.outer(Wt, w)
        x = E - M
        f = np.exp(x)
        Z[s : s + k] = W * (f.reshape(k, -1) @ Wt.reshape(-1))
        G[s : s + k] = W * ((f * x).reshape(k, -1) @ Wt.reshape(-1))
        flat = E.reshape(k, -1)
        emin[s : s + k] = flat.min(1)
        emax[s : s + k] = flat.max(1)
        emax_faces[s : s + k] = E_ext.reshape(k, -1).max(1)
        if ranges:
            m = n + 2
            for d in range(D):  # largest variation along axis d over the lines of the panel and faces
                Ed = E_ext.reshape(k, m**d, m, m ** (D - d - 1))
                rng_[s : s + k, d] = (Ed.max(2) - Ed.min(2)).reshape(k, -1).max(1)
    return Z, G, emin, emax, rng_, emax_faces


def adaptive_reference(natural_params, dim: int, order: int, exponents=None, tol: float | None = None, panel_points: int | None = None,
                       max_boxes: int = 200_000, moments: bool = True) -> AdaptiveResult:
    r"""Independent float64 :math:`A`, :math:`H` and :math:`\mathbb{E}_p[\phi]` of one row ``natural_params``.

    ``exponents``: ``(F, D)``, the order of ``natural_params``'s entries (default: the package's graded
    order, :func:`graded_exponents_ref`).  ``tol``: relative tolerance on the estimated error
    of :math:`Z` and of :math:`\int (E - M) e^{E - M}` (so of :math:`A` and :math:`H`), raised to
    the float64 rounding floor of the energies (``ROUNDING_FLOOR`` ulps of ``sum |natural_params|``);
    default :data:`ADAPTIVE_TOL` of the dimension.

    The algorithm (module comment above): every leaf of a bisection tree carries its panel
    value ``Q(box)`` (``panel_points`` Gauss-Legendre points per axis) and, for every axis d,
    the value ``Q_d`` of its two halves along d.  Its error estimate is
    ``max_d |Q(box) - Q_d|`` (the error of the coarser ``Q(box)``), its value the mean of the
    ``Q_d`` (so the estimate is pessimistic).  The leaves with the largest errors are bisected
    along their worst axis until the estimates sum to at most ``tol * Z``.  Leaves that
    contain a local energy maximum are bisected first (along the axis of the largest energy
    variation over their panel) until their panel energies lie within ``FORCE_RANGE`` of that
    maximum, so that no peak can hide between the nodes.
    """
    natural_params = np.asarray(natural_params, dtype=np.float64).reshape(-1)
    if exponents is None:
        exponents = graded_exponents_ref(dim, order)
    exponents = np.asarray(exponents, dtype=np.int64)
    energy = _Energy(natural_params, exponents, order)
    D = dim
    n = panel_points or ADAPTIVE_PANEL_POINTS.get(D, 6)
    tol = ADAPTIVE_TOL.get(D, 1e-7) if tol is None else tol
    t, w = nplegendre.leggauss(n)
    cand_x, cand_e = energy_maxima_ref(energy)
    M = float(cand_e[0])
    # float64 rounding of the energies (|P_k| <= 1, so |energy terms| <= sum |natural_params|) puts a floor
    # under the error estimates: ask for no less than a few times that floor
    noise = ROUNDING_FLOOR * np.finfo(np.float64).eps * float(np.abs(natural_params).sum())
    tol_eff = max(tol, noise)
    nodes_used = 0

    def evaluate(lo, hi):
        """Values, panel statistics and per-axis error estimates of new leaves."""
        nonlocal nodes_used
        K = lo.shape[0]
        Z, G, emin, emax, rng_, emax_faces = _panels(energy, lo, hi, t, w, M)
        clo = np.repeat(lo[:, None, None, :], 2, axis=2).repeat(D, axis=1)  # (K, D, 2, D)
        chi = np.repeat(hi[:, None, None, :], 2, axis=2).repeat(D, axis=1)
        mid = 0.5 * (lo + hi)
        for d in range(D):
            chi[:, d, 0, d] = mid[:, d]
            clo[:, d, 1, d] = mid[:, d]
        Zh, Gh, _, emax_h, _, _ = _panels(energy, clo.reshape(-1, D), chi.reshape(-1, D), t, w, M, ranges=False)
        nodes_used += K * (2 * D + 1) * n**D
        top = max(emax_h.max(), emax.max())
        if top > M + 1.0:  # the maximum search missed a higher point (never seen): fail loudly
            raise RuntimeError(f"reference maximum {M} below a panel energy {top}")
        Zd = Zh.reshape(K, D, 2).sum(-1)
        Gd = Gh.reshape(K, D, 2).sum(-1)
        return [lo, hi, Zd.mean(1), Gd.mean(1), emin, emax, rng_, np.abs(Z[:, None] - Zd), np.abs(G[:, None] - Gd), emax_faces]

    leaves = evaluate(-np.ones((1, D)), np.ones((1, D)))
    for _ in range(10_000):
        lo, hi, Zb, Gb, Emin, Emax, Rng, dZ, dG, EmaxFaces = leaves
        Ztot = float(Zb.sum())
        Gtot = float(Gb.sum())
        if not np.isfinite(Ztot):
            raise FloatingPointError(f"reference cubature failed: Z = {Ztot}")
        # (Z may still underflow to 0 while the peak lies between the nodes of the first boxes)
        gscale = max(1.0, abs(Gtot / Ztot)) if Ztot > 0 else 1.0
        err_d = np.maximum(dZ, dG / gscale)  # (K, D)
        err = err_d.max(1)
        # leaves containing a relevant local maximum whose panel still spans more than FORCE_RANGE
        forced = np.zeros(lo.shape[0], dtype=bool)
        for x, e in zip(cand_x, cand_e):
            inside = np.all((lo <= x) & (x <= hi), axis=1)
            forced |= inside & (np.maximum(e, Emax) - Emin > FORCE_RANGE)
        # ... and leaves whose faces see a significant energy their panel nodes do not (a thin
        # layer of mass along a face of the box, e.g. a ridge along a face of the cube)
        forced |= (EmaxFaces - Emax > FORCE_RANGE) & (EmaxFaces >= M - CANDIDATE_WINDOW)
        budget = tol_eff * Ztot
        if not forced.any() and err.sum() <= budget:
            break
        if lo.shape[0] > max_boxes:
            raise RuntimeError(f"reference cubature needs more than {max_boxes} boxes (error {err.sum() / Ztot:.1e})")
        # split the largest errors until the rest sums to at most half the budget (and the forced ones)
        o = np.argsort(-err)
        rest = np.cumsum(err[o][::-1])[::-1]  # rest[i] = sum of err[o[i:]]
        m = int(np.searchsorted(-rest, -0.5 * budget))  # first i with rest[i] <= budget / 2
        split = np.zeros(lo.shape[0], dtype=bool)
        split[o[:m]] = True
        split |= forced
        axis = np.where(forced, np.argmax(Rng, axis=1), np.argmax(err_d, axis=1))
        idx = np.nonzero(split)[0]
        ax = axis[idx]
        rows = np.arange(idx.size)
        mid = 0.5 * (lo[idx, ax] + hi[idx, ax])
        lo_a, hi_a = lo[idx].copy(), hi[idx].copy()
        lo_b, hi_b = lo[idx].copy(), hi[idx].copy()
        hi_a[rows, ax] = mid
        lo_b[rows, ax] = mid
        new = evaluate(np.concatenate([lo_a, lo_b]), np.concatenate([hi_a, hi_b]))
        keep = ~split
        leaves = [np.concatenate([old[keep], nw]) for old, nw in zip(leaves, new)]
    else:
        raise RuntimeError("reference cubature did not converge")
    if not Ztot > 0:
        raise FloatingPointError(f"reference cubature failed: Z = {Ztot}")
    A = M + math.log(Ztot)
    H = math.log(Ztot) - Gtot / Ztot
    mom = None
    if moments:  # E[phi] on the halves along the first axis of every leaf (a value as accurate as Z's)
        a = order + 1
        acc = np.zeros((a,) * D)
        Wt = w
        for _ in range(D - 1):
            Wt = np.multiply.outer(Wt, w)
        mid = 0.5 * (lo[:, 0] + hi[:, 0])
        hlo, hhi = np.concatenate([lo, lo]), np.concatenate([hi, hi])
        hhi[: lo.shape[0], 0] = mid
        hlo[lo.shape[0] :, 0] = mid
        per = max(1, (1 << 20) // n**D)
        for s in range(0, hlo.shape[0], per):
            axes, half = _box_axes(hlo[s : s + per], hhi[s : s + per], t)
            E = energy.on_axes(axes)
            Wf = np.exp(E - M) * Wt * np.prod(half, axis=1).reshape((-1,) + (1,) * D)
            acc += _moment_contract(Wf, [energy.vander(x) for x in axes])
        mom = acc[tuple(exponents.T)] / acc.flat[0]  # normalized by the same rule's Z
    return AdaptiveResult(A, H, mom, float(err.sum() / Ztot), int(lo.shape[0]), int(nodes_used), cand_x[0], M)


def log_partition_entropy_ref(natural_params, dim: int, order: int, exponents=None, tol: float | None = None):
    """``(A, H)`` of one float64 row ``natural_params`` (graded order unless ``exponents``), by
    :func:`adaptive_reference`."""
    r = adaptive_reference(natural_params, dim, order, exponents, tol=tol, moments=False)
    return r.A, r.H


def kl_ref(lam_p, lam_q, dim: int, order: int, exponents=None, tol: float | None = None) -> float:
    r""":math:`\mathrm{KL}(p\|q) = A_q - A_p - (\lambda_q - \lambda_p)^\top \mathbb{E}_p[\phi]` by the reference."""
    p = adaptive_reference(lam_p, dim, order, exponents, tol=tol)
    q = adaptive_reference(lam_q, dim, order, exponents, tol=tol, moments=False)
    return q.A - p.A - float((np.asarray(lam_q) - np.asarray(lam_p)) @ p.moments)


def tensor_gauss_legendre_ref(lams, dim: int, order: int, points: int = 400, exponents=None):
    """``A``, ``H`` and ``E[phi]`` of rows ``lams`` ``(K, F)`` on a ``points^dim`` tensor
    Gauss-Legendre rule, with scipy's ``eval_legendre`` features (:func:`features_ref`) --
    the cross-check of the adaptive reference on smooth rows."""
    from scipy.special import logsumexp

    if exponents is None:
        exponents = graded_exponents_ref(dim, order)
    nodes, weights = gauss_legendre_grid(dim, points)
    phi = features_ref(nodes, exponents)
    lams = np.atleast_2d(np.asarray(lams, dtype=np.float64))
    E = lams @ phi.T  # (K, N)
    s = E + np.log(weights)
    A = logsumexp(s, axis=1)
    p = np.exp(s - A[:, None])
    H = A - (p * E).sum(1)
    return A, H, p @ phi


def nested_quad_ref_2d(natural_params, order: int, points=(), exponents=None, epsrel: float = 1e-13):
    """``(A, H)`` of a D = 2 row by scipy.integrate.quad of quad (QUADPACK's adaptive
    Gauss-Kronrod), in log space around the energy maximum, with the maxima's coordinates
    and a geometric grading towards them as QUADPACK break points (``points``: ``(m, 2)``)."""
    from scipy.integrate import quad

    if exponents is None:
        exponents = graded_exponents_ref(2, order)
    energy = _Energy(natural_params, exponents, order)
    C = energy.C
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    M = max(energy.value_and_grad(p)[0] for p in pts) if len(pts) else 0.0
    # break points: each maximum's coordinate and a geometric grading towards it (4^-1 .. 4^-15),
    # so that QUADPACK's first Kronrod nodes land within any peak width of it
    steps = 4.0 ** -np.arange(1, 16)

    def breaks(coords):
        b = [c + sgn * s for c in coords for sgn in (-1.0, 1.0) for s in steps] + list(coords)
        return sorted({float(x) for x in b if -1.0 < x < 1.0})

    bx = breaks(pts[:, 0])
    by = breaks(pts[:, 1])

    def inner(x, moment):
        a = [float(v) for v in nplegendre.legvander(np.array([x]), order)[0] @ C]  # coefficients in y

        def energy_y(y):  # Clenshaw's recurrence for sum_k a_k P_k(y), in plain floats
            b1 = b2 = 0.0
            for k in range(order, 0, -1):
                b1, b2 = a[k] + (2 * k + 1) / (k + 1) * y * b1 - (k + 1) / (k + 2) * b2, b1
            return a[0] + y * b1 - 0.5 * b2

        if moment:
            def f(y):
                e = energy_y(y) - M
                return e * math.exp(e)
        else:
            def f(y):
                return math.exp(energy_y(y) - M)
        return quad(f, -1.0, 1.0, points=by or None, epsabs=0.0, epsrel=epsrel, limit=len(by) + 400)[0]

    Z = quad(inner, -1.0, 1.0, args=(False,), points=bx or None, epsabs=0.0, epsrel=epsrel, limit=len(bx) + 400)[0]
    G = quad(inner, -1.0, 1.0, args=(True,), points=bx or None, epsabs=0.0, epsrel=epsrel, limit=len(bx) + 400)[0]
    return M + math.log(Z), math.log(Z) - G / Z
