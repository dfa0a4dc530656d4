"""The ``mepoly`` command: ``train`` (an SB3 run with presets, checkpoints and a final evaluation,
:mod:`mepoly_dist.zoo.train`), ``eval`` (re-evaluate a run directory) and ``fit`` (max-entropy fit
of a MePoly density to a bandit target, no RL).

Bad input (an unknown environment, policy, hyperparameter or keyword, a value out of range) ends in
one line on stderr, ``mepoly <command>: error: ...`` naming what is accepted, with exit code 2
(argparse's convention), before anything is written.  Installed without the ``[rl]`` extra, the
command says which packages are missing and how to install them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import textwrap
import time
from pathlib import Path

DESCRIPTION = """\
Train and evaluate MePoly policies (and the paper's Gaussian, GMM and FPO baselines) with
Stable-Baselines3, and fit MePoly densities to the manifold bandit's targets.

  mepoly train lemniscate                  the bandit, its preset (102,400 steps)
  mepoly train four_walls --policy gmm     Smooth World with the GMM baseline
  mepoly train Pendulum-v1 --steps 50000   any gymnasium id
  mepoly eval runs/lemniscate__mepoly__0__1700000000
  mepoly fit two_moons --order 10

'mepoly COMMAND --help' describes the options of a command."""

#: the modules of the ``[rl]`` extra that each command imports (module -> distribution)
_RL_MODULES = {"gymnasium": "gymnasium", "stable_baselines3": "stable-baselines3", "sb3_contrib": "sb3-contrib", "yaml": "pyyaml",
               "pandas": "pandas", "scipy": "scipy", "matplotlib": "matplotlib", "tqdm": "tqdm", "rich": "rich",
               "tensorboard": "tensorboard"}
_NEEDS = {"train": tuple(_RL_MODULES), "eval": ("gymnasium", "stable_baselines3", "sb3_contrib", "yaml", "pandas", "scipy", "matplotlib"),
          "fit": ("gymnasium", "stable_baselines3", "scipy", "matplotlib")}


def _missing(modules) -> list[str]:
    """The distributions of ``modules`` that cannot be imported (found by ``importlib.util.find_spec``,
    so nothing is imported; a module set to ``None`` in ``sys.modules`` counts as missing)."""
    missing = []
    for module in modules:
        try:
            found = sys.modules[module] if module in sys.modules else importlib.util.find_spec(module)
        except (ImportError, ValueError):
            found = None
        if found is None:
            missing.append(_RL_MODULES[module])
    return missing


def _check_extra(modules, prog: str) -> None:
    missing = _missing(modules)
    if missing:
        sys.stderr.write(f"{prog}: error: needs the [rl] extra (missing: {', '.join(missing)}); "
                         f"install it with: pip install \"mepoly-dist[rl]\"\n")
        raise SystemExit(2)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``prog: error: message`` and exit code 2, as ``parser.error``
    but without repeating the usage (``--help`` prints it)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

    def fail(self, message: str):
        """A bad value found after parsing: the same one line, exit code 2."""
        self.exit(2, f"{self.prog}: error: {message}\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written (the examples keep their columns), help wrapped at 100 columns."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=30, width=100)


def _wrap(text: str) -> str:
    return textwrap.fill(" ".join(text.split()), 100)


def _number(kind, accept, expected: str):
    """An argparse ``type``: ``kind(text)`` where ``accept`` holds, else an error naming ``expected``."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_seed = _number(int, lambda v: 0 <= v < 2**32, "an integer in [0, 2**32)")
_positive_float = _number(float, lambda v: 0 < v < float("inf"), "a positive number")


def fit_command(args) -> dict:
    import torch

    from .. import MePoly, MePolyFamily
    from ..fit import fit_max_entropy, target_moments
    from . import metrics, targets
    from .plotting import plot_density_comparison

    torch.manual_seed(args.seed)
    try:
        family = MePolyFamily(2, args.order, basis=args.basis, quadrature=args.quadrature, dtype=torch.float64)
    except ValueError as error:
        args.parser.fail(" ".join(str(error).split()))
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        args.parser.fail(f"--out {out}: a file, not a directory")
    points = targets.target_points(args.target, seed=args.seed)
    log_density = lambda x: targets.boltzmann_log_density(x, points, args.alpha)
    start = time.perf_counter()
    natural_params = fit_max_entropy(target_moments(log_density, family), family)
    fit_seconds = time.perf_counter() - start
    dist = MePoly(natural_params, family)
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
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"natural_params": natural_params, "family": family.config}, out / "natural_params.pt")
    (out / "metrics.json").write_text(json.dumps(found, indent=2))
    plot_density_comparison(out / "density.png", dist, log_density, points, samples[:20000], title=f"{args.target}, alpha = {args.alpha}",
                            alpha=args.alpha)
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
    import torch

    from .config import ConfigError, resolve_config
    from .train import train

    torch.set_num_threads(args.threads)
    try:
        config = resolve_config(args.env, args.policy, args.seed, args.hp, args.policy_kwargs, args.env_kwargs, args.steps, args.n_envs,
                                args.checkpoint_every, algo=args.algo)
        out = Path(args.out) if args.out else Path("runs") / f"{config.name}__{config.policy}__{config.seed}__{int(time.time())}"
        metrics = train(config, out, progress_bar=not args.no_progress_bar, verbose=args.verbose)
    except ConfigError as error:
        args.parser.fail(str(error))
    _print_metrics(metrics, out)
    return metrics


