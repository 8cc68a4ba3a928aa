"""Scoring a trained model on held-out batches, for the reports."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from seqmamba.streaming import NextTokenBits

from ..metrics import classification_metrics
from ..plots import plot_confusion


@torch.no_grad()
def predict_probs(model, loader) -> tuple:
    """Class probabilities of a classifier over a loader of {input_ids, label[, attention_mask]}
    batches -> (probs (n, classes) float32, labels (n,)) as numpy arrays."""
    model.eval()
    device = next(model.parameters()).device
    probs, labels = [], []
    for b in loader:
        mask = b.get("attention_mask")
        out = model(b["input_ids"].to(device),
                    attention_mask=None if mask is None else mask.to(device))
        probs.append(out.logits.float().softmax(-1).cpu())
        labels.append(b["label"])
    return torch.cat(probs).numpy(), torch.cat(labels).numpy()


@torch.no_grad()
def heldout_bits(model, loader) -> float:
    """Bits per token of a language model over a loader of {input_ids[, attention_mask]}
    windows: every position t >= 1 whose token is real (mask 1), pooled over the whole set (not
    a mean of batch means, so it does not depend on how the windows are batched)."""
    model.eval()
    device = next(model.parameters()).device
    bits = NextTokenBits()
    for b in loader:
        ids = b["input_ids"].to(device)
        mask = b.get("attention_mask")
        mask = None if mask is None else mask.to(device)
        bits.start_sequence()  # each window is a sequence of its own
        bits.update(model(ids, attention_mask=mask).logits, ids, mask)
    return bits.per_token()


@torch.no_grad()
def masked_bits(model, loader) -> float:
    """Bits per masked base of a masked LM over a loader of {input_ids, labels} batches: the
    summed cross-entropy at every labelled position over their count (pooled over the set)."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for b in loader:
        labels = b["labels"].to(device)
        logits = model(b["input_ids"].to(device)).logits.float()
        keep = labels != -100
        total += float(torch.nn.functional.cross_entropy(logits[keep], labels[keep],
                                                         reduction="sum"))
        count += int(keep.sum())
    return total / count / math.log(2) if count else math.nan


def score_classifier(model, loader, names, out: Path) -> tuple:
    """Score a classifier on a held-out loader and draw RUN/confusion.png.  Returns the
    metrics (accuracy, MCC, macro-F1, AUROC; without the confusion matrix) and the class
    probabilities of each held-out example (n, classes)."""
    probs, labels = predict_probs(model, loader)
    m = classification_metrics(labels, probs)
    plot_confusion(m.pop("confusion"), names, out / "confusion.png")
    return m, probs
