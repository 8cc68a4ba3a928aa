"""Reading and writing audio clips with soundfile (libsndfile).

``torchaudio.load`` is not used: since torchaudio 2.9 it needs torchcodec and FFmpeg, while
libsndfile ships inside the soundfile wheel and reads WAV (8/16/24/32-bit PCM, 32/64-bit
float) and FLAC.  A file is checked from its header before any sample is decoded, so a bad
file in a list of thousands fails fast with a one-line :class:`InputError` naming it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from seqmamba.atomic import atomic_output

from ..errors import InputError

DEFAULT_MAX_SECONDS = 600.0
AUDIO_EXTENSIONS = (".wav", ".flac")

# First four bytes of the containers libsndfile reads: a file that starts like one of these
# but cannot be opened is damaged or cut short, anything else is not audio at all.
_MAGIC = {b"RIFF": "WAV", b"RIFX": "WAV", b"RF64": "WAV (RF64)", b"fLaC": "FLAC",
          b"FORM": "AIFF", b"OggS": "Ogg", b".snd": "AU"}
# Writers that stream to a pipe cannot seek back to fill in the data size and leave a
# placeholder (0xFFFFFFFF; sox writes 0x7FFFF000): such sizes mean "unknown", not truncated.
_UNKNOWN_SIZE = 0x7FFFF000


@dataclass(frozen=True)
class AudioInfo:
    """What the header says: rate, frames (samples per channel), channels, container, coding."""

    path: str
    sample_rate: int
    frames: int
    channels: int
    format: str  # "WAV", "FLAC", ...
    subtype: str  # "PCM_16", "PCM_24", "FLOAT", ...

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # a multi-byte character cut at the end of the sample is still text
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(c.isprintable() or c in "\t\r\n" for c in text)


def _open_error(path: Path, head: bytes, size: int) -> InputError:
    kind = _MAGIC.get(head[:4])
    if kind is not None:
        return InputError(f"truncated or damaged {kind} header ({size:,} bytes); soundfile "
                          f"cannot open it", path=path, fix="re-copy or re-export the file")
    if _looks_like_text(head):
        start = head[:24].decode("utf-8", "replace").splitlines()[0] if head.strip() else ""
        return InputError(f"not an audio file: it holds text (starts {start!r})", path=path,
                          fix="give a WAV or FLAC file")
    return InputError(f"not an audio file soundfile can read (first bytes {head[:8].hex(' ')})",
                      path=path, fix="convert it to WAV or FLAC, e.g. with sox or ffmpeg")


def _riff_data_sizes(path: Path, big_endian: bool) -> Optional[Tuple[int, int]]:
    """(bytes the 'data' chunk header declares, bytes the file holds after it), or None.

    libsndfile quietly reads what is there when a WAV is cut short, so a half-copied file
    would otherwise train as a shorter clip."""
    fmt = ">4sI" if big_endian else "<4sI"
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(12)  # "RIFF" size "WAVE"
        pos = 12
        while pos + 8 <= size:
            cid, n = struct.unpack(fmt, f.read(8))
            if cid == b"data":
                return n, size - pos - 8
            pos += 8 + n + (n & 1)  # chunks are padded to an even size
            f.seek(pos)
    return None


def audio_info(path, max_seconds: Optional[float] = DEFAULT_MAX_SECONDS) -> AudioInfo:
    """Check a file from its header (no samples decoded) and describe it.

    Raises :class:`InputError` naming the file when it is missing, empty, not audio, has a
    truncated header or data, holds no samples, or is longer than ``max_seconds`` (None: no
    limit).
    """
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", path=path)
    if path.is_dir():
        raise InputError("is a folder, not an audio file", path=path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as e:
        raise InputError(f"cannot read the file ({e.strerror})", path=path) from None
    if size == 0:
        raise InputError("empty file (0 bytes)", path=path, fix="re-copy or re-export the file")
    try:
        info = sf.info(str(path))
    except RuntimeError:  # soundfile.LibsndfileError
        raise _open_error(path, head, size) from None
    if info.samplerate <= 0:
        raise InputError(f"header gives a sample rate of {info.samplerate} Hz", path=path,
                         fix="re-export the file")
    if head[:4] in (b"RIFF", b"RIFX"):
        sizes = _riff_data_sizes(path, big_endian=head[:4] == b"RIFX")
        if sizes is not None and sizes[1] < sizes[0] < _UNKNOWN_SIZE:
            raise InputError(f"truncated: the header promises {sizes[0]:,} bytes of samples, "
                             f"the file holds {sizes[1]:,} ({info.duration:.3f} s)", path=path,
                             fix="re-copy or re-export the file")
    if info.frames <= 0:
        raise InputError("holds no samples (0-length audio)", path=path,
                         fix="drop it from the list")
    seconds = info.frames / info.samplerate
    if max_seconds is not None and seconds > max_seconds:
        raise InputError(f"{seconds:,.1f} s long, over the limit of {max_seconds:g} s", path=path,
                         fix="raise max_seconds, --max-seconds on the command line, or cut the "
                             "file into shorter clips")
    return AudioInfo(str(path), int(info.samplerate), int(info.frames), int(info.channels),
                     str(info.format), str(info.subtype))


def read_audio(path, target_sr: Optional[int] = 16000, mono: bool = True,
               max_seconds: Optional[float] = DEFAULT_MAX_SECONDS) -> Tuple[torch.Tensor, int]:
    """Decode a WAV or FLAC file -> (waveform, the file's sample rate).

    waveform: float32 (channels, samples), or (1, samples) with ``mono`` (channels averaged);
    PCM is scaled to [-1, 1), float files are returned as stored (they may exceed 1).
    Resampled to ``target_sr`` when the file's rate differs (None keeps the file's rate).
    Every bad input is an :class:`InputError` naming the file (see :func:`audio_info`); float
    files holding NaN or infinity are rejected too.
    """
    path = Path(path)
    info = audio_info(path, max_seconds)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (frames, channels)
    except RuntimeError:
        raise InputError(f"cannot decode the {info.format} samples (truncated or damaged)",
                         path=path, fix="re-copy or re-export the file") from None
    if data.shape[0] == 0:
        raise InputError("holds no samples (0-length audio)", path=path,
                         fix="drop it from the list")
    bad = ~np.isfinite(data)
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        raise InputError(f"{int(bad.sum()):,} NaN or infinite samples (first at sample {i:,}, "
                         f"{i / sr:.3f} s)", path=path, fix="fix or drop the file")
    if mono and data.shape[1] > 1:
        data = data.mean(axis=1, keepdims=True)
    wave = torch.from_numpy(np.ascontiguousarray(data.T))
    if target_sr is not None and sr != target_sr:
        if target_sr <= 0:
            raise InputError(f"target sample rate must be positive, got {target_sr}")
        wave = AF.resample(wave, orig_freq=int(sr), new_freq=int(target_sr))
    return wave.to(torch.float32).contiguous(), int(sr)


def normalize_peak(x: torch.Tensor, peak: float = 0.95) -> torch.Tensor:
    """Scale ``x`` down so that max |x| <= ``peak``; quieter clips (and silence) are unchanged.

    Only scaling down keeps the loudness differences between clips, which carry information,
    while making sure nothing clips when written as PCM.  Apply it to one clip, not a batch.
    """
    if not peak > 0:
        raise ValueError(f"peak must be positive, got {peak}")
    if x.numel() == 0:
        return x
    top = float(x.detach().abs().max())
    if top > peak:  # False for silence (0) and for NaN
        return x * (peak / top)
    return x


def write_wav_atomic(path, waveform: Union[torch.Tensor, np.ndarray], sr: int) -> Path:
    """Write (samples,) or (channels, samples) float audio as 16-bit PCM WAV, atomically.

    The samples go to a temporary file beside ``path`` which then replaces it, so a reader
    never sees a half-written clip.  Values are clipped to [-1, 1] (libsndfile would wrap
    them round instead); NaN or infinity is a ValueError.
    """
    path = Path(path)
    w = torch.as_tensor(waveform).detach().to("cpu", torch.float32)
    if w.dim() == 1:
        w = w[None]
    if w.dim() != 2 or w.shape[-1] == 0:
        raise ValueError(f"waveform must be (samples,) or (channels, samples), got "
                         f"{tuple(w.shape)}")
    if not torch.isfinite(w).all():
        raise ValueError("waveform holds NaN or infinite samples")
    if int(sr) <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    with atomic_output(path) as tmp:
        sf.write(str(tmp), w.clamp(-1.0, 1.0).numpy().T, int(sr), subtype="PCM_16", format="WAV")
    return path
