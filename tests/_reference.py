"""Independent float64 reference computations (numpy / scipy / plain torch autograd).

Nothing here imports mepoly_dist: these are the yardsticks the package is measured against.
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
    """Random float64 natural parameters with sum |lambda_i| = amplitude, so |energy| <= amplitude
    for the Legendre and the monomial basis (|b_k| <= 1 on the cube)."""
    v = rng.standard_normal(tuple(batch) + (num,))
    v = amplitude * v / np.abs(v).sum(-1, keepdims=True)
    return torch.from_numpy(v)


def materialized(lam: torch.Tensor, feats: torch.Tensor, logw: torch.Tensor):
    """Plain autograd on the full ``batch x nodes`` matrix: A, H, E[phi] and the masses p."""
    energy = lam @ feats.t()
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
