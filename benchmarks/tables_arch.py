"""README and docs blocks that put Mamba beside Mamba-2, the Transformer++ baseline and the CNNs
practitioners train (built by ``readme_tables.py``): speed and memory against length, E. coli
bits per base, spoken digits of unheard speakers, short DNA classes, and the SSD scan against
the Mamba-1 kernel."""

from __future__ import annotations

from typing import Dict, List

import numpy as np

from tables_common import _acc_cell, _bits_cell, _csv, _pow2, wilson_interval

NAMES = {"mamba": "Mamba", "mamba2": "Mamba-2", "transformer": "Transformer++"}


def _crossover(rows: List[dict], kind: str, arch: str = "transformer") -> str:
    """The shortest measured length from which ``arch`` is slower than Mamba at every longer
    length measured (or ran out of memory or time)."""
    sel = sorted((r for r in rows if r["kind"] == kind and r["arch"] == arch),
                 key=lambda r: int(r["length"]))
    slower = [r["status"] != "ok" or float(r["seconds_over_mamba"] or "nan") > 1 for r in sel]
    for i in range(len(sel)):
        if all(slower[i:]):
            return _pow2(sel[i]["length"])
    return "none measured"


def _speed_range(r: dict) -> str:
    """An arch_speed.csv row's tokens/s over its slowest and fastest run, " [lo-hi]"."""
    if not r.get("seconds_min"):
        return ""
    per = float(r["tokens_per_s"]) * float(r["seconds"])  # tokens a run
    return f" [{per / float(r['seconds_max']):,.0f}-{per / float(r['seconds_min']):,.0f}]"


def arch_speed() -> str:
    """benchmarks/arch_speed.py: one table per measurement, a column per model."""
    rows = _csv("arch_speed.csv")
    archs = list(dict.fromkeys(r["arch"] for r in rows))
    params = {r["arch"]: int(r["params"]) for r in rows if r.get("params")}
    by = {(r["arch"], r["kind"], int(r["length"])): r for r in rows}
    what = {"train": "forward + backward, batch 1", "predict": "next-token logits, no gradients",
            "generate": "64 greedy tokens after a prompt of the length, its prefill not timed"}
    out = ["Models: " + ", ".join(f"{NAMES[a]} ({params.get(a, 0) / 1e3:.0f}k parameters)"
                                    for a in archs) + " (`arch_speed.csv`)."]
    for kind in ("train", "predict", "generate"):
        lengths = sorted({n for a, k, n in by if k == kind})
        out += ["", f"**{kind}** ({what[kind]}): tokens/s, the median of three runs (the "
                    "slowest-fastest); peak MB above the model; time over Mamba's", "",
                "| length | " + " | ".join(NAMES[a] for a in archs) + " |",
                "|---" * (1 + len(archs)) + "|"]
        for n in lengths:
            cells = []
            for a in archs:
                r = by.get((a, kind, n))
                if r is None:
                    cells.append("-")
                elif r["status"] != "ok":
                    cells.append(r["status"].split(" (")[0])
                else:
                    ratio = f", {float(r['seconds_over_mamba']):.2f}x" if r["seconds_over_mamba"] \
                        else ""
                    cells.append(f"{float(r['tokens_per_s']):,.0f}{_speed_range(r)} "
                                 f"({float(r['peak_mb']):,.0f} MB{ratio})")
            out.append(f"| {_pow2(n)} | " + " | ".join(cells) + " |")
        if "transformer" in archs:
            out += ["", f"The Transformer++ is slower than Mamba from {_crossover(rows, kind)} "
                        "on (and at every longer length measured)."]
    return "\n".join(out)


def arch_dna_lm() -> str:
    """benchmarks/arch_dna_lm.py: held-out E. coli bits per base per model, mean and the range
    over seeds, beside the best Markov model of the same split."""
    rows = _csv("arch_dna_lm.csv")
    out = ["| model | parameters | training length | seeds | held-out bits/base, mean (range) "
           "| training minutes, mean |", "|---|---|---|---|---|---|"]
    groups: Dict[tuple, List[dict]] = {}
    for r in rows:
        groups.setdefault((int(r["seq_len"]), r["arch"]), []).append(r)
    for (n, arch), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], list(NAMES).index(
            kv[0][1]))):
        bits = [float(r["val_bits_per_base"]) for r in rs]
        out.append(f"| {NAMES[arch]} | {int(rs[0]['params']) / 1e3:.0f}k | {n:,} | "
                   f"{', '.join(r['seed'] for r in rs)} | {_bits_cell(bits)} | "
                   f"{np.mean([float(r['train_seconds']) for r in rs]) / 60:.1f} |")
    markov = rows[0]
    out.append(f"| best Markov (order {markov['best_markov_order']}), same split | - | - | - | "
               f"{float(markov['best_markov_bits_per_base']):.3f} | - |")
    return "\n".join(out)


