"""Classification metrics: one module for training's validation, the reports and
``audio predict``'s evaluation mode (scikit-learn underneath)."""

from __future__ import annotations

import math

import numpy as np


def confusion_scores(cm: np.ndarray) -> dict:
    """Confusion matrix (classes, classes), rows = truth -> acc, per-class F1 (list; 0 for a
    class neither present nor predicted), macro-F1."""
    cm = cm.astype(np.float64)
    tp = np.diag(cm)
    denom = cm.sum(0) + cm.sum(1)
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    return {"acc": float(tp.sum() / max(cm.sum(), 1)), "f1": f1.tolist(),
            "macro_f1": float(f1.mean())}


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    """labels (n,), probs (n, classes) -> acc, mcc, macro_f1, auroc (one-vs-rest), confusion."""
    from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, matthews_corrcoef,
                                 roc_auc_score)

    pred = probs.argmax(1)
    k = probs.shape[1]
    out = {"acc": float(accuracy_score(labels, pred)),
           "mcc": float(matthews_corrcoef(labels, pred)),
           "macro_f1": float(f1_score(labels, pred, average="macro", labels=list(range(k)),
                                      zero_division=0)),
           "confusion": confusion_matrix(labels, pred, labels=list(range(k)))}
    present = np.unique(labels)
    try:
        if k == 2 and len(present) == 2:
            out["auroc"] = float(roc_auc_score(labels, probs[:, 1]))
        elif len(present) == k:
            out["auroc"] = float(roc_auc_score(labels, probs, multi_class="ovr"))
        else:
            out["auroc"] = float("nan")  # undefined when a class is absent from the labels
    except ValueError:
        out["auroc"] = float("nan")
    return out


def accuracy_by_group(pred, labels, groups) -> dict:
    """Accuracy within each group (speaker, accent, voice) of a held-out set, sorted by name."""
    pred, labels, groups = np.asarray(pred), np.asarray(labels), np.asarray(groups)
    return {str(g): round(float((pred[groups == g] == labels[groups == g]).mean()), 4)
            for g in sorted(set(groups.tolist()))}


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple:
    """The Wilson score interval of a binomial proportion (95% by default): (low, high)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
