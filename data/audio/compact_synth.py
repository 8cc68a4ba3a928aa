"""A compact, bundled subset of the generated synthetic digit voices (``make_digits.py``).

    python data/audio/compact_synth.py data/audio/generated data/audio/synth_digits_8k
    python data/audio/compact_synth.py SRC OUT --per-digit 200 --rate 8000 --seed 0

The full generated set (7,000 clips of 12 voices, 221 MB of 16 kHz WAV) needs espeak-ng, flite
and sox to make and is not kept in git.  Mixed into the real speakers it lifts accuracy on
unheard speakers more than anything else measured (the README's FSDD tables), so the
``audio_fsdd`` recipe should have it without those packages.  This picks ``--per-digit`` clips
of each digit, spread evenly over the voice groups (the same number from each group, the
remainder to the groups that come first in a seeded shuffle), resamples them to ``--rate``
with torchaudio and writes them as 16-bit FLAC (about 5 kB a clip at 8 kHz), with
``manifest.csv`` (``path,label,group,engine,voice``, as the source's) written last and
atomically.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # imported by path (the tests): make_digits sits beside it
    sys.path.insert(0, str(HERE))

from make_digits import COLUMNS, write_manifest  # noqa: E402  (the generated set's columns)


def pick(rows: list, per_digit: int, seed: int) -> list:
    """``per_digit`` rows of each label, as evenly spread over the groups as the counts allow;
    the result is in label, group, source order (so reruns write the same files)."""
    rng = random.Random(seed)
    by = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by[r["label"]][r["group"]].append(r)
    chosen = []
    for label in sorted(by):
        groups = sorted(by[label])
        rng.shuffle(groups)  # which groups get one more when per_digit does not divide evenly
        pools = {g: rng.sample(by[label][g], len(by[label][g])) for g in groups}
        taken = {g: 0 for g in groups}
        need = per_digit
        while need:
            open_groups = [g for g in groups if taken[g] < len(pools[g])]
            if not open_groups:
                raise SystemExit(f"compact_synth: only {per_digit - need} clips of {label!r} "
                                 f"in the source; ask for fewer with --per-digit")
            for g in open_groups:
                if not need:
                    break
                taken[g] += 1
                need -= 1
        for g in sorted(groups):
            chosen += sorted(pools[g][:taken[g]], key=lambda r: r["path"])
    return chosen


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path, nargs="?", default=HERE / "generated",
                    help="a make_digits.py output folder (with manifest.csv)")
    ap.add_argument("out", type=Path, nargs="?", default=HERE / "synth_digits_8k")
    ap.add_argument("--per-digit", type=int, default=200)
    ap.add_argument("--rate", type=int, default=8000, help="sample rate of the written clips")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    manifest = a.src / "manifest.csv"
    if not manifest.is_file():
        print(f"compact_synth: {manifest}: no such manifest; make the set first: "
              f"python data/audio/make_digits.py {a.src}", file=sys.stderr)
        return 2
    import soundfile as sf
    import torch
    import torchaudio

    with open(manifest, newline="") as f:
        rows = pick(list(csv.DictReader(f)), a.per_digit, a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    out_rows = []
    for r in rows:
        wave, sr = sf.read(a.src / r["path"], dtype="float32", always_2d=True)
        mono = torch.from_numpy(wave.mean(1))
        if sr != a.rate:
            mono = torchaudio.functional.resample(mono, sr, a.rate)
        name = Path(r["path"]).with_suffix(".flac")
        dest = a.out / name.parent.name / name.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        sf.write(dest, mono.clamp(-1, 1).numpy(), a.rate, format="FLAC", subtype="PCM_16")
        out_rows.append({**{k: r[k] for k in COLUMNS}, "path": f"{dest.parent.name}/{dest.name}"})
    write_manifest(out_rows, a.out / "manifest.csv")
    groups = sorted({r["group"] for r in out_rows})
    print(f"wrote {len(out_rows)} clips of {len(groups)} voice groups at {a.rate} Hz to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
