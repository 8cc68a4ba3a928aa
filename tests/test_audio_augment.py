"""Waveform augmentation: rooms, babble and the SNR mixing shared with the noise benchmark."""

import math

import numpy as np
import pytest
import torch

from audio_helpers import _band_db
from dna_helpers import DATA, seqmamba
from pipelines.audio.augment import (Augmented, babble, band_limit, mix_at_snr, reverberate,
                                     room_impulse_response, shift_formants, trim_edges,
                                     change_tempo)
from pipelines.audio.datasets import AudioClips, read_clips

DIGITS = DATA / "audio" / "spoken_digits_espeak"


def _power(x: torch.Tensor) -> float:
    return float(x.double().pow(2).mean())


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 12.5, 30.0])
def test_mix_at_snr_gives_the_asked_ratio(snr_db):
    g = torch.Generator().manual_seed(int(snr_db * 10) + 100)
    w, noise = torch.randn(8000, generator=g), 0.1 * torch.randn(8000, generator=g) + 0.3
    mixed = mix_at_snr(w, noise, snr_db)
    measured = 10 * math.log10(_power(w) / _power(mixed - w))
    assert measured == pytest.approx(snr_db, abs=1e-3)


@pytest.mark.parametrize("rt60,drr_db", [(0.15, 10.0), (0.4, 0.0), (0.7, -3.0)])
def test_room_impulse_response_decays_at_rt60_with_the_asked_direct_ratio(rt60, drr_db):
    sr = 8000
    h = room_impulse_response(sr, rt60, drr_db, np.random.default_rng(int(rt60 * 100)))
    assert h[0] == 1.0 and h.shape[-1] == int(rt60 * sr)
    tail = h[1:]
    assert 10 * math.log10(1.0 / float(tail.double().pow(2).sum())) == pytest.approx(drr_db,
                                                                                     abs=1e-3)
    # Schroeder's backward-integrated energy falls by 60 dB over rt60: fit the slope between
    # -5 and -25 dB (the usual T20 range) and extrapolate to -60 dB
    edc = torch.flip(torch.cumsum(torch.flip(tail.double().pow(2), [0]), 0), [0])
    edc_db = 10 * torch.log10(edc / edc[0])
    t = torch.arange(edc.shape[0], dtype=torch.float64) / sr
    sel = (edc_db <= -5) & (edc_db >= -25)
    slope = float(torch.linalg.lstsq(torch.stack([t[sel], torch.ones_like(t[sel])], 1),
                                     edc_db[sel, None]).solution[0])
    assert -60.0 / slope == pytest.approx(rt60, rel=0.2)


def test_reverberate_convolves_keeps_length_and_power():
    rng = np.random.default_rng(3)
    h = room_impulse_response(8000, 0.3, 3.0, rng)
    impulse = torch.zeros(4000)
    impulse[100] = 1.0
    y = reverberate(impulse, h)
    assert y.shape == impulse.shape and _power(y) == pytest.approx(_power(impulse), rel=1e-4)
    # an impulse comes out as the (rescaled) room itself, delayed to where the impulse was
    expected = torch.zeros(4000)
    expected[100:100 + h.shape[-1]] = h  # 2400 taps
    expected *= math.sqrt(_power(impulse) / _power(expected))
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-4)
    w = torch.randn(4000, generator=torch.Generator().manual_seed(0))
    direct = torch.zeros(1)
    direct[0] = 1.0  # a room with no reverberation leaves the clip as it is
    torch.testing.assert_close(reverberate(w, direct), w, atol=1e-5, rtol=1e-5)


def test_babble_sums_stretches_of_the_pieces():
    rng = np.random.default_rng(0)
    a, b = torch.arange(10.0), 100 + torch.arange(3.0)
    out = babble([a, b], 5, rng)
    assert out.shape == (5,)
    rest = out.clone()
    rest[:3] -= b  # the short piece sits at the start
    start = int(rest[0])
    torch.testing.assert_close(rest, a[start:start + 5])


def _digit_clips(n: int) -> AudioClips:
    """The first ``n`` bundled digit clips as training reads them: 1 s at 16 kHz, seed 0."""
    return AudioClips(read_clips(DIGITS / "manifest.csv")[:n], None, 16000, 16000, train=True,
                      seed=0)


def test_augmented_babble_and_reverb_are_deterministic_and_at_the_asked_levels():
    base = _digit_clips(16)
    babbled = Augmented(base, shift=0, gain_db=0.0, seed=0, babble_snr=5.0)
    changed = 0
    for i in range(len(base)):
        clean, mixed = base[i]["waveform"], babbled[i]["waveform"]
        torch.testing.assert_close(mixed, babbled[i]["waveform"], rtol=0, atol=0)
        if torch.equal(clean, mixed):
            continue
        changed += 1
        snr = 10 * math.log10(_power(clean) / _power(mixed - clean))
        assert 5.0 - 1e-3 <= snr <= 25.0 + 1e-3
    assert 3 <= changed <= 13  # about half of the clips
    roomy = Augmented(base, shift=0, gain_db=0.0, seed=0, reverb=1.0)
    for i in range(4):
        clean, wet = base[i]["waveform"], roomy[i]["waveform"]
        assert wet.shape == clean.shape and not torch.allclose(wet, clean, atol=1e-3)
        assert _power(wet) == pytest.approx(_power(clean), rel=1e-3)
    roomy.set_epoch(1)
    assert not torch.equal(roomy[0]["waveform"], Augmented(base, 0, 0.0, 0, reverb=1.0)[0]["waveform"])


