"""README and docs blocks of the audio classifiers (built by ``readme_tables.py``): the bundled
audio results and hold-outs, and the FSDD leave-one-speaker-out studies (the recipe, its
ablations, noise, seeds, voices, adaptation, balancing, digits, speed and channels)."""

from __future__ import annotations

from typing import Dict

import numpy as np

from tables_common import STUDIES, _csv, _json, _minutes


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
