"""Pseudo-labels: unlabelled recordings labelled by trained classifiers (the teachers), the
confident ones added to a fine-tuning's training set (``audio finetune --unlabelled``).

Why: a digit classifier trained on a few voices meets a new voice, microphone or room as a
stranger.  Recordings of that voice with no labels still say what it sounds like: the clips
the teachers are sure of (top class probability at least ``threshold``) are nearly all right,
and training on them moves the model towards the new voice, which lifts the clips the
teachers were unsure of as well.  Leaving one FSDD speaker out, the README's FSDD section
gives the measured gain (``experiments/audio_fsdd.py --adapt``).

The labels are written to ``RUN/pseudo_labels.csv`` (file, label, confidence, kept) before
training starts; a resumed run reads them back, so it trains on exactly the same clips.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from ..errors import InputError
from .datasets import Clip

TABLE = "pseudo_labels.csv"  # in RUN
FIELDS = ["file", "label", "confidence", "kept"]
GROUP = "unlabelled"  # the group (speaker) column of every pseudo-labelled clip


def label_files(teachers: Sequence[Path], inputs: Sequence[str], labels: Sequence[str],
                max_seconds: float, device: str = "cpu", batch_size: int = 32,
                progress: bool = False, balance: Optional[float] = None,
                balance_by: str = "all") -> List[dict]:
    """Rows (file, label, confidence) for every audio file ``inputs`` name (files, folders,
    glob patterns; a CSV manifest's clips with its labels ignored), labelled by the mean class
    probabilities of ``teachers`` (classifier runs of ``audio finetune``, read alike); with
    ``balance`` (a strength in (0, 1]), those probabilities are first re-weighted over all the
    files towards equally frequent classes (``pipelines.balance``, as ``audio predict
    --balance``); with ``balance_by`` "folder", over the files of each folder on its own (one
    voice a folder).

    Every problem is one InputError: an input naming nothing or a file that cannot be read,
    a teacher that is not a classifier, or one whose labels are not ``labels``."""
    from tqdm.auto import tqdm

    from .prediction_balance import balance_groups_of, check_balance_groups
    from .predictor import AudioPredictor, classified, expand_inputs

    files, errors = expand_inputs([str(i) for i in inputs])
    if errors:
        raise InputError(f"--unlabelled {errors[0][1]}")
    group_of = balance_groups_of(files, balance_by, {})  # {file: the batch it is balanced in}
    if balance:
        check_balance_groups(list(group_of.values()), len(labels), "--unlabelled clips",
                             fix="drop --pseudo-balance", option="--pseudo-balance")
    predictor = AudioPredictor(list(teachers), device, chunk_seconds=10.0)
    if predictor.task != "audio-classify":
        raise InputError("the teacher is not a classifier", path=predictor.model_dir,
                         fix="--teacher takes runs of seqmamba audio finetune")
    if sorted(predictor.labels) != sorted(labels):
        raise InputError(f"the teacher names the classes {', '.join(predictor.labels)}; the "
                         f"training clips {', '.join(labels)}", path=predictor.model_dir,
                         fix="pass a teacher trained on the same labels")
    failures: list = []
    files_read, probs = [], []
    bar = tqdm(files, unit="file", desc="pseudo-labels", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)
    for path, _, prob in classified(predictor, bar, max_seconds, batch_size,
                                    lambda _, msg: failures.append(msg)):
        files_read.append(path)
        probs.append(prob)
    bar.close()
    if failures:
        raise InputError(f"--unlabelled: {failures[0]}"
                         + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""))
    probs = torch.stack(probs)
    if balance:
        from ..balance import balance_groups

        probs = balance_groups(probs, [group_of[str(f)] for f in files_read], balance)[0]
    conf, k = probs.max(-1)
    return [{"file": str(path), "label": predictor.labels[int(i)], "confidence": round(float(c), 6)}
            for path, c, i in zip(files_read, conf, k)]


def mark_kept(rows: List[dict], threshold: float) -> List[dict]:
    """``rows`` with ``kept`` 1 where the teachers' confidence is at least ``threshold``."""
    return [dict(r, kept=int(float(r["confidence"]) >= threshold)) for r in rows]


def read_labels(path: Path) -> List[dict]:
    """The rows of a ``pseudo_labels.csv`` an earlier session of the run wrote."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or set(FIELDS) - set(rows[0]):
        raise InputError("not a pseudo-label table this command wrote", path=path,
                         fix="delete it to label the --unlabelled clips again")
    return [dict(r, confidence=float(r["confidence"]), kept=int(r["kept"])) for r in rows]


def kept_clips(rows: List[dict], repeat: int) -> List[Clip]:
    """The kept rows as training clips (group ``unlabelled``), each ``repeat`` times: the
    weight of the new voice against the labelled set, which is usually far larger."""
    kept = [Clip(path=r["file"], label=r["label"], group=GROUP) for r in rows if int(r["kept"])]
    return kept * repeat


def summary(rows: List[dict], threshold: float, repeat: int, teachers: Sequence[Path],
            balance: Optional[float] = None, balance_by: str = "all") -> Dict:
    """The report's account of the pseudo-labels: how many were kept, of which classes."""
    per_label = Counter(r["label"] for r in rows if int(r["kept"]))
    return {"clips": len(rows), "kept": sum(per_label.values()), "threshold": threshold,
            "repeat": repeat, "teachers": [str(t) for t in teachers], "balance": balance,
            "balance_by": balance_by if balance else None,
            "kept_per_label": dict(sorted(per_label.items()))}
