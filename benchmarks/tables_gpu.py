"""Docs blocks about the GPU kernels (built by ``readme_tables.py``): the static analysis of the
Triton kernels compiled for Hopper without a GPU (``benchmarks/gpu_static.py``)."""

from __future__ import annotations

from tables_common import _csv

from seqmamba_kernels.triton_scan import CANDIDATE_TILES


def _config(t) -> str:
    """gpu_static.py's name of a scan tile config."""
    return f"BD{t.block_d}-BL{t.block_l}-W{t.num_warps}"


def gpu_static() -> str:
    """Registers, spills and occupancy of each scan kernel (fp32) at the candidate tile configs
    of ``triton_scan.CANDIDATE_TILES``, and the one-step kernel at its default."""
    rows = [r for r in _csv("gpu_static.csv") if r["dtype"] == "fp32"]
    wanted = list(dict.fromkeys(_config(t) for t in CANDIDATE_TILES))
    kernels = [k for k in dict.fromkeys(r["kernel"] for r in rows)
               if k != "step" and not k.startswith("ssd_")]
    by = {(r["kernel"], r["config"]): r for r in rows}
    out = ["Registers / spilled bytes per thread (stores) / occupancy, fp32, sm_90a "
           "(`gpu_static.csv`):", "",
           "| tiles (channels x steps, warps) | " + " | ".join(kernels) + " |",
           "|---" * (1 + len(kernels)) + "|"]
    for cfg in wanted:
        cells = []
        for k in kernels:
            r = by.get((k, cfg))
            cells.append("-" if r is None else
                         f"{r['registers']} / {r['spill_stores']} / {float(r['occupancy']):.0%}")
        bd, bl, w = (p[2:] if p.startswith("B") else p[1:] for p in cfg.split("-"))
        out.append(f"| {bd} x {bl}, {w} warps | " + " | ".join(cells) + " |")
    step = {r["config"]: r for r in rows if r["kernel"] == "step"}
    r = step.get("BD16-W4")  # the launcher's default: 16 channels a program, 4 warps
    if r:
        out += ["", f"One-step kernel (16 channels, 4 warps): {r['registers']} registers, "
                    f"{r['spill_stores']} bytes spilled, occupancy {float(r['occupancy']):.0%} "
                    f"(limited by {r['limiter']})."]
    ssd = {(r["kernel"], r["dtype"]): r for r in _csv("gpu_static.csv")
           if r["kernel"].startswith("ssd_")}
    if ssd:  # benchmarks/gpu_static.py compiles the SSD kernels at their default tiles only
        names = list(dict.fromkeys(k for k, _ in ssd))
        cfg = ssd[names[0], "fp32"]["config"]
        out += ["", f"Mamba-2 (SSD) kernels at their default tiles ({cfg} for the chunk "
                "kernels), head_dim 64, state 128, chunk 64; registers / spilled bytes per "
                "thread (stores) / occupancy:", "",
                "| dtype | " + " | ".join(n[4:] for n in names) + " |",
                "|---" * (1 + len(names)) + "|"]
        for dt in ("fp32", "bf16"):
            out.append(f"| {dt} | " + " | ".join(
                f"{ssd[n, dt]['registers']} / {ssd[n, dt]['spill_stores']} / "
                f"{float(ssd[n, dt]['occupancy']):.0%}" if (n, dt) in ssd else "-"
                for n in names) + " |")
    return "\n".join(out)
