"""The Mamba paper's two synthetic tasks (section 4.1, appendix E.1) on a CPU.

    python experiments/synthetic.py                    # the default table (CPU-sized copying)
    python experiments/synthetic.py --quick            # smoke run, about a minute
    python experiments/synthetic.py --tasks induction \
        --induction-variant steps_x10_state_passing_dt_penalty \
        --min-eval-seqs 32 [--seed 1]                 # the README's induction columns
    python experiments/synthetic.py --tasks copying --copy-length 4096 --copy-tokens 16 \
        --copy-batch 8 --copy-curriculum 256,1024 --copy-stage-frac 0.35 --steps 8000 \
        --curve-every 250                             # the paper's copying setting, with a curve
    python experiments/synthetic.py --threads 1        # on a CPU shared with other jobs
    python experiments/synthetic.py --tasks copying --copy-models transformer,mamba2
                                          # the Transformer++ and Mamba-2 on the same copying

Both tasks use the paper's model: a 2-layer Mamba LM, d_model 64, d_state 16, vocabulary 16,
trained with AdamW (betas 0.9/0.95, gradient clipping 1.0, linear warmup over 10% of the steps,
cosine decay to lr/10) on freshly generated batches every step.  Seeds are fixed (``--seed``,
default 0; the model init and the training stream use it, the evaluation sets use disjoint
seeds) and recorded in the CSV.

Selective copying (paper: length 4096, 16 data tokens, S6 99.8%, S4 18.3%)
    Tokens: 0 noise, 1 marker, 2..15 data (14 values).  A row is ``length - K`` positions of
    noise holding K data tokens at random distinct positions, then K markers; at the j-th
    marker the model must output the j-th data token.  Loss and accuracy cover only the K
    answer positions (chance 1/14).  Default: length 128, K = 4, 2000 steps of batch 32,
    lr 3e-3, weight decay 0.1 (a few minutes per model).  Measured while tuning (seed 0):
    length 64 / K 4 reaches 99.9% in 1500 steps, length 128 / K 4 96% in 1500 steps (hence
    2000), length 64 / K 8 only 76% in 1500 steps and length 128 / K 8 26% in 1000: more
    tokens need far more steps.  ``--copy-length/--copy-tokens`` set the paper's 4096 / 16;
    ``--copy-curriculum`` trains ``--copy-stage-frac`` (default 10%) of the steps at each
    shorter length first, where a step costs a fraction as much, and
    ``--curve-every`` records accuracy against steps (``<out>_copying_curve.csv``).  The same
    model with ``selective=False`` (time-invariant dt, B, C; S4-like) is trained identically.

Induction heads (paper: train at 256, Mamba perfect up to 2^20)
    Tokens 0..14 are content, 15 the trigger.  A row is random content with the trigger at a
    uniformly random position p in [0, length-3] and again at the last position; the model
    must output token p+1 at the last position (chance 1/15); only that position is in the
    loss.  Trained at length 256 in batches of 32, lr 3e-3, no weight decay, with a short
    length curriculum: 10% of the steps each at lengths 32, 64 and 128, then 256 for the
    remaining 70%.  Why: trained at 256 from the start, the single-position loss stayed at
    chance (ln 15) for all of 1500 steps, while at length 32 the task is found within 300
    steps and then carries over to 256.  Weight decay 0: decay pulls dt_proj toward an
    input-independent step, against the selection the task needs.  1500 steps give a model
    that is perfect at the training length and some multiple of it, then degrades;
    ``experiments/induction_probe.py`` finds why (the evaluation is exact; far keys are kept
    but misread) and what closes the gap to 2^20: state passing (``--state-passing``: each
    batch starts from the previous batch's final state) with 15000 steps, and a cost on the
    recall layer's log dt (``dt_penalty`` of :func:`train`), so ordinary tokens write nothing
    into the stored key; ``--induction-variant`` evaluates one of its saved models
    (``--seed N`` trains a replicate, saved under ``runs/induction_probe/seedN``, in a column
    of its own).  Evaluation at 2^8 .. 2^``--max-eval-log2`` (default 20): about 2^21
    tokens per length, at least 32 sequences (8 from 2^19; ``--min-eval-seqs``), at most 512,
    run under ``torch.no_grad()`` in batches of at most 2^18 tokens and, beyond 2^16 tokens,
    in chunks of 2^16 with the recurrent state carried (``model(ids, chunk_size=...)``), so
    memory stays bounded at every length.

Output: an accuracy table on stdout and ``experiments/results/synthetic.csv`` (``--out``;
``synthetic_quick.csv`` with ``--quick``), rewritten atomically after every measured row; the
rows of tasks and models not run this time are kept.  On a CPU busy with other jobs,
``--threads 1`` is much faster than torch's default of all cores (OpenMP threads waiting on
each other: measured up to 10x slower at 2 threads).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import contextmanager, nullcontext
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
from seqmamba.atomic import write_csv_atomic  # noqa: E402
from seqmamba.cache import InferenceCache, LayerCache  # noqa: E402
from seqmamba.schedule import warmup_cosine  # noqa: E402

# ---- vocabulary (16 tokens, as in the paper) ----
VOCAB = 16
# Selective copying: 0 is the noise/blank token, 1 the marker ("output the next data token
# here"), 2..15 the 14 data values.
NOISE, MARKER, FIRST_DATA = 0, 1, 2
# Induction heads: the last id is the trigger; the random content is drawn from the others, so
# the trigger occurs exactly twice in a sequence.
TRIGGER = VOCAB - 1

# The model of both tasks (the paper's: 2 layers, d_model 64) and the default sizes.
D_MODEL, N_LAYER, D_STATE = 64, 2, 16
# the attention baseline (--arch transformer): Transformer++ of 2 blocks (an induction head
# needs two), d_model 52 and 2 heads, so its parameters (67k) match the Mamba model's (66k);
# RoPE, as the Mamba paper's Table 2 "MHA-RoPE" row
TRANSFORMER = dict(arch="transformer", d_model=52, n_layer=2, n_head=2)
# Mamba-2 (--arch mamba2): the same 2 blocks of d_model 64, 4 heads of 32 channels, state 32
# (61k parameters against Mamba-1's 66k)
MAMBA2 = dict(arch="mamba2", d_state=32, head_dim=32)
ARCH_MODELS = {"mamba": ("mamba (S6)", {}), "mamba2": ("mamba-2 (SSD)", MAMBA2),
               "transformer": ("transformer++ (RoPE)", TRANSFORMER)}
COPY_LENGTH, COPY_TOKENS, COPY_STEPS = 128, 4, 2000
IND_STEPS = 1500
CURRICULUM = (32, 64, 128)  # shorter lengths that precede the induction training length

FIELDS = ["task", "model", "train_len", "eval_len", "accuracy", "n_eval", "train_steps",
          "train_seconds", "eval_seconds", "final_loss", "n_tokens", "batch", "lr", "d_model",
          "n_layer", "d_state", "seed", "training"]
CURVE_FIELDS = ["model", "length", "n_tokens", "step", "train_seconds", "accuracy", "n_eval",
                "batch", "lr", "seed"]
CURVE_ROWS = 128  # fresh rows per point of the accuracy-against-steps curve


def read_rows(path: Path) -> list:
    """The rows of an earlier run's CSV (none if there is no such file)."""
    if not path.is_file():
        return []
    import csv
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


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
                          vocab_size: int = VOCAB,
                          distance: Optional[Tuple[int, int]] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """A batch of the induction-heads task.

    Each row is ``length`` tokens drawn uniformly from 0..vocab_size-2, except that the
    TRIGGER (vocab_size-1) sits at one random position p in [0, length-3] and again at the
    last position.  At the last position the model must output the token at p+1, the one that
    followed the first trigger.  ``distance=(lo, hi)`` draws the gap between the two triggers,
    length-1-p, uniformly from [lo, hi] instead (an evaluation probe: is a near key recalled
    in a long input?).

    Returns ``inputs: (batch, length)`` int64 and ``targets: (batch,)`` int64 (the answer,
    read from the logits of the last position).
    """
    if length < 3:
        raise ValueError(f"induction heads needs length >= 3, got {length}")
    trigger = vocab_size - 1
    inputs = torch.randint(0, trigger, (batch, length), generator=generator)
    if distance is None:
        p = torch.randint(0, length - 2, (batch,), generator=generator)
    else:
        lo, hi = distance
        if not 2 <= lo <= hi <= length - 1:
            raise ValueError(f"distance must satisfy 2 <= lo <= hi <= length-1, got {distance}")
        p = length - 1 - torch.randint(lo, hi + 1, (batch,), generator=generator)
    rows = torch.arange(batch)
    inputs[rows, p] = trigger
    inputs[:, -1] = trigger
    return inputs, inputs[rows, p + 1].clone()


