"""A 2^20-token sequence through a 2-layer d_model=128 Mamba LM on the CPU, in bounded memory.

    python benchmarks/long_forward.py                 # lengths 2^16, 2^18, 2^20 (a few minutes)
    python benchmarks/long_forward.py --lengths 65536 --chunk-size 16384

Each configuration runs in a fresh process; we report wall time, tokens/s and the peak
resident set of the whole process (VmHWM: Python, torch, weights, inputs, logits and every
temporary).  ``chunked`` feeds the sequence in pieces of ``--chunk-size`` tokens with the
recurrent state carried between them (``model(ids, chunk_size=...)``); ``one pass`` runs the
whole sequence at once, which is what a model without carried state has to do: its
activations grow with the length.  Target (issue 3): peak RSS under 4 GB at 2^20.

Results: ``benchmarks/results/long_forward.csv`` (written atomically).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

from _proc import available_ram, run_child, status_bytes, vm_bytes, write_csv_atomic

HERE = Path(__file__).resolve().parent
FIELDS = ["mode", "length", "chunk_size", "d_model", "n_layer", "status", "time_s", "tokens_per_s",
          "peak_rss_mb", "detail"]


def child(a) -> dict:
    import torch

    from seqmamba import MambaConfig, MambaLMHeadModel

    resource.setrlimit(resource.RLIMIT_AS, (vm_bytes() + int(a.mem_budget_gb * 2**30),
                                            resource.RLIM_INFINITY))
    torch.manual_seed(0)
    model = MambaLMHeadModel(MambaConfig(d_model=a.d_model, n_layer=a.n_layer, vocab_size=16)).eval()
    ids = torch.randint(0, 16, (1, a.length))
    t0 = time.perf_counter()
    with torch.no_grad():
        logits = model(ids, chunk_size=a.chunk_size or None).logits
    dt = time.perf_counter() - t0
    assert logits.shape == (1, a.length, 16) and torch.isfinite(logits).all()
    return {"status": "ok", "time_s": dt, "tokens_per_s": a.length / dt,
            "peak_rss_mb": status_bytes("VmHWM") / 2**20}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[1 << 16, 1 << 18, 1 << 20])
    p.add_argument("--chunk-size", type=int, default=1 << 15)
    p.add_argument("--one-pass-max", type=int, default=1 << 18,
                   help="longest length also run in one pass (its memory grows with length)")
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--mem-budget-gb", type=float, default=None)
    p.add_argument("--timeout", type=float, default=1800.0)
    p.add_argument("--out", type=Path, default=HERE / "results" / "long_forward.csv")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--length", type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.mem_budget_gb is None:
        a.mem_budget_gb = 0.8 * available_ram() / 2**30
    if a.child:
        print(json.dumps(child(a)))
        return 0
    rows = []
    for L in a.lengths:
        for mode, chunk in (("chunked", a.chunk_size), ("one pass", 0)):
            row = {"mode": mode, "length": L, "chunk_size": chunk or "", "d_model": a.d_model,
                   "n_layer": a.n_layer}
            if mode == "one pass" and L > a.one_pass_max:
                row["status"] = f"skipped (over --one-pass-max {a.one_pass_max})"
            else:
                row.update(run_child(Path(__file__).resolve(), [
                    "--length", L, "--chunk-size", chunk, "--d-model", a.d_model, "--n-layer",
                    a.n_layer, "--mem-budget-gb", a.mem_budget_gb], a.timeout))
            rows.append(row)
            if row["status"] == "ok":
                print(f"{mode:>9} L={L:>8}: {row['time_s']:7.2f} s, {row['tokens_per_s']:9.0f} tok/s, "
                      f"peak RSS {row['peak_rss_mb']:7.0f} MB", flush=True)
            else:
                print(f"{mode:>9} L={L:>8}: {row['status']}", flush=True)
    write_csv_atomic(rows, a.out, FIELDS)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
