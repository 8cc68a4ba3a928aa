"""Audio data layer: reading WAV/FLAC, resampling, mu-law, crops, manifests, splits, datasets.

Runs on the bundled spoken digits (data/audio/) and on files synthesised here with soundfile.
"""

import hashlib
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from pipelines.audio.crop import center_crop, place, random_crop
from pipelines.audio.datasets import (AudioClips, Clip, bundled_set, collate, label_names,
                                      read_clips, read_folder, read_manifest_csv, split_clips)
from pipelines.audio.io import audio_info, normalize_peak, read_audio, write_wav_atomic
from pipelines.audio.mulaw import mulaw_decode, mulaw_encode
from pipelines.errors import InputError

from dna_helpers import DATA

DIGITS = DATA / "audio" / "spoken_digits_espeak"
WORDS = "zero one two three four five six seven eight nine".split()


def tone(freq=440.0, sr=16000, seconds=1.0, amp=0.5):
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def wav(path, data, sr=16000, subtype="PCM_16", format=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sr, subtype=subtype, format=format)
    return path


def peak_hz(x, sr):
    spec = np.abs(np.fft.rfft(np.asarray(x, dtype=np.float64)))
    return np.fft.rfftfreq(len(x), 1 / sr)[int(spec.argmax())]


# ---------------------------------------------------------------- bundled data

def test_bundled_digits_checksums_manifest_and_clips():
    entry = bundled_set("spoken_digits_espeak")  # verifies manifest.csv and metadata.json
    lines = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
                    for p in sorted(DIGITS.glob("*.wav")))
    assert hashlib.sha256(lines.encode()).hexdigest() == entry["wavs_sha256sum_digest"]

    meta = json.loads((DIGITS / "metadata.json").read_text())
    clips = read_clips(DIGITS)  # the folder holds manifest.csv: read through it
    assert len(clips) == len(meta) == entry["clips"] == 200
    for c, m in zip(clips, meta):
        assert os.path.basename(c.path) == m["file"]
        assert c.label == m["word"] == WORDS[m["label"]]
        assert c.group == m["voice"].split("+")[0]
    assert label_names(clips) == entry["labels"] == sorted(WORDS)
    counts = {g: sum(c.group == g for c in clips) for g in entry["groups"]}
    assert counts == entry["groups"]

    ds = AudioClips(clips, num_samples=None)
    batch = collate([ds[i] for i in range(len(ds))])
    assert batch["waveform"].shape == (200, 16000) and batch["waveform"].dtype == torch.float32
    assert batch["label"].tolist() == [sorted(WORDS).index(c.label) for c in clips]
    assert 0.05 < float(batch["waveform"].abs().amax(1).median()) <= 1.0


def test_bundled_fsdd_checksums_manifest_and_speaker_split():
    """The real-speaker set: every WAV as recorded (checksum digest), labels and speakers
    from the file names, 8 kHz mono clips of 0.2-2.3 s, and the speaker hold-out split."""
    entry = bundled_set("fsdd")  # verifies manifest.csv
    rec = Path(entry["manifest"]).parent / "recordings"
    lines = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
                    for p in sorted(rec.glob("*.wav")))
    assert hashlib.sha256(lines.encode()).hexdigest() == entry["wavs_sha256sum_digest"]
    clips = read_clips(entry["manifest"])
    assert len(clips) == entry["clips"] == 2000
    for c in clips:
        digit, speaker, _ = os.path.basename(c.path)[:-4].split("_")
        assert c.label == WORDS[int(digit)] and c.group == speaker
    assert {g: sum(c.group == g for c in clips) for g in entry["groups"]} == entry["groups"]
    info = [sf.info(c.path) for c in clips[::50]]
    assert {i.samplerate for i in info} == {8000} and {i.channels for i in info} == {1}
    assert all(0.1 < i.duration < 2.5 for i in info)
    args = {k: v for k, v in entry["splits"]["speaker-holdout"].items() if k != "description"}
    s = split_clips(clips, **args)
    assert {c.group for c in s["val"]} == {"nicolas"} and len(s["train"]) == 1500


def _assert_flac_digests(entry: dict, folders) -> None:
    """Each folder's FLACs hash to the digest data_manifests/audio.yaml records for it
    (``cd FOLDER && LC_ALL=C sha256sum *.flac | sha256sum``)."""
    root = Path(entry["manifest"]).parent
    for folder in folders:
        lines = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
                        for p in sorted((root / folder).glob("*.flac")))
        assert hashlib.sha256(lines.encode()).hexdigest() == entry[f"{folder}_flacs_sha256sum_digest"]