SSD_KERNELS = {"mamba1": "Mamba-1 C kernel", "mamba2": "Mamba-2 SSD",
               "mamba2_direct": "Mamba-2 SSD, direct form"}


def ssd_speed() -> str:
    """benchmarks/ssd_speed.py: tokens/s of the two scans per state, length and pass, and the
    SSD forward's share of the GEMM roofline."""
    rows = _csv("ssd_speed.csv")
    cols = list(dict.fromkeys((r["kernel"], int(r["state"])) for r in rows))
    by = {(r["kernel"], int(r["state"]), int(r["length"]), r["pass"]): r for r in rows}
    roof = float(rows[0]["gemm_roofline_gflops"])
    out = [f"d_inner 256, batch 1, {rows[0]['threads']} threads; tokens/s (`ssd_speed.csv`). "
           f"The machine's float32 GEMM roofline: {roof:.0f} GFLOP/s; in brackets, the SSD "
           "forward's matmul GFLOP/s as a share of it.", "",
           "| length | pass | " + " | ".join(
               f"{SSD_KERNELS.get(k, k)}, state {s}"
               for k, s in cols) + " |", "|---" * (2 + len(cols)) + "|"]
    for n, pas in dict.fromkeys((int(r["length"]), r["pass"]) for r in rows):
        cells = []
        for k, s in cols:
            r = by.get((k, s, n, pas))
            if r is None:
                cells.append("-")
                continue
            share = f" ({float(r['gflops']) / roof:.0%})" if r.get("gflops") else ""
            cells.append(f"{float(r['tokens_per_s']):,.0f}{share}")
        out.append(f"| {_pow2(n)} | {pas} | " + " | ".join(cells) + " |")

    def ratios(num, den, pas):
        rs = [float(by[num + (n, pas)]["tokens_per_s"]) / float(by[den + (n, pas)]["tokens_per_s"])
              for n in sorted({int(r["length"]) for r in rows})
              if num + (n, pas) in by and den + (n, pas) in by]
        return f"{min(rs):.2f}-{max(rs):.2f}x" if rs else "-"
    if ("mamba2_direct", 64) in cols:
        out += ["", "At state 64 the factored form runs "
                f"{ratios(('mamba2', 64), ('mamba2_direct', 64), 'fwd')} the direct form's "
                f"tokens/s forward and {ratios(('mamba2', 64), ('mamba2_direct', 64), 'fwd+bwd')}"
                " forward + backward. Against the Mamba-1 kernel at its usual state of 16, "
                "forward + backward: Mamba-2 SSD at state 16 "
                f"{ratios(('mamba2', 16), ('mamba1', 16), 'fwd+bwd')}, at state 64 "
                f"{ratios(('mamba2', 64), ('mamba1', 16), 'fwd+bwd')}."]
    return "\n".join(out)


# experiments/audio_fsdd.py's runs that put the models side by side on the four folds: the
# shipped recipe with the CNN trained beside each fold (--train-set baseline=cnn --tag cnn),
# the same recipe with the Transformer++ (--tag transformer), and the recipe's other two seeds
FSDD_ARCH = {"cnn": "audio_fsdd_loso_cnn.csv", "transformer": "audio_fsdd_loso_transformer.csv",
             "mamba_seeds": ["audio_fsdd_loso.csv", "audio_fsdd_loso_band_limit.csv",
                             "audio_fsdd_loso_band_limit_s2.csv"]}


def _fsdd_runs() -> tuple:
    """(the Transformer++'s rows, the CNN run's rows, the three Mamba seeds' rows), each by
    held-out speaker, and the speakers either run scored, in FSDD's order."""
    def rows(name):
        return {r["held_out"]: r for r in _csv(name) if r["held_out"] != "mean"}

    tr, cnn = rows(FSDD_ARCH["transformer"]), rows(FSDD_ARCH["cnn"])
    seeds = [rows(f) for f in FSDD_ARCH["mamba_seeds"]]
    speakers = [s for s in seeds[0] if s in tr or s in cnn]
    return tr, cnn, seeds, speakers


