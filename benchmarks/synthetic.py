"""PLACEHOLDER docstring (rewritten once the sizes are settled)."""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: seqmamba lives in the repo root
    sys.path.insert(0, str(ROOT))

from seqmamba import MambaConfig, MambaLMHeadModel  # noqa: E402

# ---- vocabulary (16 tokens, as in the paper) ----
VOCAB = 16
# Selective copying: 0 is the noise/blank token, 1 the marker ("output the next data token
# here"), 2..15 the 14 data values.
NOISE, MARKER, FIRST_DATA = 0, 1, 2
# Induction heads: the last id is the trigger; the random content is drawn from the others, so
# the trigger occurs exactly twice in a sequence.
TRIGGER = VOCAB - 1

FIELDS = ["task", "model", "train_len", "eval_len", "accuracy", "n_eval", "train_steps",
          "train_seconds", "eval_seconds", "final_loss", "n_tokens", "batch", "lr", "d_model",
          "n_layer", "d_state", "seed"]


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

def selective_copying_batch(batch: int, length: int, n_tokens: int, generator: torch.Generator,
                            vocab_size: int = VOCAB) -> Tuple[torch.Tensor, torch.Tensor]:
    """A batch of the selective-copying task.

    Each row is ``length`` tokens: a region of ``length - n_tokens`` positions of NOISE with
    ``n_tokens`` data tokens (uniform over FIRST_DATA..vocab_size-1) at distinct random
    positions, then ``n_tokens`` MARKER tokens.  At the j-th marker the model must output the
    j-th data token of the region (in order of position).

    Returns ``inputs: (batch, length)`` int64 and ``targets: (batch, length)`` int64 holding
    the data tokens at the last ``n_tokens`` positions and -100 (ignored) everywhere else.
    """
    region = length - n_tokens
    if not 0 < n_tokens <= region:
        raise ValueError(f"need 0 < n_tokens <= length - n_tokens, got n_tokens={n_tokens}, "
                         f"length={length}")
    data = torch.randint(FIRST_DATA, vocab_size, (batch, n_tokens), generator=generator)
    # n_tokens distinct positions per row, sorted so that data[:, j] is the j-th in order.
    pos = torch.rand(batch, region, generator=generator).argsort(dim=1)[:, :n_tokens]
    pos = pos.sort(dim=1).values
    inputs = torch.full((batch, length), NOISE, dtype=torch.long)
    inputs.scatter_(1, pos, data)
    inputs[:, region:] = MARKER
    targets = torch.full((batch, length), -100, dtype=torch.long)
    targets[:, region:] = data
    return inputs, targets


def induction_heads_batch(batch: int, length: int, generator: torch.Generator,
                          vocab_size: int = VOCAB) -> Tuple[torch.Tensor, torch.Tensor]:
    """A batch of the induction-heads task.

    Each row is ``length`` tokens drawn uniformly from 0..vocab_size-2, except that the
    TRIGGER (vocab_size-1) sits at one random position p in [0, length-3] and again at the
    last position.  At the last position the model must output the token at p+1, the one that
    followed the first trigger.

    Returns ``inputs: (batch, length)`` int64 and ``targets: (batch,)`` int64 (the answer,
    read from the logits of the last position).
    """
    if length < 3:
        raise ValueError(f"induction heads needs length >= 3, got {length}")
    trigger = vocab_size - 1
    inputs = torch.randint(0, trigger, (batch, length), generator=generator)
    p = torch.randint(0, length - 2, (batch,), generator=generator)
    rows = torch.arange(batch)
    inputs[rows, p] = trigger
    inputs[:, -1] = trigger
    return inputs, inputs[rows, p + 1].clone()


# ---------------------------------------------------------------------------------------------
# Training and evaluation
# ---------------------------------------------------------------------------------------------

@dataclass
class TrainSpec:
    steps: int
    batch: int
    lr: float
    warmup: int
    weight_decay: float = 0.1
    clip: float = 1.0


