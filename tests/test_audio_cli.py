"""The `seqmamba audio` commands end to end on tiny settings, and their handling of bad input.

Every command runs in a fresh process (``python -m pipelines.cli audio ...``) on the bundled
spoken digits and on files made here with soundfile.
"""

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from dna_helpers import DATA, seqmamba
from pipelines.audio.io import DEFAULT_MAX_SECONDS
from pipelines.audio.models import resolve_model_dir
from pipelines.balance import balance
from pipelines.io.tables import model_provenance

DIGITS = DATA / "audio" / "spoken_digits_espeak"
TINY = ["--d-model", 16, "--n-layer", 1, "--d-state", 4, "--batch-size", 8, "--warmup-steps", 1,
        "--no-progress"]


def rows(path):
    delim = "\t" if str(path).endswith(".tsv") else ","
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter=delim))


def bad_files(folder):
    """An empty file, a text file named .wav, and a float WAV holding NaN."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.wav").write_text("these are not samples\n")
    x = np.zeros(4000, np.float32)
    x[123] = np.nan
    sf.write(str(folder / "nan.wav"), x, 16000, subtype="FLOAT")
    return ["empty.wav", "notes.wav", "nan.wav"]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A few steps of `seqmamba audio finetune` on the digits (accents held out)."""
    run = tmp_path_factory.mktemp("ft") / "run"
    rc, out, err = seqmamba("audio", "finetune", "--train", DIGITS, "--out", run,
                            "--seconds", 0.5, "--max-steps", 3, "--val-every", 3, *TINY)
    assert rc == 0, err
    return run, out


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    run = tmp_path_factory.mktemp("pt") / "run"
    rc, out, err = seqmamba("audio", "pretrain", "--train", DIGITS, "--out", run,
                            "--seq-len", 128, "--max-steps", 3, "--val-every", 3,
                            "--val-windows", 8, *TINY)
    assert rc == 0, err
    return run, out


def test_finetune_writes_final_report_confusion(classifier):
    run, out = classifier
    rep = json.loads((run / "report.json").read_text())
    assert rep["task"] == "audio-classify" and rep["steps"] == 3
    assert rep["labels"] == sorted("zero one two three four five six seven eight nine".split())
    assert rep["split"] == {"how": "group", "train_clips": 151, "val_clips": 49,
                            "val_groups": ["en-gb-scotland", "en-gb-x-gbcwmd"]}
    assert {"acc", "macro_f1", "mcc", "auroc"} <= set(rep["model"])
    # the log-mel baseline is a working classifier on the held-out accents (chance is 0.1)
    assert rep["baseline"]["name"].startswith("log-mel") and rep["baseline"]["acc"] > 0.5
    # per held-out accent, for the model and the baseline; clip-weighted they give the total
    by = rep["accuracy_by_group"]
    assert set(by["model"]) == set(by["baseline"]) == {"en-gb-scotland", "en-gb-x-gbcwmd"}
    n = {"en-gb-scotland": 26, "en-gb-x-gbcwmd": 23}
    for who, total in (("model", rep["model"]["acc"]), ("baseline", rep["baseline"]["acc"])):
        assert sum(by[who][g] * k for g, k in n.items()) / 49 == pytest.approx(total, abs=1e-3)
    for f in ("confusion.png", "loss_curve.png", "final/model.safetensors"):
        assert (run / f).stat().st_size > 0
    cfg = json.loads((run / "final" / "config.json").read_text())
    assert cfg["input_type"] == "waveform" and cfg["bidirectional"] == "add"
    extra = cfg["extra"]
    assert extra["task"] == "audio-classify" and extra["labels"] == rep["labels"]
    assert extra["sample_rate"] == 16000 and extra["seconds"] == 0.5
    assert "held-out (49 clips" in out and "baseline log-mel" in out


def test_predict_files_folder_glob_keeps_going_past_bad_files(tmp_path, classifier):
    run, _ = classifier
    folder = tmp_path / "in"
    bad = bad_files(folder)
    for name in ("one_0000.wav", "two_0000.wav"):
        shutil.copy(DIGITS / name, folder / name)
    sub = folder / "deeper"
    sub.mkdir()
    # 1.5 s at 22.05 kHz stereo FLAC: read whole, mixed to mono and resampled
    sf.write(str(sub / "long.flac"), 0.1 * np.random.default_rng(0).standard_normal((33075, 2)),
             22050)
    out = tmp_path / "out" / "preds.csv"
    rc, stdout, stderr = seqmamba("audio", "predict", "--model", run, DIGITS / "six_0003.wav",
                                  folder, str(DIGITS / "nine_000[12].wav"), "--out", out,
                                  "--no-progress")
    assert rc == 2, stderr
    assert "Traceback" not in stderr
    got = rows(out)
    names = [r["file"].rsplit("/", 1)[-1] for r in got]
    assert names == ["six_0003.wav", "long.flac", "one_0000.wav", "two_0000.wav",
                     "nine_0001.wav", "nine_0002.wav"]
    labels = json.loads((run / "final" / "config.json").read_text())["extra"]["labels"]
    for r in got:
        p = np.array([float(r[f"p_{n}"]) for n in labels])
        assert abs(p.sum() - 1) < 1e-4 and r["label"] == labels[int(p.argmax())]
    assert [float(r["seconds"]) for r in got][:2] == [1.0, 1.5]
    lines = [line for line in stderr.splitlines() if line.startswith("seqmamba:")]
    for name, why in zip(bad, ("empty file", "not an audio file", "NaN")):
        assert any(name in line and why in line for line in lines), (name, lines)
    errors = rows(out.parent / "preds.csv.errors.tsv")
    assert sorted(e["file"].rsplit("/", 1)[-1] for e in errors) == sorted(bad)
    assert not (out.parent / "preds.csv.partial").exists()


