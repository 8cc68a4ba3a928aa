"""The evaluation mode of ``seqmamba audio predict``: a finished prediction table scored
against the labels of the CSV manifests it was given.

``expand_inputs`` (``pipelines.audio.predictor``) collects the truth, {file: (label, group)};
``evaluate_table`` reads the table's rows of those files, scores them with
``pipelines.metrics`` (accuracy, macro-F1, the confusion matrix, accuracy per group) and
writes ``OUT.metrics.json`` (atomically) and the confusion plot ``OUT.confusion.png``, where
OUT is the table's name without its suffix.  A true label the model lacks counts as wrong.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from seqmamba.atomic import write_json_atomic

from ..metrics import accuracy_by_group, classification_metrics


def eval_path(out: Path, suffix: str) -> Path:
    """``OUT`` with ``suffix`` in place of its own: scored.csv -> scored.metrics.json."""
    return out.with_name(out.stem + suffix)


def evaluation_outputs(out: Path) -> List[Path]:
    """The files the evaluation mode writes beside the table ``out`` (for the output checks)."""
    return [eval_path(out, ".metrics.json"), eval_path(out, ".confusion.png")]


def scored_rows(out: Path, truth: Dict[str, Tuple[str, str]]) -> List[dict]:
    """The rows of the table ``out`` (.csv, or tab-separated .tsv/.txt) whose file has a
    true label in ``truth``, in the table's order."""
    delim = "\t" if out.suffix.lower() in (".tsv", ".txt") else ","
    with open(out, newline="") as f:
        return [r for r in csv.DictReader(f, delimiter=delim) if r["file"] in truth]


def score(predicted: Sequence[str], true: Sequence[str], groups: Sequence[str],
          labels: List[str]) -> dict:
    """Predicted and true label names (n clips each), their groups (n) and the model's
    ``labels`` (k) -> clips, accuracy (over every clip; a true label the model lacks is
    wrong), macro-F1 and the confusion matrix (k, k; true rows, predicted columns) over the
    clips whose true label the model knows, accuracy per group, labels, and the true labels
    the model lacks."""
    index = {n: i for i, n in enumerate(labels)}
    y = np.array([index.get(t, -1) for t in true], np.int64)  # (n,), -1: unknown to the model
    pred = np.array([index[p] for p in predicted], np.int64)  # (n,)
    k, known = len(labels), y >= 0
    if known.any():
        # the written labels as one-hot probabilities (n_known, k): scored exactly as written
        m = classification_metrics(y[known], np.eye(k)[pred[known]])
        confusion, macro_f1 = np.asarray(m["confusion"], np.int64), m["macro_f1"]
    else:
        confusion, macro_f1 = np.zeros((k, k), np.int64), 0.0
    # every clip counts: the right ones are the confusion's diagonal, an unknown label is wrong
    accuracy = int(np.trace(confusion)) / len(y) if len(y) else 0.0
    return {"clips": len(y), "accuracy": accuracy, "macro_f1": float(macro_f1),
            "accuracy_by_group": accuracy_by_group(pred, y, list(groups)),
            "labels": labels, "confusion": confusion.tolist(),
            "labels_the_model_lacks": sorted(set(true) - set(labels))}


def evaluate_table(out: Path, truth: Dict[str, Tuple[str, str]], labels: List[str],
                   balance: Optional[dict] = None) -> dict:
    """The finished table against the manifests' labels (``truth``: {file: (label, group)})
    -> the metrics of :func:`score`, written to OUT.metrics.json with the confusion plot in
    OUT.confusion.png; a one-line summary and one line per group on stdout.  ``balance``
    (--balance's strength and class weights) is recorded with them."""
    from ..plots import plot_confusion

    rows = scored_rows(out, truth)
    metrics = score([r["label"] for r in rows], [truth[r["file"]][0] for r in rows],
                    [truth[r["file"]][1] or "-" for r in rows], labels)
    if balance:
        metrics["balance"] = balance
    write_json_atomic(metrics, eval_path(out, ".metrics.json"))
    confusion = np.array(metrics["confusion"], np.int64).reshape(len(labels), len(labels))
    plot_confusion(confusion, labels, eval_path(out, ".confusion.png"))  # in natural order
    print(f"scored {len(rows)} labelled clips: accuracy {metrics['accuracy']:.4f}, macro-F1 "
          f"{metrics['macro_f1']:.4f}; {eval_path(out, '.metrics.json')}")
    for g, acc in metrics["accuracy_by_group"].items():
        print(f"  {g}: accuracy {acc:.4f}")
    unknown = metrics["labels_the_model_lacks"]
    if unknown:
        print(f"seqmamba: labels {unknown} are not among the model's ({', '.join(labels)}): "
              "those clips count as wrong", file=sys.stderr)
    return metrics
