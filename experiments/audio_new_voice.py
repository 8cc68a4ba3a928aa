"""The path for a new voice, leaving one FSDD speaker out: what plain prediction, balanced
prediction and adaptation give on the held-out voice, and how often the new-voice check of
``seqmamba audio predict`` fires.

    python experiments/audio_new_voice.py --adapt   # adapt each fold first (audio adapt)
    python experiments/audio_new_voice.py           # score and calibrate runs/fsdd_loso's folds

The three workflows of the path for a new voice, each fold's held-out speaker predicted as
``audio predict`` predicts him (one folder of his 500 recordings): plain (``audio predict``),
balanced over his clips (``audio predict --balance --balance-by folder``: FSDD speakers say each
digit 50 times), and adapted (``seqmamba audio adapt --model FOLD his_recordings --out
ADAPTED``, then plain prediction with the adapted model: 500 steps from the fold on its
recipe's clips plus his recordings labelled by the fold itself, balanced; his labels are used
only to score).  ``--adapt`` runs that command for every fold whose adapted run is missing,
into ``WORKDIR_newvoice_adapt/SPEAKER`` (a stopped one resumes).  Writes
``experiments/results/audio_new_voice{_TAG}.csv`` (workflow, held-out speaker, accuracy; the
adapted rows also how many of his recordings the fold kept as pseudo-labels and the share of
those labelled right; rows ``mean`` and ``worst``).

The check.  Each fold is a run of ``experiments/audio_fsdd.py``: the shipped recipe trained on
three FSDD speakers and the bundled synthetic voices.  Its model predicts, as ``audio predict`` does
(``AudioPredictor``), every bundled FSDD clip (500 per speaker) and the 200 espeak-ng clips of
``data/audio/spoken_digits_espeak`` (the eight espeak-ng accents the recipe's synthetic set
trains on, drawn with another seed: clips of trained voices that were never trained on).

The reference.  In the product the check compares a batch with the mean top probability on
the run's own held-out clips (``voice_check.reference``); for the shipped recipe those are a
stratified tenth of its training voices' clips.  A fold holds out a whole speaker instead, so
it has no unseen clips of its training voices to measure that on.  This script uses the mean
top probability on the three training speakers' FSDD clips, which the fold trained on: an
optimistic reference (a model is surer of clips it trained on), so the rate at which the check
fires on the held-out voice here is an upper bound for the product, where the reference is
lower.  The rate on training voices is measured two ways: batches of the training speakers'
own clips (like for like with the reference, both trained on) and batches of the unseen
espeak-ng clips of trained accents (a reference they did not make).

Batches: ``--draws`` random batches of each size from one voice's clips (the held-out
speaker, each training speaker, the espeak-ng clips); a batch as large as the pool is drawn
once.  For each (fold, batch kind, size): the mean top probability, the shortfall below the
reference, accuracy, the distance of the predicted classes' shares from the training prior
(uniform here), and the share of batches on which the check fires (``fire_rate``: the
product's rule, ``voice_check.fires``), and on which each signal alone fires at a few
thresholds (``fire_rate_shortfall_T``: the mean top probability T below the reference;
``fire_rate_classes_A``: the class counts' chi-square p-value below A).  Rows with fold
``all`` average the folds.  The product's thresholds are chosen from these rates: the lowest
shortfall and the largest p-value at which batches of training voices fire on at most 1% of
draws at every size.

Writes ``experiments/results/audio_new_voice_check{_TAG}.csv``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipelines.audio import pseudo_labels, voice_check  # noqa: E402
from pipelines.balance import balance  # noqa: E402
from pipelines.cli import main as seqmamba  # noqa: E402
from pipelines.audio.datasets import bundled_set, read_clips  # noqa: E402
from pipelines.audio.predictor import AudioPredictor, classified  # noqa: E402
from seqmamba.atomic import write_csv_atomic  # noqa: E402

SPEAKERS = ("george", "jackson", "lucas", "nicolas")
# the thresholds the CSV also reports each signal's rate at, alone: the confidence shortfall,
# and the chi-square p-value of the predicted class counts
SHORTFALLS = (0.03, 0.05, 0.075, 0.1)
ALPHAS = (1e-2, 1e-3, 1e-4)


def fold_probs(run: Path, clips) -> tuple:
    """(class probabilities (clips, classes), the model's labels) of ``clips`` by the fold's
    model, predicted as ``audio predict`` predicts files."""
    predictor = AudioPredictor(run, "cpu", chunk_seconds=10.0)
    failed = []
    got = {str(p): prob for p, _, prob in classified(predictor, [Path(c.path) for c in clips],
                                                     None, 64, lambda p, m: failed.append(m))}
    if failed:
        raise SystemExit(f"{run}: {failed[0]}")
    return torch.stack([got[str(Path(c.path))] for c in clips]), predictor.labels


def batch_rows(probs, truth, pools: dict, reference: float, sizes, draws: int,
               rng: np.random.Generator) -> list:
    """One row per (batch kind, size): the batches' figures averaged over the draws (and over
    the voices of a kind), and the share of batches on which the check fires."""
    k = probs.shape[1]
    prior = {str(i): 1.0 / k for i in range(k)}
    ref = {"mean_top_probability": reference, "prior": prior}
    labels = [str(i) for i in range(k)]
    rows = []
    for kind, voices in pools.items():
        for n in sizes:
            stats = []
            for idx in voices:
                if n > len(idx):
                    continue
                for _ in range(1 if n == len(idx) else draws):
                    pick = idx if n == len(idx) else rng.choice(idx, n, replace=False)
                    s = voice_check.batch_signals(probs[pick], ref, labels)
                    s["accuracy"] = float((probs[pick].argmax(-1) == truth[pick]).float().mean())
                    stats.append(s)
            if not stats:
                continue
            row = {"batch": kind, "clips": n, "batches": len(stats), "reference": reference}
            for key in ("mean_top_probability", "shortfall", "accuracy", "prior_distance"):
                row[key] = float(np.mean([s[key] for s in stats]))
            row["fire_rate"] = float(np.mean([voice_check.fires(s) for s in stats]))
            for t in SHORTFALLS:
                row[f"fire_rate_shortfall_{t:g}"] = float(np.mean(
                    [voice_check.fires(s, shortfall=t, alpha=None) for s in stats]))
            for t in ALPHAS:
                row[f"fire_rate_classes_{t:g}"] = float(np.mean(
                    [voice_check.fires(s, shortfall=None, alpha=t) for s in stats]))
            rows.append(row)
    return rows


def chosen_thresholds(rows: list, most: float = 0.01) -> tuple:
    """(the lowest shortfall of SHORTFALLS, the largest p-value of ALPHAS) at which the
    training voices' batches (fold ``all`` rows) fire on at most ``most`` of draws at every
    size: the rule the product's thresholds follow (None where no value qualifies)."""
    trained = [r for r in rows if r["fold"] == "all" and not r["batch"].startswith("held-out")]
    ok = lambda key: all(r[key] <= most for r in trained)  # noqa: E731
    shortfall = next((t for t in SHORTFALLS if ok(f"fire_rate_shortfall_{t:g}")), None)
    alpha = next((t for t in ALPHAS if ok(f"fire_rate_classes_{t:g}")), None)
    return shortfall, alpha