# ---------------------------------------------------------------------------------------------
# Training and evaluation
# ---------------------------------------------------------------------------------------------

@dataclass
class TrainSpec:
    """Optimisation settings of one training run (AdamW, warmup + cosine schedule)."""
    steps: int
    batch: int
    lr: float
    warmup: int
    weight_decay: float = 0.1
    clip: float = 1.0
    schedule: str = "cosine"  # "cosine" (warmup, then cosine to lr/10) or "constant" (after warmup)


def make_model(selective: bool, seed: int, d_model: int = D_MODEL, n_layer: int = N_LAYER,
               d_state: int = D_STATE, **config) -> MambaLMHeadModel:
    """A fresh Mamba LM over the 16-token vocabulary, initialised from ``seed``; ``config``
    overrides further MambaConfig fields."""
    torch.manual_seed(seed)
    cfg = MambaConfig(d_model=d_model, n_layer=n_layer, vocab_size=VOCAB, d_state=d_state,
                      pad_vocab_size_multiple=8, selective=selective, **config)
    return MambaLMHeadModel(cfg)


@contextmanager
def recorded_dt(model: MambaLMHeadModel, layers: Optional[Tuple[int, ...]] = None):
    """Within the block, every forward call of the mixers of ``layers`` (default: all)
    appends its step sizes, after bias and softplus, to the yielded list: one
    ``(batch, d_inner, length)`` float32 tensor per call, in the autograd graph unless the
    caller runs under ``torch.no_grad()``."""
    mixers = [layer.mixer for layer in model.backbone.layers]
    chosen = range(len(mixers)) if layers is None else [i % len(mixers) for i in layers]
    seen: list = []
    wrapped = []
    for i in chosen:
        m = mixers[i]
        inner = m._ssm_inputs

        def recording(x, inner=inner):
            dt, B, C, bias = inner(x)
            seen.append(F.softplus(dt.float() + bias.float()[None, :, None]))
            return dt, B, C, bias
        m._ssm_inputs = recording  # an instance attribute shadows the method
        wrapped.append(m)
    try:
        yield seen
    finally:
        for m in wrapped:
            del m._ssm_inputs


