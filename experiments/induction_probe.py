"""Why induction heads trained at 256 stop extrapolating, and what changes it (issue 16).

    python experiments/induction_probe.py                         # every variant, screening eval
    python experiments/induction_probe.py --variants base state_passing --max-eval-log2 16
    python experiments/induction_probe.py --variants base --checks  # + float64 / chunking checks

Each variant is the induction-heads run of ``experiments/synthetic.py`` (2 layers, d_model 64,
vocabulary 16, trained at length 256 after a 32-64-128 curriculum) with one thing changed.
A trained variant is saved under ``runs/induction_probe/<variant>`` and reloaded on a rerun.
For each it measures:

* accuracy at 2^8 .. 2^``--max-eval-log2`` on ``--n-eval`` fresh sequences per length, with
  the Wilson 95% interval;
* at the longest length, accuracy when the key (first trigger) is near the query (gap
  2..128) and when it is far (gap >= half the length): a model whose *memory fades* fails
  only far keys; a model whose *state is pushed somewhere it never was in training* by the
  long input fails near keys too;
* the memory of each layer on ordinary tokens: from dt (after softplus) and A, the number of
  steps after which a state entry keeps half its content, h_{t+k} = exp(sum dt A) h_t.  The
  longest such half-life in the layer bounds how far back it can carry a key.

``--checks`` adds two evaluation checks on the first variant at 2^14: chunked forward with
carried state (2^10 chunks) against one pass (largest logit difference and agreement), and
float64 against float32 (accuracy of each on the same sequences): is the evaluation itself,
or float32 drift, part of the gap?

Writes ``experiments/results/induction_probe.csv`` (one row per variant and measurement,
rewritten after every row).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import synthetic as S  # noqa: E402
from pipelines.metrics import wilson_interval  # noqa: E402
from seqmamba import MambaLMHeadModel  # noqa: E402
from seqmamba.atomic import write_csv_atomic  # noqa: E402

# One change each against "base" (the synthetic.py default: 1500 steps, lr 3e-3, cosine to
# lr/10, weight decay 0, dt initialised log-uniformly in [1e-3, 1e-1]).
VARIANTS = {
    "base": {},
    "steps_x2": {"steps": 3000},
    "constant_lr": {"schedule": "constant"},
    "lr_1e-3": {"lr": 1e-3},
    "dt_small": {"config": {"dt_min": 1e-5, "dt_max": 1e-2}},
    "state_passing": {"state_passing": True},
    "steps_x10": {"steps": 15000},
    "steps_x10_state_passing": {"steps": 15000, "state_passing": True},
    "steps_x20_state_passing": {"steps": 30000, "state_passing": True},
    "steps_x40_state_passing": {"steps": 60000, "state_passing": True},
    # a cost on the recall layer's mean log dt (synthetic.train's dt_penalty), from the end
    # of the curriculum: dt on ordinary tokens far smaller than 256 tokens of training need
    "steps_x10_state_passing_dt_penalty": {"steps": 15000, "state_passing": True,
                                           "dt_penalty": 1e-2},
    # GPU runs (--device cuda --time-budget S): as many steps as the budget allows, chosen
    # from a timed trial before training and recorded in train.txt; "steps" is the default
    # without a budget.  Larger batches, and some rows of each batch started from zero state.
    "gpu_b32_state_passing": {"steps": 60000, "state_passing": True},
    "gpu_b256_state_passing": {"steps": 30000, "state_passing": True, "batch": 256},
    "gpu_b256_state_passing_zero16": {"steps": 30000, "state_passing": True, "batch": 256,
                                      "zero_rows": 16},
    "gpu_b1024_state_passing": {"steps": 30000, "state_passing": True, "batch": 1024},
    "gpu_b1024_state_passing_zero64": {"steps": 30000, "state_passing": True, "batch": 1024,
                                       "zero_rows": 64},
    "gpu_b4096_state_passing": {"steps": 30000, "state_passing": True, "batch": 4096},
}

FIELDS = ["variant", "measure", "eval_len", "accuracy", "correct", "n_eval", "ci_low", "ci_high",
          "value", "train_steps", "train_seconds", "final_loss", "seed"]


def variant_spec(name: str, steps: Optional[int] = None) -> "S.TrainSpec":
    """The training settings of variant ``name``: the base run's with its changes (``steps``:
    instead of the variant's own count)."""
    v = VARIANTS[name]
    steps = steps or v.get("steps", S.IND_STEPS)
    return S.TrainSpec(steps=steps, batch=v.get("batch", 32), lr=v.get("lr", 3e-3),
                       warmup=steps // 10, weight_decay=0.0, schedule=v.get("schedule", "cosine"))


def saved_run(name: str, workdir: Path) -> Optional[tuple]:
    """(train seconds, final loss, steps or None if not recorded) of a saved run of ``name``
    (``workdir/name/train.txt``), or None if there is none."""
    f = workdir / name / "train.txt"
    if not ((workdir / name / "config.json").is_file() and f.is_file()):
        return None
    fields = f.read_text().split()
    return float(fields[0]), float(fields[1]), int(fields[2]) if len(fields) > 2 else None


def saved_steps(name: str, workdir: Path) -> Optional[int]:
    """Steps a saved run of ``name`` trained for, if recorded."""
    run = saved_run(name, workdir)
    return run[2] if run else None


def _run_variant(name: str, spec: "S.TrainSpec", seed: int, device: str, log_every: int = 0):
    v = VARIANTS[name]
    return S.train_induction(spec, seed, 256, v.get("state_passing", False), log_every=log_every,
                             name=name, device=device, zero_rows=v.get("zero_rows", 0),
                             dt_penalty=v.get("dt_penalty", 0.0), **v.get("config", {}))


def steps_for_budget(name: str, seconds: float, device: str, trial_steps: int = 40) -> int:
    """Steps of variant ``name`` that fit in ``seconds`` of training on ``device``: the time
    per step of a throwaway run (70% of its steps at the final length, as in the real run),
    after a short one that warms up compilation and allocation, with a 20% margin for the
    noise of a shared machine."""
    spec = variant_spec(name, steps=trial_steps)
    _run_variant(name, variant_spec(name, steps=10), 0, device)
    _, secs, _ = _run_variant(name, spec, 0, device)
    per_step = secs / trial_steps
    return max(100, int(0.8 * seconds / per_step))


def train_variant(name: str, workdir: Path, seed: int = 0, device: str = "cpu",
                  time_budget: Optional[float] = None) -> tuple:
    """(model, train_seconds, final_loss) of variant ``name``: loaded from
    ``workdir/name`` if it was trained before, else trained on ``device`` (for as many steps
    as ``time_budget`` seconds allow, if given) and saved there with its step count."""
    v = VARIANTS[name]
    out = workdir / name
    saved = saved_run(name, workdir)
    if saved:
        return MambaLMHeadModel.from_pretrained(out).to(device).eval(), saved[0], saved[1]
    steps = steps_for_budget(name, time_budget, device) if time_budget else None
    spec = variant_spec(name, steps)
    print(f"== {name}: {spec.steps} steps x batch {spec.batch} on {device}, lr {spec.lr} "
          f"({spec.schedule}), config {v.get('config', {})}, state passing "
          f"{v.get('state_passing', False)}, zero rows {v.get('zero_rows', 0)}", flush=True)
    model, secs, loss = _run_variant(name, spec, seed, device, log_every=max(1, spec.steps // 5))
    model.cpu().save_pretrained(out)
    (out / "train.txt").write_text(f"{secs:.1f} {loss:.6f} {spec.steps}\n")
    return model.to(device).eval(), secs, loss


@torch.no_grad()
def memory_half_lives(model: MambaLMHeadModel, length: int = 4096, n: int = 4,
                      seed: int = 7) -> list:
    """Per layer, the largest half-life (in tokens) of any state entry on ordinary tokens.

    dt: (batch, d_inner, length) after bias and softplus, recorded from the mixer; A:
    (d_inner, d_state).  An entry (d, n) decays by exp(-dt_t |A_dn|) at step t, so its mean
    log-decay per ordinary step (not a trigger, nor the d_conv tokens after one) is
    r = mean_t dt_t |A_dn|, and its half-life ln 2 / r tokens."""
    inputs, _ = S.induction_heads_batch(n, length, torch.Generator().manual_seed(seed))
    inputs = inputs.to(next(model.parameters()).device)
    trig = inputs == S.TRIGGER
    mixers = [layer.mixer for layer in model.backbone.layers]
    # not ordinary: a trigger and the d_conv tokens after it, where the key is written (the
    # write comes a token or two late, through the conv, with dt of 10-30 that also erases
    # the old key; counted as ordinary, these few steps outweigh thousands of others)
    near = trig.clone()
    for k in range(1, mixers[0].d_conv + 1):
        near |= F.pad(trig[:, :-k], (k, 0))
    ordinary = ~near  # (batch, length)
    with S.recorded_dt(model) as seen:
        model(inputs)
    out = []
    w = ordinary[:, None, :].float()
    for m, dt in zip(mixers, seen):
        mean_dt = (dt * w).sum((0, 2)) / w.sum((0, 2))  # (d_inner,)
        rate = mean_dt[:, None] * torch.exp(m.A_log.float())  # (d_inner, d_state)
        out.append(float(math.log(2) / rate.min()))
    return out


@torch.no_grad()
def chunk_check(model: MambaLMHeadModel, length: int, seed: int) -> tuple:
    """(largest |logit difference|, fraction of equal argmax) between one pass and 2^10-token
    chunks with carried state, over every position of 4 sequences of ``length``."""
    inputs, _ = S.induction_heads_batch(4, length, torch.Generator().manual_seed(seed))
    inputs = inputs.to(next(model.parameters()).device)
    whole = model(inputs).logits
    chunked = model(inputs, chunk_size=1 << 10).logits
    agree = (whole.argmax(-1) == chunked.argmax(-1)).float().mean()
    return float((whole - chunked).abs().max()), float(agree)


# Where key_readout puts the first trigger: not at the very start, where the conv still sees
# its zero padding and a key is written differently (measured: a trigger at position 0 is
# recalled far less often, at every length, than one a few tokens in).
KEY_AT = 16


@torch.no_grad()
def key_readout(model: MambaLMHeadModel, length: int, n: int, seed: int) -> dict:
    """What a key far back (the first trigger at position ``KEY_AT``) looks like at the query,
    on ``n`` sequences of ``length``: is it forgotten, or misread?

    * ``accuracy``: of the answer;
    * ``margin``: median gap between the top two logits (a confident answer has a large one);
    * ``key_shift``: median, over sequences, of the largest change of any query logit when
      the key token alone is changed (0: the key is gone from the state; large: it is still
      there and decides the answer);
    * ``drift``: in the last layer's state, the relative change, from just after the key is
      written to the query, of the 64 entries the write filled most: how far the stored key
      has moved while ordinary tokens went by.
    """
    device = next(model.parameters()).device
    d = length - 1 - KEY_AT
    inputs, targets = S.induction_heads_batch(n, length, torch.Generator().manual_seed(seed),
                                              distance=(d, d))
    other = inputs.clone()
    key = KEY_AT + 1
    other[:, key] = (inputs[:, key] + 1 + torch.randint(0, S.TRIGGER - 1, (n,),
                     generator=torch.Generator().manual_seed(seed + 1))) % S.TRIGGER
    chunk = min(length, 1 << 16)
    head = key + 1 + model.backbone.layers[0].mixer.d_conv  # to the key and the conv's reach
    logits, states = [], []
    for x in (inputs, other):
        cache = model.allocate_inference_cache(n)
        model(x[:, :head].to(device), inference_cache=cache)
        after_write = cache.layers[-1].ssm.clone()
        out = None
        for s in range(head, length, chunk):
            out = model(x[:, s:s + chunk].to(device), inference_cache=cache, num_last_tokens=1)
        logits.append(out.logits[:, -1].float().cpu())
        states.append((after_write, cache.layers[-1].ssm))
    first = logits[0]
    top2 = first.topk(2, -1).values
    h0, h1 = states[0]
    entries = h0.abs().flatten(1).topk(64, -1).indices  # per sequence
    moved = (h1 - h0).flatten(1).gather(1, entries).abs().sum(1)
    held = h0.flatten(1).gather(1, entries).abs().sum(1)
    return {"accuracy": float((first.argmax(-1) == targets).float().mean()),
            "margin": float((top2[:, 0] - top2[:, 1]).median()),
            "key_shift": float((first - logits[1]).abs().amax(-1).median()),
            "drift": float((moved / held).median().cpu())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--max-eval-log2", type=int, default=16)
    ap.add_argument("--n-eval", type=int, default=32)
    ap.add_argument("--checks", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "induction_probe")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "induction_probe.csv")
    ap.add_argument("--device", default="cpu", help="train and evaluate here (cpu or cuda)")
    ap.add_argument("--time-budget", type=float, default=None,
                    help="train each variant not yet saved for as many steps as this many "
                         "seconds allow (see steps_for_budget)")
    ap.add_argument("--only-diagnostics", action="store_true",
                    help="recompute only the half-lives and the far-key read-out of saved "
                         "variants, keeping their accuracy rows")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.device.startswith("cuda"):
        S.use_triton_if_it_checks_out(a.device)
    diagnostic = ("half_life", "readout_")

    def redone(r):  # the rows this run measures again (the others are kept)
        return r["variant"] in a.variants and (
            not a.only_diagnostics or r["measure"].startswith(diagnostic))
    rows = [r for r in S.read_rows(a.out) if not redone(r)]

    eval_seed = 10_000 + a.seed
    for name in a.variants:
        model, secs, loss = train_variant(name, a.workdir, a.seed, a.device, a.time_budget)
        base = dict(variant=name, train_steps=saved_steps(name, a.workdir) or variant_spec(name).steps,
                    train_seconds=round(secs, 1), final_loss=round(loss, 4), seed=a.seed)

        def emit(**row):
            rows.append({**base, **row})
            write_csv_atomic(rows, a.out, FIELDS)
            acc = row.get("accuracy")
            print(f"  {name:14s} {row['measure']:18s} {row.get('eval_len', ''):>8} "
                  + (f"{acc:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
                     if acc is not None and row.get("ci_low") is not None else
                     f"{row.get('value', acc)}"), flush=True)

        def accuracy(measure, length, n, distance=None):
            t0 = time.perf_counter()
            acc = S.induction_accuracy(model, length, n, eval_seed + int(math.log2(length)),
                                       distance=distance)
            k = round(acc * n)
            lo, hi = wilson_interval(k, n)
            emit(measure=measure, eval_len=length, accuracy=acc, correct=k, n_eval=n,
                 ci_low=round(lo, 4), ci_high=round(hi, 4),
                 value=round(time.perf_counter() - t0, 1))

        for i, hl in enumerate(memory_half_lives(model)):
            emit(measure=f"half_life_layer{i}", value=round(hl, 1))
        L = 1 << a.max_eval_log2
        t0 = time.perf_counter()
        n_ro = min(a.n_eval, 16)
        ro = key_readout(model, L, n_ro, eval_seed + 200)
        k = round(ro["accuracy"] * n_ro)
        lo, hi = wilson_interval(k, n_ro)
        emit(measure="readout_accuracy", eval_len=L, accuracy=ro["accuracy"], correct=k,
             n_eval=n_ro, ci_low=round(lo, 4), ci_high=round(hi, 4),
             value=round(time.perf_counter() - t0, 1))
        for key in ("margin", "key_shift", "drift"):
            emit(measure=f"readout_{key}", eval_len=L, value=round(ro[key], 4))
        if a.only_diagnostics:
            continue
        for k in range(8, a.max_eval_log2 + 1):
            accuracy("accuracy", 1 << k, a.n_eval)
        accuracy("near_key_2_128", L, a.n_eval, distance=(2, 128))
        accuracy("far_key_ge_half", L, a.n_eval, distance=(L // 2, L - 1))
        if a.checks and name == a.variants[0]:
            diff, agree = chunk_check(model, 1 << 14, eval_seed)
            emit(measure="chunked_max_abs_diff", eval_len=1 << 14, value=f"{diff:.2e}")
            emit(measure="chunked_argmax_agree", eval_len=1 << 14, value=round(agree, 6))
            n = a.n_eval
            acc32 = S.induction_accuracy(model, 1 << 14, n, eval_seed + 100)
            acc64 = S.induction_accuracy(model.double(), 1 << 14, n, eval_seed + 100)
            model.float()
            for measure, acc in (("float32_at_2^14", acc32), ("float64_at_2^14", acc64)):
                lo, hi = wilson_interval(round(acc * n), n)
                emit(measure=measure, eval_len=1 << 14, accuracy=acc, correct=round(acc * n),
                     n_eval=n, ci_low=round(lo, 4), ci_high=round(hi, 4))
    return 0


if __name__ == "__main__":
    sys.exit(main())
