"""``seqmamba dna generate``: sample DNA from a pretrained model, written as FASTA.

The prompt is read in one parallel pass; each new base then costs one recurrent step,
whatever the length.  Special tokens (and N, unless --allow-n) are never sampled.
"""

from __future__ import annotations

import argparse

import torch

from seqmamba import MambaLMHeadModel
from seqmamba.atomic import atomic_output

from ..errors import InputError
from ..options import add_field, check_range
from .models import resolve_model_dir, tokenizer_of


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seqmamba dna generate", description=__doc__.split("\n")[0])
    add_field(p, "model", help="pretraining RUN or RUN/final")
    add_field(p, "prompt", default="", help="DNA to continue (default: none)")
    p.add_argument("--length", type=int, required=True, help="bases to generate")
    add_field(p, "out", help="FASTA output")
    p.add_argument("--num", type=int, default=1, help="sequences to sample")
    for name in ("temperature", "top_k", "top_p", "seed"):
        add_field(p, name)
    p.add_argument("--line-width", type=int, default=80)
    p.add_argument("--allow-n", action="store_true", help="let the model emit N")
    return p


def run(argv=None) -> int:
    a = build_parser().parse_args(argv)
    for name in ("length", "num"):
        check_range(a, name, 1)
    check_range(a, "temperature", 0)
    check_range(a, "top_p", 0, 1, low_open=True)
    check_range(a, "top_k", 0)
    d = resolve_model_dir(a.model)
    tok = tokenizer_of(d)
    import json

    if (json.loads((d / "config.json").read_text()).get("extra") or {}).get("task", "dna-lm") != "dna-lm":
        raise InputError("generation needs a pretrained language model, this is a classifier",
                         path=d, fix="pass the RUN of seqmamba dna pretrain")
    model = MambaLMHeadModel.from_pretrained(d).eval()
    prompt = tok.encode(a.prompt, record="--prompt") if a.prompt else torch.tensor([], dtype=torch.long)
    # an empty prompt starts from the beginning-of-sequence token
    start = prompt if len(prompt) else torch.tensor([tok.bos_id])
    ids = start[None].repeat(a.num, 1)
    never = [i for i in range(tok.vocab_size) if i not in tok.base_ids]
    if not a.allow_n:
        never += [i for i, s in enumerate(tok.symbols) if s in "Nn"]
    out = model.generate(ids, a.length, temperature=a.temperature, top_k=a.top_k, top_p=a.top_p,
                         seed=a.seed, suppress_tokens=never)
    with atomic_output(a.out) as tmp, open(tmp, "w") as f:
        for i, row in enumerate(out):
            seq = a.prompt + tok.decode(row[ids.shape[1]:])
            f.write(f">generated_{i + 1} seed={a.seed} temperature={a.temperature} "
                    f"prompt_length={len(a.prompt)}\n")
            for s in range(0, len(seq), a.line_width):
                f.write(seq[s:s + a.line_width] + "\n")
    print(f"wrote {a.out} ({a.num} x {a.length} bases after a {len(a.prompt)}-base prompt)")
    return 0