def lr_at(step: int, spec: TrainSpec) -> float:
    """Linear warmup to spec.lr over spec.warmup steps, then cosine decay to spec.lr / 10
    (the schedule of the training commands), or held at spec.lr with schedule "constant"."""
    if spec.schedule == "constant":
        return spec.lr * min(1.0, (step + 1) / max(1, spec.warmup))
    return spec.lr * warmup_cosine(step, spec.warmup, spec.steps)


def train(model: MambaLMHeadModel, spec: TrainSpec,
          batch_fn: Callable[[int, int, torch.Generator], Tuple[torch.Tensor, torch.Tensor]],
          loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], seed: int,
          log_every: int = 0, name: str = "", state_passing: bool = False,
          on_step: Optional[Callable[[int, float], None]] = None,
          on_step_every: int = 0, zero_rows: int = 0, dt_penalty: float = 0.0,
          penalty_from: int = 0) -> Tuple[float, float]:
    """Train ``model`` on freshly generated batches (``batch_fn(step, batch, generator)``).

    ``loss_fn(logits (batch, length, vocab), targets)`` gives the scalar loss.  Returns
    (wall seconds, mean loss over the last 10% of steps).

    ``state_passing``: every batch starts from the final recurrent state (conv and SSM, no
    gradient through it) of the previous batch instead of from zero, so the model meets, in
    training, states like those a much longer input leaves behind (Buitrago Ruiz & Gu 2025,
    "Understanding and improving length generalization in recurrent models").  With
    ``zero_rows`` = k, the first k rows of every batch start from zero instead, so training
    also meets the zero state that evaluation starts from.

    ``dt_penalty`` = λ adds λ times the mean of log dt (dt after softplus, floored at
    1e-11; every position and channel of the last layer) to the loss from step
    ``penalty_from`` on (0: all steps).  Why (``experiments/induction_probe.py``): the recall
    layer holds the key in channels whose dt on ordinary tokens is 1e-8..1e-6, tiny over the
    256 tokens of training, but summed over 2^17..2^20 tokens it decays the state entries of
    larger |A| and leaves the read-out pattern distorted.  Training at 256 never asks for
    dt smaller than that; a cost on log dt (its gradient in the softplus input is about 1
    for small dt, so Adam keeps pushing however small dt already is) asks for every dt the
    task does not need to be smaller still.  (The reported loss is the task loss alone.)

    Batches are made on the CPU and moved to the model's device.

    ``on_step(steps_done, seconds_of_training)`` runs every ``on_step_every`` steps (and after
    the last) with the model in eval mode, e.g. to record accuracy against steps; its own
    time is not counted as training.
    """
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    # fused AdamW: one kernel per step instead of several per parameter, which is most of a
    # step's launches on a GPU at these model sizes
    opt = torch.optim.AdamW(model.param_groups(spec.weight_decay), lr=spec.lr,
                            betas=(0.9, 0.95), fused=device.type == "cuda")
    model.train()
    tail, t0, paused = [], time.perf_counter(), 0.0
    tail_from = int(spec.steps * 0.9)
    cache = model.allocate_inference_cache(spec.batch) if state_passing else None  # zero state
    keep = (torch.arange(spec.batch, device=device) >= zero_rows).float()[:, None, None]
    for step in range(spec.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, spec)
        inputs, targets = (t.to(device, non_blocking=True)
                           for t in batch_fn(step, spec.batch, gen))
        with recorded_dt(model, (-1,)) if dt_penalty else nullcontext() as dts:
            loss = loss_fn(model(inputs, inference_cache=cache).logits, targets)
        objective = loss
        if dt_penalty and step >= penalty_from:
            log_dt = torch.stack([d.clamp_min(1e-11).log().mean() for d in dts]).mean()
            objective = loss + dt_penalty * log_dt
        if state_passing:  # this batch's final state, cut from its graph, starts the next one
            # (new tensors, not in-place writes: the graph may still hold the final state)
            cache = InferenceCache(layers=[LayerCache(conv=c.conv.detach() * keep,
                                                      ssm=c.ssm.detach() * keep)
                                           for c in cache.layers], batch_size=spec.batch)
        opt.zero_grad(set_to_none=True)
        objective.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.clip)
        opt.step()
        if step >= tail_from:
            tail.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            print(f"  [{name}] step {step + 1}/{spec.steps} loss {loss.item():.4f} "
                  f"({time.perf_counter() - t0 - paused:.0f} s)", flush=True)
        if on_step and on_step_every and ((step + 1) % on_step_every == 0 or step + 1 == spec.steps):
            t_pause = time.perf_counter()
            model.eval()
            on_step(step + 1, t_pause - t0 - paused)
            model.train()
            paused += time.perf_counter() - t_pause
    model.eval()
    return time.perf_counter() - t0 - paused, sum(tail) / max(1, len(tail))


