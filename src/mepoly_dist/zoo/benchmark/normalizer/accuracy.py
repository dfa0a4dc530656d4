"""Section 1 of the normalizer benchmark: the accuracy per node of every quadrature rule on the
natural parameters of the paper's targets, against an independent float64 reference."""

from __future__ import annotations

import time

import numpy as np
import torch

from mepoly_dist import MePoly, MePolyFamily
from mepoly_dist.fit import project_energy
from mepoly_dist.quadrature import default_rule
from mepoly_dist.zoo.targets import boltzmann_log_density, target_points

from .common import NODE_BUDGET, TARGETS, TOL, fmt_err, md_table, separable_log_partition

__all__ = ["accuracy_specs", "section_accuracy", "plot_accuracy"]


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

    # the accuracy the default rule is chosen for
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
