"""Spoken digits from real people, leaving one speaker out at a time (FSDD, 4 speakers).

    python experiments/audio_fsdd.py                          # train the 4 folds, then evaluate
    python experiments/audio_fsdd.py --recipe audio_fsdd --set max_steps=1500 --tag short
    python experiments/audio_fsdd.py --evaluate-only          # re-score trained folds
    python experiments/audio_fsdd.py --speakers george --set d_model=128 \
        --tag d128                                           # an ablation on one fold
    python experiments/audio_fsdd.py --mix runs/synth_digits/manifest.csv --tag synth
                                          # train on extra voices too (never scored on them)
    python experiments/audio_fsdd.py --set seed=1 --tag seed1   # the recipe with another seed
    python experiments/audio_fsdd.py --evaluate-only --ensemble '' seed1 --tag ensemble2
                                          # both seeds' probabilities averaged, fold by fold
    python experiments/audio_fsdd.py --recipe experiments/recipes/audio_fsdd_fsdd_only.yaml \
        --tag fsdd_only                   # the earlier recipe: the 4 real speakers alone
    python experiments/audio_fsdd.py --adapt '' band_limit band_limit_s2 --tag adapt \
        --set max_steps=500 lr=0.001 warmup_steps=50
                  # adapt to the held-out voice from his unlabelled clips: the first run's
                  # fold fine-tuned further on the clips the three runs label confidently
    python experiments/audio_fsdd.py --evaluate-only --ensemble '' band_limit band_limit_s2 \
        --balance 1 --tag ens3_balance   # each speaker's probabilities balanced over his clips
    python experiments/audio_fsdd.py --train-set baseline=cnn
                  # the recipe, with the log-mel CNN baseline trained beside each fold's model
                  # (same batches, steps, seed and parameter count: the cnn_acc column)
    python experiments/audio_fsdd.py --set arch=transformer n_layer=3 n_head=4 \
        --tag transformer     # the Transformer++ on the same frames (parameters within 10%)
    python experiments/audio_fsdd.py --drop-speakers 1 --tag drop1
                  # two real voices trained on instead of three (the baselines too)

For each speaker, ``seqmamba audio finetune`` trains the recipe on the other three and is
scored on all 500 clips of the held-out one (a voice it never heard), beside two classic
baselines fitted on the same split: log-mel statistics + logistic regression (what the
fine-tuning report carries) and log-mel + MFCC statistics + an RBF support-vector machine.
Every model and baseline is also scored on the held-out clips with noise added at SNR 20, 10
and 5 dB: white noise, and babble made of three clips of the training speakers.  Folds whose
run already finished are not retrained.

Writes ``experiments/results/audio_fsdd_loso{_TAG}.csv`` (one row per speaker, and the mean;
the ``settings`` column holds the recipe overrides and the mixed-in manifest) and
``audio_fsdd_noise{_TAG}.csv`` (speaker, noise, SNR, model and baselines) and
``audio_fsdd_confusion{_TAG}.csv`` (speaker, digit, what the model heard, clips); the ``recipe``
column names the recipe the overrides apply to.  With ``--adapt`` each fold is the first tagged
run's model trained further on the recipe's clips plus the held-out speaker's recordings, read
as unlabelled audio files and labelled by the tagged runs (``finetune --unlabelled``; his
labelled clips are only scored), and the loso file adds how many of his clips were kept
(``pseudo_kept``) and the share of those labelled right (``pseudo_acc``).  Every fold trains
on the recipe's own training sets (its ``train`` list: FSDD and, for ``audio_fsdd``, the
bundled synthetic voices) with the held-out speaker's clips left out; ``--mix`` clips (e.g.
the synthetic voices of ``data/audio/make_digits.py``) are added on top.  The baselines are fitted on the FSDD
speakers alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipelines.audio.baselines import fit_baseline  # noqa: E402
from pipelines.audio.crop import center_crop  # noqa: E402
from pipelines.audio.augment import (babble, change_speed, mix_at_snr,  # noqa: E402
                                     shift_formants)
from pipelines.audio.datasets import bundled_set, read_clips  # noqa: E402
from pipelines.audio.io import read_audio  # noqa: E402
from pipelines.audio import pseudo_labels  # noqa: E402
from pipelines.audio.models import encode_input  # noqa: E402
from pipelines.audio.predictor import AudioPredictor  # noqa: E402
from pipelines.balance import balance as rebalance  # noqa: E402
from pipelines.errors import InputError  # noqa: E402
from pipelines.bundled import shipped_recipe, shipped_recipe_names  # noqa: E402
from seqmamba.atomic import write_csv_atomic  # noqa: E402

SNRS = (20, 10, 5)
SPEAKERS = ("george", "jackson", "lucas", "nicolas")


def recipe_path(recipe: str) -> Path:
    """A shipped recipe's name or a recipe file -> its path (an unknown one is an error)."""
    path = Path(recipe) if Path(recipe).is_file() else shipped_recipe(recipe)
    if path is None:
        raise SystemExit(f"--recipe {recipe}: no such recipe file or shipped recipe "
                         f"({', '.join(shipped_recipe_names())})")
    return path


