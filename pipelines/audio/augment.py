"""Waveform augmentation for training audio classifiers on voices, rooms and noise they have
not met: tight endpointing, speed, formants, tempo, spectral colour, channel bandwidth,
reverberation, babble from other clips, shift and gain.

Every transform takes and returns a mono waveform ``w: (samples,)`` float32 and draws its
randomness from a ``numpy.random.Generator``, so an augmented item is a pure function of
(seed, epoch, index).  The evaluation benchmarks use ``mix_at_snr`` too, so the noise a model
is trained with and the noise it is scored on are mixed the same way.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torchaudio.functional as AF
from torch.utils.data import Dataset

from .crop import center_crop, place, random_crop
from .datasets import AudioClips


def random_eq(w: torch.Tensor, sr: int, max_db: float, bands: int,
              rng: np.random.Generator) -> torch.Tensor:
    """w: (samples,) -> (samples,) with ``bands`` random bell-shaped gains of up to +-max_db dB
    on a log-frequency axis (centres log-uniform in 150 Hz..6 kHz, widths 1/2 to 2 octaves):
    the spectral colour of another voice, room or microphone.  Applied in the frequency domain
    (one rfft/irfft, ~0.3 ms a second of audio; a chain of IIR filters costs 10x that)."""
    def gain_db(octave):
        db = torch.zeros_like(octave)
        hi = np.log2(min(6000.0, 0.45 * sr))
        for _ in range(bands):
            centre, width = rng.uniform(np.log2(150.0), hi), rng.uniform(0.5, 2.0)
            db += rng.uniform(-max_db, max_db) * torch.exp(-0.5 * ((octave - centre) / (width / 2)) ** 2)
        return db

    return _apply_gain_db(w, sr, 20.0, gain_db)


def _apply_gain_db(w: torch.Tensor, sr: int, min_hz: float, gain_db) -> torch.Tensor:
    """w: (samples,) -> (samples,) with each frequency f scaled by gain_db(log2 f) dB (f
    clamped below at ``min_hz``), in the frequency domain: one rfft and one irfft."""
    n = w.shape[-1]
    spec = torch.fft.rfft(w.float())
    octave = torch.log2(torch.fft.rfftfreq(n, 1.0 / sr).clamp(min=min_hz))
    return torch.fft.irfft(spec * 10 ** (gain_db(octave) / 20), n=n).to(w.dtype)


def band_limit(w: torch.Tensor, sr: int, high_pass_hz: float, low_pass_hz: float,
               slope_db: float) -> torch.Tensor:
    """w: (samples,) -> (samples,) through a narrower channel: frequencies below
    ``high_pass_hz`` and above ``low_pass_hz`` fall off by ``slope_db`` dB an octave (down to
    -60 dB), as a telephone line, a cheap microphone or a codec cuts them (0 leaves that side
    open).  In the frequency domain, like ``random_eq``.

    Why: a model trained on a few recorders learns their bandwidth with the words.  Leaving one
    FSDD speaker out, a filter on the held-out clips alone (a 2 kHz low-pass, a 300 Hz
    high-pass, a treble shelf) moves a fold's accuracy by up to 25 points
    (``experiments/audio_channels.py``), so the channel's edges are drawn anew for every
    training clip."""
    def gain_db(octave):
        loss_db = torch.zeros_like(octave)
        if low_pass_hz:
            loss_db += slope_db * (octave - math.log2(low_pass_hz)).clamp(min=0)
        if high_pass_hz:
            loss_db += slope_db * (math.log2(high_pass_hz) - octave).clamp(min=0)
        return -loss_db.clamp(max=60.0)

    return _apply_gain_db(w, sr, 1.0, gain_db)


def trim_edges(w: torch.Tensor, frame: int, below_db: float) -> torch.Tensor:
    """w: (samples,) -> (samples,) with every ``frame``-sample frame before the first and after
    the last frame whose energy is within ``below_db`` dB of the loudest frame's set to zero: a
    clip cut tightly by a recorder's endpointer or an editor, which starts on the vowel with
    the quiet start of the first consonant gone (as some real speakers' recordings are: the
    FSDD speaker nicolas's clips start and end only 16-19 dB below their peak)."""
    n = w.shape[-1]
    energy = torch.nn.functional.pad(w.float(), (0, (-n) % frame)).view(-1, frame).pow(2).mean(-1)
    keep = (energy >= energy.max() * 10 ** (-below_db / 10)).nonzero()
    if energy.max() <= 0 or keep.numel() == 0:
        return w  # a silent clip has no edges to cut
    out = torch.zeros_like(w)
    a, b = int(keep[0]) * frame, min(n, (int(keep[-1]) + 1) * frame)
    out[a:b] = w[a:b]
    return out


def change_speed(w: torch.Tensor, factor: float) -> torch.Tensor:
    """w (samples,) -> (round(samples / factor),): played ``factor`` times faster, tempo and
    pitch together, by linear interpolation."""
    if factor == 1.0:
        return w
    m = max(2, int(round(w.shape[-1] / factor)))
    return torch.nn.functional.interpolate(w[None, None], size=m, mode="linear",
                                           align_corners=True)[0, 0]


def change_tempo(w: torch.Tensor, rate: float, n_fft: int = 256) -> torch.Tensor:
    """w: (samples,) -> (samples,): the sound in w (first to last non-zero sample) played
    ``rate`` times faster at the same pitch, by a phase vocoder (STFT of ``n_fft`` samples, hop
    a quarter of it), then put back centred where it was, inside w's length.  A fast talker's
    timing without the higher voice ``change_speed`` gives with it (FSDD's nicolas says a
    digit in 0.27-0.45 s, the other three speakers in 0.35-0.7 s)."""
    nz = w.nonzero()
    if rate == 1.0 or nz.numel() == 0 or int(nz[-1]) + 1 - int(nz[0]) <= n_fft:
        return w
    a, b = int(nz[0]), int(nz[-1]) + 1
    hop, window = n_fft // 4, torch.hann_window(n_fft)
    spec = torch.stft(w[a:b].float(), n_fft, hop, window=window, return_complex=True)
    advance = torch.linspace(0, math.pi * hop, spec.shape[0])[:, None]  # per bin, per hop
    m = max(1, int(round((b - a) / rate)))
    y = torch.istft(AF.phase_vocoder(spec, rate, advance), n_fft, hop, window=window,
                    length=m).to(w.dtype)
    n = w.shape[-1]
    if m >= n:
        return center_crop(y, n)
    return place(y, n, min(max(0, (a + b) // 2 - m // 2), n - m))


def lpc_envelope(spec: torch.Tensor, order: int) -> torch.Tensor:
    """STFT frames (bins, T) complex -> (bins, T) log spectral envelope of each pre-emphasised
    frame, up to a per-frame constant: -log |A(f)| of its order-``order`` linear predictor A
    (the all-pole model of a vocal tract), from the frame's autocorrelation (the inverse FFT
    of its power spectrum) by the Levinson-Durbin recursion, vectorised over frames."""
    n_fft = 2 * (spec.shape[0] - 1)
    # a light pre-emphasis (1 - 0.7 z^-1) eases speech's falling tilt, so the predictor
    # models the upper formants as well as the loud first one; the usual 0.97 cuts so much
    # below 500 Hz that a low first formant (300 Hz) is no longer modelled, and so not moved.
    # It stays in the envelope: for factors 0.8-1.25, E'/E of it tilts the level by under 2 dB.
    tilt = torch.fft.rfft(torch.tensor([1.0, -0.7], dtype=torch.float64), n=n_fft).abs()
    power = spec.abs().double().pow(2) * tilt[:, None].pow(2)
    r = torch.fft.irfft(power, n=n_fft, dim=0)[:order + 1]
    r[0] = r[0] * (1 + 1e-6) + 1e-12  # a white-noise floor keeps silent frames solvable
    a = torch.zeros_like(r)
    a[0] = 1.0
    err = r[0].clone()
    for i in range(1, order + 1):
        k = -(r[i] + (a[1:i] * r[1:i].flip(0)).sum(0)) / err
        a[1:i] = a[1:i] + k * a[1:i].flip(0)
        a[i] = k
        err = err * (1 - k * k)
    return -torch.log(torch.fft.rfft(a, n=n_fft, dim=0).abs().clamp(min=1e-9)).float()


def shift_formants(w: torch.Tensor, sr: int, factor: float, n_fft: int = 256) -> torch.Tensor:
    """w: (samples,) -> (samples,) with the spectral envelope (the vocal tract's resonances,
    the formants) moved ``factor`` times up in frequency and the pitch and timing left alone:
    a longer or shorter vocal tract on the same voice (vocal-tract-length perturbation, as
    Jaitly and Hinton 2013 do on the spectrogram, here on the waveform so that any front end
    sees it).

    Per STFT frame (``n_fft`` samples, hop a quarter of it) the envelope is an all-pole
    model's (``lpc_envelope``, order 2 + kHz, the usual rule for speech); each bin is scaled
    by the warped envelope over the original one, E(f / factor) / E(f).  The phases are kept,
    so the harmonics stay where they were and only their levels follow the new resonances."""
    if factor == 1.0 or w.shape[-1] <= n_fft:
        return w
    hop, window = n_fft // 4, torch.hann_window(n_fft)
    spec = torch.stft(w.float(), n_fft, hop, window=window, return_complex=True)  # (bins, T)
    env = lpc_envelope(spec, 2 + sr // 1000)
    bins = env.shape[0]
    src = torch.arange(bins, dtype=torch.float32) / factor  # where each bin's envelope comes from
    lo = src.floor().long().clamp(max=bins - 1)
    hi = (lo + 1).clamp(max=bins - 1)
    frac = (src - lo).clamp(0, 1)[:, None]
    warped = env[lo] * (1 - frac) + env[hi] * frac
    y = torch.istft(spec * torch.exp(warped - env), n_fft, hop, window=window,
                    length=w.shape[-1])
    return y.to(w.dtype)


def mix_at_snr(w: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """w + noise scaled so that power(w) / power(noise) is ``snr_db`` dB; both (samples,),
    powers over the whole clip."""
    p = float(w.pow(2).mean().clamp(min=1e-10))
    q = float(noise.pow(2).mean().clamp(min=1e-10))
    return w + noise * math.sqrt(p / q / 10 ** (snr_db / 10))


def babble(pieces: Sequence[torch.Tensor], n: int, rng: np.random.Generator) -> torch.Tensor:
    """(n,): the sum of a random n-sample stretch of each of ``pieces`` (each (samples,); a
    shorter one is placed at the start): several other people talking at once."""
    out = torch.zeros(n)
    for b in pieces:
        start = int(rng.integers(0, max(1, b.shape[-1] - n + 1)))
        piece = b[start:start + n]
        out[: piece.shape[-1]] += piece
    return out


def room_impulse_response(sr: int, rt60: float, drr_db: float,
                          rng: np.random.Generator) -> torch.Tensor:
    """(taps,) a synthetic room: a unit direct path, then after a 2-8 ms gap a diffuse tail of
    Gaussian noise whose energy decays by 60 dB over ``rt60`` seconds (Sabine's exponential
    decay), scaled so that direct / reverberant energy is ``drr_db`` dB.  Real rooms add
    discrete early reflections; for a classifier that must not care about the room, the
    decaying tail (which smears each sound into the next) is what matters."""
    gap = int(rng.uniform(0.002, 0.008) * sr)
    taps = max(gap + 2, int(rt60 * sr))
    t = torch.arange(taps - gap, dtype=torch.float32) / sr
    tail = torch.from_numpy(rng.standard_normal(taps - gap).astype(np.float32))
    tail = tail * torch.exp(-3.0 * math.log(10.0) * t / rt60)  # amplitude: -60 dB at rt60
    tail = tail * math.sqrt(10 ** (-drr_db / 10) / float(tail.pow(2).sum().clamp(min=1e-12)))
    h = torch.zeros(taps)
    h[0] = 1.0
    h[gap:] = tail
    return h


def reverberate(w: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """w (samples,) convolved with the impulse response h (taps,), cut to w's length and
    rescaled to w's power (FFT convolution: O(n log n) for any room length)."""
    y = AF.fftconvolve(w.float(), h)[: w.shape[-1]]
    scale = math.sqrt(float(w.pow(2).mean()) / max(float(y.pow(2).mean()), 1e-12))
    return (y * scale).to(w.dtype)


class Augmented(Dataset):
    """Training-time augmentation on top of AudioClips, in this order:

    * with probability ``trim``, the clip's quiet start and end cut off (``trim_edges`` at a
      level drawn from ``TRIM_DB`` below its loudest 10 ms);
    * a random speed change of up to +-``speed`` (tempo and pitch together; the clip keeps its
      length, centred);
    * with ``formant`` > 0, the formants moved at the same pitch and timing
      (``shift_formants``, a factor log-uniform in [1 / (1 + formant), 1 + formant]);
    * with ``tempo`` > 0, a random tempo change at the same pitch (``change_tempo``, a rate
      log-uniform in [1 / (1 + tempo), 1 + tempo]);
    * a random spectral colour (``random_eq``, up to +-``eq_db`` dB);
    * with probability ``band_limit``, a narrower channel (``band_limit``: a low-pass at
      ``LOW_PASS_HZ`` and, half the time, a high-pass at ``HIGH_PASS_HZ``, both log-uniform,
      falling off by ``BAND_SLOPE_DB`` dB an octave);
    * with probability ``reverb``, a synthetic room (``room_impulse_response``: RT60 0.1 to
      0.7 s, direct-to-reverberant ratio -3 to 12 dB);
    * with probability 1/2 when ``babble_snr`` > 0, babble of 1 to 3 other training clips
      at an SNR drawn from [``babble_snr``, ``babble_snr`` + 20] dB (the other clips are
      as read, unaugmented, from the same training set);
    * a random time shift of up to ``shift`` samples (zero-filled) and a random gain of up to
      +-``gain_db`` dB.

    Item i of epoch e is a pure function of (seed, e, i)."""

    EQ_BANDS = 3
    RT60 = (0.1, 0.7)
    DRR_DB = (-3.0, 12.0)
    BABBLE_SNR_SPAN = 20.0
    TRIM_DB = (10.0, 30.0)
    LOW_PASS_HZ = (1500.0, 0.45)  # the upper end a fraction of the sample rate
    HIGH_PASS_HZ = (60.0, 500.0)
    BAND_SLOPE_DB = (12.0, 48.0)

    def __init__(self, base: AudioClips, shift: int, gain_db: float, seed: int,
                 speed: float = 0.0, eq_db: float = 0.0, reverb: float = 0.0,
                 babble_snr: float = 0.0, trim: float = 0.0, tempo: float = 0.0,
                 formant: float = 0.0, band_limit: float = 0.0):
        self.base, self.shift, self.gain_db, self.seed, self.epoch = base, shift, gain_db, seed, 0
        self.speed, self.eq_db, self.reverb, self.babble_snr = speed, eq_db, reverb, babble_snr
        self.trim, self.tempo, self.formant, self.band_limit = trim, tempo, formant, band_limit

    def set_epoch(self, e):
        self.epoch = e
        self.base.set_epoch(e)

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        item = dict(self.base[i])
        rng = np.random.default_rng([self.seed, self.epoch, i, 1])
        w = item["waveform"]
        sr = self.base.sample_rate
        # drawn only when on, so that recipes without it keep their exact random streams
        if self.trim and rng.uniform() < self.trim:
            w = trim_edges(w, max(1, sr // 100), rng.uniform(*self.TRIM_DB))
        if self.speed:
            n = w.shape[-1]
            w = center_crop(change_speed(w, 1 + rng.uniform(-self.speed, self.speed)), n)
        if self.formant:
            w = shift_formants(w, sr, math.exp(rng.uniform(-1, 1) * math.log1p(self.formant)))
        if self.tempo:
            w = change_tempo(w, math.exp(rng.uniform(-1, 1) * math.log1p(self.tempo)))
        if self.eq_db:
            w = random_eq(w, sr, self.eq_db, self.EQ_BANDS, rng)
        if self.band_limit and rng.uniform() < self.band_limit:
            lo, hi = self.LOW_PASS_HZ[0], self.LOW_PASS_HZ[1] * sr
            low_pass = math.exp(rng.uniform(math.log(lo), math.log(max(lo, hi))))
            high_pass = math.exp(rng.uniform(*np.log(self.HIGH_PASS_HZ))) \
                if rng.uniform() < 0.5 else 0.0
            w = band_limit(w, sr, high_pass, low_pass, rng.uniform(*self.BAND_SLOPE_DB))
        if self.reverb and rng.uniform() < self.reverb:
            w = reverberate(w, room_impulse_response(sr, rng.uniform(*self.RT60),
                                                     rng.uniform(*self.DRR_DB), rng))
        if self.babble_snr and rng.uniform() < 0.5 and len(self.base) > 1:
            k = min(int(rng.integers(1, 4)), len(self.base) - 1)
            # k distinct clips other than i: draw from the n - 1 others, skipping over i
            others = [int(j) + (int(j) >= i) for j in rng.choice(len(self.base) - 1, k,
                                                                replace=False)]
            noise = babble([self.base[j]["waveform"] for j in others], w.shape[-1], rng)
            w = mix_at_snr(w, noise, rng.uniform(self.babble_snr,
                                                 self.babble_snr + self.BABBLE_SNR_SPAN))
        if self.shift:
            n = w.shape[-1]
            padded = torch.nn.functional.pad(w, (self.shift, self.shift))
            w = random_crop(padded, n, rng)
        if self.gain_db:
            w = w * float(10 ** (rng.uniform(-self.gain_db, self.gain_db) / 20))
        item["waveform"] = w.contiguous()
        return item
