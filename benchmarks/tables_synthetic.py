"""README and docs blocks of the synthetic tasks (built by ``readme_tables.py``): selective
copying and induction heads against the Mamba paper's figures, the copying curve, and the
induction probes."""

from __future__ import annotations

import math
from typing import List

from tables_common import _csv, _pct, _pow2, wilson_interval


# The Mamba paper (Gu & Dao 2023), Table 1 (selective copying, length 4096, 16 tokens) and
# Table 2 / Figure (induction heads trained at 256, evaluated 2^6 .. 2^20).
PAPER_COPYING = {"mamba (S6)": "99.8% (S6, length 4096, 16 tokens)",
                 "no selection (S4-like)": "18.3% (S4, same setting)"}
PAPER_INDUCTION = "100%"


def synthetic() -> str:
    """Selective copying, one row per model and length; induction heads, one row per
    evaluation length and one column per training run (steps, state passing)."""
    rows = _csv("synthetic.csv")
    out = ["| task | eval length | sequences | ours | 95% interval | paper |",
           "|---|---|---|---|---|---|"]
    for r in (r for r in rows if r["task"] == "selective_copying"):
        n, acc = int(r["n_eval"]), float(r["accuracy"])
        # accuracy over n_eval rows x n_tokens answers (the interval treats them as
        # independent, which they are not quite within a row)
        trials = n * int(r["n_tokens"])
        extra = f", {r['training']}" if r.get("training") else ""
        what = (f"selective copying, {r['model']}, {r['n_tokens']} tokens, "
                f"{r['train_steps']} steps of {r['batch']}{extra}")
        lo, hi = wilson_interval(round(acc * trials), trials)
        out.append(f"| {what} | {_pow2(r['eval_len'])} | {n} | {_pct(acc, 2)} "
                   f"| {_pct(lo)} - {_pct(hi)} | {PAPER_COPYING.get(r['model'], '-')} |")
    ind = [r for r in rows if r["task"] == "induction_heads"]
    # a run: (model, steps, how); Mamba's first, then the attention baseline's
    runs = sorted(dict.fromkeys((r["model"], r["train_steps"], r.get("training") or "")
                                for r in ind),
                  key=lambda run: (run[0] != "mamba (S6)", int(run[1]), run[2]))
    if ind:
        names = [("" if model == "mamba (S6)" else f"{model}, ") + f"{steps} steps"
                 + (f", {how}" if how else "") for model, steps, how in runs]
        out += ["", f"Induction heads, trained at {ind[0]['train_len']}: accuracy (95% "
                "interval) on the sequences given", "",
                "| eval length | sequences | " + " | ".join(names) + " | paper |",
                "|---" * (3 + len(runs)) + "|"]
        by = {(r["eval_len"], r["model"], r["train_steps"], r.get("training") or ""): r
              for r in ind}
        for length in sorted({int(r["eval_len"]) for r in ind}):
            cells, ns = [], set()
            for model, steps, how in runs:
                r = by.get((str(length), model, steps, how))
                if r is None:
                    cells.append("-")
                    continue
                n, acc = int(r["n_eval"]), float(r["accuracy"])
                ns.add(n)
                lo, hi = wilson_interval(round(acc * n), n)
                cells.append(f"{_pct(acc, 1)} ({_pct(lo, 0)}-{_pct(hi, 0)})")
            out.append(f"| {_pow2(length)} | {'/'.join(map(str, sorted(ns)))} | "
                       + " | ".join(cells) + f" | {PAPER_INDUCTION} |")
    return "\n".join(out)


