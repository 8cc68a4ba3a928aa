"""The measured figures of README.md and docs/*.md, regenerated from the files the benchmarks and
recipes wrote.

    python benchmarks/readme_tables.py            # rewrite every block, wherever it lives
    python benchmarks/readme_tables.py --check    # exit 1 if a block differs (the tests run this)

Each block sits between ``<!-- NAME: begin -->`` and ``<!-- NAME: end -->`` (each marker on a line
of its own) in README.md or one of docs/*.md, and is built by one function below from
``benchmarks/results/``: no figure in those blocks is typed by hand.  Every block of BLOCKS must
be in exactly one of those files, once; a marker without its partner, or one naming a block this
script does not know, is an error.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

from tables_common import (HERE, RESULTS, ROOT, STUDIES, _csv, _json, _minutes,  # noqa: F401
                           _pct, _pow2, _result, wilson_interval)
from tables_arch import (arch_dna_classify, arch_dna_lm, arch_fsdd, arch_speed, arch_verdict,
                         ssd_speed)
from tables_gpu import gpu_static
from tables_audio import fsdd_new_voice, fsdd_new_voice_check, fsdd_spread
from tables_dna import (_ci, dna_results, gene_annotation, genome_scale, mlm_science, mlm_speed,
                        variant_speed, variant_zero_shot)

README = ROOT / "README.md"
DOCS = ROOT / "docs"


# ------------------------------------------------------------------------------------- blocks

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


def audio_results() -> str:
    rep = _json("audio_digits_mixed_report.json")
    groups = rep["split"]["val_groups"]
    per = lambda who: " / ".join(f"{rep['accuracy_by_group'][who][g]:.3f}" for g in groups)  # noqa: E731
    eager = [float(r["samples_per_s"]) for r in _csv("audio_generation.csv")]
    comp = [float(r["samples_per_s"]) for r in _csv("audio_generation_compiled.csv")]
    threads = {r["threads"] for r in _csv("audio_generation.csv") + _csv("audio_generation_compiled.csv")}
    secs = ", ".join(f"{float(r['seconds']):g}" for r in _csv("audio_generation.csv"))
    rng = lambda v: f"{min(v):,.0f}-{max(v):,.0f}"  # noqa: E731
    return "\n".join([
        "| task | seqmamba | classic baseline, same split |",
        "|---|---|---|",
        f"| spoken digits, {rep['split']['train_clips'] + rep['split']['val_clips']} clips of 2 "
        f"engines, held out: {', '.join(groups)} (`audio_digits_mixed.yaml`, "
        f"{_minutes(rep['train_seconds'])} of training; `audio_digits_mixed_report.json`) "
        f"| {rep['model']['acc']:.3f} (per group {per('model')}) "
        f"| log-mel + logistic regression {rep['baseline']['acc']:.3f} ({per('baseline')}) |",
        f"| generation, 2 layers, d_model 64, 256 mu-law classes, batch 1 "
        f"(`benchmarks/audio_generation.py [--compile]`, {secs} s of audio at "
        f"{'/'.join(sorted(threads))} threads) | eager step {rng(eager)} samples/s, compiled "
        f"step (`--compile`) {rng(comp)} (`audio_generation.csv`, "
        f"`audio_generation_compiled.csv`) | - |",
    ])


def audio_holdout() -> str:
    rows = _csv("audio_holdout.csv")
    f1 = lambda v: f"{float(v):.3f}" if v else "-"  # noqa: E731  (the mean row has none)
    return "\n".join(["| held out | clips | log-mel + LR accuracy | macro-F1 |",
                      "|---|---|---|---|"] +
                     [f"| {r['held_out']} | {r['val_clips']} | {float(r['acc']):.3f} "
                      f"| {f1(r['macro_f1'])} |" for r in rows])


# experiments/audio_fsdd.py's result file of each recipe a tagged run changed: the shipped
# audio_fsdd and its earlier versions in experiments/recipes/ (the FSDD-only one, which every
# file written before the script recorded its recipe was measured against)
# recipe -> the results of that recipe as it stands (audio_fsdd_accents was measured as
# audio_fsdd_compact with the accented voices mixed in, and audio_fsdd_trim as audio_fsdd_accents
# with trim=0.5, audio_fsdd_max as audio_fsdd_trim with pooling=max: the same runs, so one file
# serves both)
FSDD_BASES = {"audio_fsdd": "audio_fsdd_loso.csv",
              "audio_fsdd_max": "audio_fsdd_loso_max.csv",
              "audio_fsdd_trim": "audio_fsdd_loso_trim.csv",
              "audio_fsdd_accents": "audio_fsdd_loso_accents.csv",
              "audio_fsdd_compact": "audio_fsdd_loso_compact.csv",
              "audio_fsdd_fsdd_only": "audio_fsdd_loso_fsdd_only.csv"}


def _fsdd_recipe(row) -> str:
    return row.get("recipe") or "audio_fsdd_fsdd_only"


def fsdd_loso() -> str:
    rows = _csv(FSDD_BASES["audio_fsdd"])
    old = {r["held_out"]: float(r["model_acc"]) for r in _csv(FSDD_BASES["audio_fsdd_fsdd_only"])}
    out = ["| held-out speaker | clips | seqmamba | earlier FSDD-only recipe | log-mel + LR "
           "| log-mel + MFCC + RBF SVM | training (s) | prediction (clips/s) |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        name = f"**{r['held_out']}**" if r["held_out"] == "mean" else r["held_out"]
        out.append(f"| {name} | {r['clips']} | {float(r['model_acc']):.3f} "
                   f"| {old[r['held_out']]:.3f} "
                   f"| {float(r['logmel_lr_acc']):.3f} | {float(r['svm_acc']):.3f} "
                   f"| {float(r['train_seconds']):.0f} | {float(r['predict_clips_per_s']):.0f} |")
    return "\n".join(out)


def fsdd_ablation() -> str:
    """Every tagged run of experiments/audio_fsdd.py beside the recipe it changes, on the same
    held-out speakers (a recipe's own unchanged result file is not a row)."""
    base = {k: {r["held_out"]: float(r["model_acc"]) for r in _csv(f)}
            for k, f in FSDD_BASES.items()}
    out = ["| change (`--set`, `--mix`) | to recipe | held out | seqmamba | that recipe | file |",
           "|---|---|---|---|---|---|"]
    for path in sorted(STUDIES.glob("audio_fsdd_loso_*.csv")):
        rows = [r for r in _csv(path.name) if r["held_out"] != "mean"]
        if path.name in FSDD_BASES.values() and rows[0].get("settings") in (None, "", "recipe"):
            continue
        recipe = _fsdd_recipe(rows[0])
        who = ", ".join(r["held_out"] for r in rows)
        acc = np.mean([float(r["model_acc"]) for r in rows])
        ref = np.mean([base[recipe][r["held_out"]] for r in rows])
        out.append(f"| {rows[0].get('settings') or '?'} | `{recipe}` | {who} | {acc:.3f} "
                   f"| {ref:.3f} | `{path.name}` |")
    return "\n".join(out)


def fsdd_noise() -> str:
    """Noisy held-out clips, mean over the folds, one row per model: the recipe and its
    baselines, then every tagged run of experiments/audio_fsdd.py that scored all four
    speakers; a column per noise and SNR, after the clean clips' accuracy."""
    rows = _csv("audio_fsdd_noise.csv")
    speakers = {r["held_out"] for r in rows}
    keys = sorted({(r["noise"], int(r["snr_db"])) for r in rows}, key=lambda k: (k[0], -k[1]))

    def column(rs):
        return tuple(r["model_acc"] for r in sorted(rs, key=lambda r: (
            r["held_out"], r["noise"], int(r["snr_db"]))))

    def clean(name, k="model_acc"):
        return next(float(r[k]) for r in _csv(name) if r["held_out"] == "mean")

    def mean(rs, noise, snr, k):
        return np.mean([float(r[k]) for r in rs if r["noise"] == noise and int(r["snr_db"]) == snr])

    table = [("seqmamba (`audio_fsdd`)", rows, "model_acc", FSDD_BASES["audio_fsdd"]),
             ("log-mel + LR", rows, "logmel_lr_acc", FSDD_BASES["audio_fsdd"]),
             ("log-mel + MFCC + RBF SVM", rows, "svm_acc", FSDD_BASES["audio_fsdd"])]
    # a run scored again under another tag (the same trained folds) is shown once
    seen = {column(rows)}
    for path in sorted(STUDIES.glob("audio_fsdd_noise_*.csv")):
        trows = _csv(path.name)
        if {r["held_out"] for r in trows} == speakers and column(trows) not in seen:
            seen.add(column(trows))
            tag = path.stem[len("audio_fsdd_noise_"):]
            table.append((f"`{tag}`", trows, "model_acc", f"audio_fsdd_loso_{tag}.csv"))
    out = ["| model | clean | " + " | ".join(f"{n} {snr} dB" for n, snr in keys) + " |",
           "|---" * (2 + len(keys)) + "|"]
    for name, rs, k, loso in table:
        cells = [clean(loso, k)] + [mean(rs, noise, snr, k) for noise, snr in keys]
        out.append(f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    return "\n".join(out)


# The shipped recipe and the one before it, each trained with three seeds on all four folds:
# recipe -> its result files, seed 0 first (each file's settings must name that seed).
FSDD_SEEDS = {"audio_fsdd": ["audio_fsdd_loso.csv", "audio_fsdd_loso_band_limit.csv",
                             "audio_fsdd_loso_band_limit_s2.csv"],
              "audio_fsdd_max": ["audio_fsdd_loso_max.csv", "audio_fsdd_loso_max_seed1.csv",
                                 "audio_fsdd_loso_max_seed2.csv"]}


def _setting(settings: str, key: str) -> int:
    """An integer ``key=value`` of a run's ``settings`` label (0 when the run left it alone)."""
    return next((int(kv.split("=", 1)[1]) for kv in (settings or "").split()
                 if kv.startswith(f"{key}=")), 0)


def fsdd_seeds() -> str:
    """Each recipe of FSDD_SEEDS: a row per seed (accuracy per held-out speaker, and the mean),
    then the mean over the seeds with the spread (lowest-highest) of the seeds' means."""
    speakers = ["george", "jackson", "lucas", "nicolas"]
    out = ["| recipe | seed | " + " | ".join(speakers) + " | mean |",
           "|---" * (3 + len(speakers)) + "|"]
    for recipe, files in FSDD_SEEDS.items():
        accs, means = [], []
        for seed, name in enumerate(files):
            rows = {r["held_out"]: r for r in _csv(name)}
            if _setting(rows["mean"].get("settings"), "seed") != seed or set(rows) != {*speakers, "mean"}:
                raise SystemExit(f"{name}: not seed {seed} of {recipe} on all four speakers")
            accs.append([float(rows[s]["model_acc"]) for s in speakers])
            means.append(float(rows["mean"]["model_acc"]))  # as the file's own table shows it
            out.append(f"| `{recipe}` | {seed} | " + " | ".join(f"{a:.3f}" for a in accs[-1])
                       + f" | {means[-1]:.3f} |")
        out.append(f"| `{recipe}` | **mean** | "
                   + " | ".join(f"{np.mean(col):.3f}" for col in zip(*accs))
                   + f" | **{np.mean(means):.3f}** ({min(means):.3f}-{max(means):.3f}) |")
    return "\n".join(out)


# How an unheard voice's accuracy grows with the real voices trained on (audio_fsdd.py
# --drop-speakers K leaves 3 - K of the other three): (real speakers, drop_speakers, files)
FSDD_VOICES = [(1, 2, ["audio_fsdd_loso_drop2.csv"]), (2, 1, ["audio_fsdd_loso_drop1.csv"]),
               (3, 0, FSDD_SEEDS["audio_fsdd"])]


def fsdd_voices() -> str:
    """One row per number of real speakers trained on: the shipped recipe's accuracy on each
    held-out speaker and the mean (over its seeds' runs where there are several), beside the
    two baselines fitted on the same real speakers."""
    speakers = ["george", "jackson", "lucas", "nicolas"]
    out = ["| real speakers trained on | runs | " + " | ".join(speakers)
           + " | mean | log-mel + LR | log-mel + MFCC + RBF SVM |",
           "|---" * (5 + len(speakers)) + "|"]
    for n, drop, files in FSDD_VOICES:
        runs = []
        for name in files:
            rows = {r["held_out"]: r for r in _csv(name)}
            if _setting(rows["mean"].get("settings"), "drop_speakers") != drop or set(rows) != {*speakers, "mean"}:
                raise SystemExit(f"{name}: not the audio_fsdd recipe on {n} real speakers for "
                                 f"all four held out")
            runs.append(rows)

        def cell(speaker, key, runs=runs):
            return np.mean([float(r[speaker][key]) for r in runs])

        out.append(f"| {n} | {len(runs)} | "
                   + " | ".join(f"{cell(s, 'model_acc'):.3f}" for s in speakers)
                   + f" | **{cell('mean', 'model_acc'):.3f}** | {cell('mean', 'logmel_lr_acc'):.3f}"
                   + f" | {cell('mean', 'svm_acc'):.3f} |")
    return "\n".join(out)


# Adapting a fold to its held-out speaker from his unlabelled clips (audio_fsdd.py --adapt), and
# balancing the predictions over his clips (--balance): (row, result file)
FSDD_ADAPT = [("seed 0", "audio_fsdd_loso.csv"),
              ("three seeds averaged", "audio_fsdd_loso_ens3.csv"),
              ("three seeds averaged, balanced", "audio_fsdd_loso_ens3_balance.csv"),
              ("seed 0 adapted, labels from itself", "audio_fsdd_loso_adapt_self.csv"),
              ("seed 0 adapted, labels from the three seeds", "audio_fsdd_loso_adapt.csv"),
              ("adapted again, labels from that model", "audio_fsdd_loso_adapt2.csv"),
              ("seed 0 adapted, balanced labels from the three seeds",
               "audio_fsdd_loso_adapt_balance.csv"),
              ("adapted again, balanced labels from that model",
               "audio_fsdd_loso_adapt_balance2.csv"),
              ("adapted again (balanced labels), balanced",
               "audio_fsdd_loso_adapt_balance2_balance.csv")]


def fsdd_adapt() -> str:
    """One row per model (before adaptation, adapted, balanced): its accuracy on each held-out
    speaker and the mean, and for an adapted run how many of the speaker's clips its teachers
    kept and the share of those labelled right (means over the folds)."""
    speakers = ["george", "jackson", "lucas", "nicolas"]
    out = ["| model | " + " | ".join(speakers) + " | mean | clips kept (right) |",
           "|---" * (len(speakers) + 3) + "|"]
    for name, f in FSDD_ADAPT:
        if not (STUDIES / f).is_file():
            continue
        rows = {r["held_out"]: r for r in _csv(f)}
        mean = rows["mean"]
        kept = (f"{float(mean['pseudo_kept']):.0f} ({float(mean['pseudo_acc']):.3f})"
                if mean.get("pseudo_kept") else "-")
        out.append(f"| {name} | " + " | ".join(f"{float(rows[s]['model_acc']):.3f}"
                                            for s in speakers)
                   + f" | {float(mean['model_acc']):.3f} | {kept} |")
    return "\n".join(out)


def fsdd_balance() -> str:
    """experiments/audio_balance.py: per kind of batch of the held-out speakers' clips, the
    accuracy as predicted and balanced at each strength, for each set of members."""
    rows = _csv("audio_balance.csv")
    members = list(dict.fromkeys(r["members"] for r in rows))
    strengths = sorted({float(r["strength"]) for r in rows}, reverse=True)
    got = {(r["members"], r["batch"], float(r["strength"])): r for r in rows}
    head = ["models", "batch", "clips", "as predicted"] + [f"balanced, strength {s:g}"
                                                            for s in strengths]
    out = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for m in members:
        for batch in dict.fromkeys(r["batch"] for r in rows if r["members"] == m):
            first = got[(m, batch, strengths[0])]
            out.append(f"| `{m}` | {batch} | {first['clips']} | "
                       f"{float(first['acc_before']):.3f} | "
                       + " | ".join(f"{float(got[(m, batch, s)]['acc_after']):.3f}"
                                    for s in strengths) + " |")
    return "\n".join(out)


def fsdd_digits() -> str:
    """Per digit and held-out speaker, over the shipped recipe's seeds (FSDD_SEEDS): the share
    of its clips the model names right, and what it names most often instead (with how many
    of the clips)."""
    rows = [r for name in FSDD_SEEDS["audio_fsdd"]
            for r in _csv(name.replace("audio_fsdd_loso", "audio_fsdd_confusion"))]
    speakers = sorted({r["held_out"] for r in rows})
    digits = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    count: Dict[tuple, int] = {}
    for r in rows:
        key = (r["held_out"], r["label"], r["predicted"])
        count[key] = count.get(key, 0) + int(r["clips"])
    out = ["| digit | " + " | ".join(speakers) + " | mean |", "|---" * (len(speakers) + 2) + "|"]
    for d in digits:
        cells, accs = [], []
        for s in speakers:
            heard = {p: n for (s2, lab, p), n in count.items() if s2 == s and lab == d}
            acc = heard.get(d, 0) / max(1, sum(heard.values()))
            accs.append(acc)
            wrong = sorted(((n, p) for p, n in heard.items() if p != d), reverse=True)
            cells.append(f"{acc:.2f}" + (f" ({wrong[0][1]} {wrong[0][0]})" if wrong else ""))
        out.append(f"| {d} | " + " | ".join(cells) + f" | {np.mean(accs):.2f} |")
    return "\n".join(out)


def fsdd_recipe_speed() -> str:
    """experiments/audio_recipe_speed.py: each recipe's training seconds per step on the same
    cores in one run, as a ratio to the reference (the last row), and its full fold projected
    from the reference's measured one."""
    rows = _csv("audio_recipe_speed.csv")
    out = ["| recipe | s/step | ratio | steps | full fold, projected (s) |", "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| `{r['recipe']}` | {float(r['seconds_per_step']):.2f} "
                   f"| {float(r['ratio_to_reference']):.2f} | {r['max_steps']} "
                   f"| {float(r['projected_full_seconds']):.0f} |")
    return "\n".join(out)


def fsdd_channels() -> str:
    """experiments/audio_channels.py: each fold's held-out clips through other channels, one row
    per run and held-out speaker (runs in the order of the file)."""
    rows = _csv("audio_channels.csv")
    channels = list(dict.fromkeys(r["channel"] for r in rows))
    acc = {(r["run"], r["held_out"], r["channel"]): float(r["model_acc"]) for r in rows}
    out = ["| run | held out | " + " | ".join(channels) + " |", "|---" * (2 + len(channels)) + "|"]
    for run, who in dict.fromkeys((r["run"], r["held_out"]) for r in rows):
        out.append(f"| `{run}` | {who} | "
                   + " | ".join(f"{acc[(run, who, c)]:.3f}" for c in channels) + " |")
    return "\n".join(out)


def _busy_table(rows, header: str, cells) -> str:
    """A table of speeds on idle and busy cores: 'other jobs' column, then ``cells(row)``."""
    out = [f"| other jobs | {header} |", "|---" * (header.count("|") + 2) + "|"]
    for r in rows:
        busy = "one core busy" if int(r["busy_cores"]) else "none"
        out.append(f"| {busy} | " + " | ".join(cells(r)) + " |")
    return "\n".join(out)


def busy_cores() -> str:
    return _busy_table(_csv("busy_cores.csv"),
                       "torch threads | training steps/s | vs idle machine, all threads",
                       lambda r: [f"{r['threads']} of {r['cores']}", f"{float(r['steps_per_s']):.2f}",
                                  f"{float(r['vs_idle_all_threads']):.2f}x"])


def audio_predict_speed() -> str:
    return _busy_table(_csv("audio_predict_speed.csv"),
                       "clips per forward pass | clips/s | vs idle machine, one at a time",
                       lambda r: [r["batch"], f"{float(r['clips_per_s']):,.0f}",
                                  f"{float(r['vs_idle_one_at_a_time']):.2f}x"])


def generation() -> str:
    rows = _csv("generation.csv")
    tps = [float(r["tokens_per_s"]) for r in rows]
    r0 = rows[0]
    return (f"Generation (`benchmarks/generation.py`, `generation.csv`; d_model {r0['d_model']}, "
            f"{r0['n_layer']} layers, {r0['new_tokens']} new tokens after prompts of "
            f"{int(rows[0]['context']):,} to {int(rows[-1]['context']):,} tokens): "
            f"{min(tps):,.0f}-{max(tps):,.0f} tokens/s, the slowest context at "
            f"{max(float(r['relative_to_shortest']) for r in rows):.2f}x the shortest's "
            f"per-token time.")


def _scan(device: str) -> str:
    sys.path.insert(0, str(HERE))
    from scan import report_from_csv

    return "```\n" + "\n".join(report_from_csv(RESULTS / f"scan_{device}.csv")) + "\n```"


def scan_cpu() -> str:
    return _scan("cpu")


def scan_cuda() -> str:
    return _scan("cuda")


def cpu_scan() -> str:
    sys.path.insert(0, str(HERE))
    from cpu_scan import readme_tables

    return readme_tables()


def _scan_rows(device: str) -> Dict[tuple, dict]:
    """scan_<device>.csv keyed by (impl, mode, length)."""
    return {(r["impl"], r["mode"], int(r["length"])): r for r in _csv(f"scan_{device}.csv")}


def headline() -> str:
    """README's first table: each job's headline figure beside its baseline, and the scan's speed
    at lengths where others run out of memory, all from the files the docs' own blocks read."""
    pre = _json("dna_ecoli_pretrain_report.json")
    splice = _json("dna_splice_report.json")
    genes = _json("dna_genes_umaydis_report.json")
    digits = _json("audio_digits_mixed_report.json")
    fsdd_runs = [{r["held_out"]: r for r in _csv(f)} for f in FSDD_SEEDS["audio_fsdd"]]
    fsdd = [run["mean"] for run in fsdd_runs]
    fsdd_mean = lambda k: np.mean([float(r[k]) for r in fsdd])  # noqa: E731
    speakers = len(fsdd_runs[0]) - 1
    out = ["| job | seqmamba | classic baseline, same split | more |", "|---|---|---|---|",
           f"| DNA language model, E. coli, held-out last 10% | {pre['val_bits_per_base']:.3f} "
           f"bits/base | best Markov (order {pre['best_markov_order']}) "
           f"{pre['best_markov_bits_per_base']:.3f} | [dna](docs/dna.md) |",
           f"| splice junctions | {splice['model']['acc']:.3f} accuracy "
           f"| {splice['baseline']['name']} {splice['baseline']['acc']:.3f} | [dna](docs/dna.md) |",
           f"| base-level gene annotation, *U. maydis*, {len(genes['split']['val_records'])} "
           f"held-out chromosomes | {genes['model']['macro_f1']:.3f} macro-F1 "
           f"| {genes['baseline']['name']} {genes['baseline']['macro_f1']:.3f} "
           f"| [dna](docs/dna.md) |",
           f"| spoken digits, {len(digits['split']['val_groups'])} synthetic voices never heard "
           f"| {digits['model']['acc']:.3f} accuracy | log-mel + logistic regression "
           f"{digits['baseline']['acc']:.3f} | [audio](docs/audio.md) |",
           f"| spoken digits, a real speaker never heard (FSDD, each of {speakers} left out, "
           f"{len(fsdd)} seeds) | {fsdd_spread(fsdd_runs)} "
           f"| log-mel + MFCC + RBF SVM {fsdd_mean('svm_acc'):.3f} | [audio](docs/audio.md) |"]
    zs = _json("mlm_zero_shot.json")["results"]
    best = max((k for k in zs if k not in ("mlm", "lm")), key=lambda k: zs[k]["auroc"])
    speed = _csv("mlm_speed.csv")
    out += [f"| masked LM (Caduceus-PS), zero-shot nonsense vs synonymous SNVs in a genome it "
            f"never saw | AUROC {_ci(zs['mlm'])} | best count model ({best}) "
            f"{_ci(zs[best])} | [dna](docs/dna.md) |",
            f"| PlantCaduceus_l20-shaped SNV scoring on a CPU core, 512-base windows | "
            f"{float(speed[0]['variants_per_s']):.2f} variants/s | Caduceus's CPU path "
            f"(mamba-ssm reference scan) {float(speed[1]['variants_per_s']):.3f} variants/s "
            f"| [dna](docs/dna.md) |"]
    arch = {(r["arch"], r["kind"], int(r["length"])): r for r in _csv("arch_speed.csv")}
    m, t = arch[("mamba", "train", 1 << 14)], arch[("transformer", "train", 1 << 14)]
    out.append(f"| causal LM training step, {_pow2(1 << 14)} tokens, 2 CPU cores "
               f"({int(m['params']) / 1e3:.0f}k parameters) | {float(m['tokens_per_s']):,.0f} "
               f"tokens/s | Transformer++, {int(t['params']) / 1e3:.0f}k parameters: "
               f"{float(t['tokens_per_s']):,.0f} tokens/s | [benchmarks](docs/benchmarks.md) |")
    cpu = _scan_rows("cpu")
    lengths = sorted({k[2] for k in cpu})
    fits = [n for n in lengths if cpu.get(("mambapy", "fwd+bwd", n), {}).get("status") == "ok"]
    oom = [n for n in lengths if "out of memory" in cpu.get(("mambapy", "fwd+bwd", n), {})
           .get("status", "")]
    if not (fits and oom):
        raise SystemExit("scan_cpu.csv: the headline needs a length where mamba.py's pscan ran "
                         "forward + backward and one where it ran out of memory")
    n, m = fits[-1], lengths[-1]
    ours, peer, big = (cpu[("cpu", "fwd+bwd", n)], cpu[("mambapy", "fwd+bwd", n)],
                       cpu[("cpu", "fwd+bwd", m)])
    shape = f"batch {big['batch']}, dim {big['dim']}, state {big['state']}"
    out.append(f"| selective scan on 2 CPU cores, forward + backward, {_pow2(n)} tokens "
               f"({shape}) | {float(ours['time_s']):.2f} s, {float(ours['peak_mem_mb']):,.0f} MB "
               f"| mamba.py pscan {float(peer['time_s']):.1f} s, "
               f"{float(peer['peak_mem_mb']):,.0f} MB | [benchmarks](docs/benchmarks.md) |")
    out.append(f"| the same at {_pow2(m)} tokens | {float(big['time_s']):.1f} s, "
               f"{float(big['peak_mem_mb']):,.0f} MB | mamba.py pscan: out of memory "
               f"from {_pow2(oom[0])} | [benchmarks](docs/benchmarks.md) |")
    gpu = _scan_rows("cuda")
    m = max(k[2] for k in gpu)
    tri, tor = gpu[("triton", "fwd", m)], gpu[("torch", "fwd", m)]
    with open(RESULTS / "gpu" / "nvidia_smi.txt", newline="") as f:  # the lent GPU's name
        card = next(csv.DictReader(f, skipinitialspace=True))["name"]
    out.append(f"| selective scan on one {card}, "
               f"forward, {_pow2(m)} tokens (batch {tri['batch']}, dim {tri['dim']}) "
               f"| {1e3 * float(tri['time_s']):.0f} ms (Triton) | seqmamba's portable PyTorch "
               f"path {1e3 * float(tor['time_s']):,.0f} ms | [gpu](docs/gpu.md) |")
    return "\n".join(out)


BLOCKS: Dict[str, Callable[[], str]] = {
    "headline": headline,
    "cpu_scan tables": cpu_scan, "scan_cpu": scan_cpu, "scan_cuda": scan_cuda,
    "synthetic": synthetic,
    "induction probe": induction_probe, "induction far key": induction_far_key,
    "copying curve": copying_curve,
    "dna results": dna_results, "gene annotation": gene_annotation,
    "audio results": audio_results,
    "audio holdout": audio_holdout, "generation": generation,
    "variant zero shot": variant_zero_shot, "variant speed": variant_speed, "fsdd loso": fsdd_loso, "fsdd noise": fsdd_noise,
    "fsdd ablation": fsdd_ablation, "fsdd seeds": fsdd_seeds, "fsdd digits": fsdd_digits,
    "fsdd voices": fsdd_voices,
    "fsdd adapt": fsdd_adapt, "fsdd balance": fsdd_balance,
    "fsdd new voice": fsdd_new_voice, "fsdd new voice check": fsdd_new_voice_check,
    "fsdd channels": fsdd_channels, "fsdd recipe speed": fsdd_recipe_speed,
    "busy cores": busy_cores,
    "audio predict speed": audio_predict_speed,
    "mlm-speed": mlm_speed,
    "mlm-science": mlm_science,
    "genome scale": genome_scale,
    "arch speed": arch_speed,
    "ssd speed": ssd_speed,
    "arch dna lm": arch_dna_lm,
    "arch fsdd": arch_fsdd, "arch dna classify": arch_dna_classify, "arch verdict": arch_verdict,
    "gpu static": gpu_static,
}




# a marker is a line of its own: "<!-- NAME: begin -->" or "<!-- NAME: end -->"
MARKER = re.compile(r"^<!-- (.+?): (begin|end) -->$", re.M)


def doc_files(root: Path = ROOT) -> List[Path]:
    """The files that hold blocks: README.md, then docs/*.md in name order."""
    return [root / "README.md"] + sorted((root / "docs").glob("*.md"))


def _spans(text: str, where: str) -> List[tuple]:
    """(name, end of the begin marker, start of the end marker) of each block in ``text``, in
    order; SystemExit on a marker without its partner, a block inside another, or a name the
    script does not know."""
    spans, open_ = [], None
    for m in MARKER.finditer(text):
        name, kind = m.groups()
        if name not in BLOCKS:
            raise SystemExit(f"{where}: block {name!r} is not one readme_tables.py builds "
                             f"(known: {', '.join(sorted(BLOCKS))})")
        if kind == "begin":
            if open_ is not None:
                raise SystemExit(f"{where}: block {open_[0]!r} has no end marker (block "
                                 f"{name!r} begins inside it)")
            open_ = (name, m.end())
        elif open_ is None or open_[0] != name:
            raise SystemExit(f"{where}: end marker of block {name!r} without its begin marker")
        else:
            spans.append((name, open_[1], m.start()))
            open_ = None
    if open_ is not None:
        raise SystemExit(f"{where}: block {open_[0]!r} has no end marker")
    return spans


def locate(root: Path = ROOT) -> Dict[str, Path]:
    """Each block's file; SystemExit unless every block of BLOCKS is in exactly one file, once."""
    where: Dict[str, Path] = {}
    for path in doc_files(root):
        for name, _, _ in _spans(path.read_text(), _rel(path, root)):
            if name in where:
                raise SystemExit(f"block {name!r} is in {_rel(where[name], root)} and again in "
                                 f"{_rel(path, root)}: it must be in exactly one file, once")
            where[name] = path
    missing = [n for n in BLOCKS if n not in where]
    if missing:
        raise SystemExit(f"no file holds block(s) {', '.join(map(repr, missing))} (looked in "
                         f"README.md and docs/*.md)")
    return where


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def render(text: str, only=None, where: str = "README.md") -> str:
    """``text`` with every block in it (or those in ``only``) rebuilt."""
    out, pos = [], 0
    for name, start, stop in _spans(text, where):
        if only and name not in only:
            continue
        out += [text[pos:start], "\n", BLOCKS[name](), "\n"]
        pos = stop
    return "".join(out) + text[pos:]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    p.add_argument("--only", nargs="+", choices=sorted(BLOCKS), help="rebuild these blocks only")
    p.add_argument("--root", type=Path, default=ROOT,
                   help="the checkout whose README.md and docs/*.md hold the blocks")
    a = p.parse_args(argv)
    root = a.root.resolve()
    files = sorted(set(locate(root).values()), key=doc_files(root).index)
    differ = False
    for path in files:
        text = path.read_text()
        new = render(text, a.only, _rel(path, root))
        if new == text:
            continue
        if a.check:
            import difflib

            differ = True
            name = _rel(path, root)
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True),
                                                       name, f"{name} (regenerated)"))
            continue
        sys.path.insert(0, str(ROOT))
        from seqmamba.atomic import write_text_atomic

        write_text_atomic(new, path)
        print(f"updated {_rel(path, root)}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
