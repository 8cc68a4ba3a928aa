"""``seqmamba audio generate``: sample audio from a mu-law model of ``seqmamba audio pretrain``.

The prompt (``--prompt in.wav``, read at the model's sample rate) is read in one parallel pass;
each new sample then costs one recurrent step, however long the audio.  Without a prompt
generation starts from silence.  The output WAV (16-bit PCM, written atomically) holds the
prompt followed by ``--seconds`` of generated audio.
"""

from __future__ import annotations

import argparse
import time

import torch

from seqmamba import MambaLMHeadModel

from ..errors import InputError
from ..options import add_field, add_renamed, check_range
from .models import model_extra, resolve_model_dir
from .io import DEFAULT_MAX_SECONDS, read_audio, write_wav_atomic
from .mulaw import SILENCE, mulaw_decode, mulaw_encode


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seqmamba audio generate", description=__doc__.split("\n")[0])
    add_field(p, "model", help="pretraining RUN or RUN/final")
    p.add_argument("--duration", type=float, required=True,
                   help="seconds of audio to generate (it was --seconds)")
    add_renamed(p, "--seconds", "--duration", "seconds of audio to generate",
                "the clip length a classifier trains on")
    add_field(p, "out", help="WAV output")
    add_field(p, "prompt", help="WAV/FLAC to continue")
    p.add_argument("--max-prompt-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                   help="a longer prompt file is an error")
    for name in ("temperature", "top_k", "top_p", "seed", "device"):
        add_field(p, name)
    p.add_argument("--compile", action="store_true",
                   help="compile the recurrent step first (~20 s once, then ~3x faster samples)")
    return p


def run(argv=None) -> int:
    a = build_parser().parse_args(argv)
    d = resolve_model_dir(a.model, ("audio-lm",))
    extra = model_extra(d)
    sr = int(extra.get("sample_rate", 16000))
    n_new = int(round(a.duration * sr))
    if n_new < 1:
        raise InputError(f"--duration {a.duration:g} is less than one sample at {sr} Hz")
    check_range(a, "temperature", 0)
    check_range(a, "top_p", 0, 1, low_open=True)
    check_range(a, "top_k", 0)
    if a.prompt is not None:
        wave = read_audio(a.prompt, sr, mono=True, max_seconds=a.max_prompt_seconds)[0][0]
        prompt = mulaw_encode(wave.clamp(-1, 1))
    else:
        prompt = torch.tensor([], dtype=torch.long)
    start = prompt if len(prompt) else torch.tensor([SILENCE])  # no prompt: from silence
    try:
        model = MambaLMHeadModel.from_pretrained(d).to(a.device).eval()
    except ValueError as e:
        raise InputError(f"cannot load the model ({e})", path=d) from None
    t0 = time.perf_counter()
    ids = model.generate(start[None].to(a.device), n_new, temperature=a.temperature,
                         top_k=a.top_k, top_p=a.top_p, seed=a.seed,
                         chunk_size=1 << 16 if len(start) > 1 << 16 else None,
                         compile=a.compile)
    dt = time.perf_counter() - t0
    new = ids[0, len(start):].cpu()
    audio = mulaw_decode(torch.cat([prompt, new]))
    write_wav_atomic(a.out, audio, sr)
    print(f"wrote {a.out} ({len(prompt) / sr:.3f} s prompt + {n_new / sr:.3f} s generated at "
          f"{sr} Hz); {n_new / dt:,.0f} samples/s ({n_new / dt / sr:.3f}x real time)")
    return 0
