"""The new-voice check of ``seqmamba audio predict``: does a batch of predictions look like a
voice (or microphone, or room) the classifier never heard?

Why: leaving one FSDD speaker out, the shipped recipe names 0.80-0.92 of an unheard voice's
digits, and on two speakers from elsewhere 0.49 and 0.92 (docs/audio.md, "A new voice").
What closes most of that gap, balancing (``--balance``) and adaptation (``audio adapt``), needs
the user to know the batch is a new voice.  Two signals need no labels:

- confidence: a model meeting a voice it never heard is less sure of its answers.  The batch's
  mean top class probability is compared with the same figure on the run's own held-out
  clips, stored in RUN/report.json at training time (``reference``, under ``FIELD``);
- the classes: an unheard voice biases every clip of his alike (george's "three"s come out as
  "eight"), so the predicted classes' counts stray from the training shares further than
  chance allows: a chi-square test of the counts against the training prior.  This also fires
  on a batch whose classes really are skewed, so the note says that balancing assumes they
  are not.

The check fires on a batch of at least ``MIN_FILES`` files whose mean top probability is at
least ``SHORTFALL`` below the reference, or whose class counts have a chi-square p-value
below ``ALPHA``.  The numbers were calibrated leaving one bundled FSDD speaker out
(``experiments/audio_new_voice.py``; the rates it fires at are in docs/audio.md).  A run
without the reference (trained before it was stored, or a hub model), an ensemble or a
language model is not checked.

Shapes: probabilities (files, classes), rows summing to 1.
"""

from __future__ import annotations

import shlex
from collections import Counter
from pathlib import Path
from typing import Optional, Sequence

import torch

FIELD = "voice_check"  # RUN/report.json's key for the reference
MIN_FILES = 50  # fewer files: too few to judge
SHORTFALL = 0.075  # fire when the mean top probability is this much below the reference ...
ALPHA = 1e-2  # ... or the class counts' chi-square p-value against the prior is below this


def reference(probs, train_labels: Sequence[str], names: Sequence[str]) -> dict:
    """What the check compares a batch with, for RUN/report.json: the model's mean top class
    probability over its held-out clips (``probs``: (clips, classes) numpy, as the report
    scored them) and how many there were, and the training clips' class shares
    (``train_labels``: one label per labelled training clip)."""
    top = torch.from_numpy(probs).max(-1).values
    counts = Counter(train_labels)
    return {"mean_top_probability": round(float(top.mean()), 4), "held_out_clips": len(top),
            "prior": {n: round(counts[n] / max(1, len(train_labels)), 4) for n in names}}


def stored_reference(model_dir: Path) -> Optional[dict]:
    """The reference stored in the report.json of the run holding ``model_dir`` (RUN/final),
    or None when the run has none (an older run, a model from the hub)."""
    from .run_options import report_field

    ref = report_field(Path(model_dir).parent, FIELD)
    if ref is None or not isinstance(ref.get("mean_top_probability"), (int, float)):
        return None
    return ref


def batch_signals(probs: torch.Tensor, ref: dict, labels: Sequence[str]) -> dict:
    """probs (files, classes) -> the batch's figures beside the reference's: files; mean top
    probability and its shortfall below the reference; the predicted classes' distance from
    the training prior (total variation: 0 the same shares, 1 disjoint), the chi-square
    p-value of their counts under that prior, and the class predicted most above its share."""
    top, k = probs.max(-1)
    n = len(k)
    counts = torch.bincount(k, minlength=len(labels)).double()
    prior = torch.tensor([float(ref.get("prior", {}).get(c, 0)) for c in labels],
                         dtype=torch.float64)
    prior = prior / prior.sum() if prior.sum() > 0 else torch.full_like(prior, 1 / len(labels))
    expected = (n * prior).clamp_min(1e-9)
    x2 = float(((counts - expected) ** 2 / expected).sum())
    df = torch.tensor((len(labels) - 1) / 2, dtype=torch.float64)
    p_value = float(torch.special.gammaincc(df, torch.tensor(x2 / 2, dtype=torch.float64)))
    shares = counts / max(1, n)
    over = int((shares - prior).argmax())
    mean_top = float(top.mean())
    return {"files": n, "mean_top_probability": mean_top,
            "shortfall": float(ref["mean_top_probability"]) - mean_top,
            "prior_distance": float(0.5 * (shares - prior).abs().sum()), "p_value": p_value,
            "most": (labels[over], float(shares[over]), float(prior[over]))}


def fires(signals: dict, min_files: int = MIN_FILES, shortfall: Optional[float] = SHORTFALL,
          alpha: Optional[float] = ALPHA) -> bool:
    """Whether a batch with these ``batch_signals`` looks like a voice the model never heard
    (a signal whose threshold is None is not used)."""
    return signals["files"] >= min_files and (
        (shortfall is not None and signals["shortfall"] >= shortfall)
        or (alpha is not None and signals["p_value"] < alpha))


def new_voice_note(probs: torch.Tensor, ref: Optional[dict], labels: Sequence[str],
                   model: str, inputs: Sequence[str], balanced: bool) -> Optional[str]:
    """The one line ``audio predict`` prints when the batch looks like a new voice, naming
    what helps; None when it does not, or when there is no reference to compare with."""
    if ref is None or probs.shape[0] == 0:
        return None
    s = batch_signals(probs, ref, labels)
    if not fires(s):
        return None
    why = []
    if s["shortfall"] >= SHORTFALL:
        why.append(f"mean top probability {s['mean_top_probability']:.2f}, "
                   f"{float(ref['mean_top_probability']):.2f} on its held-out clips")
    if s["p_value"] < ALPHA:
        label, share, prior = s["most"]
        why.append(f"'{label}' predicted for {share:.0%} of them, {prior:.0%} in training")
    balance = "" if balanced else ("if each voice (a folder each) says every class about "
                                   "equally often, add --balance --balance-by folder; or ")
    return (f"these {s['files']} files look like a voice or microphone the model was not "
            f"trained on ({'; '.join(why)}): {balance}adapt the model to them, no labels "
            f"needed: seqmamba audio adapt --model {shlex.quote(model)} {shlex.join(inputs)} "
            f"--out RUN_ADAPTED")
