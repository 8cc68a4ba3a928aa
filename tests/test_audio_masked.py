"""Masked-frame pretraining (``seqmamba audio pretrain --objective masked``): its targets, its
masks, what it learns, and the classifier that starts from it."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from dna_helpers import DATA, seqmamba
from pipelines.audio.masked_frames import (IGNORE, MaskedFrames, baseline_accuracies,
                                           frame_features, span_mask)
from seqmamba import MambaForSequenceClassification, MambaForTokenClassification

DIGITS = DATA / "audio" / "spoken_digits_espeak"
SR, FRAME = 8000, 80


def _sine(f, n, rng):
    t = np.arange(n) / SR
    return 0.5 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28))


def test_frame_features_are_aligned_with_the_models_frames():
    """A tone filling frames 20-39 of 60 (silence around it): the features' frame count is the
    model's (ceil(samples / frame)), and the loud frames are exactly those of the tone, give or
    take the one frame each side that the two-frame window reaches into."""
    rng = np.random.default_rng(0)
    x = np.zeros(60 * FRAME - 17)  # not a whole number of frames: the last one is padded
    x[20 * FRAME:40 * FRAME] = _sine(700, 20 * FRAME, rng)
    x += 1e-4 * rng.standard_normal(x.size)
    f = frame_features(torch.tensor(x, dtype=torch.float32), SR, FRAME)
    assert f.shape == (60, 2 * 20) and f.dtype == np.float32
    level = f[:, :20].max(1)  # the loudest band of each frame (mean-normalised log energies)
    loud = np.flatnonzero(level > level.max() - 3.0)
    assert 19 <= loud.min() <= 20 and 39 <= loud.max() <= 40
    quiet = np.r_[0:18, 42:60]
    assert level[quiet].max() < level.max() - 10  # silence is far below the tone


@pytest.mark.parametrize("frames,prob,span", [(140, 0.65, 10), (50, 0.3, 4), (7, 0.65, 10)])
def test_span_mask_masks_whole_spans_near_the_asked_share(frames, prob, span):
    rng = np.random.default_rng(frames)
    shares = []
    for _ in range(200):
        m = span_mask(frames, prob, span, rng)
        assert m.shape == (frames,) and m.any()
        # every run of masked frames is at least one span long (or reaches the end)
        edges = np.flatnonzero(np.diff(np.r_[0, m.astype(int), 0]))
        for start, stop in zip(edges[::2], edges[1::2]):
            assert stop - start >= span or stop == frames
        shares.append(m.mean())
    if frames >= 4 * span:  # spans overlap, so a little under prob is masked (wav2vec 2.0)
        assert prob * 0.6 < np.mean(shares) <= prob


def _clips(rng, count=6):
    """Clips whose every frame holds one value naming it (clip c, frame t: 1000 c + t + 1), so
    an item shows where each of its frames came from; random targets of 5 clusters."""
    lengths = rng.integers(10, 40, count)
    waves = [torch.arange(1, n + 1, dtype=torch.float32).add(1000 * c).repeat_interleave(FRAME)
             for c, n in enumerate(lengths)]
    targets = [rng.integers(0, 5, n) for n in lengths]
    return waves, targets


def test_masked_frames_silence_exactly_the_scored_frames():
    rng = np.random.default_rng(1)
    waves, targets = _clips(rng)
    ds = MaskedFrames(waves, targets, seq_len=30 * FRAME, frame=FRAME, prob=0.5, span=3,
                      seed=0, samples=40)
    shares = []
    for i in range(40):
        item = ds[i]
        x, labels = item["input_ids"], item["labels"]
        assert x.shape == (30 * FRAME,) and labels.shape == (30,)
        frames = x.view(30, FRAME)
        assert (frames == frames[:, :1]).all()  # frames are moved whole, never split
        ids = frames[:, 0].long()
        masked = labels != IGNORE
        assert masked.any() and (ids[masked] == 0).all()  # a masked frame is silence
        seen = ids[ids > 0]
        c = int(seen[0]) // 1000
        start = int(seen[0]) % 1000 - 1 - int(torch.nonzero(ids > 0)[0])
        n = min(30, len(targets[c]) - start)  # frames of the clip in the crop
        # every frame not masked is frame start + t of one clip, as recorded; after the clip
        # ends, padding: silent and not scored
        expect = 1000 * c + start + torch.arange(n) + 1
        assert torch.equal(ids[:n][~masked[:n]], expect[~masked[:n]])
        assert (ids[n:] == 0).all() and (labels[n:] == IGNORE).all()
        # the label of a masked frame is that clip's target there
        t = torch.nonzero(masked).flatten()
        assert (labels[t] == torch.from_numpy(targets[c][start + t.numpy()])).all()
        shares.append(float(masked[:n].float().mean()))
    assert 0.25 < np.mean(shares) < 0.6
    # a pure function of (seed, epoch, item); another epoch draws other crops and masks
    first = ds[7]
    assert torch.equal(first["input_ids"], ds[7]["input_ids"])
    ds.set_epoch(1)
    other = [ds[i] for i in range(40)]
    ds.set_epoch(0)
    assert sum(not torch.equal(ds[i]["labels"], o["labels"]) for i, o in enumerate(other)) > 30


def test_evaluation_items_are_each_clip_from_its_start_with_fixed_masks():
    rng = np.random.default_rng(2)
    waves, targets = _clips(rng)
    ds = MaskedFrames(waves, targets, seq_len=50 * FRAME, frame=FRAME, prob=0.5, span=3, seed=0)
    assert len(ds) == len(waves)
    for i, (w, t) in enumerate(zip(waves, targets)):
        item = ds[i]
        n = len(t)
        labels = item["labels"]
        assert (labels[n:] == IGNORE).all() and (item["input_ids"][n * FRAME:] == 0).all()
        keep = (labels[:n] == IGNORE).numpy()
        frames = item["input_ids"][:n * FRAME].view(n, FRAME)
        assert torch.equal(frames[keep], w.view(n, FRAME)[keep])
        assert (labels[:n][~keep] == torch.from_numpy(t[~keep])).all()
    assert torch.equal(ds[3]["labels"], MaskedFrames(waves, targets, 50 * FRAME, FRAME, 0.5, 3,
                                                     seed=0)[3]["labels"])


def test_baselines_score_the_commonest_cluster_and_the_nearest_unmasked_frame():
    """Worked by hand: targets 0 0 1 2 2 with frames 1 and 3 masked. The commonest training
    cluster (1) is right on neither; the nearest unmasked frame (a tie takes the earlier: frame
    0 for frame 1, frame 2 for frame 3) is right on frame 1 only."""

    class Fixed(MaskedFrames):
        def __getitem__(self, i):
            labels = torch.full((5,), IGNORE)
            labels[[1, 3]] = torch.tensor([0, 2])
            return {"input_ids": torch.zeros(5 * FRAME), "labels": labels}

    ds = Fixed([torch.zeros(5 * FRAME)], [np.array([0, 0, 1, 2, 2])], 5 * FRAME, FRAME, 0.5, 1, 0)
    b = baseline_accuracies(ds, [np.array([1, 1, 1, 0, 2])])
    assert b == {"majority": 0.0, "nearest_unmasked": 0.5, "masked_frames": 2}


@pytest.fixture(scope="module")
def masked_run(tmp_path_factory):
    """300 steps of masked-frame pretraining on 40 clips of 2-3 steady tones each (of 4
    pitches, a little noise): what hides under a mask is what sounds around it."""
    tmp = tmp_path_factory.mktemp("mk")
    rng = np.random.default_rng(0)
    (tmp / "tones").mkdir()
    for i in range(40):
        parts = [rng.uniform(0.2, 0.6) * np.sin(2 * np.pi * rng.choice([300, 800, 1600, 2800])
                                                * np.arange(int(rng.integers(15, 30)) * FRAME)
                                                / SR + rng.uniform(0, 6.3))
                 for _ in range(int(rng.integers(2, 4)))]
        x = np.concatenate(parts)
        sf.write(str(tmp / "tones" / f"{i:02d}.wav"),
                 (x + 0.01 * rng.standard_normal(x.size)).astype(np.float32), SR)
    run = tmp / "run"
    rc, out, err = seqmamba("audio", "pretrain", "--objective", "masked", "--train",
                            tmp / "tones", "--split", "stratified", "--out", run,
                            "--sample-rate", SR, "--frame-size", FRAME, "--frontend", "filterbank",
                            "--frontend-norm", "cmn", "--seq-len", 100 * FRAME, "--clusters", 8,
                            "--max-steps", 300, "--val-every", 300, "--d-model", 32,
                            "--n-layer", 1, "--d-state", 4, "--batch-size", 8,
                            "--warmup-steps", 4, "--lr", 5e-3, "--no-progress")
    assert rc == 0, err
    return run, out


def test_masked_pretraining_learns_what_the_hidden_frames_are(masked_run):
    """After 300 steps the model names the cluster of silenced frames far more often than the
    commonest cluster does, about as often as copying the nearest unmasked frame's (which
    sees the true clusters; the model hears only the sound around the gap)."""
    run, out = masked_run
    rep = json.loads((run / "report.json").read_text())
    assert rep["task"] == "audio-masked" and rep["clusters"] == 8 and rep["steps"] == 300
    assert rep["split"]["how"] == "stratified" and rep["val_masked_frames"] > 200
    base = rep["baseline_masked_acc"]
    assert rep["val_masked_acc"] > base["majority"] + 0.3, rep
    assert rep["val_masked_acc"] > 0.8 * base["nearest_unmasked"], rep
    assert "named right" in out
    cfg = json.loads((run / "final" / "config.json").read_text())
    assert cfg["extra"]["task"] == "audio-masked" and cfg["frontend"] == "filterbank"
    assert cfg["bidirectional"] == "add" and cfg["num_labels"] == 8


def test_a_classifier_starts_from_the_pretrained_front_end_and_backbone(tmp_path, masked_run):
    run, _ = masked_run
    token = MambaForTokenClassification.from_pretrained(run / "final")
    with pytest.warns(UserWarning, match="starts from its initialisation"):
        clf = MambaForSequenceClassification.from_pretrained(run / "final", num_labels=10,
                                                             pooling="mean")
    own = clf.state_dict()
    shared = [k for k in token.state_dict() if not k.startswith("classifier.")]
    assert any(k.startswith("backbone.embedding.conv") for k in shared)
    for k in shared:
        assert torch.equal(own[k], token.state_dict()[k]), k
    # the command: fine-tuning from it trains, and keeps its front end settings
    rc, _, err = seqmamba("audio", "finetune", "--init", run, "--train", DIGITS,
                          "--out", tmp_path / "ft", "--seconds", 1.0, "--max-steps", 3,
                          "--val-every", 3, "--batch-size", 8, "--no-progress",
                          "--baseline", "none")
    assert rc == 0, err
    cfg = json.loads((tmp_path / "ft" / "final" / "config.json").read_text())
    assert cfg["frontend"] == "filterbank" and cfg["extra"]["task"] == "audio-classify"
    assert cfg["extra"]["sample_rate"] == SR and cfg["num_labels"] == 10


def test_bad_masked_options_and_models_give_one_line_errors(tmp_path, masked_run):
    run, _ = masked_run
    wav = tmp_path / "a.wav"
    sf.write(str(wav), np.zeros(800, np.float32), SR)
    base = ("pretrain", "--train", DIGITS, "--out", tmp_path / "pt")
    cases = [
        ((*base, "--frontend", "filterbank"), "for --objective masked"),
        ((*base, "--objective", "masked", "--seq-len", 1000, "--frame-size", 160),
         "multiple of --frame-size"),
        ((*base, "--objective", "masked", "--clusters", 1), "--clusters >= 2"),
        ((*base, "--objective", "masked", "--mask-prob", 0), "--mask-prob in (0, 1]"),
        (("predict", "--model", run, wav, "--out", tmp_path / "p.csv"), "audio-masked"),
    ]
    for args, needle in cases:
        rc, _, stderr = seqmamba("audio", *args)
        lines = stderr.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and lines[0].startswith("seqmamba: "), stderr
        assert needle in lines[0], lines[0]
    assert not (tmp_path / "pt").exists() and not (tmp_path / "p.csv").exists()
