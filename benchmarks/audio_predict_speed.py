"""Prediction speed of ``seqmamba audio predict`` on short clips: one at a time against batched,
on idle cores and with another process keeping one core busy, in one run.

    python benchmarks/audio_predict_speed.py     # -> benchmarks/results/audio_predict_speed.csv

The model is the shipped ``audio_fsdd`` recipe's architecture (random weights: speed does not
depend on them), read from a model directory by the command's own ``AudioPredictor``; the
clips are FSDD recordings (0.2-2.3 s at 8 kHz, each padded to the 1.4 s training length, as
the command does).  Each setting predicts the same clips through ``AudioPredictor.read`` and
``classify``, ``--batch-size`` clips per forward pass, with torch's default thread count.
Reported as clips per second and as a ratio to one at a time on the idle machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (ROOT, HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from busy_cores import cores_busy  # noqa: E402
from pipelines.audio.datasets import bundled_set, read_clips  # noqa: E402
from pipelines.audio.predictor import AudioPredictor  # noqa: E402
from seqmamba import MambaConfig, MambaForSequenceClassification  # noqa: E402
from seqmamba.atomic import write_csv_atomic  # noqa: E402


def recipe_model(out: Path) -> Path:
    """A randomly initialised classifier of the audio_fsdd recipe's architecture (the recipe
    read by ``audio finetune``'s own parser, so its defaults fill what the recipe leaves
    out), saved as a finetune run's model directory."""
    from pipelines.audio.args import frontend_config
    from pipelines.audio.finetune import build_parser
    from pipelines.runs import parse_with_recipe

    r = parse_with_recipe(build_parser(), ["--config", "audio_fsdd", "--out", "-"])
    torch.manual_seed(0)
    labels = [str(d) for d in range(10)]
    cfg = MambaConfig(d_model=r.d_model, n_layer=r.n_layer, d_state=r.d_state, vocab_size=1,
                      **frontend_config(r), num_labels=len(labels),
                      pooling=r.pooling, bidirectional=r.bidirectional,
                      extra={"task": "audio-classify", "labels": labels,
                             "sample_rate": r.sample_rate, "seconds": r.seconds,
                             "encoding": "waveform", "peak": r.peak})
    MambaForSequenceClassification(cfg).save_pretrained(out)
    return out


def clips_per_second(predictor: AudioPredictor, files, batch: int) -> float:
    t0 = time.perf_counter()
    waves = []
    for f in files:
        waves.append(predictor.read(f, None)[1])
        if len(waves) == batch:
            predictor.classify(torch.stack(waves))
            waves = []
    if waves:
        predictor.classify(torch.stack(waves))
    return len(files) / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clips", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", type=Path, default=HERE / "results" / "audio_predict_speed.csv")
    a = p.parse_args(argv)
    clips = read_clips(Path(bundled_set("fsdd")["manifest"]))
    files = [Path(c.path) for c in clips[:: max(1, len(clips) // a.clips)]][: a.clips]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        predictor = AudioPredictor(recipe_model(Path(tmp) / "model"), "cpu", 10.0)
        clips_per_second(predictor, files[:8], a.batch_size)  # warm-up
        for busy in (False, True):
            with cores_busy(busy):
                for batch in (1, a.batch_size):
                    rows.append({"cores": len(os.sched_getaffinity(0)), "busy_cores": int(busy),
                                 "threads": torch.get_num_threads(), "batch": batch,
                                 "clips": len(files),
                                 "clips_per_s": round(clips_per_second(predictor, files, batch), 1)})
                    print(rows[-1], flush=True)
    ref = rows[0]["clips_per_s"]
    for r in rows:
        r["vs_idle_one_at_a_time"] = round(r["clips_per_s"] / ref, 2)
    write_csv_atomic(rows, a.out)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
