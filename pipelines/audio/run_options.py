"""The options an audio classifier run was trained with, kept in RUN/report.json so that
``seqmamba audio adapt`` trains the adapted model with the same recipe: the same labelled
clips and held-out split, augmentation, clip length and optimiser settings.

Recorded: every option of ``audio finetune`` that shapes what the model learns, paths made
absolute.  Left out: where the run goes and how it is run (--out, --resume, the hardware),
where it started (--init) and what it adapted to (--teacher, --unlabelled, --pseudo-*), which
``audio adapt`` sets itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

FIELD = "training_options"  # RUN/report.json's key
NOT_RECORDED = {"out", "resume", "no_progress", "config", "set", "init", "teacher", "unlabelled",
                "pseudo_threshold", "pseudo_repeat", "pseudo_balance", "pseudo_balance_by",
                "accelerator", "devices", "num_nodes", "strategy", "precision", "workers",
                "baseline", "baseline_steps"}


def _plain(v):
    """An option's value as JSON keeps it: a path absolute, a list element by element."""
    if isinstance(v, Path):
        return str(v.resolve())
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def recorded(a) -> dict:
    """The parsed ``audio finetune`` options ``a`` that a retraining must repeat."""
    return {k: _plain(v) for k, v in sorted(vars(a).items())
            if k not in NOT_RECORDED and (v is None or isinstance(v, (bool, int, float, str,
                                                                      Path, list, tuple)))}


def report_field(run: Path, key: str) -> Optional[dict]:
    """The dict under ``key`` in the report.json of the run ``run`` (RUN); None when the run
    has no readable report or no such dict (an older run, a model from the hub)."""
    try:
        value = json.loads((Path(run) / "report.json").read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, dict) else None


def stored(run: Path) -> Optional[dict]:
    """The options the run ``run`` (RUN, holding report.json) recorded; None when it has none
    (trained before they were recorded, or not a run of ``audio finetune``)."""
    return report_field(run, FIELD)