def training_sets(recipe: Path, mix) -> list:
    """The manifests every fold trains on: the recipe's ``train`` list, read as ``audio
    finetune`` reads it (FSDD must be one of them, as the folds split its speakers), plus
    ``mix``."""
    from pipelines.audio.args import train_sources
    from pipelines.audio.finetune import build_parser
    from pipelines.runs import parse_with_recipe

    a = parse_with_recipe(build_parser(), ["--config", str(recipe), "--out", "-"])
    train_sources(a)
    sets = [Path(t).resolve() for t in a.train or []]
    fsdd = Path(bundled_set("fsdd")["manifest"]).resolve()
    if fsdd not in sets:
        raise SystemExit(f"{recipe}: its train list has no {fsdd}, whose speakers the folds "
                         f"hold out")
    return [fsdd] + [s for s in sets if s != fsdd] + ([Path(mix).resolve()] if mix else [])


def override_args(settings) -> list:
    """``--set`` overrides (key=value, recipe spelling) -> finetune's flags: ["--key", "value"]."""
    out = []
    for kv in settings:
        k, v = kv.split("=", 1)
        out += [f"--{k.replace('_', '-')}", v]
    return out


def dropped_speakers(speaker: str, k: int) -> list:
    """The ``k`` real speakers a fold also leaves out of training (``--drop-speakers``): those
    after ``speaker`` in SPEAKERS, wrapping round, so each speaker is dropped by ``k`` folds."""
    i = SPEAKERS.index(speaker)
    return [SPEAKERS[(i + j) % len(SPEAKERS)] for j in range(1, k + 1)]