def recordings(speaker: str) -> str:
    """The speaker's bundled FSDD recordings as plain audio files (a glob pattern)."""
    return str(Path(bundled_set("fsdd")["manifest"]).parent / "recordings" / f"*_{speaker}_*.wav")


def adapt_fold(run: Path, adapted: Path, speaker: str) -> None:
    """``seqmamba audio adapt`` of the fold to its held-out speaker's recordings, unless done;
    a stopped one resumes."""
    if (adapted / "report.json").is_file():
        return
    argv = ["audio", "adapt", "--model", str(run), recordings(speaker), "--out", str(adapted),
            "--no-progress"] + (["--resume"] if (adapted / "checkpoints" / "last.ckpt").is_file()
                                else [])
    print(f"== seqmamba {' '.join(argv)}", flush=True)
    if seqmamba(argv) != 0:
        raise SystemExit(f"{adapted}: seqmamba audio adapt failed")


def pseudo_quality(adapted: Path, clips) -> dict:
    """How many recordings the adaptation kept (pseudo_kept) and the share labelled right."""
    truth = {str(Path(c.path)): c.label for c in clips}
    kept = [r for r in pseudo_labels.read_labels(adapted / pseudo_labels.TABLE) if r["kept"]]
    right = sum(truth[str(Path(r["file"]))] == r["label"] for r in kept)
    return {"pseudo_kept": len(kept), "pseudo_acc": round(right / max(1, len(kept)), 4)}


def workflow_rows(speaker: str, probs, truth, held, adapted: Path, clips) -> list:
    """The three workflows' accuracy on the held-out speaker's clips (indices ``held``)."""
    p, y = probs[held], truth[held]
    rows = [{"workflow": "predict", "held_out": speaker,
             "accuracy": float((p.argmax(-1) == y).float().mean())},
            {"workflow": "predict --balance --balance-by folder", "held_out": speaker,
             "accuracy": float((balance(p).argmax(-1) == y).float().mean())}]
    if (adapted / "report.json").is_file():
        mine = [clips[i] for i in held]
        q, _ = fold_probs(adapted, mine)
        rows.append({"workflow": "adapt, then predict", "held_out": speaker,
                     "accuracy": float((q.argmax(-1) == y).float().mean()),
                     **pseudo_quality(adapted, mine)})
    for r in rows:
        r["clips"] = len(held)
    return rows