def test_bundled_compact_synthetic_set_checksums_and_balance():
    """The compact synthetic voices: every FLAC as written (checksum digests), 200 clips of
    each digit spread evenly over the 12 voice groups, one-second 8 kHz mono clips that load
    through the same reader as the real speakers."""
    entry = bundled_set("synth_digits_8k")  # verifies manifest.csv
    _assert_flac_digests(entry, ("espeak", "flite"))
    clips = read_clips(entry["manifest"])
    assert len(clips) == entry["clips"] == 2000
    assert {w: sum(c.label == w for c in clips) for w in WORDS} == {w: 200 for w in WORDS}
    per_group = {g: sum(c.group == g for c in clips) for g in entry["groups"]}
    assert per_group == entry["groups"] and len(per_group) == 12
    for w in WORDS:  # within a digit, groups differ by at most one clip
        counts = [sum(c.group == g and c.label == w for c in clips) for g in per_group]
        assert max(counts) - min(counts) <= 1
    info = [sf.info(c.path) for c in clips[::100]]
    assert {(i.samplerate, i.channels, i.format) for i in info} == {(8000, 1, "FLAC")}
    assert all(abs(i.duration - 1.0) < 1e-3 for i in info)


def _data_script(name: str):
    """data/audio/NAME.py imported by path (the data scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, DATA / "audio" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bundled_accented_voices_checksums_balance_and_length():
    """The accented voices: every FLAC as written (checksum digests), 6 clips of each digit per
    voice over 13 espeak-ng languages and 10 festival voices, 8 kHz mono, and no clip longer
    than the audio_fsdd window (1.4 s), so no training crop cuts a digit."""
    entry = bundled_set("accent_digits_8k")  # verifies manifest.csv
    _assert_flac_digests(entry, ("espeak", "festival"))
    clips = read_clips(entry["manifest"])
    assert len(clips) == entry["clips"] == 1380
    groups = {c.group for c in clips}
    assert groups == set(entry["groups"]) and len(groups) == 23
    assert {c.group.split(":")[0] for c in clips} == {"espeak", "festival"}
    for g in groups:
        assert {w: sum(c.group == g and c.label == w for c in clips) for w in WORDS} == \
            {w: 6 for w in WORDS}
    info = [sf.info(c.path) for c in clips]
    assert {(i.samplerate, i.channels, i.format) for i in info} == {(8000, 1, "FLAC")}
    assert all(0.1 < i.duration <= 1.4 for i in info)


def test_accent_respellings_cover_every_voice_and_digit():
    """gen_accents.py: every voice's language has one respelling per digit, so a voice never
    reads a word in its own spelling rules."""
    ga = _data_script("gen_accents")
    for lang in list(ga.ESPEAK) + list(ga.FESTIVAL.values()):
        words = ga.RESPELLINGS[lang].split()
        assert len(words) == len(ga.DIGITS) == 10 and len(set(words)) == 10, lang
    assert ga.RESPELLINGS["en"].split() == list(ga.DIGITS)


def test_compact_synth_pick_spreads_each_digit_over_the_groups():
    cs = _data_script("compact_synth")
    rows = [{"path": f"{g}/{w}_{i}.wav", "label": w, "group": g}
            for g, n in (("a", 9), ("b", 3), ("c", 9)) for w in ("one", "two") for i in range(n)]
    got = cs.pick(rows, 10, seed=0)
    assert got == cs.pick(rows, 10, seed=0)  # the same seed picks the same clips
    for w in ("one", "two"):
        mine = [r for r in got if r["label"] == w]
        n = {g: sum(r["group"] == g for r in mine) for g in "abc"}
        assert len(mine) == 10 and n["b"] == 3 and sorted((n["a"], n["c"])) == [3, 4]
        assert len({r["path"] for r in mine}) == 10  # no clip twice
    with pytest.raises(SystemExit, match="only 21 clips"):
        cs.pick(rows, 22, seed=0)


def test_bundled_splits_as_described():
    entry = bundled_set("spoken_digits_espeak", verify=False)
    clips = read_clips(entry["manifest"])
    args = {k: v for k, v in entry["splits"]["accent-holdout"].items() if k != "description"}
    s = split_clips(clips, **args)
    assert sorted({c.group for c in s["val"]}) == ["en-gb-scotland", "en-gb-x-gbcwmd"]
    assert (len(s["train"]), len(s["val"])) == (151, 49)
    assert label_names(s["train"]) == label_names(s["val"]) == sorted(WORDS)
    args = {k: v for k, v in entry["splits"]["stratified"].items() if k != "description"}
    s = split_clips(clips, **args)
    assert (len(s["train"]), len(s["val"])) == (160, 40)
    assert all(sum(c.label == w for c in s["val"]) == 4 for w in WORDS)


# ---------------------------------------------------------------- reading and writing

@pytest.mark.parametrize("ext, fmt, subtype, tol", [
    ("wav", "WAV", "PCM_U8", 1 / 64),  # 8-bit WAV is unsigned
    ("wav", "WAV", "PCM_16", 1e-4),
    ("wav", "WAV", "PCM_24", 1e-6),
    ("wav", "WAV", "PCM_32", 1e-7),
    ("wav", "WAV", "FLOAT", 0),
    ("wav", "WAV", "DOUBLE", 1e-7),
    ("flac", "FLAC", "PCM_16", 1e-4),
    ("flac", "FLAC", "PCM_24", 1e-6),
])
def test_reads_pcm_float_and_flac(tmp_path, ext, fmt, subtype, tol):
    x = tone(440, 16000, 0.5)
    p = wav(tmp_path / f"a.{ext}", x, 16000, subtype)
    info = audio_info(p)
    assert (info.format, info.subtype, info.frames, info.channels) == (fmt, subtype, 8000, 1)
    w, sr = read_audio(p)
    assert sr == 16000 and w.dtype == torch.float32 and w.shape == (1, 8000)
    assert float((w[0] - torch.from_numpy(x)).abs().max()) <= tol


def test_stereo_downmix_or_channels_kept(tmp_path):
    left, right = tone(300, amp=0.6), tone(700, amp=0.2)
    p = wav(tmp_path / "st.wav", np.stack([left, right], 1), subtype="FLOAT")
    w, _ = read_audio(p)
    assert w.shape == (1, 16000)
    assert torch.allclose(w[0], torch.from_numpy((left + right) / 2), atol=1e-7)
    w2, _ = read_audio(p, mono=False)
    assert w2.shape == (2, 16000) and torch.equal(w2[1], torch.from_numpy(right))


@pytest.mark.parametrize("sr", [8000, 22050, 44100])
def test_resampled_to_16k_keeps_length_and_frequency(tmp_path, sr):
    n = sr  # 1 s
    p = wav(tmp_path / f"r{sr}.wav", tone(440, sr, 1.0), sr)
    w, orig = read_audio(p, target_sr=16000)
    assert orig == sr
    assert w.shape == (1, math.ceil(n * 16000 / sr)) == (1, 16000)
    assert abs(peak_hz(w[0], 16000) - 440) <= 1.0
    # a tone above the new Nyquist (8 kHz) is filtered out, not aliased
    if sr > 20000:
        hi = wav(tmp_path / f"hi{sr}.wav", tone(10000, sr, 1.0), sr)
        assert float(read_audio(hi)[0][0, 1000:-1000].abs().max()) < 0.02
    w_same, _ = read_audio(p, target_sr=None)
    assert w_same.shape == (1, n)


def test_normalize_peak_only_scales_down():
    loud = torch.tensor([0.2, -1.6, 0.8])
    assert torch.allclose(normalize_peak(loud), loud * (0.95 / 1.6))
    quiet = torch.tensor([0.1, -0.3])
    assert torch.equal(normalize_peak(quiet), quiet)
    silence = torch.zeros(100)
    out = normalize_peak(silence)
    assert torch.equal(out, silence) and torch.isfinite(out).all()
    assert normalize_peak(torch.zeros(0)).numel() == 0
    assert float(normalize_peak(loud, peak=0.5).abs().max()) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        normalize_peak(loud, peak=0)


def test_write_wav_atomic_round_trip_and_failure_leaves_old_file(tmp_path):
    p = tmp_path / "out" / "clip.wav"
    x = torch.from_numpy(tone(440, 16000, 0.25))
    write_wav_atomic(p, x, 16000)
    assert audio_info(p).subtype == "PCM_16"
    back, sr = read_audio(p)
    assert sr == 16000 and float((back[0] - x).abs().max()) < 1e-4
    write_wav_atomic(p, torch.tensor([[2.0, -3.0, 0.5], [0.0, 0.0, 0.0]]), 8000)  # overwrite
    back, sr = read_audio(p, target_sr=None, mono=False)
    assert sr == 8000 and back.shape == (2, 3)
    assert back[0, 0] > 0.999 and back[0, 1] == -1.0  # clipped, not wrapped round
    before = p.read_bytes()
    with pytest.raises(ValueError):
        write_wav_atomic(p, torch.tensor([0.1, float("nan")]), 16000)
    assert p.read_bytes() == before
    assert sorted(f.name for f in p.parent.iterdir()) == ["clip.wav"]  # no temp files left


def _bad_file(tmp_path, case):
    """(path, read_audio kwargs) of one kind of bad input."""
    good = wav(tmp_path / "good.wav", tone(440, 16000, 1.0))
    p = tmp_path / f"{case}.wav"
    kw = {}
    if case == "missing":
        pass
    elif case == "empty":
        p.write_bytes(b"")
    elif case == "header_cut":
        p.write_bytes(good.read_bytes()[:20])
    elif case == "data_cut":
        p.write_bytes(good.read_bytes()[:1000])
    elif case == "text":
        p.write_text("path,label\nthis is not audio\n")
    elif case == "binary":
        p.write_bytes(np.random.default_rng(0).bytes(3000))
    elif case == "no_samples":
        wav(p, np.zeros(0, np.float32))
    elif case in ("nan", "inf"):
        x = tone()
        x[1234] = np.nan if case == "nan" else np.inf
        wav(p, x, subtype="FLOAT")
    elif case == "too_long":
        wav(p, tone(440, 8000, 3.0), 8000)
        kw = {"max_seconds": 2}
    elif case == "flac_cut":
        f = wav(tmp_path / "good.flac", tone(440, 16000, 1.0) + 0.01 * np.random.default_rng(
            0).standard_normal(16000).astype(np.float32))
        p = tmp_path / "flac_cut.flac"
        p.write_bytes(f.read_bytes()[:f.stat().st_size // 2])
    elif case == "folder":
        p.mkdir()
    return p, kw


@pytest.mark.parametrize("case, needle", [
    ("missing", "no such file"),
    ("empty", "empty file (0 bytes)"),
    ("header_cut", "truncated or damaged WAV header"),
    ("data_cut", "truncated: the header promises 32,000 bytes"),
    ("text", "not an audio file: it holds text"),
    ("binary", "not an audio file"),
    ("no_samples", "no samples"),
    ("nan", "NaN or infinite samples (first at sample 1,234"),
    ("inf", "NaN or infinite samples"),
    ("too_long", "3.0 s long, over the limit of 2 s (raise max_seconds, --max-seconds"),
    ("flac_cut", "cannot decode the FLAC samples"),
    ("folder", "is a folder"),
])
def test_bad_audio_is_an_input_error_naming_the_file(tmp_path, case, needle):
    p, kw = _bad_file(tmp_path, case)
    with pytest.raises(InputError) as e:
        read_audio(p, **kw)
    msg = str(e.value)
    assert msg.startswith(str(p)) and needle in msg and "\n" not in msg, msg


# ---------------------------------------------------------------- mu-law

def test_mulaw_round_trip_bound_and_range():
    mu = 255
    x = torch.linspace(-1, 1, 200001)
    ids = mulaw_encode(x)
    assert ids.dtype == torch.int64 and int(ids.min()) == 0 and int(ids.max()) == 255
    assert bool((ids[1:] >= ids[:-1]).all())  # monotone
    assert int(mulaw_encode(torch.zeros(1))) == 128
    err = (mulaw_decode(ids) - x).abs()
    # half a code step, in amplitude: (1 + mu|x|) ln(1 + mu) / mu^2, slightly more at the
    # outer edge of a step (the map is convex): ~9e-5 near silence, ~0.022 at full scale
    bound = (1 + mu * x.abs()) * math.log1p(mu) / mu ** 2 * 1.03 + 1e-7
    assert bool((err <= bound).all()), float((err / bound).max())
    every = torch.arange(256)
    assert torch.equal(mulaw_encode(mulaw_decode(every)), every)  # decode lands on centres
    assert mulaw_encode(torch.tensor([3.0, -7.0])).tolist() == [255, 0]  # clamped
    sine = torch.from_numpy(tone(440, 16000, 1.0, amp=0.9))
    noise = mulaw_decode(mulaw_encode(sine)) - sine
    snr = 10 * math.log10(float(sine.pow(2).mean() / noise.pow(2).mean()))
    assert snr > 30, snr
    with pytest.raises(ValueError):
        mulaw_encode(torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError):
        mulaw_decode(torch.tensor([256]))


def test_mulaw_matches_torchaudio():
    F = pytest.importorskip("torchaudio.functional")
    x = torch.rand(100000, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert torch.equal(mulaw_encode(x), F.mu_law_encoding(x, 256))
    ids = torch.arange(256)
    assert torch.allclose(mulaw_decode(ids), F.mu_law_decoding(ids, 256), atol=1e-6)


# ---------------------------------------------------------------- crops

def test_crop_and_pad_deterministic():
    x = torch.arange(1, 11, dtype=torch.float32)  # 10 samples
    assert center_crop(x, 4).tolist() == [4, 5, 6, 7]
    assert center_crop(x, 10).tolist() == x.tolist()
    assert center_crop(x, 13).tolist() == [0] + x.tolist() + [0, 0]  # extra zero at the end
    st = torch.stack([x, -x])
    assert center_crop(st, 4).shape == (2, 4) and center_crop(st, 12)[1, 1] == -1

    def crops(gen_factory, length):
        g = gen_factory()
        return [random_crop(x, length, g).tolist() for _ in range(20)]

    for factory in (lambda: torch.Generator().manual_seed(7), lambda: np.random.default_rng(7)):
        a, b = crops(factory, 4), crops(factory, 4)
        assert a == b and len({tuple(c) for c in a}) > 1  # same seed, same crops; they vary
        for c in a:  # a contiguous piece
            assert c == list(range(int(c[0]), int(c[0]) + 4))
        for c in crops(factory, 15):  # the whole clip inside zeros
            i = c.index(1.0)
            assert c[i:i + 10] == x.tolist() and sum(c) == sum(x.tolist())
    assert crops(lambda: np.random.default_rng(1), 4) != crops(lambda: np.random.default_rng(2), 4)
    with pytest.raises(TypeError):
        random_crop(x, 4, None)
    with pytest.raises(ValueError):
        place(x, 4, 7)


# ---------------------------------------------------------------- datasets and splits

def test_audioclips_train_crops_vary_by_epoch_eval_is_centre():
    clips = read_clips(DIGITS)[:8]
    full = AudioClips(clips, num_samples=None)
    ev = AudioClips(clips, num_samples=12000)
    item = ev[3]
    assert set(item) == {"waveform", "label", "path", "group"} and item["path"] == clips[3].path
    assert item["group"] == -1  # no groups given
    groups = sorted({c.group for c in clips})
    grouped = AudioClips(clips, num_samples=12000, groups=groups[1:])
    assert [grouped[i]["group"] for i in range(8)] == \
        [groups.index(c.group) - 1 if c.group != groups[0] else -1 for c in clips]
    assert torch.equal(item["waveform"], full[3]["waveform"][2000:14000])
    tr = AudioClips(clips, num_samples=12000, train=True, seed=5)
    first = [tr[i]["waveform"] for i in range(8)]
    again = AudioClips(clips, num_samples=12000, train=True, seed=5)
    assert all(torch.equal(a, again[i]["waveform"]) for i, a in enumerate(first))
    tr.set_epoch(1)
    assert sum(not torch.equal(a, tr[i]["waveform"]) for i, a in enumerate(first)) >= 6
    padded = AudioClips(clips, num_samples=20000)[0]["waveform"]
    assert padded.shape == (20000,) and torch.equal(padded[2000:18000], full[0]["waveform"])
    loader = DataLoader(tr, batch_size=4, collate_fn=collate)
    batch = next(iter(loader))
    assert batch["waveform"].shape == (4, 12000) and batch["label"].dtype == torch.int64
    assert len(batch["path"]) == 4 and batch["group"].tolist() == [-1] * 4
    normed = AudioClips(clips, num_samples=None, peak=0.5)
    assert all(float(normed[i]["waveform"].abs().max()) <= 0.5 + 1e-6 for i in range(8))
    with pytest.raises(ValueError, match="num_samples"):
        collate([full[0], {"waveform": torch.zeros(5), "label": 0, "path": "x"}])


def test_group_split_keeps_groups_disjoint_and_covers_all():
    clips = read_clips(DIGITS)
    for seed in range(5):
        s = split_clips(clips, how="group", val_fraction=0.25, seed=seed)
        tr, va = s["train"], s["val"]
        assert {c.group for c in tr}.isdisjoint({c.group for c in va})
        assert sorted(c.path for c in tr + va) == sorted(c.path for c in clips)
        assert len({c.group for c in va}) == 2
    assert split_clips(clips, seed=3) == split_clips(clips, seed=3)  # auto -> group, seeded
    assert split_clips(clips, seed=3)["val"] != split_clips(clips, seed=4)["val"]
    s = split_clips(clips, val_groups=["en-029"])
    assert {c.group for c in s["val"]} == {"en-029"} and len(s["val"]) == 20
    with pytest.raises(InputError, match="not in the set"):
        split_clips(clips, val_groups=["en-fr"])
    one = [Clip(c.path, c.label, group="g") for c in clips]
    with pytest.raises(InputError, match="at least 2 groups"):
        split_clips(one, how="group")
    with pytest.raises(InputError, match="leaves no training clips"):
        split_clips(one, val_groups=["g"])


def test_stratified_split_every_label_both_sides():
    clips = [Clip(f"/x/{lab}{i}.wav", lab) for lab, n in (("a", 10), ("b", 3), ("c", 1))
             for i in range(n)]
    s = split_clips(clips, val_fraction=0.2, seed=0)  # no groups: stratified
    assert [c.label for c in s["val"]].count("a") == 2
    assert [c.label for c in s["val"]].count("b") == 1  # at least one when there are two
    assert [c.label for c in s["train"]].count("c") == 1  # a lone clip trains
    by_path = lambda c: c.path  # noqa: E731
    assert sorted(s["train"] + s["val"], key=by_path) == sorted(clips, key=by_path)
    assert split_clips(clips, val_fraction=0)["val"] == []


def test_csv_manifest_paths_split_column_and_quoting(tmp_path, monkeypatch):
    a = wav(tmp_path / "clips" / "a.wav", tone())
    wav(tmp_path / "clips" / "b, c.wav", tone(880))
    csv_path = tmp_path / "lists" / "m.csv"
    csv_path.parent.mkdir()
    csv_path.write_text("\ufeffPath,Label,Split,extra\n"  # BOM, any case, extra column
                        "../clips/a.wav,yes,train,x\n"
                        "\n"
                        f'"../clips/b, c.wav",no,Validation,y\n'
                        f"{a.with_name('a2.wav')},yes,test,z\n", encoding="utf-8")
    wav(a.with_name("a2.wav"), tone(220))
    monkeypatch.chdir(tmp_path / "clips")  # paths are relative to the CSV, not the cwd
    clips = read_manifest_csv(csv_path)
    assert [c.label for c in clips] == ["yes", "no", "yes"]
    assert [c.line for c in clips] == [2, 4, 5]
    assert clips[1].path == str(tmp_path / "clips" / "b, c.wav")
    s = split_clips(clips)  # auto -> the split column
    assert [len(s[k]) for k in ("train", "val", "test")] == [1, 1, 1]
    with pytest.raises(InputError, match="group split needs a group"):
        split_clips(clips, how="group")


@pytest.mark.parametrize("body, needle", [
    ("a.wav,yes\nb.wav,no,extra\n", "line 3: 3 columns, the header has 2"),
    ("a.wav,yes\nmissing.wav,no\n", "line 3: no such audio file missing.wav"),
    ("a.wav,yes\na.wav,no\n", "line 3: a.wav is listed again (first at line 2)"),
    ("a.wav,\n", "line 2: empty label"),
    (",yes\n", "line 2: empty path"),
])
def test_csv_manifest_errors_name_the_line(tmp_path, body, needle):
    wav(tmp_path / "a.wav", tone())
    wav(tmp_path / "b.wav", tone())
    p = tmp_path / "m.csv"
    p.write_text("path,label\n" + body)
    with pytest.raises(InputError) as e:
        read_manifest_csv(p)
    assert str(e.value).startswith(str(p)) and needle in str(e.value), str(e.value)


@pytest.mark.parametrize("text, kw, needle", [
    ("path,label,split\na.wav,yes,holdout\n", {}, "line 2: split 'holdout' is not train"),
    ("path,label,group\na.wav,yes,\n", {}, "line 2: empty group"),
    ("path,label\na.wav,yes\na2.wav,maybe\n", {"labels": ["yes", "no"]},
     "line 3: unknown label 'maybe'"),
    ("file,label\na.wav,yes\n", {}, "header line lacks column(s) ['path']"),
    ("path,label,label\na.wav,yes,no\n", {}, "names column(s) ['label'] twice"),
    ("", {}, "empty manifest"),
    ("path,label\n", {}, "no rows after the header"),
])
def test_csv_manifest_header_and_value_errors(tmp_path, text, kw, needle):
    wav(tmp_path / "a.wav", tone())
    wav(tmp_path / "a2.wav", tone())
    p = tmp_path / "m.csv"
    p.write_text(text)
    with pytest.raises(InputError) as e:
        read_manifest_csv(p, **kw)
    assert str(e.value).startswith(str(p)) and needle in str(e.value), str(e.value)


def test_dataset_reports_bad_audio_with_csv_line(tmp_path):
    wav(tmp_path / "a.wav", tone())
    (tmp_path / "notes.wav").write_text("not audio at all\n")
    x = tone()
    x[10] = np.nan
    wav(tmp_path / "nan.wav", x, subtype="FLOAT")
    p = tmp_path / "m.csv"
    p.write_text("path,label\na.wav,yes\nnotes.wav,no\n")
    clips = read_manifest_csv(p)
    with pytest.raises(InputError) as e:  # found when the dataset is built (every file read)
        AudioClips(clips)
    msg = str(e.value)
    assert msg.startswith(f"{p}: line 3: {tmp_path / 'notes.wav'}: not an audio file"), msg
    p.write_text("path,label\na.wav,yes\nnan.wav,no\n")
    # NaN samples too: found up front, not when (or whether) training draws the clip
    with pytest.raises(InputError, match=r"m\.csv: line 3: .*nan\.wav: 1 NaN or infinite"):
        AudioClips(read_manifest_csv(p))
    ds = AudioClips(read_manifest_csv(p), probe=False)  # unprobed, reading it fails the same way
    with pytest.raises(InputError, match=r"m\.csv: line 3: .*nan\.wav: 1 NaN or infinite"):
        ds[1]
    with pytest.raises(InputError, match="line 2: label 'yes' of .* is not one of the labels"):
        AudioClips(read_manifest_csv(p), names=["no"])


def test_folder_per_label(tmp_path):
    root = tmp_path / "set"
    wav(root / "yes" / "s1" / "a.wav", tone())
    wav(root / "yes" / "b.flac", tone(), format="FLAC")
    wav(root / "no" / "c.WAV", tone())
    (root / "no" / "readme.txt").write_text("ignored")
    wav(root / "no" / ".hidden" / "d.wav", tone())
    wav(root / ".trash" / "e.wav", tone())
    clips = read_clips(root)
    assert [(c.label, os.path.basename(c.path)) for c in clips] == [
        ("no", "c.WAV"), ("yes", "b.flac"), ("yes", "a.wav")]
    ds = AudioClips(clips)
    assert ds.names == ["no", "yes"] and [ds[i]["label"] for i in range(3)] == [0, 1, 1]
    with pytest.raises(InputError, match="not among the labels"):
        read_clips(root, labels=["yes"])
    (root / "maybe").mkdir()
    with pytest.raises(InputError, match="label folder 'maybe' holds no .wav or .flac"):
        read_folder(root)
    with pytest.raises(InputError, match="no label subfolders"):
        read_folder(root / "no")
    with pytest.raises(InputError, match="no such file or folder"):
        read_clips(tmp_path / "nowhere")


# ---------------------------------------------------------------- mixed-engine set maker


def test_make_digits_manifest_groups_by_accent_and_voice(tmp_path):
    """The manifest rows the maker writes, from the generators' metadata.json entries (the
    bundled set's metadata is one), read back by the dataset layer with its groups."""
    md = _data_script("make_digits")
    meta = json.loads((DIGITS / "metadata.json").read_text())[:30]
    flite = [{"voice": "flite:awb", "file": "one_flite_0000.wav", "word": "one", "label": 1},
             {"voice": "flite:slt", "file": "two_flite_0000.wav", "word": "two", "label": 2}]
    rows = md.manifest_rows(meta, "espeak", "espeak-ng") + md.manifest_rows(flite, "flite", "flite")
    assert [r["group"] for r in rows[-2:]] == ["flite:awb", "flite:slt"]
    assert all(r["group"] == m["voice"].split("+")[0] for r, m in zip(rows, meta))
    (tmp_path / "espeak").mkdir()
    (tmp_path / "flite").mkdir()
    for m in meta:
        shutil.copy(DIGITS / m["file"], tmp_path / "espeak" / m["file"])
    for m in flite:
        shutil.copy(DIGITS / meta[0]["file"], tmp_path / "flite" / m["file"])
    md.write_manifest(rows, tmp_path / "manifest.csv")
    clips = read_clips(tmp_path / "manifest.csv")
    assert len(clips) == 32 and {c.group for c in clips} >= {"flite:awb", "flite:slt"}
    held = split_clips(clips, "group", val_groups=["flite:awb"])
    assert [c.label for c in held["val"]] == ["one"] and len(held["train"]) == 31