def train_fold(speaker: str, a) -> Path:
    """Train the fold (``finetune`` with ``speaker`` held out) unless it has finished; a fold
    that stopped part way (killed, or cut off on a lent GPU) continues from its last
    checkpoint."""
    run = a.workdir / speaker
    if (run / "report.json").is_file():
        return run
    sets = training_sets(a.recipe_file, a.mix)
    if a.drop_speakers:  # a manifest of its own for each fold, less the speakers it drops
        manifest = mixed_manifest(sets, a.workdir / f"{speaker}_train_manifest.csv",
                                  drop=set(dropped_speakers(speaker, a.drop_speakers)))
    else:
        manifest = sets[0] if len(sets) == 1 else \
            mixed_manifest(sets, a.workdir / "train_manifest.csv")
    cmd = [sys.executable, "-m", "pipelines.cli", "audio", "finetune", "--config", a.recipe,
           "--train", str(manifest), "--split", "group", "--val-groups", speaker,
           "--out", str(run), "--no-progress", "--baseline", "none"]
    if a.adapt:
        # the held-out speaker's recordings as plain audio files: no label goes in
        teachers = [str(t / speaker) for t in a.adapt]
        fsdd = Path(bundled_set("fsdd")["manifest"]).parent / "recordings"
        cmd += ["--init", teachers[0], "--teacher", *teachers,
                "--unlabelled", str(fsdd / f"*_{speaker}_*.wav")]
    cmd += override_args(a.set) + override_args(a.train_set)
    if (run / "checkpoints" / "last.ckpt").is_file():
        cmd.append("--resume")
    print(f"== fold {speaker}: {' '.join(cmd[3:])}", flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    return run


def mixed_manifest(sources, out: Path, drop=()) -> Path:
    """The clips of the ``sources`` manifests (absolute paths, their own groups) as one CSV,
    less those of the groups in ``drop``."""
    import csv

    rows = []
    for src in map(Path, sources):
        with open(src, newline="") as f:
            for r in csv.DictReader(f):
                if r.get("group", "") in drop:
                    continue
                path = Path(r["path"])
                path = path if path.is_absolute() else (src.parent / path).resolve()
                rows.append({"path": str(path), "label": r["label"], "group": r.get("group", "")})
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(rows, out)
    return out


def add_noise(w: torch.Tensor, kind: str, snr_db: float, rng: np.random.Generator,
              babble_pool) -> torch.Tensor:
    """w (samples,) plus white noise or babble (three pool clips summed) at ``snr_db`` over
    the clip's power (mixed as the training-time babble augmentation mixes)."""
    if kind == "white":
        n = torch.from_numpy(rng.standard_normal(w.shape[-1]).astype(np.float32))
    else:
        picks = rng.choice(len(babble_pool), 3, replace=False)
        n = babble([babble_pool[int(j)] for j in picks], w.shape[-1], rng)
    return mix_at_snr(w, n, snr_db)


@torch.no_grad()
def model_probs(models, extra, waves, batch=64, speeds=(1.0,), formants=(1.0,)) -> torch.Tensor:
    """Class probabilities (clips, classes) of ``waves``; with several ``models`` (an ensemble
    of runs of one recipe) or several ``speeds`` or ``formants`` (test-time augmentation), the
    mean of every model's for the clip played at each speed, with its formants moved by each
    factor."""
    seconds_n = int(round(extra["seconds"] * extra["sample_rate"]))
    sr = int(extra["sample_rate"])
    out = []
    for s in range(0, len(waves), batch):
        probs, n = 0, 0
        for f, g in [(f, g) for f in speeds for g in formants]:
            x = torch.stack([center_crop(shift_formants(change_speed(w, f), sr, g), seconds_n)
                             for w in waves[s:s + batch]])
            x = encode_input(x, extra.get("encoding", "waveform"))
            for model in models:
                probs, n = probs + model(x).logits.float().softmax(-1), n + 1
        out.append(probs / n)
    return torch.cat(out)


def model_predict(models, extra, waves, balance=None, **kw) -> np.ndarray:
    """Predicted class per clip (``model_probs``' top class); with ``balance`` (a strength),
    after re-weighting the probabilities over all ``waves`` towards equally frequent classes
    (``pipelines.balance``: ``audio predict --balance``)."""
    probs = model_probs(models, extra, waves, **kw)
    if balance:
        probs = rebalance(probs, balance)
    return probs.argmax(-1).numpy()


def train_seconds(run: Path) -> float:
    """The fold's training time: fine-tuning, plus the masked-frame pretraining it started
    from (RUN_pretrain) when it had one (the pretraining left the product; its runs remain)."""
    seconds = json.loads((run / "report.json").read_text())["train_seconds"]
    pre = run.with_name(run.name + "_pretrain") / "report.json"
    return seconds + (json.loads(pre.read_text())["train_seconds"] if pre.is_file() else 0.0)


def load_fold_models(runs: list) -> tuple:
    """(models in eval mode, their shared metadata: labels, sample rate, ...) of one fold's
    runs, loaded as ``seqmamba audio predict`` loads them; several runs are an ensemble, whose
    models must read the same clips (``AudioPredictor``'s check)."""
    try:
        predictor = AudioPredictor(runs, "cpu", chunk_seconds=10.0)
    except InputError as e:
        raise SystemExit(str(e)) from None
    if predictor.task != "audio-classify":
        raise SystemExit(f"{predictor.model_dir}: not a classifier (a run of audio finetune)")
    return predictor.models, predictor.extra


def clip_arrays(clips, names, sr: int) -> tuple:
    """([waveform (samples,) at ``sr``], label indices into ``names`` (n,)) of ``clips``."""
    index = {n: i for i, n in enumerate(names)}
    return ([read_audio(c.path, sr)[0][0] for c in clips],
            np.array([index[c.label] for c in clips]))


def pseudo_label_quality(runs: list, clips, speaker: str) -> dict:
    """For a fold adapted with --adapt: how many of the held-out speaker's clips its teachers
    labelled confidently enough to train on (``pseudo_kept``) and the share of those whose
    label is right (``pseudo_acc``), from the run's RUN/pseudo_labels.csv; {} otherwise."""
    table = runs[0] / pseudo_labels.TABLE
    if len(runs) != 1 or not table.is_file():
        return {}
    truth = {os.path.normpath(c.path): c.label for c in clips if c.group == speaker}
    kept = [r for r in pseudo_labels.read_labels(table) if r["kept"]]
    right = sum(truth[os.path.normpath(r["file"])] == r["label"] for r in kept)
    return {"pseudo_kept": len(kept), "pseudo_acc": round(right / max(1, len(kept)), 4)}


def evaluate_fold(speaker: str, runs: list, clips, a) -> tuple:
    """Score the fold's model (the mean of ``runs``' class probabilities when there are
    several: an ensemble) and the baselines on the held-out speaker, clean and with noise."""
    models, extra = load_fold_models(runs)
    sr, names = int(extra["sample_rate"]), extra["labels"]
    # the baselines train on the same real speakers as the model
    unheard = {speaker, *dropped_speakers(speaker, a.drop_speakers)}
    tr_w, tr_y = clip_arrays([c for c in clips if c.group not in unheard], names, sr)
    va_w, va_y = clip_arrays([c for c in clips if c.group == speaker], names, sr)
    baselines = {k: fit_baseline(k, tr_w, tr_y, sr, seed=0) for k in ("logmel_lr", "svm")}
    t0 = time.perf_counter()
    clean = model_predict(models, extra, va_w, a.balance, speeds=a.tta, formants=a.tta_formant)
    clips_per_s = len(va_w) / (time.perf_counter() - t0)
    row = {"held_out": speaker, "clips": len(va_w),
           "model_acc": float((clean == va_y).mean()),
           **{f"{k}_acc": float((b.predict(va_w) == va_y).mean()) for k, b in baselines.items()},
           "train_seconds": sum(train_seconds(r) for r in runs),
           "predict_clips_per_s": round(clips_per_s, 1)}
    row.update(pseudo_label_quality(runs, clips, speaker))
    row.update(report_fields(runs[0]))
    confusion = confusion_rows(speaker, names, va_y, clean)
    noisy_rows = []
    rng = np.random.default_rng(0)
    for kind in ("white", "babble"):
        for snr in SNRS:
            noisy = [add_noise(w, kind, snr, rng, tr_w) for w in va_w]
            noisy_rows.append({"held_out": speaker, "noise": kind, "snr_db": snr,
                               "model_acc": float((model_predict(models, extra, noisy, a.balance,
                                                                 speeds=a.tta,
                                                                 formants=a.tta_formant)
                                                   == va_y).mean()),
                               **{f"{k}_acc": float((b.predict(noisy) == va_y).mean())
                                  for k, b in baselines.items()}})
    return row, noisy_rows, confusion


def report_fields(run: Path) -> dict:
    """From the fold's report: the model's parameters, and the log-mel CNN baseline the fold
    trained beside its model (``--train-set baseline=cnn``: finetune's ``--baseline cnn``, same
    batches, steps and seed) as scored on the held-out speaker, when it trained one."""
    rep = json.loads((run / "report.json").read_text())
    out = {"model_parameters": rep.get("architecture", {}).get("parameters", "")}
    b = rep.get("baseline", {})
    if str(b.get("name", "")).startswith("log-mel res8"):
        out.update(cnn_acc=b["acc"], cnn_parameters=b["parameters"],
                   cnn_train_seconds=b["train_seconds"])
    return out


def confusion_rows(speaker: str, names, truth: np.ndarray, pred: np.ndarray) -> list:
    """The held-out clips' confusion matrix as rows (held_out, label, predicted, clips), one
    per (label, predicted) pair that occurs: what each digit of the unheard voice is heard as."""
    from sklearn.metrics import confusion_matrix

    cm = confusion_matrix(truth, pred, labels=list(range(len(names))))
    return [{"held_out": speaker, "label": names[i], "predicted": names[j], "clips": int(cm[i, j])}
            for i in range(len(names)) for j in range(len(names)) if cm[i, j]]


def settings_label(a) -> str:
    """What the run changed against its recipe, for the ``settings`` column ("recipe": nothing)."""
    def factors(xs):
        return "/".join(f"{x:g}" for x in xs)

    parts = list(a.set)
    if a.tta != [1.0]:
        parts.append(f"tta={factors(a.tta)}")
    if a.tta_formant != [1.0]:
        parts.append(f"tta_formant={factors(a.tta_formant)}")
    if a.balance:
        parts.append(f"balance={a.balance:g}")
    if a.ensemble:  # the runs averaged, by tag ("recipe": the untagged run)
        names = ([] if a.evaluate_only else [a.tag]) + list(a.ensemble)
        parts.append("ensemble=" + "+".join(t or "recipe" for t in names))
    if a.adapt:
        parts.append("adapt=" + "+".join(t.name.split("_", 2)[-1] if t.name != "fsdd_loso"
                                         else "recipe" for t in a.adapt))
    if a.drop_speakers:
        parts.append(f"drop_speakers={a.drop_speakers}")
    if a.mix:
        parts.append(f"mix={a.mix.parent.name if a.mix.name == 'manifest.csv' else a.mix.name}")
    return " ".join(parts) or "recipe"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipe", default="audio_fsdd",
                   help="shipped recipe name or recipe file; its train list is every fold's")
    p.add_argument("--set", nargs="*", default=[], help="recipe overrides, e.g. max_steps=1500")
    p.add_argument("--speakers", nargs="+", default=list(SPEAKERS))
    p.add_argument("--workdir", type=Path, default=ROOT / "runs" / "fsdd_loso")
    p.add_argument("--tag", default="")
    p.add_argument("--evaluate-only", action="store_true")
    p.add_argument("--train-only", action="store_true",
                   help="train the folds and stop (e.g. on a GPU machine; score them later "
                        "with --evaluate-only)")
    p.add_argument("--train-set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="finetune options that change how a fold runs, not what it learns, "
                        "and are not part of the settings label: workers=3 precision=32-true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--mix", type=Path, default=None,
                   help="manifest of extra training clips (path,label,group), e.g. synthetic voices")
    p.add_argument("--drop-speakers", type=int, default=0, choices=range(len(SPEAKERS) - 1),
                   help="also leave this many more real speakers out of each fold's training "
                        "(and the baselines'): how accuracy on an unheard voice grows with the "
                        "number of real voices trained on")
    p.add_argument("--tta", type=float, nargs="+", default=[1.0],
                   help="test-time augmentation: average over the clip played at these speeds, "
                        "e.g. 0.9 1 1.1")
    p.add_argument("--tta-formant", type=float, nargs="+", default=[1.0],
                   help="test-time augmentation: average over the clip with its formants moved "
                        "by these factors, e.g. 0.9 1 1.1")
    p.add_argument("--balance", type=float, default=None, metavar="STRENGTH",
                   help="score with the held-out speaker's probabilities re-weighted over his "
                        "clips towards equally frequent digits (audio predict --balance; true "
                        "of FSDD: 50 of each), clean and with each noise")
    p.add_argument("--ensemble", nargs="+", default=[], metavar="TAG",
                   help="average each fold's class probabilities with the same fold of these "
                        "tagged runs (e.g. the recipe trained with another seed; '' is the "
                        "untagged run); with --evaluate-only, the ensemble is these runs alone")
    p.add_argument("--adapt", nargs="+", default=[], metavar="TAG",
                   help="adapt each fold to its held-out speaker without his labels: start from "
                        "the first tagged run's fold and train on the recipe's clips plus his "
                        "recordings as pseudo-labelled by all these runs' folds (finetune "
                        "--unlabelled; '' is the untagged run)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    a.recipe_file = recipe_path(a.recipe)  # an unknown recipe stops here, before any fold
    base = a.workdir
    if a.tag:
        a.workdir = a.workdir.with_name(a.workdir.name + "_" + a.tag)
    members = {t: base.with_name(base.name + f"_{t}" if t else base.name) for t in a.ensemble}
    for s in a.speakers:
        for t, m in members.items():
            if not (m / s / "report.json").is_file():
                raise SystemExit(f"--ensemble: {m / s} has no finished run; train it first "
                                 f"(--tag {t} --speakers {s})")
    members = list(members.values())
    a.adapt = [base.with_name(base.name + f"_{t}" if t else base.name) for t in a.adapt]
    for s in a.speakers:
        for t in a.adapt:
            if not (t / s / "report.json").is_file():
                raise SystemExit(f"--adapt: {t / s} has no finished run; train it first")
    if a.train_only:
        for s in a.speakers:
            train_fold(s, a)
        return 0
    # evaluating an ensemble of trained runs: its members alone (the tag only names the result)
    runs = {s: [m / s for m in members] if a.evaluate_only and members else
            [a.workdir / s if a.evaluate_only else train_fold(s, a)] + [m / s for m in members]
            for s in a.speakers}
    clips = read_clips(bundled_set("fsdd")["manifest"])
    rows, noise, confusion = [], [], []
    settings = settings_label(a)
    for s, run in runs.items():
        r, n, c = evaluate_fold(s, run, clips, a)
        confusion += c
        r["settings"] = settings
        r["recipe"] = a.recipe_file.stem
        print(f"{s}: model {r['model_acc']:.4f}  log-mel LR {r['logmel_lr_acc']:.4f}  "
              f"SVM {r['svm_acc']:.4f}", flush=True)
        rows.append(r)
        noise += n
    mean = {"held_out": "mean", "clips": sum(r["clips"] for r in rows), "settings": settings,
            "recipe": rows[0]["recipe"]}
    for k in ("model_acc", "logmel_lr_acc", "svm_acc", "cnn_acc", "train_seconds",
              "cnn_train_seconds", "predict_clips_per_s", "pseudo_kept", "pseudo_acc"):
        if all(k in r for r in rows):
            mean[k] = round(float(np.mean([r[k] for r in rows])), 4)
    rows.append(mean)
    suffix = f"_{a.tag}" if a.tag else ""
    write_csv_atomic(rows, HERE / "results" / f"audio_fsdd_loso{suffix}.csv")
    write_csv_atomic(noise, HERE / "results" / f"audio_fsdd_noise{suffix}.csv")
    write_csv_atomic(confusion, HERE / "results" / f"audio_fsdd_confusion{suffix}.csv")
    print(f"mean over {len(rows) - 1} speakers: model {mean['model_acc']:.4f}, log-mel LR "
          f"{mean['logmel_lr_acc']:.4f}, SVM {mean['svm_acc']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