def eval_command(args) -> dict:
    import torch

    from .config import ConfigError
    from .train import evaluate_run

    torch.set_num_threads(args.threads)
    try:
        metrics = evaluate_run(args.run_dir, episodes=args.episodes, samples=args.samples, seed=args.seed)
    except (ConfigError, FileNotFoundError) as error:
        args.parser.fail(str(error))
    _print_metrics(metrics, Path(args.run_dir))
    return metrics


def _parser() -> _Parser:
    from . import targets
    from .tasks import all_aliases
    from .config import ALGORITHMS, POLICIES

    aliases = all_aliases()
    parser = _Parser(prog="mepoly", description=DESCRIPTION, formatter_class=_Formatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")

    train = sub.add_parser("train", formatter_class=_Formatter, help="train a policy with a preset (resumes from checkpoints)",
                           description=_wrap("Train an SB3 policy on ENV with the preset of ENV and --policy, then evaluate it. The run "
                                       "directory gets config.yml, checkpoints/, model.zip, TensorBoard logs (tb/), metrics.json "
                                       "and plots; running the same command on an existing run directory resumes it from its "
                                       "latest checkpoint."))
    train.add_argument("env", metavar="ENV",
                       help=f"an alias ({', '.join(sorted(aliases))}) or a gymnasium id (mepoly/Bandit-v0, Pendulum-v1, ...)")
    train.add_argument("--policy", default="mepoly", choices=POLICIES,
                       help="the action distribution: mepoly (MePoly), gaussian (SB3's MlpPolicy), or the paper's baselines "
                            "gmm (Gaussian mixture) and fpo (flow policy optimization, algo fpo), or nsf (a neural spline flow under PPO); "
                            "default: %(default)s")
    train.add_argument("--algo", default=None, choices=ALGORITHMS,
                       help="algorithm (default: the preset's); maxent_ppo puts ent_coef * entropy into the returns")
    train.add_argument("--seed", type=_seed, default=0, help="seed of the environments, the networks and the sampling; default: %(default)s")
    train.add_argument("--steps", type=_positive_int, default=None, metavar="N", help="environment steps (default: the preset's n_timesteps)")
    train.add_argument("--n-envs", type=_positive_int, default=None, metavar="N", help="parallel environments (default: the preset's)")
    train.add_argument("--checkpoint-every", type=_positive_int, default=None, metavar="N",
                       help="environment steps between checkpoints and learning-curve evaluations (default: the preset's)")
    train.add_argument("--hp", nargs="*", default=[], metavar="KEY=VALUE",
                       help="keyword arguments of the algorithm's constructor, e.g. ent_coef=0.1 learning_rate=lin_1e-3; "
                            "ent_coef=auto_0.3 target_entropy=0.8 learns the coefficient (SAC style)")
    train.add_argument("--policy-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                       help="keyword arguments of the policy's constructor, e.g. order=10 (MePoly), n_components=8 (gmm) or transforms=2 (nsf)")
    train.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                       help="keyword arguments of the environment's constructor, e.g. target=two_moons or layout=three_goals")
    train.add_argument("--out", default=None, metavar="DIR",
                       help="run directory (default: runs/{env}__{policy}__{seed}__{time}); an existing one resumes")
    train.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                       help="torch threads; default: %(default)s (the fastest for these small networks)")
    train.add_argument("--no-progress-bar", action="store_true", help="do not show the progress bar")
    train.add_argument("--verbose", type=int, default=0, choices=[0, 1, 2],
                       help="SB3's verbosity: 0 quiet, 1 training statistics per update, 2 debug; default: %(default)s")
    train.set_defaults(func=train_command, parser=train)

    evaluate = sub.add_parser("eval", formatter_class=_Formatter, help="re-evaluate a run directory: metrics.json and plots",
                              description=_wrap("Evaluate the final model of a run directory made by 'mepoly train' again, and rewrite its "
                                          "metrics.json and plots. Runs saved by earlier versions of mepoly-dist load too."))
    evaluate.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (with config.yml and model.zip)")
    evaluate.add_argument("--episodes", type=_positive_int, default=100, metavar="N",
                          help="Smooth World: episodes per fixed start; other gymnasium ids: evaluation episodes; default: %(default)s")
    evaluate.add_argument("--samples", type=_positive_int, default=100_000, metavar="N",
                          help="bandit: action samples for TV and coverage; default: %(default)s")
    evaluate.add_argument("--seed", type=_seed, default=0, help="seed of the evaluation; default: %(default)s")
    evaluate.add_argument("--threads", type=_positive_int, default=1, metavar="N", help="torch threads; default: %(default)s")
    evaluate.set_defaults(func=eval_command, parser=evaluate)

    fit = sub.add_parser("fit", formatter_class=_Formatter, help="fit MePoly to a bandit target (no RL): density plot and metrics",
                         description=_wrap("Maximum-entropy fit of a 2-D MePoly density to the Boltzmann target exp(r / alpha) of a bandit "
                                     "target, by matching its moments; writes density.png, metrics.json and natural_params.pt."))
    fit.add_argument("target", metavar="TARGET", choices=sorted(targets.TARGETS),
                     help=f"the bandit target: {', '.join(sorted(targets.TARGETS))}")
    fit.add_argument("--alpha", type=_positive_float, default=0.2, help="temperature of the Boltzmann target exp(r / alpha); default: %(default)s")
    fit.add_argument("--order", type=_positive_int, default=14, metavar="N", help="total degree of the polynomial; default: %(default)s")
    fit.add_argument("--basis", default="legendre", choices=["legendre", "monomial"], help="polynomial basis; default: %(default)s")
    fit.add_argument("--quadrature", default=None, metavar="RULE",
                     help="quadrature rule spec, e.g. gauss_legendre:90 (default: the family's default for 2-D)")
    fit.add_argument("--samples", type=_positive_int, default=100_000, metavar="N", help="samples drawn for the metrics; default: %(default)s")
    fit.add_argument("--seed", type=_seed, default=0, help="seed of the target points and the sampling; default: %(default)s")
    fit.add_argument("--out", default="runs/fit", metavar="DIR", help="output directory; default: %(default)s")
    fit.set_defaults(func=fit_command, parser=fit)
    return parser


def main(argv=None):
    """Run ``mepoly`` with ``argv`` (default: the command line)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    # the parser itself lists the aliases (gymnasium) and the targets (scipy)
    _check_extra(("gymnasium", "stable_baselines3", "yaml", "scipy"), "mepoly")
    _check_extra(_NEEDS.get(command, ()), f"mepoly {command}")
    args = _parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
