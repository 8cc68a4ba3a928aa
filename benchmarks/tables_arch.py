"""README and docs blocks that put Mamba beside Mamba-2 and the Transformer++ baseline (built
by ``readme_tables.py``): speed and memory against length, E. coli bits per base, and the SSD
scan against the Mamba-1 kernel."""

from __future__ import annotations

from typing import Dict, List

import numpy as np

from tables_common import _csv, _pow2

NAMES = {"mamba": "Mamba", "mamba2": "Mamba-2", "transformer": "Transformer++"}


def _crossover(rows: List[dict], kind: str, arch: str = "transformer") -> str:
    """The shortest measured length from which ``arch`` is slower than Mamba at every longer
    length measured (or ran out of memory or time)."""
    sel = sorted((r for r in rows if r["kind"] == kind and r["arch"] == arch),
                 key=lambda r: int(r["length"]))
    slower = [r["status"] != "ok" or float(r["seconds_over_mamba"] or "nan") > 1 for r in sel]
    for i in range(len(sel)):
        if all(slower[i:]):
            return _pow2(sel[i]["length"])
    return "none measured"


def arch_speed() -> str:
    """benchmarks/arch_speed.py: one table per measurement, a column per model."""
    rows = _csv("arch_speed.csv")
    archs = list(dict.fromkeys(r["arch"] for r in rows))
    params = {r["arch"]: int(r["params"]) for r in rows if r.get("params")}
    by = {(r["arch"], r["kind"], int(r["length"])): r for r in rows}
    what = {"train": "forward + backward, batch 1", "predict": "next-token logits, no gradients",
            "generate": "64 greedy tokens after a prompt of the length, its prefill not timed"}
    out = [f"Models: " + ", ".join(f"{NAMES[a]} ({params.get(a, 0) / 1e3:.0f}k parameters)"
                                    for a in archs) + " (`arch_speed.csv`)."]
    for kind in ("train", "predict", "generate"):
        lengths = sorted({n for a, k, n in by if k == kind})
        out += ["", f"**{kind}** ({what[kind]}): tokens/s, peak MB above the model; time over "
                    "Mamba's", "",
                "| length | " + " | ".join(NAMES[a] for a in archs) + " |",
                "|---" * (1 + len(archs)) + "|"]
        for n in lengths:
            cells = []
            for a in archs:
                r = by.get((a, kind, n))
                if r is None:
                    cells.append("-")
                elif r["status"] != "ok":
                    cells.append(r["status"].split(" (")[0])
                else:
                    ratio = f", {float(r['seconds_over_mamba']):.2f}x" if r["seconds_over_mamba"] \
                        else ""
                    cells.append(f"{float(r['tokens_per_s']):,.0f} ({float(r['peak_mb']):,.0f} MB"
                                 f"{ratio})")
            out.append(f"| {_pow2(n)} | " + " | ".join(cells) + " |")
        if "transformer" in archs:
            out += ["", f"The Transformer++ is slower than Mamba from {_crossover(rows, kind)} "
                        "on (and at every longer length measured)."]
    return "\n".join(out)


def arch_dna_lm() -> str:
    """benchmarks/arch_dna_lm.py: held-out E. coli bits per base per model, mean and the range
    over seeds, beside the best Markov model of the same split."""
    rows = _csv("arch_dna_lm.csv")
    out = ["| model | parameters | training length | seeds | held-out bits/base, mean (range) "
           "| training minutes, mean |", "|---|---|---|---|---|---|"]
    groups: Dict[tuple, List[dict]] = {}
    for r in rows:
        groups.setdefault((int(r["seq_len"]), r["arch"]), []).append(r)
    for (n, arch), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], list(NAMES).index(
            kv[0][1]))):
        bits = [float(r["val_bits_per_base"]) for r in rs]
        rng = f" ({min(bits):.3f}-{max(bits):.3f})" if len(bits) > 1 else ""
        out.append(f"| {NAMES[arch]} | {int(rs[0]['params']) / 1e3:.0f}k | {n:,} | "
                   f"{', '.join(r['seed'] for r in rs)} | {np.mean(bits):.3f}{rng} | "
                   f"{np.mean([float(r['train_seconds']) for r in rs]) / 60:.1f} |")
    markov = rows[0]
    out.append(f"| best Markov (order {markov['best_markov_order']}), same split | - | - | - | "
               f"{float(markov['best_markov_bits_per_base']):.3f} | - |")
    return "\n".join(out)


def ssd_speed() -> str:
    """benchmarks/ssd_speed.py: tokens/s of the two scans per state, length and pass, and the
    SSD forward's share of the GEMM roofline."""
    rows = _csv("ssd_speed.csv")
    cols = list(dict.fromkeys((r["kernel"], int(r["state"])) for r in rows))
    by = {(r["kernel"], int(r["state"]), int(r["length"]), r["pass"]): r for r in rows}
    roof = float(rows[0]["gemm_roofline_gflops"])
    out = [f"d_inner 256, batch 1, {rows[0]['threads']} threads; tokens/s (`ssd_speed.csv`). "
           f"The machine's float32 GEMM roofline: {roof:.0f} GFLOP/s; in brackets, the SSD "
           "forward's matmul GFLOP/s as a share of it.", "",
           "| length | pass | " + " | ".join(
               f"{'Mamba-1 C kernel' if k == 'mamba1' else 'Mamba-2 SSD'}, state {s}"
               for k, s in cols) + " |", "|---" * (2 + len(cols)) + "|"]
    for n, pas in dict.fromkeys((int(r["length"]), r["pass"]) for r in rows):
        cells = []
        for k, s in cols:
            r = by.get((k, s, n, pas))
            if r is None:
                cells.append("-")
                continue
            share = f" ({float(r['gflops']) / roof:.0%})" if r.get("gflops") else ""
            cells.append(f"{float(r['tokens_per_s']):,.0f}{share}")
        out.append(f"| {_pow2(n)} | {pas} | " + " | ".join(cells) + " |")
    return "\n".join(out)