def arch_fsdd() -> str:
    """Each FSDD speaker held out: Mamba, the Transformer++ and the log-mel CNN trained by the
    same recipe (same clips, augmentation, steps and seed), beside the classic baselines; the
    last row averages the speakers, in each column that has them all."""
    tr, cnn, seeds, speakers = _fsdd_runs()
    if not speakers:
        return "No FSDD fold has been scored with the Transformer++ or the CNN yet."

    def get(rows, s, key):
        return [float(rows[s][key])] if s in rows else None
    cols = {"mamba": lambda s: get(seeds[0], s, "model_acc"),
            "seeds": lambda s: [float(x[s]["model_acc"]) for x in seeds]
            if all(s in x for x in seeds) else None,
            "beside": lambda s: get(cnn, s, "model_acc"),
            "transformer": lambda s: get(tr, s, "model_acc"),
            "cnn": lambda s: get(cnn, s, "cnn_acc"),
            "lr": lambda s: get(seeds[0], s, "logmel_lr_acc"),
            "svm": lambda s: get(seeds[0], s, "svm_acc")}
    learnt = ("mamba", "seeds", "beside", "transformer", "cnn")

    def cell(k, v, n):
        if v is None:
            return "-"
        return _acc_cell(v, n) if k in learnt else f"{v[0]:.3f}"

    out = ["| held-out speaker | Mamba, seed 0 | Mamba, 3 seeds: mean (range) | Mamba, the CNN "
           "run's (seed 0 again) | Transformer++ | log-mel CNN (res8-like) | log-mel + LR | "
           "log-mel + MFCC + RBF SVM |", "|---" * 8 + "|"]
    for s in speakers:
        n = int(seeds[0][s]["clips"])
        out.append(f"| {s} ({n} clips) | " + " | ".join(cell(k, f(s), n)
                                                       for k, f in cols.items()) + " |")
    n = sum(int(seeds[0][s]["clips"]) for s in speakers)
    means = {}
    for k, f in cols.items():
        vals = [f(s) for s in speakers]
        # the seeds' cell: the range of the three seeds' means over these speakers
        means[k] = None if any(v is None for v in vals) else \
            [float(np.mean([v[i] for v in vals])) for i in range(len(vals[0]))]
    out.append(f"| **mean of {', '.join(speakers)}** ({n:,} clips) | " + " | ".join(
        cell(k, v, n) for k, v in means.items()) + " |")

    def params(rows, key):
        r = next(iter(rows.values()), None)
        return f"{int(r[key]) / 1e3:.0f}k" if r and r.get(key) else "-"
    out.append(f"| parameters | {params(cnn, 'model_parameters')} | - | "
               f"{params(cnn, 'model_parameters')} | {params(tr, 'model_parameters')} | "
               f"{params(cnn, 'cnn_parameters')} | - | - |")
    return "\n".join(out)


def arch_dna_classify() -> str:
    """benchmarks/arch_dna_classify.py: held-out accuracy per task and model over seeds."""
    rows = _csv("arch_dna_classify.csv")
    out = ["| task | held-out | model | parameters | seeds | accuracy, mean (range or 95% "
           "interval) | MCC, mean | training minutes |", "|---|---|---|---|---|---|---|---|"]
    for task in dict.fromkeys(r["task"] for r in rows):
        rs = [r for r in rows if r["task"] == task]
        n = int(rs[0]["val_examples"])
        models = [(NAMES[a], "model", [r for r in rs if r["arch"] == a])
                  for a in NAMES if any(r["arch"] == a for r in rs)]
        mamba = [r for r in rs if r["arch"] == "mamba"] or rs
        models += [("one-hot CNN, Mamba's batches", "cnn", mamba),
                   ("one-hot + logistic regression", "lr", mamba)]
        for name, key, group in models:
            accs = [float(r[f"{key}_acc"]) for r in group]
            mcc = np.mean([float(r[f"{key}_mcc"]) for r in group])
            p = group[0].get({"model": "params", "cnn": "cnn_params"}.get(key, ""), "")
            secs = [float(r[{"model": "train_seconds", "cnn": "cnn_train_seconds"}[key]])
                    for r in group] if key != "lr" else []
            out.append(f"| {task} | {n} | {name} | {int(p) / 1e3:.0f}k | " if p else
                       f"| {task} | {n} | {name} | - | ")
            out[-1] += (f"{', '.join(r['seed'] for r in group)} | {_acc_cell(accs, n)} | "
                        f"{mcc:.3f} | " + (f"{np.mean(secs) / 60:.1f} |" if secs else "- |"))
    return "\n".join(out)


def _untrained(row: dict) -> str:
    """The label's note for an arch_species.csv length the model was scored at, not trained
    on."""
    return "" if row["trained"] == "True" else ", longer than any trained on"


