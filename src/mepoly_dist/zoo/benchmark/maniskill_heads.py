#!/usr/bin/env python
r"""MePoly heads for ManiSkill's action dimensions: accuracy and cost per PPO update, D = 4 and D = 8.

Usage (from the repository root; needs only the core package)::

    python benchmarks/maniskill_heads.py [--rows 400] [--epochs 8] [--minibatch 100] [--seed 0] [--out benchmarks/results/maniskill_heads]

Heads compared (``policy_kwargs`` of :class:`~mepoly_dist.sb3.MePolyActorCriticPolicy`):

* D = 4 (``pd_ee_delta_pos``: dx, dy, dz, gripper): the joint density of order 4 on its default
  rule (9^4 Gauss-Legendre nodes), and block products (:class:`~mepoly_dist.BlockMePoly`)
  ``blocks=[2, 2]`` of order 6 and ``blocks=1`` (four 1-D blocks) of order 12.
* D = 8 (joint position control + gripper): the joint density of order 2 (scrambled Sobol',
  8,192 nodes), and ``blocks=[2, 2, 2, 2]`` of order 6 and ``blocks=1`` of order 12.

**Accuracy** (how well the head can represent an action density): the target is a two-component
Gaussian mixture on the cube (means :math:`\pm 0.5\,\mathbf{1}`, standard deviation 0.25, truncated to the cube), whose
coordinates are *correlated across blocks* (all signs flip together).  Each head is fitted by
maximum likelihood (moment matching, :func:`mepoly_dist.fit.fit_max_entropy`) to the feature means of
200,000 exact target samples; the table gives :math:`\mathrm{KL}(\text{target}\,\|\,\text{head})`
estimated on another 200,000 target samples, with the head normalized on the finer reference rule below (lower is better; a product of blocks cannot carry the
cross-block correlation, so its KL includes that mutual information), and the head's log-partition error against a
finer rule (joint D = 4: 16^4 Gauss-Legendre; D = 8: 2^18 Sobol' points; 2-D blocks: 128^2 and 1-D
blocks 512 Gauss-Legendre nodes).

**Cost** per PPO update with SB3's defaults of the ManiSkill preset: sampling ``--rows`` actions
(one rollout: 4 environments x 100 steps) from distinct parameter rows, then ``--epochs`` epochs of
``rows / minibatch`` minibatches of ``log_prob + entropy`` forward and backward (PPO's loss
terms).  Rows are the fitted parameters plus N(0, 0.05^2) noise.  One torch thread.
Writes ``OUT/maniskill_heads.md``.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from mepoly_dist import BlockMePoly, BlockMePolyFamily, MePoly, MePolyFamily
from mepoly_dist.fit import fit_max_entropy

from .results import markdown_table, results_header, write_report

__all__ = ["HEADS", "target_samples", "target_log_density", "make_family", "fit", "cost_per_update", "main"]

#: (D, label, policy_kwargs, finer reference rule per block)
HEADS = [
    (4, "joint, order 4", dict(order=4), ["gauss_legendre:16"]),
    (4, "blocks [2, 2], order 6", dict(order=6, blocks=[2, 2]), ["gauss_legendre:128"] * 2),
    (4, "blocks 1 x 4, order 12", dict(order=12, blocks=1), ["gauss_legendre:512"] * 4),
    (8, "joint, order 2", dict(order=2), ["sobol:262144"]),
    (8, "blocks [2, 2, 2, 2], order 6", dict(order=6, blocks=[2, 2, 2, 2]), ["gauss_legendre:128"] * 4),
    (8, "blocks 1 x 8, order 12", dict(order=12, blocks=1), ["gauss_legendre:512"] * 8),
]
MIX_MEAN, MIX_STD = 0.5, 0.25


def target_samples(dim: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Exact draws from the truncated two-component mixture (rejection from the untruncated one)."""
    out = []
    while sum(len(o) for o in out) < n:
        sign = rng.choice([-1.0, 1.0], size=(2 * n, 1))
        x = sign * MIX_MEAN + MIX_STD * rng.standard_normal((2 * n, dim))
        out.append(x[np.all(np.abs(x) <= 1.0, axis=1)])
    return np.concatenate(out)[:n]