def test_finetune_rejects_out_of_range_augmentation_in_one_line(tmp_path):
    """Each bad value is named on its own, with its option's range (not one merged list)."""
    for opt, value, allowed in (("--reverb", 1.5, "in [0, 1]"), ("--babble-snr", -3, ">= 0"),
                                ("--trim", -0.1, "in [0, 1]"), ("--tempo", 2, "in [0, 1]"),
                                ("--formant", -0.1, "in [0, 1]"),
                                ("--band-limit", 1.2, "in [0, 1]"),
                                ("--speed", 0.5, "in [0, 0.5)"), ("--seconds", 0, "> 0")):
        rc, _, err = seqmamba("audio", "finetune", "--train", DIGITS, "--out",
                              tmp_path / "r", opt, value)
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and f"{opt} {allowed}" in lines[0], err
        others = [o for o in ("--reverb", "--babble-snr", "--trim", "--tempo", "--formant",
                              "--band-limit", "--speed", "--seconds") if o != opt]
        assert not any(o in lines[0] for o in others), err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("below_db", [10.0, 20.0, 30.0])
def test_trim_edges_zeroes_the_quiet_start_and_end_only(below_db):
    # silence, a quiet onset rising 5 dB per 10 ms frame to a loud vowel, then a falling tail
    frame = 80
    g = torch.Generator().manual_seed(int(below_db))
    levels_db = [-80.0] * 5 + [-40.0 + 5 * k for k in range(8)] + [0.0] * 10 + \
        [-5.0 * k for k in range(1, 9)] + [-80.0] * 5
    w = torch.cat([10 ** (db / 20) * torch.randn(frame, generator=g) for db in levels_db])
    out = trim_edges(w, frame, below_db)
    assert out.shape == w.shape
    energy = w.view(-1, frame).pow(2).mean(-1)
    kept = energy >= energy.max() * 10 ** (-below_db / 10)
    first, last = int(kept.nonzero()[0]), int(kept.nonzero()[-1])
    torch.testing.assert_close(out[first * frame:(last + 1) * frame],
                               w[first * frame:(last + 1) * frame], rtol=0, atol=0)
    assert not out[:first * frame].any() and not out[(last + 1) * frame:].any()
    # the stricter the level, the more of the quiet onset goes (about 1 frame per 5 dB)
    assert 5 + 8 - int(below_db // 5) - 2 <= first <= 5 + 8 - int(below_db // 5) + 1
    assert not trim_edges(torch.zeros(400), frame, below_db).any()


def test_augmented_trim_cuts_about_the_asked_fraction_of_clips():
    base = _digit_clips(24)
    trimmed = Augmented(base, shift=0, gain_db=0.0, seed=0, trim=0.5)
    cut = 0
    for i in range(len(base)):
        clean, out = base[i]["waveform"], trimmed[i]["waveform"]
        torch.testing.assert_close(out, trimmed[i]["waveform"], rtol=0, atol=0)
        nz = out.nonzero()
        # what is kept is the clip itself, untouched, between the cut points
        torch.testing.assert_close(out[int(nz[0]):int(nz[-1]) + 1],
                                   clean[int(nz[0]):int(nz[-1]) + 1], rtol=0, atol=0)
        cut += not torch.equal(clean, out)
    assert 5 <= cut <= 19
    assert torch.equal(Augmented(base, 0, 0.0, 0, trim=0.0)[3]["waveform"], base[3]["waveform"])


@pytest.mark.parametrize("rate", [0.7, 1.3, 1.6])
def test_change_tempo_changes_duration_not_pitch(rate):
    sr, n = 8000, 11200
    t = torch.arange(2400) / sr
    g = torch.Generator().manual_seed(int(rate * 10))
    f0 = float(torch.empty(1).uniform_(200, 900, generator=g))
    tone = torch.sin(2 * math.pi * f0 * t) * torch.hann_window(2400)
    w = torch.zeros(n)
    w[3000:5400] = tone
    out = change_tempo(w, rate)
    assert out.shape == w.shape

    def span(x):  # samples from first to last above -30 dB of the peak
        loud = (x.abs() > x.abs().max() * 0.03).nonzero()
        return int(loud[-1]) - int(loud[0])

    assert span(out) == pytest.approx(span(w) / rate, rel=0.1)
    freqs = torch.fft.rfftfreq(n, 1 / sr)
    assert float(freqs[torch.fft.rfft(out).abs().argmax()]) == pytest.approx(f0, abs=8)
    assert abs((out.abs() > 1e-3).nonzero().float().mean() - 4200) < 300  # still where it was
    assert torch.equal(change_tempo(w, 1.0), w)


def _resonate(x: np.ndarray, sr: int, formants) -> torch.Tensor:
    """x through a two-pole resonator (bandwidth 100 Hz) at each of ``formants`` (Hz): a
    vowel's vocal tract; float32 at peak 0.5."""
    from scipy.signal import lfilter

    for fc in formants:
        r, th = math.exp(-math.pi * 100 / sr), 2 * math.pi * fc / sr
        x = lfilter([1 - r], [1, -2 * r * math.cos(th), r * r], x)
    return torch.tensor(0.5 * x / np.abs(x).max(), dtype=torch.float32)


@pytest.mark.parametrize("formants", [(500.0, 1500.0), (300.0, 2200.0), (700.0, 1200.0)])
@pytest.mark.parametrize("factor", [0.85, 1.25])
def test_shift_formants_moves_the_resonances(formants, factor):
    """Noise through two resonators (a whispered vowel: a smooth spectrum, so its peaks can
    be read off): the upper formant's peak moves to factor times it (within 5%); the first
    moves the right way by at least half the asked step (an all-pole envelope of order 10 at
    8 kHz resolves it less sharply); the length is kept."""
    from scipy.signal import welch

    sr = 8000
    rng = np.random.default_rng(int(factor * 100 + formants[0]))
    w = _resonate(rng.standard_normal(16000), sr, formants)
    out = shift_formants(w, sr, factor)
    assert out.shape == w.shape and torch.isfinite(out).all()

    def peak(x, lo, hi):
        f, p = welch(x.numpy(), sr, nperseg=512)
        band = (f > lo) & (f < hi)
        return f[band][p[band].argmax()]

    f1, f2 = formants
    assert abs(peak(out, 0.8 * factor * f2, 1.2 * factor * f2) / (factor * f2) - 1) < 0.05
    step = peak(out, 0.8 * min(1, factor) * f1, 1.2 * max(1, factor) * f1) - \
        peak(w, 0.8 * f1, 1.2 * f1)
    assert step / ((factor - 1) * f1) > 0.5
    assert torch.equal(shift_formants(w, sr, 1.0), w)


@pytest.mark.parametrize("factor", [0.85, 1.25])
def test_shift_formants_keeps_the_pitch(factor):
    """A voiced vowel (a pulse train at f0 through the resonators): every strong peak of the
    output's spectrum is still within 3 Hz of a harmonic of f0."""
    sr, n = 8000, 8000
    rng = np.random.default_rng(int(factor * 10))
    period = int(rng.integers(40, 80))  # f0 100-200 Hz
    x = np.zeros(n)
    x[::period] = 1.0
    out = shift_formants(_resonate(x + 1e-3 * rng.standard_normal(n), sr, (500.0, 1500.0)),
                         sr, factor)
    f0 = sr / period
    freqs = np.fft.rfftfreq(n, 1 / sr)
    mag = np.abs(np.fft.rfft(out.numpy() * np.hanning(n)))
    strong = np.flatnonzero(mag > 0.1 * mag.max())
    off = np.abs(freqs[strong] / f0 - np.round(freqs[strong] / f0)) * f0
    assert len(strong) and off.max() <= 3.0


def test_augmented_formant_shift_is_deterministic_and_changes_every_clip():
    base = _digit_clips(8)
    shifted = Augmented(base, shift=0, gain_db=0.0, seed=0, formant=0.15)
    for i in range(len(base)):
        clean, out = base[i]["waveform"], shifted[i]["waveform"]
        assert out.shape == clean.shape and torch.equal(out, shifted[i]["waveform"])
        assert not torch.allclose(out, clean, atol=1e-3)


def test_band_limit_passes_the_band_and_falls_off_by_the_slope_outside_it():
    sr = 8000
    x = torch.randn(sr, generator=torch.Generator().manual_seed(5))
    y = band_limit(x, sr, high_pass_hz=250.0, low_pass_hz=1500.0, slope_db=24.0)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert abs(_band_db(y, x, sr, 300, 1400)) < 0.5  # the pass band untouched
    # an octave past each edge: about slope dB down (the band's own edge loses less)
    assert -30 < _band_db(y, x, sr, 2900, 3100) < -20
    assert -30 < _band_db(y, x, sr, 120, 130) < -18
    assert _band_db(band_limit(x, sr, 0.0, 1000.0, 48.0), x, sr, 3800, 4000) > -61  # floor
    torch.testing.assert_close(band_limit(x, sr, 0.0, 0.0, 24.0), x, rtol=0, atol=1e-5)


def test_augmented_band_limit_narrows_about_the_asked_fraction_of_clips():
    base = _digit_clips(24)
    aug = Augmented(base, shift=0, gain_db=0.0, seed=0, band_limit=0.5)
    narrowed = 0
    for i in range(len(base)):
        clean, out = base[i]["waveform"], aug[i]["waveform"]
        assert torch.equal(out, aug[i]["waveform"])  # a pure function of (seed, epoch, index)
        if not torch.allclose(out, clean, atol=1e-4):
            narrowed += 1
            # every narrowed clip loses its top: the low-pass is at most 0.45 x 16 kHz
            assert _band_db(out, clean, 16000, 7600, 8000) < -3
    assert 6 <= narrowed <= 18  # about half of 24
