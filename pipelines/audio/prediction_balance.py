"""--balance for audio prediction: which batch each file is balanced in (--balance-by), the
refusal of a batch too small to hold every class, and the table's rows re-weighted
(``pipelines.balance``).  Used by ``audio predict`` and by pseudo-labelling (``--pseudo-balance``).

Shapes: class probabilities (files, labels).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import torch

from ..errors import InputError


def balance_groups_of(files: List[Path], by: str, truth: dict) -> Dict[str, str]:
    """--balance-by: {file (the table's key): the batch it is balanced in}.  ``all``: one
    batch; ``folder``: each file's folder; ``group``: the group column of the CSV manifest
    that listed it (``truth``), which every file must have."""
    if by == "all":
        return {str(f): "all" for f in files}
    if by == "folder":
        return {str(f): str(f.parent) for f in files}
    out = {}
    for f in files:
        group = truth.get(str(f), ("", ""))[1]
        if not group:
            raise InputError("--balance-by group needs every file's group from a CSV "
                             "manifest's group column; this one has none", path=f,
                             fix="list the files in a manifest with a group column, or use "
                                 "--balance-by folder")
        out[str(f)] = group
    return out


def check_balance_groups(groups: List[str], classes: int, what: str,
                         fix: str = "predict the inputs of one voice together, or drop "
                                    "--balance", option: str = "--balance") -> None:
    """Refuse ``option`` (--balance, --pseudo-balance) when a batch (a group, or all the
    inputs) holds fewer ``what`` (files, predicted files) than there are classes: it cannot
    hold every class equally often."""
    from collections import Counter

    small = [(g, n) for g, n in Counter(groups).items() if n < classes] or \
        ([] if groups else [("all", 0)])
    if small:
        g, n = small[0]
        where = f"; got {n}" if g == "all" else f" in each group; {g} has {n}"
        raise InputError(f"{option} needs at least as many {what} as classes ({classes}){where}",
                         fix=fix)


def balanced_rows(predictor, rows: List[dict], probs: torch.Tensor, strength: float,
                  group_of: Dict[str, str]) -> Tuple[list, dict]:
    """--balance: the table's rows with their probabilities ``probs`` (files, labels) re-weighted
    within each batch of ``group_of`` (``pipelines.balance``) and each label the new top
    class; and what was done (strength, and per batch its files, class weights and labels
    changed), which is also printed.  ``predictor``: the AudioPredictor that made the rows."""
    from ..balance import balance_groups

    labels = predictor.labels
    groups = [group_of[r["file"]] for r in rows]
    balanced, weights = balance_groups(probs, groups, strength)
    new = [predictor.labelled(r, p) for r, p in zip(rows, balanced)]
    per = {g: {"files": 0, "labels_changed": 0,
               "class_weights": {n: round(float(x), 4) for n, x in zip(labels, w)}}
           for g, w in weights.items()}
    for g, r, n in zip(groups, rows, new):
        per[g]["files"] += 1
        per[g]["labels_changed"] += r["label"] != n["label"]
    changed = sum(v["labels_changed"] for v in per.values())
    info = {"strength": strength, "files": len(rows), "labels_changed": changed,
            "groups": per}
    batches = "" if list(per) == ["all"] else f" in {len(per)} groups"
    print(f"balanced {len(rows)} files{batches} (strength {strength:g}): {changed} labels "
          "changed")
    return new, info
