"""Section 3 of the normalizer benchmark: nodes, time and log-partition error against D (1..8) of
the package default, tensor Gauss-Legendre and Sobol' rules, against an independent reference; and
the figure of sections 2 and 3."""

from __future__ import annotations

import gc
import time

import numpy as np
import torch

from mepoly_dist import MePoly, MePolyFamily, basis
from mepoly_dist.quadrature import default_rule

from .common import (SCALE, VARIANT_LABEL, clear_twins, fmt_err, fmt_t, interleaved_best, md_table, random_params,
                     separable_log_partition, streaming_dense_step, streaming_step)

__all__ = ["order_for_dim", "gl_points_for_dim", "REF_POINTS", "REF_POINTS_QUICK", "reference_log_partition", "section_scaling",
           "plot_scaling"]


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
    rows, refused = [], []
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
        if gl_points_for_dim(dim) < order + 1:  # MePolyFamily refuses tensor rules that cannot resolve the order
            specs.remove(f"gauss_legendre:{gl_points_for_dim(dim)}")
            refused.append(f"`gauss_legendre:{gl_points_for_dim(dim)}` at D = {dim}")
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
            clear_twins()
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
        + (f" Not run: {', '.join(refused)} (fewer than order + 1 points per axis, which `MePolyFamily` refuses)." if refused else "")
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
    """Time and log-partition error against D (top row, this section's ``rows``) and, where the
    speed section ran (``speed``: its results, else None), its batch-4096 times and peak memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2 if speed else 1, 2, figsize=(14, 10 if speed else 5), squeeze=False)
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
    if not speed:
        fig.tight_layout()
        fig.savefig(out, dpi=120)
        plt.close(fig)
        return
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
