"""Command line.

* ``mepoly train ENV --policy mepoly|gaussian|gmm|fpo``: an SB3 training run with presets, checkpoints
  (resumable), TensorBoard logs, a progress bar and a final evaluation (see :mod:`mepoly_dist.zoo.train`);
* ``mepoly eval RUN_DIR``: re-evaluate a run (metrics JSON and plots);
* ``mepoly fit TARGET``: max-entropy fit of a MePoly density to a bandit target (no RL).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from .. import MePoly, MePolyFamily
from . import metrics, targets
from ..fit import fit_max_entropy, target_moments
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
    found = {
        "target": args.target,
        "alpha": args.alpha,
        "order": args.order,
        "basis": args.basis,
        "quadrature": family.quadrature.spec,
        "seed": args.seed,
        "fit_seconds": round(fit_seconds, 3),
        "entropy": float(dist.entropy()),
        **metrics.bandit_metrics(samples, points, args.alpha),
    }
    torch.save({"natural_params": lam, "family": family.config}, out / "natural_params.pt")
    (out / "metrics.json").write_text(json.dumps(found, indent=2))
    plot_density_comparison(out / "density.png", dist, log_density, points, samples[:20000], title=f"{args.target}, alpha = {args.alpha}")
    for key, value in found.items():
        print(f"{key:>14}: {value:.4f}" if isinstance(value, float) else f"{key:>14}: {value}")
    print(f"wrote {out / 'density.png'} and {out / 'metrics.json'}")
    return found


def _print_metrics(metrics: dict, out: Path) -> None:
    for key, value in metrics.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value)
        print(f"{key:>22}: {value:.4f}" if isinstance(value, float) else f"{key:>22}: {value}")
    print(f"wrote {out}")


def train_command(args) -> dict:
    from .train import resolve_config, train

    torch.set_num_threads(args.threads)
    config = resolve_config(args.env, args.policy, args.seed, args.hp, args.policy_kwargs, args.env_kwargs, args.steps, args.n_envs,
                            args.checkpoint_every, algo=args.algo)
    out = Path(args.out) if args.out else Path("runs") / f"{config.name}__{config.policy}__{config.seed}__{int(time.time())}"
    metrics = train(config, out, progress_bar=not args.no_progress_bar, verbose=args.verbose)
    _print_metrics(metrics, out)
    return metrics


def eval_command(args) -> dict:
    from .train import evaluate_run

    torch.set_num_threads(args.threads)
    metrics = evaluate_run(args.run_dir, episodes=args.episodes, samples=args.samples, seed=args.seed)
    _print_metrics(metrics, Path(args.run_dir))
    return metrics


def main(argv=None):
    from .tasks import all_aliases
    from .train import POLICIES

    ALIASES = all_aliases()

    parser = argparse.ArgumentParser(prog="mepoly", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train an SB3 policy (MePoly, Gaussian, GMM or FPO) with a preset; resumes from checkpoints")
    train.add_argument("env", help=f"an alias ({', '.join(ALIASES)}) or a gymnasium id (mepoly/Bandit-v0, Pendulum-v1, ...)")
    train.add_argument("--policy", default="mepoly", choices=POLICIES)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--algo", default=None, choices=["ppo", "maxent_ppo", "a2c", "trpo", "fpo"],
                       help="algorithm (default: the preset's); maxent_ppo puts ent_coef * entropy into the returns")
    train.add_argument("--steps", type=int, default=None, help="environment steps (default: the preset's n_timesteps)")
    train.add_argument("--n-envs", type=int, default=None, help="parallel environments (default: the preset's)")
    train.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints (default: the preset's)")
    train.add_argument("--hp", nargs="*", default=[], metavar="KEY=VALUE", help="algorithm hyperparameter overrides, e.g. ent_coef=0.1; ent_coef=auto_0.3 target_entropy=0.8 learns the coefficient (SAC style)")
    train.add_argument("--policy-kwargs", nargs="*", default=[], metavar="KEY=VALUE", help="policy_kwargs overrides, e.g. order=10")
    train.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY=VALUE", help="gymnasium.make overrides, e.g. target=two_moons")
    train.add_argument("--out", default=None, help="run directory (default runs/{env}__{policy}__{seed}__{time}); an existing one resumes")
    train.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these small networks)")
    train.add_argument("--no-progress-bar", action="store_true")
    train.add_argument("--verbose", type=int, default=0)
    train.set_defaults(func=train_command)
    evaluate = sub.add_parser("eval", help="evaluate a run directory: metrics.json and plots")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--episodes", type=int, default=100, help="Smooth World episodes per fixed start")
    evaluate.add_argument("--samples", type=int, default=100_000, help="bandit action samples for the histogram TV")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--threads", type=int, default=1)
    evaluate.set_defaults(func=eval_command)
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