def train_induction(spec: TrainSpec, seed: int, length: int, state_passing: bool = False,
                    log_every: int = 0, name: str = "", device: str = "cpu", zero_rows: int = 0,
                    dt_penalty: float = 0.0, **config) -> Tuple[MambaLMHeadModel, float, float]:
    """A fresh induction-heads model (``config``: MambaConfig overrides) trained on
    ``device`` with ``spec`` at ``length`` after the curriculum of shorter lengths: (model,
    wall seconds, mean loss over the last 10% of steps).  ``zero_rows``, ``dt_penalty``: see
    :func:`train`; the penalty starts with the training length, once the task is found."""
    model = make_model(True, seed, **config).to(device)
    secs, loss = train(model, spec,
                       lambda step, b, g: induction_heads_batch(
                           b, curriculum_length(step, spec.steps, length), g),
                       induction_loss, seed, log_every=log_every, name=name,
                       state_passing=state_passing, zero_rows=zero_rows, dt_penalty=dt_penalty,
                       penalty_from=next(s for s in range(spec.steps)
                                         if curriculum_length(s, spec.steps, length) == length))
    return model, secs, loss


def use_triton_if_it_checks_out(device: str) -> None:
    """On a GPU, run the Triton scan only if it matches the float64 reference here (values
    and gradients, fp32 and bf16); else train with the torch backend and say so."""
    from seqmamba_kernels.selfcheck import self_check

    bad = [r for r in self_check(torch.device(device), backends=["triton"]) if not r.ok]
    if bad:
        os.environ["SEQMAMBA_SCAN_BACKEND"] = "torch"
        print(f"triton self-check failed ({bad[0].dtype} {bad[0].worst}: {bad[0].error:.2e} > "
              f"{bad[0].tolerance:.0e}); training with the torch backend", flush=True)
    else:
        print("triton self-check passed: training with the triton backend", flush=True)


