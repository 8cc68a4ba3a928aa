"""Pretraining and prediction on large genomes: peak memory and time against genome size.

    python benchmarks/genome_scale.py                 # 0.1 and 0.3 Gb (about 8 minutes)
    python benchmarks/genome_scale.py --sizes 0.1 0.5 1.0 --predict-sizes 0.1 1.0

For each size a synthetic genome is written (numpy straight to a file: 60-column lines, 4
records, each starting with an N run, lowercase stretches), then, each command in a fresh
process timed with /usr/bin/time: ``dna pretrain`` (3 steps of a 16-channel model: the cost
is the genome, not the model) on a first run (the index and the check-and-count pass built)
and a second run (both read back), and ``dna predict`` over the whole genome with a small
causal LM (at ``--predict-sizes``).  Writes ``benchmarks/results/genome_scale.csv``: size, command, run, peak RSS (GB),
wall seconds, bases per second (predict), and the fitted slope of peak RSS against size.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from seqmamba.atomic import write_csv_atomic  # noqa: E402

CLI = [sys.executable, "-m", "pipelines.cli", "--threads", "2"]


def write_genome(path: Path, bases: int, records: int = 4, seed: int = 0) -> Path:
    """A FASTA of ``records`` equal records (1% N at the start of each, 1 in 7 blocks of 5 kb
    lowercase), 60 bases a line, written in 6 Mb blocks."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGTacgt", np.uint8)
    block = 60 * 100_000
    with open(path, "wb") as f:
        for r in range(records):
            n = bases // records
            f.write(f">chr{r + 1}\n".encode())
            for s in range(0, n, block):
                m = min(block, n - s)
                pos = np.arange(s, s + m)
                seq = letters[rng.integers(0, 4, m) + 4 * ((pos // 5000) % 7 == 3)]
                seq[pos < n // 100] = ord("N")
                full = m // 60 * 60
                lines = np.full((full // 60, 61), ord("\n"), np.uint8)
                lines[:, :60] = seq[:full].reshape(-1, 60)
                f.write(lines.tobytes())
                if full < m:
                    f.write(seq[full:].tobytes() + b"\n")
    return path


def timed(argv) -> tuple:
    """(peak RSS in GB, wall seconds) of one command under /usr/bin/time."""
    p = subprocess.run(["/usr/bin/time", "-f", "%M %e", *argv], capture_output=True, text=True,
                       cwd=ROOT)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, argv))} failed:\n{p.stderr[-2000:]}")
    kb, seconds = re.findall(r"^(\d+) ([\d.]+)$", p.stderr, re.M)[-1]
    return int(kb) / 1024 ** 2, float(seconds)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=float, nargs="+", default=[0.1, 0.3], help="Gb")
    p.add_argument("--predict-sizes", type=float, nargs="*", default=[0.1],
                   help="Gb at which dna predict also runs (about 3 minutes per 0.1 Gb)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "genome_scale.csv")
    a = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lm = tmp / "lm"
        subprocess.run(CLI + ["dna", "pretrain", "--fasta", str(ROOT / "data" / "genomes" /
                                                                "Hpylori_G27_NC_011333.1.fa.gz"),
                              "--out", str(lm), "--max-steps", "1", "--val-every", "1",
                              "--seq-len", "256", "--batch-size", "2", "--d-model", "32",
                              "--n-layer", "2", "--no-progress"], check=True, cwd=ROOT,
                       capture_output=True)
        for gb in a.sizes:
            fa = write_genome(tmp / f"g{gb}.fa", int(gb * 1e9))
            for run in ("first", "second"):
                rss, sec = timed(CLI + ["dna", "pretrain", "--fasta", str(fa), "--out",
                                        str(tmp / f"run{gb}{run}"), "--seq-len", "1024",
                                        "--max-steps", "3", "--val-every", "3", "--batch-size",
                                        "2", "--d-model", "16", "--n-layer", "1",
                                        "--val-windows", "4", "--no-progress"])
                rows.append({"gb": gb, "command": "pretrain", "run": run, "peak_rss_gb": rss,
                             "seconds": sec, "bases_per_s": ""})
                print(rows[-1], file=sys.stderr)
            if gb in a.predict_sizes:
                rss, sec = timed(CLI + ["dna", "predict", "--model", str(lm), str(fa), "--out",
                                        str(tmp / f"p{gb}.tsv"), "--no-progress"])
                rows.append({"gb": gb, "command": "predict", "run": "first", "peak_rss_gb": rss,
                             "seconds": sec, "bases_per_s": gb * 1e9 / sec})
                print(rows[-1], file=sys.stderr)
            fa.unlink()
    for command, run in (("pretrain", "first"), ("pretrain", "second"), ("predict", "first")):
        pts = [(r["gb"], r["peak_rss_gb"]) for r in rows if (r["command"], r["run"]) == (command, run)]
        slope = float(np.polyfit(*zip(*pts), 1)[0]) if len(pts) > 1 else float("nan")
        for r in rows:
            if (r["command"], r["run"]) == (command, run):
                r["rss_slope_gb_per_gb"] = slope
    write_csv_atomic(rows, a.out)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
