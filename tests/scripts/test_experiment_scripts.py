"""The research scripts of experiments/: the leave-one-speaker-out harness (audio_fsdd.py), the
channel and balancing studies."""

import math
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from audio_helpers import _band_db, biased_batch

@pytest.mark.parametrize("kind", ["white", "babble"])
def test_noise_is_added_at_the_asked_signal_to_noise_ratio(kind):
    """experiments/audio_fsdd.py's noisy copies: white noise or babble (three other clips) at
    SNR 20, 10 and 5 dB over the clip's power."""
    import sys as _sys

    _sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
    from audio_fsdd import add_noise

    rng = np.random.default_rng(0)
    w = torch.from_numpy(np.sin(np.arange(8000) / 7).astype(np.float32) * 0.3)
    pool = [torch.from_numpy(rng.standard_normal(12000).astype(np.float32)) for _ in range(5)]
    for snr in (20, 10, 5):
        noisy = add_noise(w, kind, snr, np.random.default_rng(1), pool)
        n = noisy - w
        got = 10 * math.log10(float(w.pow(2).mean()) / float(n.pow(2).mean()))
        assert abs(got - snr) < 1e-3


def test_loso_benchmark_ensemble_averages_the_models_probabilities():
    """experiments/audio_fsdd.py --ensemble: each clip's class is the argmax of the members'
    mean probabilities, not a vote: three members voting 0, 1 and 2 give the class the
    confident one is sure of."""
    import sys as _sys

    _sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
    from audio_fsdd import model_predict

    class Fixed(torch.nn.Module):  # the same logits for every clip
        def __init__(self, logits):
            super().__init__()
            self.logits = torch.tensor(logits)

        def forward(self, x):
            return types.SimpleNamespace(logits=self.logits.expand(x.shape[0], -1))

    # class 0 wins narrowly in one model and loses by far in the other
    a, b = Fixed([2.0, 1.8, -5.0]), Fixed([-3.0, 3.0, 2.9])
    extra = {"seconds": 0.1, "sample_rate": 8000}
    waves = [torch.randn(600) for _ in range(3)]
    assert list(model_predict([a], extra, waves)) == [0, 0, 0]
    assert list(model_predict([b], extra, waves)) == [1, 1, 1]
    mean = (torch.tensor([2.0, 1.8, -5.0]).softmax(-1) + torch.tensor([-3.0, 3.0, 2.9]).softmax(-1))
    assert list(model_predict([a, b], extra, waves)) == [int(mean.argmax())] * 3
    c = Fixed([0.0, 0.0, 9.0])
    assert list(model_predict([a, b, c], extra, waves)) == [2, 2, 2]