def target_log_density(x: np.ndarray, dim: int) -> np.ndarray:
    """Log-density of the truncated mixture, normalized by the exact truncation mass."""
    from scipy.special import logsumexp
    from scipy.stats import norm

    comps = [norm.logpdf(x, loc=s * MIX_MEAN, scale=MIX_STD).sum(axis=1) for s in (-1.0, 1.0)]
    mass_1d = norm.cdf(1.0, MIX_MEAN, MIX_STD) - norm.cdf(-1.0, MIX_MEAN, MIX_STD)  # same for both components by symmetry
    return logsumexp(np.stack(comps), axis=0) - math.log(2.0) - dim * math.log(mass_1d)


def make_family(dim: int, kwargs: dict, dtype=torch.float64, quadrature=None):
    kwargs = dict(kwargs)
    blocks = kwargs.pop("blocks", None)
    if blocks is None:
        return MePolyFamily(dim, kwargs["order"], dtype=dtype, quadrature=quadrature[0] if quadrature else None)
    from mepoly_dist.blocks import parse_blocks

    sizes = parse_blocks(blocks, dim)
    return BlockMePolyFamily(sizes, kwargs["order"], dtype=dtype, quadrature=quadrature)


def features(family, x: torch.Tensor) -> torch.Tensor:
    if isinstance(family, BlockMePolyFamily):
        return torch.cat([f.features(v) for f, v in zip(family.blocks, family.split_value(x))], dim=-1)
    return family.features(x)


def _fit_one(moments: torch.Tensor, family) -> torch.Tensor:
    r"""Maximum likelihood = moment matching, :math:`\min_\lambda A(\lambda) - \lambda^\top m` (convex):
    L-BFGS (:func:`fit_max_entropy`), and Adam on the same objective where L-BFGS's line search
    diverges (it does for the 8-D joint head on its 8,192 Sobol' points)."""
    lam = fit_max_entropy(moments, family)
    if torch.isfinite(lam).all():
        return lam
    lam = torch.zeros_like(moments, requires_grad=True)
    optimizer = torch.optim.Adam([lam], lr=0.05)
    for _ in range(3000):
        optimizer.zero_grad()
        loss = MePoly(lam, family, validate_args=False).log_partition - (lam * moments).sum()
        loss.backward()
        optimizer.step()
    return lam.detach()


def fit(family, samples: torch.Tensor) -> torch.Tensor:
    moments = features(family, samples).mean(0)
    if isinstance(family, BlockMePolyFamily):
        return torch.cat([_fit_one(m, f) for m, f in zip(family.split_params(moments), family.blocks)])
    return _fit_one(moments, family)


def distribution(family, lam):
    return BlockMePoly(lam, family) if isinstance(family, BlockMePolyFamily) else MePoly(lam, family)