def arch_species() -> str:
    """benchmarks/arch_species.py: held-out species accuracy per window length and model, with
    its 95% interval over the test windows (or the range over seeds), beside the 3-mer LR."""
    rows = _csv("arch_species.csv")
    names = {"mamba": "Mamba, RC-equivariant", "mamba_norc": "Mamba, not equivariant",
             "transformer": "Transformer++"}
    archs = [a for a in names if any(r["arch"] == a for r in rows)]
    first = {a: next(r for r in rows if r["arch"] == a) for a in archs}
    out = ["| window | " + " | ".join(f"{names[a]} ({int(first[a]['params']) / 1e3:.1f}k)"
                                      for a in archs) + " | 3-mer + LR |",
           "|---" * (2 + len(archs)) + "|"]
    for n in sorted({int(r["length"]) for r in rows}):
        at = [r for r in rows if int(r["length"]) == n]
        k = int(at[0]["n_test"])
        cells = [_acc_cell([float(r["model_acc"]) for r in at if r["arch"] == a], k)
                 if any(r["arch"] == a for r in at) else "-" for a in archs]
        # the 3-mer LR of each of the first model's seeds (a seed draws its own windows)
        lr = np.mean([float(r["kmer3_logreg_acc"]) for r in at if r["arch"] == archs[0]])
        out.append(f"| {_pow2(n)} ({k:,} windows{_untrained(at[0])}) | " + " | ".join(cells) +
                   f" | {lr:.3f} |")
    mins = {a: np.mean([float(r["train_seconds"]) for r in rows if r["arch"] == a]) / 60
            for a in archs}
    out += ["", "Training minutes on one core (shared with another job, so only their order "
            "counts): " + ", ".join(f"{names[a]} {mins[a]:.0f}" for a in archs) + "."]
    return "\n".join(out)


def verdict(m: float, others: list, higher: bool = True, tol: float = 0.0) -> str:
    """Mamba's figure ``m`` against its rivals' (None: not measured): ahead of all by more
    than ``tol``, level with all within it, else behind."""
    rivals = [o for o in others if o is not None]
    gaps = [(m - o) if higher else (o - m) for o in rivals]
    if all(g > tol for g in gaps):
        return "ahead"
    if all(g >= -tol for g in gaps):
        return "level"
    return "behind"


def half_interval(acc: float, n: int) -> float:
    """Half the width of the 95% interval of accuracy ``acc`` over ``n`` examples: a gap to
    Mamba inside it is level."""
    lo, hi = wilson_interval(round(acc * n), n)
    return (hi - lo) / 2


def lm_verdict(mamba: list, rival: list) -> str:
    """Held-out bits per base over seeds, lower is better: with two seeds or more each, level
    only where the seeds' ranges overlap; with fewer, level within 0.01 bits."""
    if min(len(mamba), len(rival)) < 2:
        return verdict(np.mean(mamba), [np.mean(rival)], higher=False, tol=0.01)
    return "ahead" if max(mamba) < min(rival) else "behind" if min(mamba) > max(rival) else \
        "level"