def summary_rows(rows: list, speakers) -> list:
    """Each workflow's mean and worst over the speakers (only for a workflow scored on all)."""
    out = []
    for w in dict.fromkeys(r["workflow"] for r in rows):
        sel = [r for r in rows if r["workflow"] == w]
        if len(sel) != len(speakers):
            continue
        worst = min(sel, key=lambda r: r["accuracy"])
        mean = {"workflow": w, "held_out": "mean", "clips": sum(r["clips"] for r in sel)}
        for k in sel[0]:
            if k not in mean and k != "held_out":
                mean[k] = float(np.mean([r[k] for r in sel]))
        out += [mean, {"workflow": w, "held_out": f"worst ({worst['held_out']})",
                       "clips": worst["clips"], "accuracy": worst["accuracy"]}]
    return out


def rounded(rows: list) -> list:
    return [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", type=Path, default=ROOT / "runs" / "fsdd_loso")
    p.add_argument("--speakers", nargs="+", default=None,
                   help="the folds to use (default: every fold of WORKDIR that is trained)")
    p.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200, 500])
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--tag", default="")
    p.add_argument("--adapt", action="store_true",
                   help="first adapt each fold to its held-out speaker (seqmamba audio adapt)")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.speakers is None:
        a.speakers = [s for s in SPEAKERS if (a.workdir / s / "final" / "config.json").is_file()]
        if not a.speakers:
            raise SystemExit(f"{a.workdir}: no trained fold (experiments/audio_fsdd.py)")
        print(f"folds: {', '.join(a.speakers)}", flush=True)
    fsdd = read_clips(bundled_set("fsdd")["manifest"])
    espeak = read_clips(bundled_set("spoken_digits_espeak")["manifest"])
    clips = fsdd + espeak
    adapted_dir = a.workdir.with_name(a.workdir.name + "_newvoice_adapt")
    rows, workflows = [], []
    for speaker in a.speakers:
        run = a.workdir / speaker
        if not (run / "final" / "config.json").is_file():  # exported when training ends
            raise SystemExit(f"{run}: no trained fold (train it with experiments/audio_fsdd.py)")
        if a.adapt:
            adapt_fold(run, adapted_dir / speaker, speaker)
        probs, labels = fold_probs(run, clips)
        truth = torch.tensor([labels.index(c.label) for c in clips])
        by = {s: np.array([i for i, c in enumerate(fsdd) if c.group == s]) for s in SPEAKERS}
        trained = [by[s] for s in SPEAKERS if s != speaker]
        reference = float(probs[np.concatenate(trained)].max(-1).values.mean())
        pools = {"held-out voice": [by[speaker]], "training voices (trained on)": trained,
                 "trained accents, unseen clips": [np.arange(len(fsdd), len(clips))]}
        workflows += workflow_rows(speaker, probs, truth, by[speaker], adapted_dir / speaker,
                                   clips)
        rng = np.random.default_rng(0)
        for r in batch_rows(probs, truth, pools, reference, a.sizes, a.draws, rng):
            rows.append({"fold": speaker, **r})
        print(f"{speaker}: reference {reference:.4f}; held-out voice mean top probability "
              f"{float(probs[by[speaker]].max(-1).values.mean()):.4f}", flush=True)
    for kind in dict.fromkeys(r["batch"] for r in rows):
        for n in a.sizes:
            sel = [r for r in rows if r["batch"] == kind and r["clips"] == n]
            if len(sel) == len(a.speakers):
                rows.append({"fold": "all", "batch": kind, "clips": n,
                             "batches": sum(r["batches"] for r in sel),
                             **{k: float(np.mean([r[k] for r in sel])) for k in sel[0]
                                if k not in ("fold", "batch", "clips", "batches")}})
    suffix = f"_{a.tag}" if a.tag else ""
    out = HERE / "results" / f"audio_new_voice_check{suffix}.csv"
    write_csv_atomic(rounded(rows), out)
    workflows += summary_rows(workflows, a.speakers)
    fields = ["workflow", "held_out", "clips", "accuracy", "pseudo_kept", "pseudo_acc"]
    write_csv_atomic(rounded(workflows), HERE / "results" / f"audio_new_voice{suffix}.csv",
                     fields=fields)
    for r in workflows:
        print(f"{r['workflow']}: {r['held_out']} {r['accuracy']:.4f}")
    for r in rows:
        if r["fold"] == "all":
            print(f"{r['batch']}, {r['clips']} clips: fires {100 * r['fire_rate']:.1f}% "
                  f"(shortfall {r['shortfall']:+.3f}, accuracy {r['accuracy']:.3f})")
    shortfall, alpha = chosen_thresholds(rows)
    print(f"thresholds the training voices fire at on at most 1% of batches: shortfall "
          f"{shortfall}, p-value {alpha} (the product's: {voice_check.SHORTFALL}, "
          f"{voice_check.ALPHA})")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
