"""The docs block that puts each Mamba comparison at equal steps beside the same comparison at
equal training time (built by ``readme_tables.py`` from ``arch_equal_time.py``'s two CSVs and
the equal-step CSVs)."""

from __future__ import annotations

from typing import List, Optional

import numpy as np

from arch_equal_time import mamba_steps
from tables_arch import _fsdd_runs, _untrained, half_interval, lm_verdict, verdict
from tables_common import STUDIES, _acc_cell, _bits_cell, _csv, _pow2

RIVALS = {"transformer": "Transformer++", "cnn": "CNN"}
# the Transformer++'s FSDD folds at equal time: experiments/audio_fsdd.py --tag
# transformer_equal_time, with the steps arch_equal_time.py prints
FSDD_AT_TIME = "audio_fsdd_loso_transformer_equal_time.csv"


def _fsdd_at_time() -> List[dict]:
    """The Transformer++'s equal-time FSDD run as arch_equal_time.csv rows (its accuracy over
    the held-out speakers), once it has scored every fold the equal-step run scored."""
    if not (STUDIES / FSDD_AT_TIME).exists():
        return []
    rows = {r["held_out"]: r for r in _csv(FSDD_AT_TIME)}
    if "mean" not in rows or not set(_fsdd_runs()[0]) <= set(rows):
        return []
    steps = dict(kv.split("=") for kv in rows["mean"]["settings"].split())["max_steps"]
    return [{"comparison": "fsdd", "rival": "transformer", "seed": "0", "steps": steps,
             "metric": "acc", "value": rows["mean"]["model_acc"]}]


def _equal_steps(name: str, rival: str, length: Optional[int]) -> tuple:
    """(what is measured, Mamba's figures, the rival's at equal steps, held-out examples or
    None for bits) from the equal-step CSVs."""
    if name.startswith("lm"):
        n = int(name[2:])
        rows = [r for r in _csv("arch_dna_lm.csv") if int(r["seq_len"]) == n]
        get = {a: [float(r["val_bits_per_base"]) for r in rows if r["arch"] == a]
               for a in ("mamba", "transformer")}
        return (f"E. coli LM at {n:,}, held-out bits/base (lower is better)", get["mamba"],
                get["transformer"], None)
    if name == "species":
        rows = [r for r in _csv("arch_species.csv") if int(r["length"]) == length]
        get = {a: [float(r["model_acc"]) for r in rows if r["arch"] == a]
               for a in ("mamba", "transformer")}
        return (f"species of origin, {_pow2(length)} bases{_untrained(rows[0])}, accuracy",
                get["mamba"],
                get["transformer"], int(rows[0]["n_test"]))
    if name == "fsdd":  # Mamba: the recipe's three seeds; each a mean over the held-out speakers
        tr, _, seeds, _ = _fsdd_runs()
        folds = [s for s in tr if all(s in x for x in seeds)]
        return ("spoken digits, unheard FSDD speakers, accuracy",
                [float(np.mean([float(x[s]["model_acc"]) for s in folds])) for x in seeds],
                [float(np.mean([float(tr[s]["model_acc"]) for s in folds]))],
                sum(int(tr[s]["clips"]) for s in folds))
    rows = [r for r in _csv("arch_dna_classify.csv") if r["task"] == name]
    mamba = [r for r in rows if r["arch"] == "mamba"]
    rival_steps = [float(r["cnn_acc"]) for r in mamba] if rival == "cnn" else \
        [float(r["model_acc"]) for r in rows if r["arch"] == "transformer"]
    return (f"{name}, held-out accuracy", [float(r["model_acc"]) for r in mamba], rival_steps,
            int(mamba[0]["val_examples"]))


def _rows() -> List[dict]:
    """Each (comparison, rival, species length) measured at equal time: its figures as table
    cells and Mamba's verdict at equal steps and at equal time."""
    ratios = {(r["comparison"], r["rival"]): r for r in _csv("arch_step_ratio.csv")}
    runs = _csv("arch_equal_time.csv") + _fsdd_at_time()
    rows = []
    for (name, rival), ratio in ratios.items():
        mine = [r for r in runs if (r["comparison"], r["rival"]) == (name, rival)]
        for length in [2 ** 10, 2 ** 12, 2 ** 14] if name == "species" else [None]:
            metric = f"acc@{length}" if length else \
                "val_bits_per_base" if name.startswith("lm") else "acc"
            at_time = [float(r["value"]) for r in mine if r["metric"] == metric]
            if not at_time:
                continue
            what, m, at_steps, n = _equal_steps(name, rival, length)
            if not (m and at_steps):
                continue
            if n is None:
                cells = [_bits_cell(m), _bits_cell(at_steps), _bits_cell(at_time)]
                verdicts = [lm_verdict(m, at_steps), lm_verdict(m, at_time)]
            else:
                cells = [_acc_cell(m, n), _acc_cell(at_steps, n), _acc_cell(at_time, n)]
                tol = half_interval(np.mean(m), n)
                verdicts = [verdict(np.mean(m), [np.mean(r)], tol=tol)
                            for r in (at_steps, at_time)]
            seeds = sorted({r["seed"] for r in mine if r["metric"] == metric})
            rows.append({"name": name, "rival": rival, "length": length, "what": what,
                         "seeds": seeds, "ratio": ratio, "steps": (mamba_steps(name),
                                                                   int(mine[0]["steps"])),
                         "cells": cells, "verdicts": verdicts})
    return rows


def arch_equal_time() -> str:
    """One row per comparison and rival: the rival's step cost against Mamba's, its steps at
    equal time, and its figure at equal steps and at equal time beside Mamba's."""
    out = ["| measurement | rival | rival's steps in the time of one Mamba step: median "
           "(range) | rival's steps: equal steps → equal time | Mamba | rival, equal steps | "
           "rival, equal time | Mamba is, equal steps → equal time |", "|---" * 8 + "|"]
    for r in _rows():
        q = r["ratio"]
        out.append(f"| {r['what']} (seeds at equal time: {', '.join(r['seeds'])}) | "
                   f"{RIVALS[r['rival']]} | {float(q['ratio']):.2f} ({float(q['ratio_min']):.2f}"
                   f"-{float(q['ratio_max']):.2f}) | {r['steps'][0]:,} → {r['steps'][1]:,} | "
                   + " | ".join(r["cells"]) + f" | {r['verdicts'][0]} → {r['verdicts'][1]} |")
    if len(out) == 2:
        return "No comparison has been run at equal time yet (`benchmarks/arch_equal_time.py`)."
    return "\n".join(out)


def equal_time_verdicts() -> dict:
    """(comparison, species length or None) -> Mamba's verdict at equal time against every
    rival run there: ahead of all, behind any, else level."""
    by: dict = {}
    for r in _rows():
        by.setdefault((r["name"], r["length"]), []).append(r["verdicts"][1])
    return {k: "ahead" if all(v == "ahead" for v in vs) else
            "behind" if "behind" in vs else "level" for k, vs in by.items()}