def copying_curve() -> str:
    """Selective copying accuracy against training steps, per length/tokens and model, from
    synthetic_copying_curve.csv (at most 8 points per model shown, evenly spaced)."""
    rows = _csv("synthetic_copying_curve.csv")
    out = []
    for setting in dict.fromkeys((r["length"], r["n_tokens"]) for r in rows):
        sel = [r for r in rows if (r["length"], r["n_tokens"]) == setting]
        models = list(dict.fromkeys(r["model"] for r in sel))
        steps = sorted({int(r["step"]) for r in sel})
        if len(steps) > 8:
            steps = [steps[round(i * (len(steps) - 1) / 7)] for i in range(8)]
        by = {(r["model"], int(r["step"])): r for r in sel}
        out += [f"Length {setting[0]}, {setting[1]} tokens, batch {sel[0]['batch']}; "
                f"accuracy on {sel[0]['n_eval']} fresh rows (minutes of training):", "",
                "| steps | " + " | ".join(models) + " |", "|---" * (1 + len(models)) + "|"]
        for st in steps:
            cells = []
            for m in models:
                r = by.get((m, st))
                cells.append("-" if r is None else
                             f"{_pct(float(r['accuracy']))} ({float(r['train_seconds']) / 60:.0f})")
            out.append(f"| {st} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out).rstrip()


def _far_key_cells(get, longest) -> List[str]:
    """The far-key read-out of one variant (experiments/induction_probe.py key_readout), as
    three cells: correct/n, median logit shift when the key changes, drift of the stored key."""
    acc = get.get(("readout_accuracy", str(longest)))
    if acc is None:
        return ["-"] * 3
    shift, drift = (get.get((f"readout_{k}", str(longest))) for k in ("key_shift", "drift"))
    return [f"{int(acc['correct'])}/{acc['n_eval']}", f"{float(shift['value']):.1f}",
            f"{100 * float(drift['value']):.0f}%"]


def _by_variant(rows: List[dict]):
    for v in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == v]
        yield v, mine, {(r["measure"], r["eval_len"]): r for r in mine}


def induction_probe() -> str:
    """One row per experiments/induction_probe.py variant: accuracy at the longest screened
    lengths, near and far keys there, the far-key read-out, and the longest memory half-life
    of the second layer."""
    rows = _csv("induction_probe.csv")
    longest = max(int(r["eval_len"]) for r in rows if r["measure"] == "accuracy")
    shown = [longest >> 2, longest >> 1, longest]
    k = _pow2(longest)
    out = ["| variant | steps | training (s) | "
           + " | ".join(_pow2(n) for n in shown)
           + f" | key 2-128 back, {k} | key over half back, {k} | key at 16, {k} | "
             "logit shift when the key changes | drift of the stored key | layer-2 half-life "
             "(tokens) |", "|---" * (9 + len(shown)) + "|"]
    for v, mine, get in _by_variant(rows):
        def acc(measure, n):
            r = get.get((measure, str(n)))
            return "-" if r is None else f"{int(r['correct'])}/{r['n_eval']}"
        hl = get.get(("half_life_layer1", ""))
        half_life = "-" if not hl else (
            "∞ (dt = 0 in float32)" if math.isinf(float(hl["value"]))
            else f"{float(hl['value']):,.0f}")
        out.append(f"| {v} | {mine[0]['train_steps']} | {float(mine[0]['train_seconds']):.0f} | "
                   + " | ".join(acc("accuracy", n) for n in shown)
                   + f" | {acc('near_key_2_128', longest)} | {acc('far_key_ge_half', longest)} "
                     f"| {' | '.join(_far_key_cells(get, longest))} | {half_life} |")
    return "\n".join(out)


def induction_far_key() -> str:
    """The far-key read-out of the longest-reaching variants at 2^19
    (induction_probe.py --only-diagnostics --max-eval-log2 19 --out induction_probe_far.csv)."""
    rows = _csv("induction_probe_far.csv")
    lengths = {int(r["eval_len"]) for r in rows if r["measure"] == "readout_accuracy"}
    out = ["| variant | steps | length | key at 16: correct | median top-2 logit margin | "
           "logit shift when the key changes | drift of the stored key |", "|---" * 7 + "|"]
    for length in sorted(lengths):
        for v, mine, get in _by_variant(rows):
            margin = get.get(("readout_margin", str(length)))
            if margin is None:
                continue
            cells = _far_key_cells(get, length)
            out.append(f"| {v} | {mine[0]['train_steps']} | {_pow2(length)} | {cells[0]} | "
                       f"{float(margin['value']):.1f} | {cells[1]} | {cells[2]} |")
    return "\n".join(out)