def test_predict_batches_clips_of_one_length_as_one_at_a_time_would(tmp_path, classifier):
    """Clips up to the training length (0.5 s here) are padded to it and predicted together;
    longer ones alone; a bad file among them is reported and the rest kept, in order."""
    run, _ = classifier
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(7)
    names = []
    for i, src in enumerate(sorted(DIGITS.glob("*_000[0-2].wav"))[:9]):
        x, sr = sf.read(str(src), dtype="float32")
        seconds = [0.2, 0.35, 0.5, 0.8][i % 4]  # short ones padded, long ones alone
        start = int(rng.integers(0, max(1, len(x) - int(seconds * sr))))
        names.append(f"{i:02d}_{src.stem}.wav")
        sf.write(str(folder / names[-1]), x[start:start + int(seconds * sr)], sr)
        if i == 4:
            (folder / "05_broken.wav").write_text("not audio")
    got = {}
    for batch in (1, 3, 32):
        out = tmp_path / f"b{batch}.csv"
        rc, _, err = seqmamba("audio", "predict", "--model", run, folder, "--out", out,
                              "--batch-size", batch, "--no-progress")
        assert rc == 2 and "05_broken.wav" in err and "Traceback" not in err, err
        got[batch] = rows(out)
        assert [r["file"].rsplit("/", 1)[-1] for r in got[batch]] == sorted(names)
    labels = json.loads((run / "final" / "config.json").read_text())["extra"]["labels"]
    one = np.array([[float(r[f"p_{n}"]) for n in labels] for r in got[1]])
    for batch in (3, 32):
        many = np.array([[float(r[f"p_{n}"]) for n in labels] for r in got[batch]])
        np.testing.assert_allclose(many, one, atol=2e-5)
        assert [r["label"] for r in got[batch]] == [r["label"] for r in got[1]]
    rc, _, err = seqmamba("audio", "predict", "--model", run, folder, "--out",
                          tmp_path / "x.csv", "--batch-size", 0)
    assert rc == 2 and "--batch-size" in err and len(err.strip().splitlines()) == 1, err


def test_predict_all_bad_exit_2_and_no_output(tmp_path, classifier):
    run, _ = classifier
    bad = bad_files(tmp_path / "bad")
    out = tmp_path / "p.csv"
    inputs = [tmp_path / "bad" / b for b in bad] + [tmp_path / "missing.wav"]
    rc, _, stderr = seqmamba("audio", "predict", "--model", run, *inputs, "--out", out,
                             "--no-progress")
    assert rc == 2 and "Traceback" not in stderr
    assert "missing.wav" in stderr and "every input failed" in stderr
    assert not out.exists() and not (tmp_path / "p.csv.partial").exists()


def test_predict_resumes_from_partial(tmp_path, classifier):
    run, _ = classifier
    files = [DIGITS / f"{w}_0005.wav" for w in ("zero", "three", "seven")]
    full = tmp_path / "full.csv"
    assert seqmamba("audio", "predict", "--model", run, *files, "--out", full,
                    "--no-progress")[0] == 0
    done = rows(full)
    # a run that stopped after one file, in the middle of writing the second row
    text = full.read_text().splitlines()
    cols = text[1].split(",")
    cols[list(done[0]).index("label")] = "KEPT"  # the label cell, not a path that holds the word
    kept = ",".join(cols)
    (tmp_path / "p.csv.partial").write_text(f"{text[0]}\n{kept}\n{text[2][:9]}")
    (tmp_path / "p.csv.partial.json").write_text(json.dumps(
        model_provenance(resolve_model_dir(run), max_seconds=DEFAULT_MAX_SECONDS)))
    out = tmp_path / "p.csv"
    # the same files typed another way (relative to another folder): the same rows, no doubles
    rel = [os.path.relpath(f, tmp_path) for f in files]
    rc, stdout, _ = seqmamba("audio", "predict", "--model", run, *rel, "--out", out,
                             "--no-progress", cwd=tmp_path)
    assert rc == 0 and "1 kept" in stdout
    got = rows(out)
    assert [r["file"] for r in got] == [r["file"] for r in done] and got[0]["label"] == "KEPT"
    assert got[1:] == done[1:]
    assert not (tmp_path / "p.csv.partial").exists()


