"""Make the mixed-engine spoken-digit set the `audio_digits_mixed` recipe trains on.

    python data/audio/make_digits.py                       # -> data/audio/generated (1-2 min)
    python data/audio/make_digits.py OUT --espeak 400 --flite 300 --seed 1

It runs the two generator scripts beside it, unchanged (`gen_digits.py`: espeak-ng, 8 English
accents x voice variants; `gen_flite.py`: flite voices kal16/awb/rms/slt), each into its own
folder, then writes ``OUT/manifest.csv`` with the columns ``path,label,group,engine,voice``:
``group`` is the espeak-ng accent (the voice up to ``+``) or ``flite:<voice>``, so that whole
accents and whole voices can be held out (``--split group --val-groups ...``).

Needs the Debian packages ``espeak-ng``, ``flite`` and ``sox`` (``apt-get install espeak-ng flite
sox``); with sox's repeatable mode the clips are byte-identical for a seed with espeak-ng 1.51,
flite 2.2 and sox 14.4.2 (digests in ``data_manifests/audio.yaml``).
The output is not kept in git (221 MB at the default sizes): regenerate it.  The manifest
is written last and atomically, so a folder without one is an unfinished run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
NEEDED = ("espeak-ng", "flite", "sox")
COLUMNS = ("path", "label", "group", "engine", "voice")


def group_of(voice: str) -> str:
    """The hold-out unit: espeak 'en-gb-scotland+Michael' -> 'en-gb-scotland'; flite voices
    ('flite:awb') are their own group."""
    return voice if voice.startswith("flite:") else voice.split("+", 1)[0]


def manifest_rows(meta: list, subdir: str, engine: str) -> list:
    """metadata.json entries of one generator -> manifest rows (paths relative to the manifest)."""
    return [{"path": f"{subdir}/{m['file']}", "label": m["word"], "group": group_of(m["voice"]),
             "engine": engine, "voice": m["voice"]} for m in meta]


def run_generator(script: str, out: Path, per_digit: int, seed: int) -> list:
    out.mkdir(parents=True, exist_ok=True)
    # sox dithers with random noise when it writes 16-bit audio; -R ("repeatable") seeds it,
    # so the same seed gives byte-identical WAVs (checked against data_manifests/audio.yaml)
    env = {**os.environ, "SOX_OPTS": (os.environ.get("SOX_OPTS", "") + " -R").strip()}
    subprocess.run([sys.executable, str(HERE / script), str(out), str(per_digit), str(seed)],
                   check=True, stdout=subprocess.DEVNULL, env=env)
    with open(out / "metadata.json") as f:
        return json.load(f)


def write_manifest(rows: list, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, nargs="?", default=HERE / "generated")
    ap.add_argument("--espeak", type=int, default=400, help="espeak-ng clips per digit")
    ap.add_argument("--flite", type=int, default=300, help="flite clips per digit")
    ap.add_argument("--seed", type=int, default=1,
                    help="generator seed (the bundled 200 clips used 0; 1 keeps them disjoint)")
    return ap


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    missing = [b for b in NEEDED if shutil.which(b) is None]
    if missing:
        print(f"error: {', '.join(missing)} not found on PATH; install them with "
              f"'apt-get install espeak-ng flite sox' (Debian/Ubuntu)", file=sys.stderr)
        return 2
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "manifest.csv").unlink(missing_ok=True)  # no stale manifest over a partial rerun
    rows = manifest_rows(run_generator("gen_digits.py", a.out / "espeak", a.espeak, a.seed),
                         "espeak", "espeak-ng")
    rows += manifest_rows(run_generator("gen_flite.py", a.out / "flite", a.flite, a.seed),
                          "flite", "flite")
    write_manifest(rows, a.out / "manifest.csv")
    groups = sorted({r["group"] for r in rows})
    print(f"{len(rows)} clips in {a.out} ({len(groups)} groups: {', '.join(groups)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
