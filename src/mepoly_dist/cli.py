"""Command line: ``mepoly fit TARGET`` fits a MePoly density to a bandit target and plots it."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from . import MePoly, MePolyFamily, evaluation, targets
from .fit import fit_max_entropy, target_moments
from .plotting import plot_density_comparison


def fit_command(args) -> dict:
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    points = targets.target_points(args.target, seed=args.seed)
    log_density = lambda x: targets.boltzmann_log_density(x, points, args.alpha)
    family = MePolyFamily(2, args.order, basis=args.basis, quadrature=args.quadrature, dtype=torch.float64)
    start = time.perf_counter()
    lam = fit_max_entropy(target_moments(log_density, family), family)
    fit_seconds = time.perf_counter() - start
    dist = MePoly(lam, family)
    samples = dist.sample((args.samples,)).numpy()
    metrics = {
        "target": args.target,
        "alpha": args.alpha,
        "order": args.order,
        "basis": args.basis,
        "quadrature": family.quadrature.spec,
        "seed": args.seed,
        "fit_seconds": round(fit_seconds, 3),
        "entropy": float(dist.entropy()),
        "tv_to_target": evaluation.tv_distance(evaluation.histogram_masses(samples), evaluation.target_cell_masses(points, args.alpha)),
        "coverage": evaluation.coverage(samples[:4096], points),
        "mean_reward": evaluation.mean_reward(samples, points),
        "num_samples": args.samples,
    }
    torch.save({"natural_params": lam, "family": family.config}, out / "natural_params.pt")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_density_comparison(out / "density.png", dist, log_density, points, samples[:20000], title=f"{args.target}, alpha = {args.alpha}")
    for key, value in metrics.items():
        print(f"{key:>14}: {value:.4f}" if isinstance(value, float) else f"{key:>14}: {value}")
    print(f"wrote {out / 'density.png'} and {out / 'metrics.json'}")
    return metrics


def main(argv=None):
    parser = argparse.ArgumentParser(prog="mepoly", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="max-entropy fit of MePoly to a bandit target, with density plot and metrics")
    fit.add_argument("target", choices=sorted(targets.TARGETS))
    fit.add_argument("--alpha", type=float, default=0.2, help="temperature of the Boltzmann target exp(r / alpha)")
    fit.add_argument("--order", type=int, default=14)
    fit.add_argument("--basis", default="legendre", choices=["legendre", "monomial"])
    fit.add_argument("--quadrature", default=None, help="rule spec, e.g. gauss_legendre:90 (default: per-dimension default)")
    fit.add_argument("--samples", type=int, default=100_000, help="samples drawn for the metrics")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--out", default="runs/fit", help="output directory")
    fit.set_defaults(func=fit_command)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