def test_loso_benchmark_drops_more_speakers_from_training(tmp_path):
    """experiments/audio_fsdd.py --drop-speakers K: each fold also leaves the K speakers after
    its held-out one out of training, so each speaker is dropped by K folds and never by his
    own; the training manifest loses exactly their clips and keeps every other row whole."""
    import csv
    import sys as _sys

    _sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
    from audio_fsdd import SPEAKERS, dropped_speakers, mixed_manifest

    for k in (1, 2):
        folds = {s: dropped_speakers(s, k) for s in SPEAKERS}
        assert all(len(set(d)) == k and s not in d for s, d in folds.items())
        for s in SPEAKERS:
            assert sum(s in d for d in folds.values()) == k
    rows = [{"path": f"/clips/{g}_{i}.wav", "label": str(i % 10), "group": g}
            for g in (*SPEAKERS, "espeak_en", "") for i in range(7)]
    src = tmp_path / "all.csv"
    with open(src, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label", "group"])
        w.writeheader()
        w.writerows(rows)
    gone = dropped_speakers("lucas", 2)
    out = mixed_manifest([src], tmp_path / "kept.csv", drop=set(gone))
    with open(out, newline="") as f:
        kept = list(csv.DictReader(f))
    assert kept == [r for r in rows if r["group"] not in gone]
    assert src.read_text().count("\n") == len(rows) + 1  # the input is not touched


def test_loso_benchmark_confusion_rows_count_each_digit_heard_as_each_other():
    import sys as _sys

    _sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
    from audio_fsdd import confusion_rows

    rng = np.random.default_rng(3)
    names = ["one", "three", "two", "six"]
    truth = rng.integers(0, 4, 200)
    pred = np.where(rng.random(200) < 0.7, truth, rng.integers(0, 4, 200))
    rows = confusion_rows("nicolas", names, truth, pred)
    assert sum(r["clips"] for r in rows) == 200 and all(r["clips"] > 0 for r in rows)
    assert {r["held_out"] for r in rows} == {"nicolas"}
    for r in rows:
        i, j = names.index(r["label"]), names.index(r["predicted"])
        assert r["clips"] == int(((truth == i) & (pred == j)).sum())
    # a pair that never happens has no row
    pred[truth == 1] = 1
    assert not [r for r in confusion_rows("x", names, truth, pred)
                if r["label"] == "three" and r["predicted"] != "three"]


def test_loso_benchmark_trains_each_fold_on_the_recipes_own_sets(tmp_path):
    """experiments/audio_fsdd.py measures the recipe as shipped: the shipped audio_fsdd trains
    on FSDD plus the bundled English and accented synthetic voices, its earlier versions on
    FSDD and the English voices, and on FSDD alone; a
    recipe without FSDD (whose speakers the folds hold out) is refused; the joined manifest
    holds every clip of every set once, by absolute path, with its own group."""
    import csv
    import sys as _sys

    _sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
    from audio_fsdd import mixed_manifest, recipe_path, training_sets

    root = Path(__file__).resolve().parents[2]
    fsdd = (root / "data/audio/fsdd/manifest.csv").resolve()
    synth = (root / "data/audio/synth_digits_8k/manifest.csv").resolve()
    accents = (root / "data/audio/accent_digits_8k/manifest.csv").resolve()
    assert training_sets(recipe_path("audio_fsdd"), None) == [fsdd, synth, accents]
    compact = root / "experiments/recipes/audio_fsdd_compact.yaml"
    assert training_sets(recipe_path(str(compact)), accents) == [fsdd, synth, accents]
    before_trim = root / "experiments/recipes/audio_fsdd_accents.yaml"
    assert training_sets(recipe_path(str(before_trim)), None) == [fsdd, synth, accents]
    # each kept version is the one after it less the one change made since
    from pipelines.audio.finetune import build_parser
    from pipelines.runs import parse_with_recipe

    def settings(recipe):
        a = vars(parse_with_recipe(build_parser(), ["--config", str(recipe), "--out", "r"]))
        a["train"] = training_sets(recipe, None)  # resolved: the wheel's copy is a link
        return {k: v for k, v in a.items() if k != "config"}

    before_pooling = root / "experiments/recipes/audio_fsdd_trim.yaml"
    before_band_limit = root / "experiments/recipes/audio_fsdd_max.yaml"
    now, max_pooled, mean_pooled, untrimmed = (
        settings(recipe_path("audio_fsdd")), settings(before_band_limit),
        settings(before_pooling), settings(before_trim))
    assert {k for k in now if now[k] != max_pooled[k]} == {"band_limit"}
    assert now["band_limit"] == 0.5 and max_pooled["band_limit"] == 0
    assert {k for k in now if max_pooled[k] != mean_pooled[k]} == {"pooling"}
    assert max_pooled["pooling"] == "max" and mean_pooled["pooling"] == "mean"
    assert {k for k in now if mean_pooled[k] != untrimmed[k]} == {"trim"} and untrimmed["trim"] == 0
    old = root / "experiments/recipes/audio_fsdd_fsdd_only.yaml"
    assert training_sets(recipe_path(str(old)), None) == [fsdd]
    assert training_sets(recipe_path(str(old)), synth) == [fsdd, synth]
    bad = tmp_path / "r.yaml"
    bad.write_text(f"train: {synth}\n")
    with pytest.raises(SystemExit, match="folds"):
        training_sets(recipe_path(str(bad)), None)
    with pytest.raises(SystemExit, match="no such recipe"):
        recipe_path("no_such_recipe")
    out = mixed_manifest([fsdd, synth], tmp_path / "m.csv")
    rows = list(csv.DictReader(open(out)))
    counts = [sum(1 for _ in csv.DictReader(open(m))) for m in (fsdd, synth)]
    assert len(rows) == sum(counts) == len({r["path"] for r in rows})
    assert all(Path(r["path"]).is_absolute() and Path(r["path"]).is_file() for r in rows[::97])
    groups = {r["group"] for r in rows}
    assert {"george", "jackson", "lucas", "nicolas"} <= groups and len(groups) > 4


def test_loso_benchmark_resumes_a_stopped_fold_and_skips_a_finished_one(tmp_path, monkeypatch):
    """experiments/audio_fsdd.py: a fold stopped part way (a last checkpoint and no report, e.g.
    cut off at the end of a GPU lease) continues with --resume, a finished one is not trained
    again, and --train-set options (how a fold runs) reach finetune beside --set's."""
    import argparse
    import sys as _sys

    _sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
    import audio_fsdd

    calls = []
    monkeypatch.setattr(audio_fsdd.subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    a = argparse.Namespace(workdir=tmp_path, recipe="audio_fsdd", mix=None, pretrain=0,
                           drop_speakers=0, recipe_file=audio_fsdd.recipe_path("audio_fsdd"),
                           set=["seed=2"], train_set=["workers=3", "precision=32-true"],
                           adapt=[])
    (tmp_path / "lucas" / "checkpoints").mkdir(parents=True)
    (tmp_path / "lucas" / "checkpoints" / "last.ckpt").write_bytes(b"stopped")
    (tmp_path / "nicolas").mkdir()
    (tmp_path / "nicolas" / "report.json").write_text("{}")
    for s in ("george", "lucas", "nicolas"):
        assert audio_fsdd.train_fold(s, a) == tmp_path / s
    assert [c[c.index("--out") + 1] for c in calls] == [str(tmp_path / "george"),
                                                         str(tmp_path / "lucas")]
    assert "--resume" not in calls[0] and calls[1][-1] == "--resume"
    for c in calls:
        assert c[c.index("--seed") + 1] == "2" and c[c.index("--workers") + 1] == "3"
        assert c[c.index("--precision") + 1] == "32-true"


def test_loso_benchmark_adapts_a_fold_from_the_held_out_voice_without_his_labels(tmp_path,
                                                                                 monkeypatch):
    """experiments/audio_fsdd.py --adapt: the fold starts from the first teacher's model, every
    teacher labels, and the held-out speaker comes in as his 500 recordings named by a pattern
    (no manifest, so no label); the scored row counts the kept pseudo-labels and how many of
    them are right, against the true labels."""
    import argparse
    import csv as _csv
    import glob
    import sys as _sys

    _sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
    import audio_fsdd
    from pipelines.audio.datasets import bundled_set, read_clips

    calls = []
    monkeypatch.setattr(audio_fsdd.subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    teachers = [tmp_path / "fsdd_loso", tmp_path / "fsdd_loso_seed1"]
    a = argparse.Namespace(workdir=tmp_path / "fsdd_loso_adapt", recipe="audio_fsdd", mix=None,
                           pretrain=0, drop_speakers=0,
                           recipe_file=audio_fsdd.recipe_path("audio_fsdd"),
                           set=[], train_set=[], adapt=teachers)
    audio_fsdd.train_fold("jackson", a)
    (cmd,) = calls
    assert cmd[cmd.index("--init") + 1] == str(teachers[0] / "jackson")
    i = cmd.index("--teacher")
    assert cmd[i + 1:i + 3] == [str(t / "jackson") for t in teachers]
    pattern = cmd[cmd.index("--unlabelled") + 1]
    clips = read_clips(bundled_set("fsdd")["manifest"])
    his = sorted(c.path for c in clips if c.group == "jackson")
    assert sorted(glob.glob(pattern)) == his and len(his) == 500
    assert not pattern.endswith(".csv")

    run = tmp_path / "run"
    run.mkdir()
    truth = {c.path: c.label for c in clips if c.group == "jackson"}
    rows = [{"file": p, "label": truth[p] if k % 3 else "zero" if truth[p] != "zero" else "one",
             "confidence": 0.95, "kept": int(k < 30)} for k, p in enumerate(his)]
    with open(run / "pseudo_labels.csv", "w", newline="") as f:
        w = _csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    got = audio_fsdd.pseudo_label_quality([run], clips, "jackson")
    assert got == {"pseudo_kept": 30, "pseudo_acc": round(20 / 30, 4)}
    assert audio_fsdd.pseudo_label_quality([run, run], clips, "jackson") == {}


def test_channel_benchmark_filters_move_the_bands_they_name():
    """experiments/audio_channels.py: each evaluation channel cuts or lifts its band and leaves
    the rest, and 'as recorded' is the clip itself."""
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[2] / "experiments"))
    from audio_channels import CHANNELS

    sr = 8000
    x = torch.randn(sr, generator=torch.Generator().manual_seed(2)) * 0.1
    assert torch.equal(CHANNELS["as recorded"](x, sr), x)
    lp, hp, tr = (CHANNELS[k](x, sr) for k in ("low-pass 2 kHz", "high-pass 300 Hz",
                                               "treble +10 dB"))
    assert _band_db(lp, x, sr, 3400, 3900) < -10 and abs(_band_db(lp, x, sr, 200, 800)) < 1
    assert _band_db(hp, x, sr, 40, 90) < -10 and abs(_band_db(hp, x, sr, 1500, 3000)) < 1
    assert _band_db(tr, x, sr, 3400, 3900) > 7 and abs(_band_db(tr, x, sr, 100, 500)) < 1


def test_balance_benchmark_draws_the_batches_it_names_and_scores_both_sides():
    """experiments/audio_balance.py: each kind of batch holds what its name says, and a biased
    model on balanced batches gains from balancing while skewed batches are scored too."""
    import sys
    from pathlib import Path

    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
    from audio_balance import batches, score

    y = np.repeat(np.arange(10), 50)
    seen = {}
    for name, ix in batches(y, np.random.default_rng(0), draws=3):
        counts = np.bincount(y[ix], minlength=10)
        seen.setdefault(name, []).append(counts)
        if name == "all":
            assert (counts == 50).all()
        elif name.startswith("stratified"):
            assert (counts == int(name.split()[1]) // 10).all() and len(set(ix)) == len(ix)
        elif name == "random 100":
            assert counts.sum() == 100 and len(set(ix)) == 100
        elif name == "seven digits":
            assert counts.sum() == 200 and (counts > 0).sum() == 7
        else:
            assert name == "skewed" and counts.sum() == 500
    assert {k: len(v) for k, v in seen.items()} == {
        "all": 1, "stratified 100": 3, "stratified 20": 3, "random 100": 3, "skewed": 3,
        "seven digits": 3}
    assert max(c.max() / max(c.min(), 1) for c in seen["skewed"]) > 3  # really skewed

    yt, _, p, _ = biased_batch(5, n_per_class=50)
    got = score(p, yt.numpy(), [1.0, 0.3], draws=2, seed=0)
    before, after, clips = np.array(got[("all", 1.0)]).T
    assert clips[0] == 500 and after[0] > before[0] + 0.05
    assert len(got[("skewed", 0.3)]) == 2