@pytest.mark.parametrize("script, missing", [("make_digits", "espeak-ng, flite, sox"),
                                             ("gen_accents", "espeak-ng, text2wave, sox")])
def test_data_generators_without_engines_say_what_to_install(tmp_path, monkeypatch, capsys,
                                                             script, missing):
    gen = _data_script(script)
    monkeypatch.setenv("PATH", str(tmp_path))  # no speech synthesiser or sox on it
    assert gen.main([str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{missing} not found" in err and "apt-get install" in err
    assert not (tmp_path / "out").exists()


def test_training_augmentation_is_deterministic_and_colours_the_spectrum():
    from pipelines.audio.augment import Augmented

    clips = read_clips(DIGITS / "manifest.csv")[:4]
    base = AudioClips(clips, None, 16000, 16000, train=True, seed=0)
    plain = Augmented(base, shift=0, gain_db=0.0, seed=0, eq_db=0.0)
    eq = Augmented(base, shift=0, gain_db=0.0, seed=0, eq_db=12.0)
    a, b = eq[1]["waveform"], eq[1]["waveform"]
    assert a.dtype == torch.float32 and a.shape == (16000,) and torch.equal(a, b)
    x = plain[1]["waveform"]
    assert torch.equal(x, base[1]["waveform"])  # nothing asked, nothing changed
    # the EQ reshapes the spectrum: band energies move by decibels, not by rounding
    spec = lambda w: torch.stft(w, 512, window=torch.hann_window(512), return_complex=True).abs().pow(2).mean(-1)
    db = 10 * torch.log10((spec(a) + 1e-9) / (spec(x) + 1e-9))
    assert db.abs().max() > 3.0
    eq.set_epoch(1)
    assert not torch.allclose(eq[1]["waveform"], a)  # a fresh draw each epoch


def test_generated_set_manifest_entry_is_consistent():
    """data_manifests/audio.yaml describes the set make_digits.py makes by default."""
    import yaml

    entry = yaml.safe_load((DATA.parent / "data_manifests" / "audio.yaml").read_text())
    gen = entry["generated"]["mixed_engine_digits"]
    assert sum(gen["groups"].values()) == gen["clips"] == 7000
    split = gen["splits"]["voices-held-out"]
    assert set(split["val_groups"]) <= set(gen["groups"])
    assert sum(gen["groups"][g] for g in split["val_groups"]) == 1795
    defaults = _data_script("make_digits").build_parser().parse_args([])
    assert 10 * (defaults.espeak + defaults.flite) == gen["clips"] and defaults.seed == 1
    assert defaults.out.name == gen["path"]


@pytest.mark.parametrize("rate, fmt", [(22050, "WAV"), (44100, "FLAC"), (48000, "WAV")])
def test_real_recording_at_other_rates_reads_back_as_the_original(tmp_path, rate, fmt):
    """A real 8 kHz recording (FSDD) written at 22.05, 44.1 and 48 kHz, as WAV or FLAC, reads
    back at the model's 8 kHz as the original samples (up to the resampling filters), so a
    model stored at 8 kHz sees the same clip whatever rate the file has."""
    import torchaudio.functional as AF

    src = DATA / "audio" / "fsdd" / "recordings" / "7_nicolas_12.wav"
    x, sr = read_audio(src, None)
    assert sr == 8000
    up = AF.resample(x, 8000, rate)[0].numpy()
    f = tmp_path / f"clip.{fmt.lower()}"
    sf.write(str(f), up, rate, format=fmt, subtype="PCM_16")
    back, file_rate = read_audio(f, 8000)
    assert file_rate == rate and abs(back.shape[-1] - x.shape[-1]) <= 1
    n = min(back.shape[-1], x.shape[-1])
    a, b = x[0, :n].double(), back[0, :n].double()
    assert float(torch.corrcoef(torch.stack([a, b]))[0, 1]) > 0.99
    assert float((a - b).pow(2).mean() / a.pow(2).mean()) < 0.02


def test_streamed_resampling_equals_resampling_the_whole_file(tmp_path):
    """--track reads a recording in blocks: resampled block by block (with context across the
    joins) it is the whole file resampled at once, for rates with and without a common
    period, and windows every hop cover it in order."""
    import torchaudio.functional as AF

    from pipelines.audio.track import stream_mono, windows

    x = np.random.default_rng(0).standard_normal(44100 * 2).astype(np.float32) * 0.1
    for rate in (44100, 22050, 48000):
        f = tmp_path / f"x{rate}.wav"
        sf.write(str(f), x, rate, subtype="FLOAT")
        for target in (8000, 16000):
            whole = AF.resample(torch.from_numpy(x)[None], rate, target)[0]
            pieces = list(stream_mono(f, target, block_seconds=0.23))
            assert len(pieces) > 5
            got = torch.cat(pieces)
            assert got.shape == whole.shape and float((got - whole).abs().max()) < 1e-5
    w = list(windows(iter([torch.arange(10.0), torch.arange(10.0, 25.0)]), 8, 4))
    assert [s for s, _ in w] == [0, 4, 8, 12, 16]
    assert all(torch.equal(v, torch.arange(s, s + 8.0)) for s, v in w)
