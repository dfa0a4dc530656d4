#!/usr/bin/env python
r"""Cost of sampling and of the mode against the normalizer, side by side in one process.

Usage (from the repository root)::

    python benchmarks/core_speed.py [--rows 1024] [--repeats 3] [--seed 0] [--device cpu] [--out benchmarks/results/core_speed]

For each workload, the best of ``--repeats`` interleaved runs (one torch thread on the CPU) of

* ``normalizer``: ``log_prob(x) + entropy()`` and its backward on ``--rows`` distinct rows (the work
  of a PPO minibatch), including the refinement of rows the default rule does not resolve;
* ``sample()`` and ``.mode`` on the same rows (fresh distribution objects, so nothing is cached);

and their ratios to the normalizer.  Workloads: D = 2 at orders 8 and 14 with ``lam = 3 * randn``
and with the paper's lemniscate and two-moons targets (alpha = 0.2) projected at each order, and
D = 4, order 4, ``lam = randn`` on ``--rows / 16`` rows.  Writes ``OUT/core_speed.md`` (``core_speed_<device>.md`` off the CPU).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import torch

from mepoly_dist import MePoly, MePolyFamily, QuadratureWarning
from mepoly_dist.fit import project_energy
from mepoly_dist.zoo.targets import boltzmann_log_density, target_points

from .results import markdown_table, results_header, write_report

__all__ = ["workloads", "measure", "main"]


def workloads(rows: int, seed: int, device: str):
    gen = torch.Generator().manual_seed(seed)
    for order in (8, 14):
        family = MePolyFamily(2, order).to(device)
        yield f"D=2, order {order}, lam = 3 randn", family, 3 * torch.randn(rows, family.num_params, generator=gen)
        for name in ("lemniscate", "two_moons"):
            points = target_points(name)
            lam = project_energy(lambda x: boltzmann_log_density(x, points, 0.2), family.cpu()).float()
            family.to(device)
            # the projected target, perturbed per row so that no two rows share an envelope
            yield f"D=2, order {order}, {name} (alpha 0.2)", family, lam + 0.1 * torch.randn(rows, lam.shape[0], generator=gen)
    family = MePolyFamily(4, 4).to(device)
    few = max(1, rows // 16)  # the sampler takes seconds per 64 rows here
    yield f"D=4, order 4, lam = randn ({few} rows)", family, torch.randn(few, family.num_params, generator=gen)


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(family, lam: torch.Tensor, repeats: int) -> dict:
    x = torch.rand(lam.shape[0], family.dim, device=lam.device) * 2 - 1

    def normalizer():
        params = lam.clone().requires_grad_()
        dist = MePoly(params, family, validate_args=False)
        (dist.log_prob(x) + dist.entropy()).sum().backward()

    cases = {
        "normalizer": normalizer,
        "sample": lambda: MePoly(lam, family, validate_args=False).sample(),
        "mode": lambda: MePoly(lam, family, validate_args=False).mode,
    }
    best = {name: float("inf") for name in cases}
    for round_ in range(repeats + 1):  # the first round warms caches up and is not counted
        for name, fn in cases.items():
            seconds = timed(fn)
            if round_:
                best[name] = min(best[name], seconds)
    dist = MePoly(lam, family, validate_args=False)
    best["refined rows"] = float((dist.quadrature_nodes > family.quadrature.num_nodes).float().mean())
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/core_speed"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    warnings.simplefilter("ignore", QuadratureWarning)  # unresolved rows are counted, not the point here
    header = ["workload", "normalizer (log_prob + entropy + backward)", "sample()", "sample / normalizer",
              "mode", "mode / normalizer", "rows refined"]
    table = []
    for name, family, lam in workloads(args.rows, args.seed, args.device):
        t = measure(family, lam.to(args.device), args.repeats)
        table.append([name, f"{t['normalizer'] * 1e3:.0f} ms", f"{t['sample'] * 1e3:.0f} ms", f"{t['sample'] / t['normalizer']:.2f}x",
                      f"{t['mode'] * 1e3:.0f} ms", f"{t['mode'] / t['normalizer']:.2f}x", f"{t['refined rows']:.0%}"])
        print(" | ".join(table[-1]), flush=True)
    text = results_header("Sampling and the mode against the normalizer", args.seed,
                          f"{args.rows} distinct rows per call, device {args.device}, best of {args.repeats} interleaved runs.")
    text += "\n" + markdown_table(header, table)
    path = write_report(args.out, "core_speed.md" if args.device == "cpu" else f"core_speed_{args.device.replace(':', '')}.md", text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
