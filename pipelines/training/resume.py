"""What makes a killed training resume as if never stopped: the order of the batches as a pure
function of (seed, epoch), and one loss curve (logs/metrics.csv) across sessions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch

from seqmamba.atomic import write_json_atomic


# ---- one loss curve across resumes: Lightning's CSV logger starts logs/metrics.csv afresh in
# every process, so the rows of earlier sessions are kept in logs/metrics.history.csv, each
# session's rows replacing those an interrupted session logged past the point it resumed from.

def _metrics_rows(path: Path) -> Tuple[list, List[dict]]:
    import csv

    if not path.is_file():
        return [], []
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        return list(r.fieldnames or []), list(r)


def _step(row: dict) -> int:
    try:
        return int(float(row.get("step") or 0))
    except ValueError:
        return 0


def _write_metrics(path: Path, fields: list, rows: List[dict]) -> None:
    from seqmamba.atomic import write_csv_atomic

    write_csv_atomic(sorted(rows, key=_step), path, fields)


def _write_session_start(run: Path, step: int) -> None:
    (run / "logs").mkdir(parents=True, exist_ok=True)
    write_json_atomic({"step": step}, run / "logs" / "session_start.json")


def fold_metrics_before_resume(run: Path) -> None:
    """Move the rows of the last session's metrics.csv into metrics.history.csv (dropping
    history rows that session redid), before a resumed session starts a new metrics.csv."""
    logs = run / "logs"
    hf, hist = _metrics_rows(logs / "metrics.history.csv")
    cf, cur = _metrics_rows(logs / "metrics.csv")
    if not cur:
        return
    start_file = logs / "session_start.json"
    start = json.loads(start_file.read_text())["step"] if start_file.is_file() else 0
    rows = [r for r in hist if _step(r) < start] + cur
    _write_metrics(logs / "metrics.history.csv", list(dict.fromkeys(hf + cf)), rows)
    (logs / "metrics.csv").unlink()


def merge_metrics_after_fit(run: Path, session_start: int) -> None:
    """metrics.csv = the history before this session's first step + this session's rows."""
    logs = run / "logs"
    hf, hist = _metrics_rows(logs / "metrics.history.csv")
    cf, cur = _metrics_rows(logs / "metrics.csv")
    if hist:
        rows = [r for r in hist if _step(r) < session_start] + cur
        _write_metrics(logs / "metrics.csv", list(dict.fromkeys(hf + cf)), rows)
        (logs / "metrics.history.csv").unlink()
    (logs / "session_start.json").unlink(missing_ok=True)


class ResumableSampler(torch.utils.data.Sampler):
    """The order of a training epoch as a pure function of (seed, epoch): a seeded permutation
    with ``shuffle``, else 0..n-1.  ``skip`` drops the first items of the next epoch iterated
    (set when a run resumes mid-epoch), so a resumed run reads what an uninterrupted one
    would have read next."""

    def __init__(self, n: int, seed: int, shuffle: bool):
        self.n, self.seed, self.shuffle, self.epoch, self.skip = n, seed, shuffle, 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n - self.skip

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch, 7]).permutation(self.n) \
            if self.shuffle else np.arange(self.n)
        start, self.skip = self.skip, 0
        return iter(order[start:].tolist())


def training_loader(dataset, batch_size: int, seed: int, shuffle: bool, **kw):
    """The DataLoader every training command reads its batches from (resumable order)."""
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_size=batch_size,
                      sampler=ResumableSampler(len(dataset), seed, shuffle), **kw)


def _resumable_sampler(loader) -> Optional[ResumableSampler]:
    """Our sampler, also when Lightning has wrapped it for DDP."""
    s = getattr(loader, "sampler", None)
    inner = getattr(getattr(s, "dataset", None), "_sampler", None)
    for cand in (s, inner):
        if isinstance(cand, ResumableSampler):
            return cand
    return None
