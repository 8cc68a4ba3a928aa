"""How much the recording channel moves a spoken-digit model on voices it has never heard.

    python experiments/audio_channels.py --tags max_seed1 band_limit

Scores the held-out speaker's clips of each trained fold of ``experiments/audio_fsdd.py``
(``runs/fsdd_loso_<TAG>/<speaker>``) as recorded and through other channels: torchaudio's
biquad low-pass at 2 kHz (a narrow-band microphone or line), high-pass at 300 Hz (a small
loudspeaker or telephone capsule, no low end) and a +10 dB treble shelf above 2.5 kHz (a
bright microphone).  A model that has learnt the words and not the recorders scores the same
through all of them.  The filters are torchaudio's, not the training augmentation's
(``--band-limit``), so a model is not scored on the very transform it was trained with.

Writes ``experiments/results/audio_channels.csv`` (run, held_out, channel, clips, model_acc);
the rows of runs not asked for this time are kept.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import torch
import torchaudio.functional as AF

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from audio_fsdd import SPEAKERS, clip_arrays, load_fold_models, model_predict  # noqa: E402
from pipelines.audio.datasets import bundled_set, read_clips  # noqa: E402
from seqmamba.atomic import write_csv_atomic  # noqa: E402

# channel name -> w (samples,), sample rate -> w through that channel
CHANNELS = {
    "as recorded": lambda w, sr: w,
    "low-pass 2 kHz": lambda w, sr: AF.lowpass_biquad(w, sr, 2000.0),
    "high-pass 300 Hz": lambda w, sr: AF.highpass_biquad(w, sr, 300.0),
    "treble +10 dB": lambda w, sr: AF.treble_biquad(w, sr, 10.0, 2500.0),
}

OUT = HERE / "results" / "audio_channels.csv"


def score_fold(run: Path, speaker: str, clips) -> list:
    """Rows (held_out, channel, clips, model_acc) of one fold's model on its held-out clips."""
    models, extra = load_fold_models([run])
    sr = int(extra["sample_rate"])
    waves, y = clip_arrays([c for c in clips if c.group == speaker], extra["labels"], sr)
    rows = []
    for name, channel in CHANNELS.items():
        pred = model_predict(models, extra, [channel(w, sr) for w in waves])
        rows.append({"held_out": speaker, "channel": name, "clips": len(waves),
                     "model_acc": round(float((pred == y).mean()), 4)})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tags", nargs="+", required=True,
                   help="runs of experiments/audio_fsdd.py --tag ('' for the untagged run)")
    p.add_argument("--speakers", nargs="+", default=list(SPEAKERS))
    p.add_argument("--workdir", type=Path, default=ROOT / "runs" / "fsdd_loso")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    clips = read_clips(bundled_set("fsdd")["manifest"])
    rows = []
    for tag in a.tags:
        base = a.workdir.with_name(a.workdir.name + (f"_{tag}" if tag else ""))
        done = [s for s in a.speakers if (base / s / "report.json").is_file()]
        if not done:
            raise SystemExit(f"{base}: no finished fold of {', '.join(a.speakers)}; train it "
                             f"first (experiments/audio_fsdd.py --tag {tag})")
        for s in done:
            for r in score_fold(base / s, s, clips):
                rows.append({"run": tag or "recipe", **r})
                print(f"{tag or 'recipe'} {s} {r['channel']}: {r['model_acc']:.3f}", flush=True)
    asked = {r["run"] for r in rows}
    kept = []
    if OUT.is_file():
        with open(OUT, newline="") as f:
            kept = [r for r in csv.DictReader(f) if r["run"] not in asked]
    write_csv_atomic(kept + rows, OUT)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