def test_pretrain_generate_wav_and_lm_bits(tmp_path, lm):
    run, out = lm
    rep = json.loads((run / "report.json").read_text())
    assert rep["task"] == "audio-lm" and rep["split"]["val_groups"] == ["en-gb-scotland",
                                                                          "en-gb-x-gbcwmd"]
    assert 0 < rep["val_bits_per_sample"] < 9 and set(rep["markov_bits_per_sample"]) == {"0", "1"}
    extra = json.loads((run / "final" / "config.json").read_text())["extra"]
    assert extra["task"] == "audio-lm" and extra["encoding"] == "mulaw8"
    assert extra["sample_rate"] == 16000 and "bits per sample" in out
    wav = tmp_path / "gen.wav"
    rc, stdout, err = seqmamba("audio", "generate", "--model", run, "--duration", 0.05,
                               "--out", wav, "--seed", 1, "--top-k", 50)
    assert rc == 0, err
    x, sr = sf.read(str(wav))
    assert sr == 16000 and x.shape == (800,) and np.isfinite(x).all() and "samples/s" in stdout
    # a prompt is continued: prompt + 0.01 s
    rc, _, err = seqmamba("audio", "generate", "--model", run, "--duration", 0.01, "--out", wav,
                          "--prompt", DIGITS / "one_0001.wav")
    assert rc == 0, err
    assert sf.info(str(wav)).frames == 16000 + 160
    # a language model's predictions are bits per sample, the same in any piece size
    bits = {}
    for chunk in (0.003, 10):
        p = tmp_path / f"bits{chunk}.tsv"
        rc, _, err = seqmamba("audio", "predict", "--model", run, DIGITS / "one_0001.wav",
                              "--out", p, "--chunk-seconds", chunk, "--no-progress")
        assert rc == 0, err
        bits[chunk] = float(rows(p)[0]["bits_per_sample"])
    assert 0 < bits[10] < 9 and abs(bits[10] - bits[0.003]) < 1e-3


def test_bad_model_paths_give_one_line_errors(tmp_path, classifier):
    clf, _ = classifier
    cases = [
        (("predict", "--model", tmp_path / "nowhere", DIGITS / "one_0001.wav", "--out",
          tmp_path / "p.csv"), "no such model directory"),
        (("generate", "--model", clf, "--duration", 0.01, "--out", tmp_path / "g.wav"),
         "needs an audio language model"),
        (("finetune", "--train", DIGITS, "--out", tmp_path / "ft", "--init", tmp_path),
         "not a model directory"),
    ]
    for args, needle in cases:
        rc, _, stderr = seqmamba("audio", *args)
        lines = stderr.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and lines[0].startswith("seqmamba: "), stderr
        assert needle in lines[0], lines[0]
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "g.wav").exists()
    assert not (tmp_path / "ft").exists()


