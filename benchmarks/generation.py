"""Generation speed against context length: the per-token cost of a Mamba LM stays flat.

    python benchmarks/generation.py                        # prompts of 2^10 ... 2^20 tokens
    python benchmarks/generation.py --contexts 1024 65536 --new-tokens 128

For each prompt length the prompt is read once in parallel (chunked, carried state), then
``--new-tokens`` tokens are sampled one recurrent step at a time.  A Transformer's step
reads a key/value cache that grows with the context; a Mamba step touches only its fixed
(batch, d_inner, d_state) state, so tokens/s should not depend on the context.  The table
gives prefill time, decode tokens/s and the ratio to the shortest context.

Results: ``benchmarks/results/generation.csv`` (written atomically).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from _proc import ROOT, write_csv_atomic

sys.path.insert(0, str(ROOT))
from seqmamba import MambaConfig, MambaLMHeadModel  # noqa: E402
from seqmamba.generation import sample_next  # noqa: E402
from seqmamba.stepper import RecurrentStepper  # noqa: E402

HERE = Path(__file__).resolve().parent
FIELDS = ["context", "new_tokens", "vocab", "d_model", "n_layer", "prefill_s", "decode_s", "tokens_per_s",
          "ms_per_token", "relative_to_shortest"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--contexts", type=int, nargs="+", default=[1 << k for k in range(10, 21, 2)])
    p.add_argument("--new-tokens", type=int, default=256)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--vocab", type=int, default=16, help="16 for DNA, 256 for mu-law audio")
    p.add_argument("--chunk-size", type=int, default=1 << 15)
    p.add_argument("--out", type=Path, default=HERE / "results" / "generation.csv")
    a = p.parse_args(argv)
    torch.manual_seed(0)
    model = MambaLMHeadModel(MambaConfig(d_model=a.d_model, n_layer=a.n_layer,
                                         vocab_size=a.vocab)).eval()
    model.generate(torch.randint(0, a.vocab, (1, 64)), 32, seed=0)  # warm-up (allocator, threads)
    rows = []
    for ctx in a.contexts:
        prompt = torch.randint(0, a.vocab, (1, ctx))
        cache = model.allocate_inference_cache(1)
        t0 = time.perf_counter()
        with torch.no_grad():
            logits = model(prompt, inference_cache=cache, chunk_size=a.chunk_size,
                           num_last_tokens=1).logits[:, -1]
        prefill = time.perf_counter() - t0
        gen = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        stepper = RecurrentStepper(model)  # what generate() runs per token
        for _ in range(a.new_tokens):
            tok = sample_next(logits, 1.0, generator=gen)
            logits = stepper(tok, cache)
        decode = time.perf_counter() - t0
        rows.append({"context": ctx, "new_tokens": a.new_tokens, "vocab": a.vocab, "d_model": a.d_model,
                     "n_layer": a.n_layer, "prefill_s": prefill, "decode_s": decode,
                     "tokens_per_s": a.new_tokens / decode,
                     "ms_per_token": 1000 * decode / a.new_tokens})
        rows[-1]["relative_to_shortest"] = rows[0]["ms_per_token"] and \
            rows[-1]["ms_per_token"] / rows[0]["ms_per_token"]
        r = rows[-1]
        print(f"context {ctx:>8}: prefill {prefill:7.2f} s, decode {r['tokens_per_s']:7.0f} tok/s "
              f"({r['ms_per_token']:.2f} ms/token, {r['relative_to_shortest']:.2f}x the shortest)",
              flush=True)
    write_csv_atomic(rows, a.out, FIELDS)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