def make_model(selective: bool, seed: int, d_model: int = 64, n_layer: int = 2,
               d_state: int = 16) -> MambaLMHeadModel:
    """A fresh 2-layer Mamba LM over the 16-token vocabulary, initialised from ``seed``."""
    torch.manual_seed(seed)
    cfg = MambaConfig(d_model=d_model, n_layer=n_layer, vocab_size=VOCAB, d_state=d_state,
                      pad_vocab_size_multiple=8, selective=selective)
    return MambaLMHeadModel(cfg)


def lr_at(step: int, spec: TrainSpec) -> float:
    """Linear warmup to spec.lr over spec.warmup steps, then cosine decay to spec.lr / 10."""
    if step < spec.warmup:
        return spec.lr * (step + 1) / spec.warmup
    t = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
    return spec.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def train(model: MambaLMHeadModel, spec: TrainSpec,
          batch_fn: Callable[[int, torch.Generator], Tuple[torch.Tensor, torch.Tensor]],
          loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], seed: int,
          log_every: int = 0, name: str = "") -> Tuple[float, float]:
    """Train ``model`` on freshly generated batches (``batch_fn(batch, generator)``).

    ``loss_fn(logits (batch, length, vocab), targets)`` gives the scalar loss.  Returns
    (wall seconds, mean loss over the last 10% of steps).
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.param_groups(spec.weight_decay), lr=spec.lr,
                            betas=(0.9, 0.95))
    model.train()
    tail, t0 = [], time.perf_counter()
    tail_from = int(spec.steps * 0.9)
    for step in range(spec.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, spec)
        inputs, targets = batch_fn(spec.batch, gen)
        loss = loss_fn(model(inputs).logits, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.clip)
        opt.step()
        if step >= tail_from:
            tail.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            print(f"  [{name}] step {step + 1}/{spec.steps} loss {loss.item():.4f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    model.eval()
    return time.perf_counter() - t0, sum(tail) / max(1, len(tail))


def copying_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the answer positions only: logits (B, L, V), targets (B, L) with -100."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=-100)


def induction_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the last position: logits (B, L, V), targets (B,)."""
    return F.cross_entropy(logits[:, -1].float(), targets)


@torch.no_grad()
def copying_accuracy(model: MambaLMHeadModel, length: int, n_tokens: int, n_seqs: int,
                     seed: int, batch: int = 256) -> float:
    """Per-token accuracy on the answer positions of ``n_seqs`` fresh sequences."""
    gen = torch.Generator().manual_seed(seed)
    correct = total = 0
    for start in range(0, n_seqs, batch):
        inputs, targets = selective_copying_batch(min(batch, n_seqs - start), length, n_tokens, gen)
        pred = model(inputs).logits[:, -n_tokens:].argmax(-1)
        correct += int((pred == targets[:, -n_tokens:]).sum())
        total += pred.numel()
    return correct / total


@torch.no_grad()
def induction_accuracy(model: MambaLMHeadModel, length: int, n_seqs: int, seed: int,
                       max_batch_tokens: int = 1 << 18, chunk_size: int = 1 << 16) -> float:
    """Accuracy of the last-position prediction on ``n_seqs`` fresh sequences of ``length``.

    Sequences longer than ``chunk_size`` run in pieces with carried state, and batches hold
    at most ``max_batch_tokens`` tokens, so memory stays bounded whatever the length.
    """
    gen = torch.Generator().manual_seed(seed)
    per_batch = max(1, max_batch_tokens // length)
    correct = 0
    for start in range(0, n_seqs, per_batch):
        inputs, targets = induction_heads_batch(min(per_batch, n_seqs - start), length, gen)
        logits = model(inputs, chunk_size=chunk_size if length > chunk_size else None).logits
        correct += int((logits[:, -1].argmax(-1) == targets).sum())
    return correct / n_seqs
