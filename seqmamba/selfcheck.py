"""A quick check of the model's own invariants on this machine (used by ``seqmamba selfcheck``).

Each check builds a small random model and compares two ways of computing the same thing:
full forward vs token-by-token recurrent steps vs chunks with carried state, and the
reverse-complement symmetry of the RC-equivariant variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch

from .config import MambaConfig
from .heads import MambaForTokenClassification, MambaLMHeadModel
from .stepper import RecurrentStepper


@dataclass
class ModelCheck:
    name: str
    error: float  # max |difference| relative to the largest output
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.error <= self.tolerance


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp(min=1e-12))


@torch.no_grad()
def model_self_check(device: str = "cpu", seed: int = 0) -> List[ModelCheck]:
    torch.manual_seed(seed)
    cfg = MambaConfig(d_model=64, n_layer=2, vocab_size=16, d_state=16)
    lm = MambaLMHeadModel(cfg).to(device).eval()
    x = torch.randint(0, 16, (2, 200), device=device)
    full = lm(x).logits
    cache = lm.allocate_inference_cache(2)
    stepper = RecurrentStepper(lm)  # the per-token path generation runs
    steps = torch.stack([stepper(x[:, t], cache) for t in range(x.shape[1])], 1)
    chunked = lm(x, chunk_size=48).logits
    comp = [3, 2, 1, 0] + list(range(4, 16))
    rc = MambaForTokenClassification(cfg.replace(rc_equivariant=True, complement_map=comp,
                                                 bidirectional="add")).to(device).eval()
    dna = torch.randint(0, 4, (2, 150), device=device)
    rc_dna = torch.tensor(comp, device=device)[dna].flip(1)
    return [
        ModelCheck("LM: recurrent steps == full forward", _rel(steps, full), 1e-4),
        ModelCheck("LM: chunks with carried state == full", _rel(chunked, full), 1e-4),
        ModelCheck("RC model: f(revcomp x) == reversed f(x)",
                   _rel(rc(rc_dna).logits, rc(dna).logits.flip(1)), 1e-4),
    ]