def tone(f, seconds, rng, sr=16000):
    t = np.arange(int(seconds * sr)) / sr
    x = rng.uniform(0.2, 0.8) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return (x + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def tones_model(tmp_path_factory):
    """A classifier of low (200-400 Hz) against high (1.5-3 kHz) tones, with random phase,
    level and a little noise: a task any working model learns in a few seconds."""
    tmp = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(0)
    for label, lo, hi in (("low", 200, 400), ("high", 1500, 3000)):
        (tmp / "tones" / label).mkdir(parents=True)
        for i in range(40):
            sf.write(str(tmp / "tones" / label / f"{i}.wav"), tone(rng.uniform(lo, hi), 0.5, rng),
                     16000)
    run = tmp / "run"
    rc, _, err = seqmamba("audio", "finetune", "--train", tmp / "tones", "--out", run,
                          "--seconds", 0.5, "--max-steps", 80, "--val-every", 80,
                          "--d-model", 16, "--n-layer", 1, "--d-state", 4, "--batch-size", 8,
                          "--warmup-steps", 4, "--lr", 5e-3, "--no-progress",
                          "--baseline", "cnn")
    assert rc == 0, err
    return run


def test_finetune_learns_a_task_it_must_learn(tones_model):
    """A broken model, front end or label mapping stays near chance (0.5) on the tones; a
    working one separates them.  So does the log-mel CNN baseline, built at the model's
    parameter count (within 10%) and trained for the model's steps."""
    rep = json.loads((tones_model / "report.json").read_text())
    assert rep["model"]["acc"] >= 0.9, rep["model"]
    base, params = rep["baseline"], rep["architecture"]["parameters"]
    assert base["name"].startswith("log-mel res8") and base["acc"] >= 0.9, base
    assert abs(base["parameters"] - params) <= 0.1 * params, (base["parameters"], params)
    assert base["steps"] == rep["steps"] == 80


def test_track_finds_each_sound_at_its_time_in_a_long_recording(tmp_path, tones_model):
    """--track on a 44.1 kHz recording of tones separated by silence: windows (0.5 s every
    0.125 s) that lie inside a tone carry that tone's label, at the right times."""
    rng = np.random.default_rng(5)
    sr = 44100
    parts, truth, t = [], [], 0.0
    for label in ["low", "high", "high", "low", "high", "low"]:
        gap = np.zeros(int(0.8 * sr), np.float32)
        f = rng.uniform(250, 350) if label == "low" else rng.uniform(1800, 2600)
        seg = tone(f, 0.9, rng, sr)
        parts += [gap, seg]
        truth.append((t + 0.8, t + 1.7, label))
        t += 1.7
    parts.append(np.zeros(sr // 2, np.float32))
    rec = tmp_path / "long.wav"
    sf.write(str(rec), np.concatenate(parts), sr)
    track = tmp_path / "track.csv"
    rc, stdout, err = seqmamba("audio", "predict", "--model", tones_model, rec, "--track",
                               track, "--window-seconds", 0.5, "--hop", 0.125, "--no-progress")
    assert rc == 0, err
    got = rows(track)
    assert abs(float(got[-1]["end"]) - (t + 0.5)) <= 0.13 and float(got[0]["start"]) == 0
    for lo, hi, label in truth:
        inside = [r for r in got if float(r["start"]) >= lo and float(r["end"]) <= hi]
        assert len(inside) >= 2
        for r in inside:
            assert r["label"] == label and float(r[f"p_{label}"]) > 0.8, (lo, hi, r)


@pytest.fixture(scope="module")
def classifier_seed1(tmp_path_factory):
    """The `classifier` fixture's training with another seed: the same labels, rate and clip
    length, other weights (an ensemble's second member)."""
    run = tmp_path_factory.mktemp("ft1") / "run"
    rc, _, err = seqmamba("audio", "finetune", "--train", DIGITS, "--out", run, "--seed", 1,
                          "--seconds", 0.5, "--max-steps", 3, "--val-every", 3, *TINY)
    assert rc == 0, err
    return run


def test_predict_averages_an_ensemble_of_classifiers(tmp_path, classifier, classifier_seed1,
                                                     tones_model, lm):
    """Several --model classifiers: each file's probabilities (in the table and along a
    --track) are the mean of the members' own, its label their argmax.  A member trained on
    other labels or clips, and an ensemble of language models, are refused in one line."""
    a, b = classifier[0], classifier_seed1
    clips = sorted(DIGITS.glob("*_0001.wav"))[:6]
    labels = json.loads((a / "final" / "config.json").read_text())["extra"]["labels"]

    def probs(models, kind):
        flags = [x for m in models for x in ("--model", m)]
        out = tmp_path / f"{kind}_{len(flags)}_{models[-1].parent.name}.csv"
        rc, _, err = seqmamba("audio", "predict", *flags, *clips,
                              "--out" if kind == "table" else "--track", out, "--no-progress")
        assert rc == 0, err
        got = rows(out)
        return got, np.array([[float(r[f"p_{n}"]) for n in labels] for r in got])

    for kind, tol in (("table", 2e-5), ("track", 2e-4)):  # the track prints 5 digits
        (_, pa), (_, pb), (both, pab) = (probs(m, kind) for m in ([a], [b], [a, b]))
        assert np.abs(pa - pb).max() > 1e-3  # two different models
        np.testing.assert_allclose(pab, (pa + pb) / 2, atol=tol)
        assert [r["label"] for r in both] == [labels[i] for i in pab.argmax(1)]
    for models, needle in (([a, tones_model], "its labels differ"),
                           ([lm[0], lm[0]], "for classifiers only")):
        flags = [x for m in models for x in ("--model", m)]
        rc, _, err = seqmamba("audio", "predict", *flags, clips[0], "--out",
                              tmp_path / "refused.csv")
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and needle in lines[0], err
    assert not (tmp_path / "refused.csv").exists()


def test_predict_scores_a_labelled_manifest(tmp_path, classifier):
    """A CSV manifest as input: its clips are predicted, and because it carries labels (and
    groups) the table is scored: accuracy, macro-F1, accuracy per group, a confusion matrix
    and its plot, all consistent with the written predictions."""
    run, _ = classifier
    out = tmp_path / "scored.csv"
    rc, stdout, err = seqmamba("audio", "predict", "--model", run, DIGITS / "manifest.csv",
                               "--out", out, "--no-progress")
    assert rc == 0, err
    got = rows(out)
    truth = {str((DIGITS / r["path"]).resolve()): (r["label"], r["group"])
             for r in rows(DIGITS / "manifest.csv")}
    assert len(got) == 200 and {r["file"] for r in got} == set(truth)
    m = json.loads((tmp_path / "scored.metrics.json").read_text())
    right = [r["label"] == truth[r["file"]][0] for r in got]
    assert m["clips"] == 200 and abs(m["accuracy"] - sum(right) / 200) < 1e-9
    for g, acc in m["accuracy_by_group"].items():
        mine = [ok for r, ok in zip(got, right) if truth[r["file"]][1] == g]
        assert abs(acc - sum(mine) / len(mine)) < 1e-4, g
    assert set(m["accuracy_by_group"]) == {g for _, g in truth.values()}
    conf = np.array(m["confusion"])
    assert conf.sum() == 200 and np.trace(conf) == sum(right)
    assert (tmp_path / "scored.confusion.png").stat().st_size > 1000
    assert f"scored 200 labelled clips: accuracy {m['accuracy']:.4f}" in stdout


def test_predict_balance_reweights_the_batch_towards_equally_frequent_classes(tmp_path,
                                                                             classifier, lm):
    """--balance: the table's probabilities are the model's own re-weighted over all files so
    that each class's mean is the same, every label is its row's top class, and the evaluation
    mode scores the balanced labels and records the class weights.  Refused in one line before
    anything is written: a strength outside (0, 1], --track alone, fewer files than classes,
    a language model."""
    run, _ = classifier
    labels = json.loads((run / "final" / "config.json").read_text())["extra"]["labels"]
    plain, balanced = tmp_path / "plain.csv", tmp_path / "balanced.csv"
    for out, extra in ((plain, []), (balanced, ["--balance"])):
        rc, stdout, err = seqmamba("audio", "predict", "--model", run, DIGITS / "manifest.csv",
                                   "--out", out, "--no-progress", *extra)
        assert rc == 0, err
    assert "balanced 200 files (strength 1)" in stdout
    raw = {r["file"]: np.array([float(r[f"p_{n}"]) for n in labels]) for r in rows(plain)}
    got = rows(balanced)
    q = np.array([[float(r[f"p_{n}"]) for n in labels] for r in got])
    np.testing.assert_allclose(q.mean(0), 1 / len(labels), atol=1e-4)
    np.testing.assert_allclose(q.sum(1), 1.0, atol=1e-4)
    assert [r["label"] for r in got] == [labels[i] for i in q.argmax(1)]
    # one weight per class, the same for every file: q / p is constant down each column
    ratio = q / np.stack([raw[r["file"]] for r in got])
    ratio /= ratio[:, :1]
    assert np.abs(ratio - ratio[0]).max() < 1e-2 * np.abs(ratio).max()
    m = json.loads((tmp_path / "balanced.metrics.json").read_text())
    truth = {str((DIGITS / r["path"]).resolve()): r["label"] for r in rows(DIGITS / "manifest.csv")}
    assert abs(m["accuracy"] - np.mean([r["label"] == truth[r["file"]] for r in got])) < 1e-9
    assert m["balance"]["strength"] == 1.0 and m["balance"]["by"] == "all"
    assert list(m["balance"]["groups"]) == ["all"]
    assert set(m["balance"]["groups"]["all"]["class_weights"]) == set(labels)
    changed = sum(r["label"] != p["label"] for r, p in zip(got, rows(plain)))
    assert m["balance"]["labels_changed"] == changed and changed > 0
    assert not list(tmp_path.glob("balanced.csv.partial*"))

    few = sorted(DIGITS.glob("*_0001.wav"))[:3]
    for model, extra, needle in ((run, ["--balance", 1.5], "must be in (0, 1]"),
                                 (run, ["--track", tmp_path / "t.csv", "--balance"], "--track"),
                                 (run, ["--out", tmp_path / "r.csv", "--balance"],
                                  "at least as many files as classes"),
                                 (lm[0], ["--out", tmp_path / "r.csv", "--balance"],
                                  "need a classifier")):
        args = [] if "--out" in extra or "--track" in extra else ["--out", tmp_path / "r.csv"]
        rc, _, err = seqmamba("audio", "predict", "--model", model, *few, *args, *extra)
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and needle in lines[0], err
        assert not (tmp_path / "r.csv").exists() and not (tmp_path / "t.csv").exists()
    # enough files, but one cannot be read: too few predicted to balance; nothing is written
    # and the model's own probabilities stay in OUT.partial for a rerun with it fixed
    empty = tmp_path / "bad" / bad_files(tmp_path / "bad")[0]
    nine = sorted(DIGITS.glob("*_0001.wav"))[:9] + [empty]
    rc, _, err = seqmamba("audio", "predict", "--model", run, *nine, "--out", tmp_path / "r.csv",
                          "--balance", "--no-progress")
    assert rc == 2 and "predicted files as classes (10); got 9" in err.strip().splitlines()[-1], err
    assert not (tmp_path / "r.csv").exists() and len(rows(tmp_path / "r.csv.partial")) == 9


def test_predict_balance_by_group_or_folder_balances_each_batch_on_its_own(tmp_path,
                                                                           classifier):
    """--balance-by group balances each speaker (voice) of a manifest on its own, and
    --balance-by folder the files of each folder: each batch's class means become uniform with
    its own class weights, and the table equals pipelines.balance applied batch by batch to the
    model's own probabilities.  Refused in one line, nothing written: --balance-by without
    --balance, a file with no group, a group with fewer files than classes."""
    run, _ = classifier
    labels = json.loads((run / "final" / "config.json").read_text())["extra"]["labels"]
    manifest = rows(DIGITS / "manifest.csv")
    group = {str((DIGITS / r["path"]).resolve()): r["group"] for r in manifest}
    plain, by_group = tmp_path / "plain.csv", tmp_path / "by_group.csv"
    for out, extra in ((plain, []), (by_group, ["--balance", "--balance-by", "group"])):
        rc, stdout, err = seqmamba("audio", "predict", "--model", run, DIGITS / "manifest.csv",
                                   "--out", out, "--no-progress", *extra)
        assert rc == 0, err
    n_groups = len(set(group.values()))
    assert f"balanced 200 files in {n_groups} groups (strength 1)" in stdout
    raw = {r["file"]: [float(r[f"p_{n}"]) for n in labels] for r in rows(plain)}
    got = rows(by_group)
    q = np.array([[float(r[f"p_{n}"]) for n in labels] for r in got])
    for g in sorted(set(group.values())):
        sel = [i for i, r in enumerate(got) if group[r["file"]] == g]
        np.testing.assert_allclose(q[sel].mean(0), 1 / len(labels), atol=1e-4)
        expect = balance(torch.tensor([raw[got[i]["file"]] for i in sel]), 1.0).numpy()
        np.testing.assert_allclose(q[sel], expect, atol=2e-6)
    # not what one batch of all 200 gives: each voice got its own weights
    one_batch = balance(torch.tensor([raw[r["file"]] for r in got]), 1.0).numpy()
    assert np.abs(q - one_batch).max() > 1e-3
    m = json.loads((tmp_path / "by_group.metrics.json").read_text())["balance"]
    assert m["by"] == "group" and set(m["groups"]) == set(group.values())
    assert sum(v["files"] for v in m["groups"].values()) == 200
    assert m["labels_changed"] == sum(v["labels_changed"] for v in m["groups"].values())

    # folders: two of 12 clips each (copies of the voices' clips)
    picked = sorted(DIGITS.glob("*.wav"))[:24]
    for i, f in enumerate(picked):
        (tmp_path / "voices" / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, tmp_path / "voices" / "ab"[i % 2] / f.name)
    for out, extra in ((tmp_path / "f_plain.csv", []),
                       (tmp_path / "f_bal.csv", ["--balance", "--balance-by", "folder"])):
        rc, _, err = seqmamba("audio", "predict", "--model", run, tmp_path / "voices", "--out",
                              out, "--no-progress", *extra)
        assert rc == 0, err
    raw = {r["file"]: [float(r[f"p_{n}"]) for n in labels] for r in rows(tmp_path / "f_plain.csv")}
    got = rows(tmp_path / "f_bal.csv")
    for folder in "ab":
        sel = [r for r in got if Path(r["file"]).parent.name == folder]
        assert len(sel) == 12
        expect = balance(torch.tensor([raw[r["file"]] for r in sel]), 1.0).numpy()
        np.testing.assert_allclose([[float(r[f"p_{n}"]) for n in labels] for r in sel], expect,
                                   atol=2e-6)

    small = tmp_path / "small.csv"
    with open(small, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "group"])
        w.writerows([[str(DIGITS / r["path"]), r["label"], "one" if i < 3 else "two"]
                     for i, r in enumerate(manifest[:40])])
    for inputs, extra, needle in (
            ([DIGITS / "manifest.csv"], ["--balance-by", "group"], "add --balance"),
            ([tmp_path / "voices"], ["--balance", "--balance-by", "group"], "group column"),
            ([small], ["--balance", "--balance-by", "group"], "in each group; one has 3")):
        rc, _, err = seqmamba("audio", "predict", "--model", run, *inputs, "--out",
                              tmp_path / "r.csv", *extra)
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and needle in lines[0], err
        assert not (tmp_path / "r.csv").exists()


def test_predict_resamples_to_the_rate_the_model_stores(tmp_path, classifier):
    """The model's sample rate is stored with it and every input is brought to it: the same
    clip as a 16 kHz and a 48 kHz file gets (nearly) the same probabilities."""
    import torchaudio.functional as AF

    run, _ = classifier
    assert json.loads((run / "final" / "config.json").read_text())["extra"]["sample_rate"] == 16000
    x, sr = sf.read(str(DIGITS / "seven_0003.wav"), dtype="float32")
    hi = AF.resample(__import__("torch").from_numpy(x)[None], sr, 48000)[0].numpy()
    sf.write(str(tmp_path / "hi.wav"), hi, 48000, subtype="PCM_16")
    shutil.copy(DIGITS / "seven_0003.wav", tmp_path / "lo.wav")
    rc, _, err = seqmamba("audio", "predict", "--model", run, tmp_path / "lo.wav",
                          tmp_path / "hi.wav", "--out", tmp_path / "p.csv", "--no-progress")
    assert rc == 0, err
    lo, hi_row = rows(tmp_path / "p.csv")
    probs = [k for k in lo if k.startswith("p_")]
    assert max(abs(float(lo[k]) - float(hi_row[k])) for k in probs) < 0.05
    assert abs(float(lo["seconds"]) - float(hi_row["seconds"])) < 1e-3


def test_finetune_joins_several_training_sets_and_refuses_a_clip_listed_twice(tmp_path):
    """--train A B is one set (e.g. real speakers plus synthetic voices); SpecAugment masks run
    with the filterbank front end."""
    clips = rows(DIGITS / "manifest.csv")
    groups = sorted({r["group"] for r in clips})
    parts = []
    for i, sel in enumerate((groups[:4], groups[4:])):
        p = tmp_path / f"part{i}.csv"
        with open(p, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "label", "group"])
            w.writerows([[str(DIGITS / r["path"]), r["label"], r["group"]]
                         for r in clips if r["group"] in sel])
        parts.append(p)
    run = tmp_path / "run"
    rc, _, err = seqmamba("audio", "finetune", "--train", *parts, "--out", run, "--seconds", 0.5,
                          "--max-steps", 2, "--val-every", 2, "--frontend", "filterbank",
                          "--frame-size", 160, *TINY)
    assert rc == 0, err
    rep = json.loads((run / "report.json").read_text())
    assert rep["split"]["train_clips"] + rep["split"]["val_clips"] == len(clips)
    assert rep["split"]["how"] == "group"
    cfg = json.loads((run / "final" / "config.json").read_text())
    assert cfg["frontend"]["kind"] == "filterbank" and "mask_bands" not in cfg
    rc, _, err = seqmamba("audio", "finetune", "--train", parts[0], parts[0], "--out",
                          tmp_path / "r2", *TINY)
    assert rc == 2 and "is listed by both" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r2").exists()
    rc, _, err = seqmamba("audio", "finetune", "--train", parts[0], "--out", tmp_path / "r3",
                          "--frontend-norm", "cmn", *TINY)
    assert rc == 2 and "--frontend filterbank" in err


@pytest.mark.parametrize("flag", [["--speaker-adversary", "0.5"], ["--mixup", "0.2"],
                                  ["--mask-bands", "8"], ["--mask-frames", "5"],
                                  ["--pooling", "attention"]])
def test_options_that_lost_their_ablation_are_not_offered(tmp_path, flag):
    """The speaker adversary, mixup, SpecAugment masks and attention pooling lost their own
    ablations and left the product: audio finetune neither lists nor accepts them."""
    from pipelines.audio.finetune import build_parser

    offered = build_parser().format_help()
    assert ("attention" if flag[0] == "--pooling" else flag[0]) not in offered
    rc, _, err = seqmamba("audio", "finetune", "--train", DIGITS, "--out", tmp_path / "r",
                          *flag, *TINY)
    assert rc == 2 and flag[-1 if flag[0] == "--pooling" else 0] in err
    assert not (tmp_path / "r").exists()


def test_shipped_fsdd_recipe_trains_on_real_and_bundled_synthetic_voices(tmp_path):
    """audio_fsdd (the recipe a user runs on real speakers) needs nothing outside the
    checkout: all three of its training sets are bundled, with its augmentations set."""
    from pipelines.audio.finetune import build_parser
    from pipelines.runs import parse_with_recipe

    a = parse_with_recipe(build_parser(), ["--config", "audio_fsdd", "--out", str(tmp_path / "r")])
    assert [Path(p).resolve().parent.name for p in a.train] == ["fsdd", "synth_digits_8k",
                                                                "accent_digits_8k"]
    assert all(Path(p).is_file() for p in a.train)
    assert (a.frontend_norm, a.babble_snr, a.reverb, a.trim) == ("cmn", 5, 0.5, 0.5)


def test_recipe_with_several_training_sets_resolves_each_path(tmp_path):
    """audio_fsdd_synth lists two manifests under train:; each is read relative to the recipe,
    and the synthetic one, which users make themselves, is named with how to make it."""
    from pipelines.audio.finetune import build_parser
    from pipelines.runs import parse_with_recipe

    a = parse_with_recipe(build_parser(), ["--config", "audio_fsdd_synth", "--out",
                                           str(tmp_path / "r")])
    recipes = Path(__file__).resolve().parent.parent / "pipelines" / "recipes"
    assert [Path(p).resolve() for p in a.train] == [
        (recipes / "../bundled/data/audio/fsdd/manifest.csv").resolve(),
        (recipes / "../bundled/data/audio/generated/manifest.csv").resolve()]
    assert a.babble_snr == 5 and a.frontend_norm == "cmn"
    if not Path(a.train[1]).exists():  # a checkout where make_digits.py has not been run
        rc, _, err = seqmamba("audio", "finetune", "--config", "audio_fsdd_synth", "--out",
                              tmp_path / "r", "--max-steps", 1)
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and "make_digits.py" in lines[0], err
        assert not (tmp_path / "r").exists()


def test_finetune_trains_on_unlabelled_clips_the_teachers_are_sure_of(tmp_path, classifier,
                                                                      classifier_seed1,
                                                                      tones_model):
    """--unlabelled: every file is labelled by the --teacher ensemble exactly as `audio predict`
    labels it, the ones at or above --pseudo-threshold join the training set --pseudo-repeat
    times, RUN/pseudo_labels.csv and the report say so, and --resume reads the table back
    instead of labelling again.  Refused in one line, with no RUN left: no teacher, a teacher of
    other classes, an unlabelled clip that is a labelled training clip, a threshold no clip
    reaches."""
    clips = rows(DIGITS / "manifest.csv")
    groups = sorted({r["group"] for r in clips})
    train = tmp_path / "train.csv"
    with open(train, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "group"])
        w.writerows([[str(DIGITS / r["path"]), r["label"], r["group"]]
                     for r in clips if r["group"] in groups[:4]])
    unl = tmp_path / "unlabelled"
    unl.mkdir()
    for r in [r for r in clips if r["group"] in groups[4:]][:24]:
        shutil.copy(DIGITS / r["path"], unl / Path(r["path"]).name)
    teachers = [classifier[0], classifier_seed1]
    pred = tmp_path / "pred.csv"
    rc, _, err = seqmamba("audio", "predict", *[x for t in teachers for x in ("--model", t)],
                          unl, "--out", pred, "--no-progress")
    assert rc == 0, err
    labels = json.loads((teachers[0] / "final" / "config.json").read_text())["extra"]["labels"]
    want = {r["file"]: (r["label"], max(float(r[f"p_{n}"]) for n in labels)) for r in rows(pred)}
    threshold = float(np.median([c for _, c in want.values()]))
    common = ["--train", train, "--seconds", 0.5, "--val-every", 2, *TINY]
    run = tmp_path / "run"
    rc, out, err = seqmamba("audio", "finetune", *common, "--out", run, "--max-steps", 2,
                            "--unlabelled", unl, "--teacher", *teachers,
                            "--pseudo-threshold", threshold, "--pseudo-repeat", 3)
    assert rc == 0, err
    table = rows(run / "pseudo_labels.csv")
    assert {r["file"] for r in table} == set(want) and len(table) == 24
    for r in table:
        label, conf = want[r["file"]]
        assert r["label"] == label and abs(float(r["confidence"]) - conf) < 1e-5
        assert int(r["kept"]) == int(float(r["confidence"]) >= threshold)
    kept = sum(int(r["kept"]) for r in table)
    assert 0 < kept < 24
    rep = json.loads((run / "report.json").read_text())
    info = rep["pseudo_labels"]
    assert (info["clips"], info["kept"], info["repeat"]) == (24, kept, 3)
    assert sum(info["kept_per_label"].values()) == kept
    assert info["training_clips"] == rep["split"]["train_clips"] + 3 * kept
    assert f"pseudo-labels: {kept} of 24 --unlabelled clips kept" in out
    # resuming trains on the table as written, not on a fresh labelling
    with open(run / "pseudo_labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows([dict(r, kept=1) for r in table])
    rc, _, err = seqmamba("audio", "finetune", *common, "--out", run, "--max-steps", 4,
                          "--unlabelled", unl, "--teacher", *teachers, "--resume")
    assert rc == 0, err
    assert json.loads((run / "report.json").read_text())["pseudo_labels"]["kept"] == 24
    # --pseudo-balance: the teachers' probabilities re-weighted over the 24 clips first, as
    # `audio predict --balance` re-weights its table
    files = sorted(want)
    raw = torch.tensor([[float(r[f"p_{n}"]) for n in labels]
                        for r in sorted(rows(pred), key=lambda r: r["file"])])
    conf, top = balance(raw).max(-1)
    mid = float(conf.sort().values[11:13].mean())  # half kept, no clip on the threshold
    run_b = tmp_path / "run_balanced"
    rc, _, err = seqmamba("audio", "finetune", *common, "--out", run_b, "--max-steps", 1,
                          "--unlabelled", unl, "--teacher", *teachers, "--pseudo-balance",
                          "--pseudo-threshold", mid)
    assert rc == 0, err
    got = {r["file"]: r for r in rows(run_b / "pseudo_labels.csv")}
    assert [got[f]["label"] for f in files] == [labels[int(i)] for i in top]
    np.testing.assert_allclose([float(got[f]["confidence"]) for f in files], conf, atol=1e-4)
    assert [int(got[f]["kept"]) for f in files] == (conf >= mid).int().tolist()
    assert [got[f]["label"] for f in files] != [want[f][0] for f in files]  # it did re-weight
    assert json.loads((run_b / "report.json").read_text())["pseudo_labels"]["balance"] == 1.0
    # --pseudo-balance-by folder: two voices' folders of 12 clips, each balanced on its own
    by_name = {Path(f).name: f for f in files}
    names = sorted(by_name)
    for i, n in enumerate(names):
        (tmp_path / "two" / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        shutil.copy(by_name[n], tmp_path / "two" / "ab"[i % 2] / n)
    run_f = tmp_path / "run_folders"
    rc, _, err = seqmamba("audio", "finetune", *common, "--out", run_f, "--max-steps", 1,
                          "--unlabelled", tmp_path / "two", "--teacher", *teachers,
                          "--pseudo-balance", "--pseudo-balance-by", "folder",
                          "--pseudo-threshold", 1e-6)
    assert rc == 0, err
    got = {Path(r["file"]).name: r for r in rows(run_f / "pseudo_labels.csv")}
    raw_of = dict(zip(files, raw))
    for half in (names[0::2], names[1::2]):
        conf, top = balance(torch.stack([raw_of[by_name[n]] for n in half])).max(-1)
        assert [got[n]["label"] for n in half] == [labels[int(i)] for i in top]
        np.testing.assert_allclose([float(got[n]["confidence"]) for n in half], conf, atol=1e-4)
    assert json.loads((run_f / "report.json").read_text())["pseudo_labels"]["balance_by"] == \
        "folder"

    inside = DIGITS / rows(train)[0]["path"]
    for extra, needle in ((["--unlabelled", unl], "needs classifiers"),
                          (["--teacher", teachers[0]], "none were given"),
                          (["--unlabelled", unl, "--teacher", tones_model], "names the classes"),
                          (["--unlabelled", inside, "--teacher", teachers[0]],
                           "are labelled training clips too"),
                          (["--unlabelled", unl, "--teacher", teachers[0],
                            "--pseudo-threshold", 0.999], "lower --pseudo-threshold"),
                          (["--pseudo-balance"], "--pseudo-balance re-weights"),
                          (["--unlabelled", unl, "--teacher", teachers[0],
                            "--pseudo-balance-by", "folder"], "add --pseudo-balance"),
                          (["--unlabelled", *sorted(unl.glob("*.wav"))[:6], "--teacher",
                            teachers[0], "--pseudo-balance"], "clips as classes (10); got 6"),
                          (["--unlabelled", unl, "--teacher", teachers[0],
                            "--pseudo-balance", 0], "must be in (0, 1]")):
        rc, _, err = seqmamba("audio", "finetune", *common, "--out", tmp_path / "refused",
                              "--max-steps", 1, *extra)
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and needle in lines[0], err
        assert not (tmp_path / "refused").exists()