def cost_per_update(family32, lam: torch.Tensor, rows: int, epochs: int, minibatch: int, rng_seed: int,
                    sample_rows: int | None = None) -> tuple[float, float]:
    """Seconds to sample ``rows`` distinct rows and to run the training epochs.  With ``sample_rows``
    only that many rows are sampled and the time is scaled to ``rows`` (the sampler's cost is linear in
    the number of distinct rows; ``0``: not timed, NaN); the training epochs then use uniform actions."""
    generator = torch.Generator().manual_seed(rng_seed)
    params = (lam.float()[None] + 0.05 * torch.randn(rows, lam.numel(), generator=generator)).contiguous()
    constants = family32.first_param_indices() if isinstance(family32, BlockMePolyFamily) else [0]
    params[:, constants] = 0.0
    start = time.perf_counter()
    if sample_rows is None:
        actions = distribution(family32, params).sample()
        sample_s = time.perf_counter() - start
    else:
        if sample_rows > 0:
            distribution(family32, params[:sample_rows]).sample()
        sample_s = (time.perf_counter() - start) * rows / sample_rows if sample_rows > 0 else float("nan")
        actions = torch.rand(rows, family32.dim, generator=generator) * 2 - 1
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in torch.randperm(rows, generator=generator).split(minibatch):
            p = params[batch].clone().requires_grad_(True)
            d = distribution(family32, p)
            (d.log_prob(actions[batch]).mean() + 0.01 * d.entropy().mean()).backward()
    return sample_s, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--minibatch", type=int, default=100)
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-joint-sampling-above", type=int, default=4,
                        help="do not time the exact joint sampler above this D (it does not finish in minutes)")
    parser.add_argument("--joint-sample-rows", type=int, default=16,
                        help="time the joint density's exact sampler on this many rows and scale to --rows")
    parser.add_argument("--out", default="benchmarks/results/maniskill_heads")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    rows = []
    for dim, label, kwargs, reference in HEADS:
        fit_x = torch.as_tensor(target_samples(dim, args.samples, rng))
        test_x = target_samples(dim, args.samples, rng)
        family = make_family(dim, kwargs)
        t0 = time.perf_counter()
        lam = fit(family, fit_x)
        fit_s = time.perf_counter() - t0
        head = distribution(family, lam)
        fine = make_family(dim, kwargs, quadrature=reference)
        # KL with the head's density normalized on the finer rule: a head whose own rule misses mass
        # (an underestimated A) would otherwise look better than it is
        kl = float(np.mean(target_log_density(test_x, dim)) - distribution(fine, lam).log_prob(torch.as_tensor(test_x)).mean())
        a_err = abs(float(head.log_partition) - float(distribution(fine, lam).log_partition))
        family32 = make_family(dim, kwargs, dtype=torch.float32)
        joint = not isinstance(family32, BlockMePolyFamily)
        if joint and dim > args.skip_joint_sampling_above:
            sample_s, train_s = cost_per_update(family32, lam, args.rows, args.epochs, args.minibatch, args.seed, sample_rows=0)
        elif joint:
            sample_s, train_s = cost_per_update(family32, lam, args.rows, args.epochs, args.minibatch, args.seed, args.joint_sample_rows)
        else:
            sample_s, train_s = cost_per_update(family32, lam, args.rows, args.epochs, args.minibatch, args.seed)
        nodes = sum(f.nodes.shape[0] for f in family32.blocks) if not joint else family32.nodes.shape[0]
        sample_cell = "not timed (> 10 min)" if math.isnan(sample_s) else f"{sample_s:.2f}"
        if joint and not math.isnan(sample_s):
            sample_cell += f" (timed on {args.joint_sample_rows} rows, scaled)"
        row = [dim, label, family32.num_params, nodes, f"{kl:.3f}", f"{a_err:.1e}", sample_cell, f"{train_s:.2f}", f"{fit_s:.1f}"]
        print(" | ".join(str(c) for c in row), flush=True)
        rows.append(row)
    header = ["D", "head", "parameters", "quadrature nodes", "KL(target || fit)", "log-partition error", f"sample {args.rows} rows (s)",
              f"{args.epochs} epochs log_prob+entropy+backward (s)", "fit (s)"]
    text = results_header("MePoly heads for ManiSkill action dimensions: accuracy and cost per PPO update", args.seed)
    text += (f"\nTarget: two-component Gaussian mixture, means ±{MIX_MEAN}·1, std {MIX_STD}, truncated to the cube; KL from "
             f"{args.samples:,} held-out exact samples (its Monte-Carlo error is about ±0.005). One PPO update = sampling {args.rows} "
             f"distinct rows (a rollout) + {args.epochs} epochs of minibatches of {args.minibatch}.\n\n")
    text += markdown_table(header, rows)
    write_report(args.out, "maniskill_heads.md", text)


if __name__ == "__main__":
    main()
