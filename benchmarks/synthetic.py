"""The Mamba paper's two synthetic tasks (section 4.1, appendix E.1), small enough for a CPU.

    python benchmarks/synthetic.py                    # the default table (about 15-25 min, 2 cores)
    python benchmarks/synthetic.py --quick            # smoke run, about a minute
    python benchmarks/synthetic.py --tasks induction --max-eval-log2 16
    python benchmarks/synthetic.py --threads 1        # on a CPU shared with other jobs

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
    lr 3e-3, weight decay 0.1.  Why these sizes: the torch scan's cost is a Python-level loop
    over time steps, so a training step costs about (batch x length); one step at length 128,
    batch 32 takes about 0.11 s on 2 idle cores, so 2000 steps are about 4 minutes per model.
    Measured while tuning (seed 0): length 64 / K 4 reaches 99.9% in 1500 steps, length 128 /
    K 4 96% in 1500 steps (hence 2000), length 64 / K 8 only 76% in 1500 steps and length
    128 / K 8 26% in 1000: K above 4 needs far more steps than a few minutes allow.  The same
    model with ``selective=False`` (time-invariant dt, B, C; S4-like) is trained identically.

Induction heads (paper: train at 256, Mamba perfect up to 2^20)
    Tokens 0..14 are content, 15 the trigger.  A row is random content with the trigger at a
    uniformly random position p in [0, length-3] and again at the last position; the model
    must output token p+1 at the last position (chance 1/15); only that position is in the
    loss.  Trained at length 256 for 1500 steps of batch 32, lr 3e-3, no weight decay, with a
    short length curriculum: 10% of the steps each at lengths 32, 64 and 128, then 256 for the
    remaining 70%.  Why: trained at 256 from the start, the single-position loss stayed at
    chance (ln 15) for all of 1500 steps, while at length 32 the task is found within 300
    steps and then carries over to 256.  Weight decay 0: decay pulls dt_proj toward an
    input-independent step, against the selection the task needs (in one comparison on 16
    sequences, 15/16 at length 4096 with decay 0.1 against 16/16 without; a small sample).  The paper trained for about 200k
    steps; a few thousand steps on a CPU give a model that is perfect at the training length
    and some multiple of it, and then degrades (see benchmarks/results/synthetic.csv).
    Evaluation at 2^8 .. 2^``--max-eval-log2`` (default 20): about 2^21 tokens per length
    (at most 512, at least 4 sequences), run under ``torch.no_grad()`` in batches of at most
    2^18 tokens and, beyond 2^16 tokens, in chunks of 2^16 with the recurrent state carried
    (``model(ids, chunk_size=...)``), so memory stays bounded at every length.

Output: an accuracy table on stdout and ``benchmarks/results/synthetic.csv`` (``--out``;
``synthetic_quick.csv`` with ``--quick``), rewritten atomically after every measured row.
On a CPU busy with other jobs, ``--threads 1`` is much faster than torch's default of all
cores (OpenMP threads waiting on each other: measured up to 10x slower at 2 threads).
"""

from __future__ import annotations

import argparse
import sys
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
from seqmamba.atomic import write_csv_atomic  # noqa: E402
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
COPY_LENGTH, COPY_TOKENS, COPY_STEPS = 128, 4, 2000
IND_STEPS = 1500
CURRICULUM = (32, 64, 128)  # shorter lengths that precede the induction training length

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
    """Optimisation settings of one training run (AdamW, warmup + cosine schedule)."""
    steps: int
    batch: int
    lr: float
    warmup: int
    weight_decay: float = 0.1
    clip: float = 1.0


def make_model(selective: bool, seed: int, d_model: int = D_MODEL, n_layer: int = N_LAYER,
               d_state: int = D_STATE, **config) -> MambaLMHeadModel:
    """A fresh Mamba LM over the 16-token vocabulary, initialised from ``seed``; ``config``
    overrides further MambaConfig fields."""
    torch.manual_seed(seed)
    cfg = MambaConfig(d_model=d_model, n_layer=n_layer, vocab_size=VOCAB, d_state=d_state,
                      pad_vocab_size_multiple=8, selective=selective, **config)
    return MambaLMHeadModel(cfg)


