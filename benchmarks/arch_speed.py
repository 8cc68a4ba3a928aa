"""Mamba against Mamba-2 and the Transformer++ baseline on the CPU: speed and memory against
length.

    python benchmarks/arch_speed.py                    # about 25 minutes on 2 cores
    python benchmarks/arch_speed.py --kinds train --timeout 600   # the published train rows
    python benchmarks/arch_speed.py --quick            # smoke run

Three causal LMs of matched size (parameters within 10%, the Mamba paper's convention of two
Mamba blocks per Transformer block): Mamba d_model 128 x 4 blocks (469k parameters), Mamba-2
d_model 128 x 4 blocks of 4 heads of 64 channels, state 64 (472k), and Transformer++ d_model
136 x 2 blocks (4 heads, RoPE, SwiGLU; 451k); vocabulary 16, float32.  Each
measurement runs in a fresh process, so its peak resident set (VmHWM, less the set after the
model is built) is its own:

- ``train``: one forward + backward of a batch-1 sequence;
- ``predict``: next-token logits for a whole sequence without gradients.  The Mambas run the
  product's path (``chunk_size`` 2^15 with carried state, flat memory); the Transformer one
  full causal attention over the sequence (scaled_dot_product_attention), until it runs out
  of memory or the time budget;
- ``generate``: tokens/s of 64 greedy tokens after a prompt of the given length, through
  the steps ``generate`` takes (Mamba and Mamba-2: the uncompiled ``RecurrentStepper``, O(1)
  a token; the Transformer: a KV-cache step, O(context)); the prompt's prefill is not timed.

Each is timed three times after a warm-up in the same process (generation: three rounds of 64
tokens, the context growing by 192 tokens in all); the CSV keeps the median and the fastest and
slowest of the three, so the tables give each figure with its range.

Writes ``benchmarks/results/arch_speed.csv``: arch, kind, length, status, seconds, tokens/s,
peak MB, and each model's time over Mamba's at each length.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from _proc import reset_peak_rss, run_child, status_bytes, write_csv_atomic

HERE = Path(__file__).resolve().parent
FIELDS = ["arch", "kind", "length", "params", "status", "seconds", "seconds_min", "seconds_max",
          "tokens_per_s", "peak_mb", "seconds_over_mamba", "detail"]
ARCHS = {"mamba": dict(arch="mamba", d_model=128, n_layer=4),
         "mamba2": dict(arch="mamba2", d_model=128, n_layer=4, d_state=64, head_dim=64),
         "transformer": dict(arch="transformer", d_model=136, n_layer=2, n_head=4)}
LENGTHS = {"train": [1 << 10, 1 << 12, 1 << 14, 1 << 16],
           "predict": [1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20],
           "generate": [1 << 10, 1 << 14, 1 << 16]}
NEW_TOKENS = 64
REPEATS = 3  # timed runs per measurement, after a warm-up


def build(arch: str):
    import torch

    from seqmamba import MambaConfig, MambaLMHeadModel

    torch.manual_seed(0)
    return MambaLMHeadModel(MambaConfig(vocab_size=16, **ARCHS[arch]))


def child(a) -> dict:
    import torch

    torch.set_num_threads(a.threads)
    model = build(a.arch)
    ids = torch.randint(0, 16, (1, a.length))
    reset_peak_rss()
    base = status_bytes("VmRSS")
    times = []
    if a.kind == "train":
        for _ in range(REPEATS + 1):  # the first is a warm-up
            t0 = time.perf_counter()
            model(ids, labels=ids).loss.backward()
            times.append(time.perf_counter() - t0)
            model.zero_grad(set_to_none=True)
        times, tokens = times[1:], a.length
    elif a.kind == "predict":
        model.eval()
        chunk = None if a.arch == "transformer" else 1 << 15
        with torch.no_grad():
            model(ids[:, :1024])  # a warm-up: first-call costs are not the length's
            for _ in range(REPEATS):
                t0 = time.perf_counter()
                model(ids, chunk_size=chunk)
                times.append(time.perf_counter() - t0)
        tokens = a.length
    else:  # generation as model.generate runs it, the prompt's prefill not timed
        from seqmamba.stepper import RecurrentStepper

        model.eval()
        with torch.no_grad():
            cache = model.allocate_inference_cache(1)
            chunk = None if a.arch == "transformer" else 1 << 15
            tok = model(ids, inference_cache=cache, chunk_size=chunk,
                        num_last_tokens=1).logits[:, -1].argmax(-1)
            step = RecurrentStepper(model) if a.arch != "transformer" else model.step
            for _ in range(REPEATS):
                t0 = time.perf_counter()
                for _ in range(NEW_TOKENS):
                    tok = step(tok, cache).argmax(-1)
                times.append(time.perf_counter() - t0)
        tokens = NEW_TOKENS
    seconds = statistics.median(times)
    return {"status": "ok", "seconds": seconds, "seconds_min": min(times),
            "seconds_max": max(times), "tokens_per_s": tokens / seconds,
            "peak_mb": (status_bytes("VmHWM") - base) / 2**20,
            "params": model.num_parameters()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="lengths up to 2^12 only")
    p.add_argument("--kinds", nargs="+", default=list(LENGTHS), choices=list(LENGTHS),
                   help="what to measure (the CSV's rows of the others are kept)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per measurement")
    p.add_argument("--out", type=Path, default=HERE / "results" / "arch_speed.csv")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--arch", help=argparse.SUPPRESS)
    p.add_argument("--kind", help=argparse.SUPPRESS)
    p.add_argument("--length", type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a)))
        return 0
    rows = []
    if a.out.exists():  # keep the rows of kinds not measured this time
        import csv

        with open(a.out, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["kind"] not in a.kinds]
        for r in rows:
            r["length"] = int(r["length"])
            if r["status"] == "ok":
                r["seconds"] = float(r["seconds"])
    for kind, lengths in LENGTHS.items():
        if kind not in a.kinds:
            continue
        lengths = [n for n in lengths if not a.quick or n <= 1 << 12]
        for arch in ARCHS:
            failed = None
            for n in lengths:
                row = {"arch": arch, "kind": kind, "length": n}
                if failed:  # a longer input only fails harder
                    row["status"] = f"skipped ({failed} at a shorter length)"
                else:
                    row.update(run_child(Path(__file__).resolve(), [
                        "--arch", arch, "--kind", kind, "--length", n, "--threads",
                        a.threads], a.timeout))
                    if row["status"] != "ok":
                        failed = row["status"]
                rows.append(row)
                print(json.dumps(row), flush=True)
    for r in rows:  # the time ratio to Mamba's at each (kind, length) where both ran
        m = next(x for x in rows if (x["arch"], x["kind"], x["length"]) ==
                 ("mamba", r["kind"], r["length"]))
        if r["arch"] != "mamba" and r["status"] == m["status"] == "ok":
            r["seconds_over_mamba"] = r["seconds"] / m["seconds"]
    write_csv_atomic(rows, a.out, FIELDS)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