def arch_verdict() -> str:
    """One row per comparison: Mamba's figure beside the Transformer++'s and the CNN's, and
    which is ahead (level: the gap is inside the seeds' range or the 95% interval)."""
    from tables_equal_time import equal_time_verdicts

    out = ["| measurement | Mamba | Transformer++ | CNN | Mamba is | Mamba is, at equal time |",
           "|---|---|---|---|---|---|"]
    at_time = equal_time_verdicts()

    def then(key) -> str:  # the row's verdict at equal training time, where it was measured
        return f" {at_time.get(key, '-')} |"

    lm = _csv("arch_dna_lm.csv")
    for n in sorted({int(r["seq_len"]) for r in lm}):
        bits = {a: [float(r["val_bits_per_base"]) for r in lm
                    if r["arch"] == a and int(r["seq_len"]) == n] for a in NAMES}
        bm, bt = bits["mamba"], bits["transformer"]
        if bm and bt:
            m, t = np.mean(bm), np.mean(bt)
            v = lm_verdict(bm, bt)
            out.append(f"| E. coli LM, held-out bits/base at {n:,} (lower is better; seeds "
                       f"{len(bm)}/{len(bt)}) | {m:.3f} | {t:.3f} | - | {v} |"
                       + then((f"lm{n}", None)))
    cls = _csv("arch_dna_classify.csv")
    for task in dict.fromkeys(r["task"] for r in cls):
        rs = {a: [r for r in cls if r["task"] == task and r["arch"] == a] for a in NAMES}
        if not (rs["mamba"] and rs["transformer"]):
            continue
        m = np.mean([float(r["model_acc"]) for r in rs["mamba"]])
        t = np.mean([float(r["model_acc"]) for r in rs["transformer"]])
        c = np.mean([float(r["cnn_acc"]) for r in rs["mamba"]])
        n = int(rs["mamba"][0]["val_examples"])
        out.append(f"| {task}, held-out accuracy ({n} examples; seeds "
                   f"{len(rs['mamba'])}/{len(rs['transformer'])}) | {m:.3f} | {t:.3f} | {c:.3f} | "
                   f"{verdict(m, [t, c], tol=half_interval(m, n))} |" + then((task, None)))
    sp = _csv("arch_species.csv")
    for n in (2 ** 10, 2 ** 12, 2 ** 14):
        at = [r for r in sp if int(r["length"]) == n]
        accs = {a: [float(r["model_acc"]) for r in at if r["arch"] == a]
                for a in ("mamba", "transformer")}
        if accs["mamba"] and accs["transformer"]:
            m, t = np.mean(accs["mamba"]), np.mean(accs["transformer"])
            k = int(at[0]["n_test"])
            seeds_n = f"{len(accs['mamba'])}/{len(accs['transformer'])}"
            out.append(f"| species of origin, {_pow2(n)} bases{_untrained(at[0])}, held-out "
                       f"accuracy ({k:,} windows; seeds {seeds_n}) | {m:.3f} | {t:.3f} | - | "
                       f"{verdict(m, [t], tol=half_interval(m, k))} |" + then(("species", n)))
    tr, cnn, seeds, _ = _fsdd_runs()
    for rival, key, col in ((tr, "model_acc", "transformer"), (cnn, "cnn_acc", "cnn")):
        # Mamba: the recipe's three seeds beside the Transformer++, the seed-0 model trained
        # in the same run beside the CNN
        folds = [s for s in rival if all(s in x for x in seeds)]
        if not folds:
            continue
        n = sum(int(rival[s]["clips"]) for s in folds)
        m = np.mean([np.mean([float(x[s]["model_acc"]) for x in seeds]) for s in folds]) \
            if col == "transformer" else np.mean([float(cnn[s]["model_acc"]) for s in folds])
        r = np.mean([float(rival[s][key]) for s in folds])
        who = "Mamba: 3 seeds" if col == "transformer" else "one seed, same run"
        cells = f"{r:.3f} | - |" if col == "transformer" else f"- | {r:.3f} |"
        out.append(f"| spoken digits, unheard FSDD speakers ({', '.join(folds)}; {n:,} clips; "
                   f"{who}) | {m:.3f} | {cells} {verdict(m, [r], tol=half_interval(m, n))} |"
                   + (then(("fsdd", None)) if col == "transformer" else " - |"))
    syn = [r for r in _csv("synthetic.csv") if r["task"] == "induction_heads"
           and r["train_steps"] == "1500" and not r.get("training")]
    ind = {(r["model"], int(r["eval_len"])): float(r["accuracy"]) for r in syn}
    for n in (256, 2048):
        m, t = ind.get(("mamba (S6)", n)), ind.get(("transformer++ (RoPE)", n))
        if m is not None and t is not None:
            out.append(f"| induction heads trained at 256, accuracy at {n:,} | {m:.3f} | "
                       f"{t:.3f} | - | {verdict(m, [t], tol=0.02)} | - |")
    copy = {r["model"]: float(r["accuracy"]) for r in _csv("synthetic.csv")
            if r["task"] == "selective_copying" and r["train_len"] == "128"}
    if "transformer++ (RoPE)" in copy:
        m, t = copy["mamba (S6)"], copy["transformer++ (RoPE)"]
        out.append(f"| selective copying, length 128, 4 tokens | {m:.3f} | {t:.3f} | - | "
                   f"{verdict(m, [t], tol=0.02)} | - |")
    speed = {(r["arch"], r["kind"], int(r["length"])): r for r in _csv("arch_speed.csv")}
    for kind, n, what in (("train", 2 ** 14, "training step"), ("generate", 2 ** 16,
                                                                 "generation after a context")):
        m, t = speed.get(("mamba", kind, n)), speed.get(("transformer", kind, n))
        if m and t and t["status"] == "ok":
            mt, tt = float(m["tokens_per_s"]), float(t["tokens_per_s"])
            out.append(f"| {what} of {_pow2(n)} tokens, tokens/s on 2 cores | {mt:,.0f} | "
                       f"{tt:,.0f} | - | {'ahead' if mt > tt else 'behind'} "
                       f"({mt / tt:.1f}x) | - |")
    return "\n".join(out)