def curriculum_stages(final: int, stages: Tuple[int, ...] = CURRICULUM) -> list:
    """The lengths trained on, in order: those of ``stages`` below ``final``, then ``final``."""
    return [s for s in stages if s < final] + [final]


def curriculum_length(step: int, steps: int, final: int, stages: Tuple[int, ...] = CURRICULUM,
                      stage_frac: float = 0.1) -> int:
    """Training length at ``step`` of ``steps``: each length of ``stages`` shorter than
    ``final`` for ``stage_frac`` of the steps, then ``final`` for the rest."""
    lengths = curriculum_stages(final, stages)
    k = step // max(1, int(steps * stage_frac))
    return lengths[min(k, len(lengths) - 1)]


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
    device = next(model.parameters()).device
    for start in range(0, n_seqs, batch):
        inputs, targets = (t.to(device) for t in selective_copying_batch(
            min(batch, n_seqs - start), length, n_tokens, gen))
        pred = model(inputs).logits[:, -n_tokens:].argmax(-1)
        correct += int((pred == targets[:, -n_tokens:]).sum())
        total += pred.numel()
    return correct / total


@torch.no_grad()
def induction_accuracy(model: MambaLMHeadModel, length: int, n_seqs: int, seed: int,
                       max_batch_tokens: int = 1 << 18, chunk_size: int = 1 << 16,
                       distance: Optional[Tuple[int, int]] = None) -> float:
    """Accuracy of the last-position prediction on ``n_seqs`` fresh sequences of ``length``
    (``distance``: see :func:`induction_heads_batch`).

    Sequences longer than ``chunk_size`` run in pieces with carried state, and batches hold
    at most ``max_batch_tokens`` tokens, so memory stays bounded whatever the length.
    """
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    per_batch = max(1, max_batch_tokens // length)
    correct = 0
    for start in range(0, n_seqs, per_batch):
        inputs, targets = (t.to(device) for t in induction_heads_batch(
            min(per_batch, n_seqs - start), length, gen, distance=distance))
        logits = model(inputs, chunk_size=chunk_size if length > chunk_size else None,
                       num_last_tokens=1).logits
        correct += int((logits[:, -1].argmax(-1) == targets).sum())
    return correct / n_seqs


# ---------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------

@dataclass
class CopySetup:
    """Selective-copying sizes: row length, data tokens K, training, evaluation sequences."""
    length: int
    n_tokens: int
    train: TrainSpec
    n_eval: int


@dataclass
class InductionSetup:
    """Induction-heads sizes: training length and run, evaluation lengths 2^min..2^max."""
    length: int
    train: TrainSpec
    min_eval_log2: int
    max_eval_log2: int
    eval_tokens: int  # per eval length: about this many tokens, within [min_seqs, max_seqs]
    min_seqs: int
    max_seqs: int
    min_seqs_longest: int = 8  # at 2^19 and beyond, where a sequence costs the most

    def n_eval(self, log2_length: int) -> int:
        """Sequences evaluated at length 2^log2_length."""
        floor = self.min_seqs if log2_length <= 18 else min(self.min_seqs, self.min_seqs_longest)
        return min(self.max_seqs, max(floor, self.eval_tokens >> log2_length))


def setups(quick: bool, steps: Optional[int], max_eval_log2: Optional[int]):
    """The (CopySetup, InductionSetup) of a default or ``--quick`` run."""
    if quick:
        # A smoke run: lr 1e-2 so that the tiny budgets still learn something.
        copy = CopySetup(32, 2, TrainSpec(steps=300, batch=32, lr=1e-2, warmup=30), 512)
        ind = InductionSetup(64, TrainSpec(steps=300, batch=32, lr=1e-2, warmup=30,
                                           weight_decay=0.0), 6, 12, 1 << 16, 4, 256)
    else:
        copy = CopySetup(COPY_LENGTH, COPY_TOKENS, TrainSpec(steps=COPY_STEPS, batch=32, lr=3e-3,
                                                             warmup=COPY_STEPS // 10), 2048)
        ind = InductionSetup(256, TrainSpec(steps=IND_STEPS, batch=32, lr=3e-3,
                                            warmup=IND_STEPS // 10, weight_decay=0.0),
                             8, 20, 1 << 21, 32, 512)
    if steps is not None:
        for spec in (copy.train, ind.train):
            spec.steps, spec.warmup = steps, max(1, steps // 10)
    if max_eval_log2 is not None:
        ind.max_eval_log2 = max_eval_log2
    return copy, ind


def format_table(rows: list) -> str:
    """The rows as an aligned text table (the columns the README reports)."""
    cols = ["task", "model", "train_len", "eval_len", "accuracy", "n_eval", "train_steps",
            "train_seconds"]
    cells = [cols] + [[f"{float(r[c]):.4f}" if c == "accuracy" else str(r[c]) for c in cols]
                      for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes and few steps (a smoke run of about a minute)")
    ap.add_argument("--steps", type=int, default=None,
                    help="training steps per model (default: per task, see the module doc)")
    ap.add_argument("--max-eval-log2", type=int, default=None,
                    help="induction heads: evaluate up to length 2^N (default 20; quick: 12)")
    ap.add_argument("--tasks", default="copying,induction",
                    help="comma-separated subset of: copying, induction")
    ap.add_argument("--seed", type=int, default=0, help="seed of model init and training data")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's choice)")
    ap.add_argument("--copy-length", type=int, default=None,
                    help=f"selective copying row length (default {COPY_LENGTH}; paper 4096)")
    ap.add_argument("--copy-tokens", type=int, default=None,
                    help=f"selective copying data tokens (default {COPY_TOKENS}; paper 16)")
    ap.add_argument("--copy-batch", type=int, default=None,
                    help="selective copying batch size (default 32)")
    ap.add_argument("--copy-curriculum", default="",
                    help="selective copying: comma-separated shorter lengths trained on first, "
                         "--copy-stage-frac of the steps each (e.g. 256,1024 before 4096)")
    ap.add_argument("--copy-stage-frac", type=float, default=0.1,
                    help="selective copying: fraction of the steps at each curriculum length")
    ap.add_argument("--copy-models", default="s6,s4",
                    help="which copying models to train: s6 (Mamba), s4 (selection off), "
                         "mamba2, transformer (ARCH_MODELS' sizes)")
    ap.add_argument("--curve-every", type=int, default=0,
                    help="selective copying: accuracy on 128 fresh rows every N steps, written "
                         "to <out>_copying_curve.csv")
    ap.add_argument("--induction-variant", default=None,
                    help="induction heads: evaluate the model of this benchmarks/"
                         "induction_probe.py variant (trained there and saved under "
                         "runs/induction_probe, or trained now) instead of training one here")
    ap.add_argument("--min-eval-seqs", type=int, default=None,
                    help="induction heads: at least N sequences at every length (default 32, "
                         "and 8 from 2^19)")
    ap.add_argument("--state-passing", action="store_true",
                    help="induction heads: start every training batch from the previous "
                         "batch's final state (see train())")
    ap.add_argument("--arch", default="mamba", choices=list(ARCH_MODELS),
                    help="induction heads: the model trained (mamba2, transformer: Mamba-2 and "
                         "the Transformer++ baseline of matched size, see ARCH_MODELS)")
    ap.add_argument("--device", default="cpu",
                    help="train and evaluate here: cpu or cuda (there the Triton scan runs "
                         "if it passes the self-check, else the torch backend)")
    ap.add_argument("--out", type=Path, default=None,
                    help="CSV path (default experiments/results/synthetic.csv, "
                         "or synthetic_quick.csv with --quick); rows of tasks not run are kept")
    a = ap.parse_args(argv)
    tasks = [t.strip() for t in a.tasks.split(",") if t.strip()]
    unknown = sorted(set(tasks) - {"copying", "induction"})
    if unknown or not tasks:
        ap.error(f"--tasks: unknown task(s) {unknown}; choose from copying, induction")
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.device.startswith("cuda"):
        use_triton_if_it_checks_out(a.device)
    out = a.out or HERE / "results" / ("synthetic_quick.csv" if a.quick else "synthetic.csv")
    copy, ind = setups(a.quick, a.steps, a.max_eval_log2)
    if a.min_eval_seqs:
        ind.min_seqs = ind.min_seqs_longest = a.min_eval_seqs
    copy.length = a.copy_length or copy.length
    copy.n_tokens = a.copy_tokens or copy.n_tokens
    copy.train.batch = a.copy_batch or copy.train.batch
    try:
        copy_stages = tuple(int(x) for x in a.copy_curriculum.split(",") if x.strip())
    except ValueError:
        ap.error(f"--copy-curriculum: comma-separated lengths, got {a.copy_curriculum!r}")
    if copy_stages and not 0 < a.copy_stage_frac * len(copy_stages) < 1:
        ap.error("--copy-stage-frac times the number of curriculum lengths must be in (0, 1)")
    if any(not 2 * copy.n_tokens <= n < copy.length for n in copy_stages):
        ap.error(f"--copy-curriculum: each length must be in [{2 * copy.n_tokens}, "
                 f"{copy.length})")
    copy_models = [m.strip() for m in a.copy_models.split(",") if m.strip()]
    if not copy_models or set(copy_models) - {"s6", "s4", "mamba2", "transformer"}:
        ap.error(f"--copy-models: choose from s6, s4, mamba2, transformer, got "
                 f"{a.copy_models!r}")
    # Evaluation data come from seeds disjoint from the training stream's.
    eval_seed = 10_000 + a.seed
    copy_names = {"s6": "mamba (S6)", "s4": "no selection (S4-like)",
                  **{k: ARCH_MODELS[k][0] for k in ("mamba2", "transformer")}}
    ind_training = "state passing" if a.state_passing else ""
    # where induction_probe.py saves its models (seed 0); another seed's go beside them
    probe_dir = ROOT / "runs" / "induction_probe" / (f"seed{a.seed}" if a.seed else "")
    if a.induction_variant:
        import induction_probe

        if a.induction_variant not in induction_probe.VARIANTS:
            ap.error(f"--induction-variant: choose from {', '.join(induction_probe.VARIANTS)}")
        ind.train = induction_probe.variant_spec(
            a.induction_variant, induction_probe.saved_steps(a.induction_variant, probe_dir))
        ind_training = ", ".join(
            k.replace("_", " ") + ("" if v is True or isinstance(v, dict) else f" {v}")
            for k, v in induction_probe.VARIANTS[a.induction_variant].items()
            if k not in ("steps", "lr", "batch"))  # steps and batch have their own columns
        if a.induction_variant.startswith("gpu"):
            ind_training += ", on a GPU"
    if a.seed:  # a replicate: its own column, not a replacement of the seed-0 run's
        ind_training = ", ".join(x for x in (ind_training, f"seed {a.seed}") if x)
    # Rows this run replaces: copying of the models run at this length (other lengths, e.g.
    # 128 beside the paper's 4096, are kept) and induction heads trained the same way (other
    # training runs are kept, each a column of the README table).
    redone = set()
    ind_name, ind_config = ARCH_MODELS[a.arch]
    if "induction" in tasks:
        redone.add(("induction_heads", ind_name, f"{ind.train.steps}|{ind_training}"))
    if "copying" in tasks:
        redone |= {("selective_copying", copy_names[m], str(copy.length)) for m in copy_models}

    def run_key(r):
        if r["task"] == "selective_copying":
            return r["task"], r["model"], str(r["train_len"])
        return r["task"], r["model"], f"{r['train_steps']}|{r.get('training') or ''}"

    rows = [r for r in read_rows(out) if run_key(r) not in redone]
    curve_out = out.with_name(out.stem + "_copying_curve.csv")
    curve = [r for r in read_rows(curve_out)
             if not ("copying" in tasks and r["length"] == str(copy.length)
                     and r["n_tokens"] == str(copy.n_tokens)
                     and r["model"] in {copy_names[m] for m in copy_models})]

    def emit(**row):
        for k, v in dict(d_model=D_MODEL, n_layer=N_LAYER, d_state=D_STATE).items():
            row.setdefault(k, v)
        row["seed"] = a.seed
        rows.append(row)
        write_csv_atomic(rows, out, FIELDS)  # after every row: a stopped run keeps what it measured
        print(f"  -> {row['task']} {row['model']} eval_len={row['eval_len']}: "
              f"accuracy {row['accuracy']:.4f} on {row['n_eval']} sequences", flush=True)

    t_start = time.perf_counter()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, seed {a.seed}, "
          f"writing {out}", flush=True)
    if "copying" in tasks:
        L, K, spec = copy.length, copy.n_tokens, copy.train
        print(f"selective copying: length {L} ({L - K} noise + {K} markers), {K} data tokens, "
              f"{spec.steps} steps x batch {spec.batch}", flush=True)
        for key in copy_models:
            selective, name = key != "s4", copy_names[key]
            model = make_model(selective, a.seed,
                               **ARCH_MODELS.get(key, ("", {}))[1]).to(a.device)

            def record(step, secs, model=model, name=name):
                acc = copying_accuracy(model, L, K, CURVE_ROWS, eval_seed + 1)
                curve.append(dict(model=name, length=L, n_tokens=K, step=step,
                                  train_seconds=round(secs, 1), accuracy=acc, n_eval=CURVE_ROWS,
                                  batch=spec.batch, lr=spec.lr, seed=a.seed))
                write_csv_atomic(curve, curve_out, CURVE_FIELDS)
                print(f"  [{name}] step {step}: accuracy {acc:.4f} ({secs:.0f} s)", flush=True)

            secs, loss = train(model, spec,
                               lambda step, b, g: selective_copying_batch(
                                   b, curriculum_length(step, spec.steps, L, copy_stages,
                                                        a.copy_stage_frac), K, g),
                               copying_loss, a.seed, log_every=max(1, spec.steps // 5), name=name,
                               on_step=record if a.curve_every else None,
                               on_step_every=a.curve_every)
            t0 = time.perf_counter()
            acc = copying_accuracy(model, L, K, copy.n_eval, eval_seed)
            emit(task="selective_copying", model=name, train_len=L, eval_len=L, accuracy=acc,
                 n_eval=copy.n_eval, train_steps=spec.steps, train_seconds=round(secs, 1),
                 eval_seconds=round(time.perf_counter() - t0, 1), final_loss=round(loss, 4),
                 n_tokens=K, batch=spec.batch, lr=spec.lr,
                 d_model=model.config.d_model, n_layer=model.config.n_layer,
                 d_state=model.config.d_state if model.config.arch != "transformer" else "",
                 training=(f"{a.copy_stage_frac:.0%} of steps at each of "
                           f"{', '.join(map(str, copy_stages))} first") if copy_stages else "")
    if "induction" in tasks:
        L, spec = ind.length, ind.train
        name, training = ind_name, ind_training
        print(f"induction heads: train length {L} (curriculum {curriculum_stages(L)}), "
              f"{spec.steps} steps x batch {spec.batch}; eval 2^{ind.min_eval_log2}.."
              f"2^{ind.max_eval_log2}", flush=True)
        if a.induction_variant:
            model, secs, loss = induction_probe.train_variant(a.induction_variant, probe_dir,
                                                              a.seed, a.device)
        else:
            model, secs, loss = train_induction(
                spec, a.seed, L, a.state_passing, log_every=max(1, spec.steps // 10), name=name,
                device=a.device, **ind_config)
        for k in range(ind.min_eval_log2, ind.max_eval_log2 + 1):
            n = ind.n_eval(k)
            t0 = time.perf_counter()
            acc = induction_accuracy(model, 1 << k, n, eval_seed + k)
            emit(task="induction_heads", model=name, train_len=L, eval_len=1 << k, accuracy=acc,
                 n_eval=n, train_steps=spec.steps, train_seconds=round(secs, 1),
                 eval_seconds=round(time.perf_counter() - t0, 1), final_loss=round(loss, 4),
                 n_tokens=1, batch=spec.batch, lr=spec.lr, training=training,
                 d_model=model.config.d_model, n_layer=model.config.n_layer,
                 d_state=model.config.d_state if model.config.arch != "transformer" else "")
    print()
    print(format_table(rows))
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s; written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