def lr_at(step: int, spec: TrainSpec) -> float:
    """Linear warmup to spec.lr over spec.warmup steps, then cosine decay to spec.lr / 10
    (the schedule of the training commands)."""
    return spec.lr * warmup_cosine(step, spec.warmup, spec.steps)


def train(model: MambaLMHeadModel, spec: TrainSpec,
          batch_fn: Callable[[int, int, torch.Generator], Tuple[torch.Tensor, torch.Tensor]],
          loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], seed: int,
          log_every: int = 0, name: str = "") -> Tuple[float, float]:
    """Train ``model`` on freshly generated batches (``batch_fn(step, batch, generator)``).

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
        inputs, targets = batch_fn(step, spec.batch, gen)
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
                             8, 20, 1 << 21, 4, 512)
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
    cells = [cols] + [[f"{r[c]:.4f}" if c == "accuracy" else str(r[c]) for c in cols] for r in rows]
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
    ap.add_argument("--out", type=Path, default=None,
                    help="CSV path (default benchmarks/results/synthetic.csv, "
                         "or synthetic_quick.csv with --quick)")
    a = ap.parse_args(argv)
    tasks = [t.strip() for t in a.tasks.split(",") if t.strip()]
    unknown = sorted(set(tasks) - {"copying", "induction"})
    if unknown or not tasks:
        ap.error(f"--tasks: unknown task(s) {unknown}; choose from copying, induction")
    if a.threads:
        torch.set_num_threads(a.threads)
    out = a.out or HERE / "results" / ("synthetic_quick.csv" if a.quick else "synthetic.csv")
    copy, ind = setups(a.quick, a.steps, a.max_eval_log2)
    # Evaluation data come from seeds disjoint from the training stream's.
    eval_seed = 10_000 + a.seed
    rows = []

    def emit(**row):
        row.update(d_model=D_MODEL, n_layer=N_LAYER, d_state=D_STATE, seed=a.seed)
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
        for selective in (True, False):
            name = "mamba (S6)" if selective else "no selection (S4-like)"
            model = make_model(selective, a.seed)
            secs, loss = train(model, spec,
                               lambda step, b, g: selective_copying_batch(b, L, K, g),
                               copying_loss, a.seed, log_every=max(1, spec.steps // 5), name=name)
            t0 = time.perf_counter()
            acc = copying_accuracy(model, L, K, copy.n_eval, eval_seed)
            emit(task="selective_copying", model=name, train_len=L, eval_len=L, accuracy=acc,
                 n_eval=copy.n_eval, train_steps=spec.steps, train_seconds=round(secs, 1),
                 eval_seconds=round(time.perf_counter() - t0, 1), final_loss=round(loss, 4),
                 n_tokens=K, batch=spec.batch, lr=spec.lr)
    if "induction" in tasks:
        L, spec = ind.length, ind.train
        print(f"induction heads: train length {L} (curriculum {curriculum_stages(L)}), "
              f"{spec.steps} steps x batch {spec.batch}; eval 2^{ind.min_eval_log2}.."
              f"2^{ind.max_eval_log2}", flush=True)
        name = "mamba (S6)"
        model = make_model(True, a.seed)
        secs, loss = train(model, spec,
                           lambda step, b, g: induction_heads_batch(
                               b, curriculum_length(step, spec.steps, L), g),
                           induction_loss, a.seed, log_every=max(1, spec.steps // 10), name=name)
        for k in range(ind.min_eval_log2, ind.max_eval_log2 + 1):
            n = min(ind.max_seqs, max(ind.min_seqs, ind.eval_tokens >> k))
            t0 = time.perf_counter()
            acc = induction_accuracy(model, 1 << k, n, eval_seed + k)
            emit(task="induction_heads", model=name, train_len=L, eval_len=1 << k, accuracy=acc,
                 n_eval=n, train_steps=spec.steps, train_seconds=round(secs, 1),
                 eval_seconds=round(time.perf_counter() - t0, 1), final_loss=round(loss, 4),
                 n_tokens=1, batch=spec.batch, lr=spec.lr)
    print()
    print(format_table(rows))
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s; written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
