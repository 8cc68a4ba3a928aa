"""What the table builders of ``readme_tables.py`` share: where result files are, how they
are read, and how figures are written."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import List

import numpy as np

from pipelines.metrics import wilson_interval  # noqa: F401 (the tables' intervals)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"  # speed and memory (benchmarks/)
STUDIES = ROOT / "experiments" / "results"  # research studies and recipe reports (experiments/)


def _result(name: str) -> Path:
    """A result file by name, from benchmarks/results/ or experiments/results/ (a name lives in
    one of them only)."""
    found = [d / name for d in (RESULTS, STUDIES) if (d / name).exists()]
    if len(found) != 1:
        raise SystemExit(f"result file {name!r}: found {len(found)} times in {RESULTS} and "
                         f"{STUDIES}")
    return found[0]


def _csv(name: str) -> List[dict]:
    with open(_result(name), newline="") as f:
        return list(csv.DictReader(f))


def _json(name: str) -> dict:
    return json.loads(_result(name).read_text())


def _pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min"


def _pow2(n) -> str:
    n = int(n)
    k = n.bit_length() - 1
    return f"2^{k}" if 1 << k == n else str(n)


def _acc_cell(accs: List[float], n: int) -> str:
    """Accuracy: the mean and the range over seeds, or with one seed its 95% interval over the
    ``n`` held-out examples."""
    if len(accs) > 1:
        return f"{np.mean(accs):.3f} ({min(accs):.3f}-{max(accs):.3f})"
    lo, hi = wilson_interval(round(accs[0] * n), n)
    return f"{accs[0]:.3f} ({lo:.3f}-{hi:.3f})"


def _bits_cell(bits: List[float]) -> str:
    """Bits per base: the mean, and the range over seeds where there are several."""
    rng = f" ({min(bits):.3f}-{max(bits):.3f})" if len(bits) > 1 else ""
    return f"{np.mean(bits):.3f}{rng}"
