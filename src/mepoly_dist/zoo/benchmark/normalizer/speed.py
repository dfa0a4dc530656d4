"""Section 2 of the normalizer benchmark: speed and peak memory of ``log_prob + entropy`` and its
backward against plain autograd on the materialized grid and a bare matmul floor, the dense against
the Kronecker node-feature operator, the PPO workload and the tiling of the stream.

Peak memory is measured per variant in a fresh subprocess: ``python -m
mepoly_dist.zoo.benchmark.normalizer.speed --memory-child CONFIG``.
"""

from __future__ import annotations

import ctypes
import gc
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import torch

from mepoly_dist import MePoly, MePolyFamily
from mepoly_dist.normalizer import log_partition_and_entropy
from mepoly_dist.quadrature import default_rule

from .common import (SCALE, VARIANT_LABEL, VARIANTS, clear_twins, fmt_mib, fmt_t, functional_step, interleaved_best,
                     materialized_step, materialized_terms, md_table, random_params, streaming_dense_step, streaming_step,
                     twin)

__all__ = ["memory_child", "measure_memory", "ppo_iteration", "ppo_normalizer_work", "previous_chunk", "section_speed"]


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
        [sys.executable, "-m", "mepoly_dist.zoo.benchmark.normalizer.speed", "--memory-child", json.dumps(cfg)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


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
        clear_twins()
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
        clear_twins()

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
    quick_note = f"; --quick ran {epochs} epoch and scales by 10" if args.quick else ""
    lines.append(
        f"**Normalizer work of one PPO iteration** of the paper's bandit ({n_samples} samples, 10 epochs x "
        f"{math.ceil(n_samples / minibatch)} minibatches of <= {minibatch} = {10 * math.ceil(n_samples / minibatch)} minibatches): "
        f"forward and backward of `log_partition_and_entropy` on random natural parameters (energy std <= {SCALE:g}) with "
        f"the package's tiling, no network; best (median) of {ppo_repeats + 2}"
        + quick_note
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
        + quick_note
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
        f"`log_partition_and_entropy(natural_params, family.node_operator, logw, chunk)` with all rows at once and a fixed chunk "
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


if __name__ == "__main__":  # the --memory-child subprocess of measure_memory
    if len(sys.argv) != 3 or sys.argv[1] != "--memory-child":
        sys.exit("usage: python -m mepoly_dist.zoo.benchmark.normalizer.speed --memory-child CONFIG_JSON")
    torch.set_num_threads(1)
    memory_child(json.loads(sys.argv[2]))
