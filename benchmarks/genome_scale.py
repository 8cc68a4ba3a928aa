"""Pretraining and prediction on large genomes: peak memory and time against genome size.

    python benchmarks/genome_scale.py                 # 0.1 and 0.3 Gb (about 8 minutes)
    python benchmarks/genome_scale.py --sizes 0.1 0.5 1.0 --predict-sizes 0.1 1.0
    python benchmarks/genome_scale.py --sizes 0.1 0.5 1.0 --commands score-variants

For each size a synthetic genome is written (numpy straight to a file: 60-column lines, 4
records, each starting with an N run, lowercase stretches), then, each command in a fresh
process timed with /usr/bin/time: ``dna pretrain`` (3 steps of a 16-channel model: the cost
is the genome, not the model) on a first run (the index and the check-and-count pass built)
and a second run (both read back), ``dna predict`` over the whole genome with a small causal
LM (at ``--predict-sizes``), and ``dna score-variants`` of 1,000 SNVs spread over the genome
with the same LM (256-base windows: it reads only the windows its VCF needs).  Writes ``benchmarks/results/genome_scale.csv``: size, command, run, peak RSS (GB),
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


def write_vcf(path: Path, fasta: Path, variants: int, seed: int = 1) -> Path:
    """``variants`` SNVs at random non-N positions of the genome ``write_genome`` wrote (read
    back through its index), sorted, with a VCF header naming the records."""
    import pyfaidx

    fa = pyfaidx.Fasta(str(fasta), as_raw=True)
    rng = np.random.default_rng(seed)
    names = list(fa.keys())
    lines = ["##fileformat=VCFv4.2"] + [f"##contig=<ID={n},length={len(fa[n])}>" for n in names]
    lines.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO")
    picks = []
    for i in range(variants):
        name = names[i % len(names)]
        n = len(fa[name])
        while True:
            pos = int(rng.integers(n // 100 + 1000, n - 1000))  # past the N run at the start
            ref = fa[name][pos:pos + 1].upper()
            if ref in "ACGT":
                break
        picks.append((names.index(name), pos, ref))
    for rec, pos, ref in sorted(picks):
        alt = "ACGT"[("ACGT".index(ref) + 1) % 4]
        lines.append(f"{names[rec]}\t{pos + 1}\t.\t{ref}\t{alt}\t.\t.\t.")
    path.write_text("\n".join(lines) + "\n")
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
    p.add_argument("--commands", nargs="+", default=["pretrain", "predict", "score-variants"],
                   choices=["pretrain", "predict", "score-variants"],
                   help="what to measure (the CSV's rows of the others are kept)")
    p.add_argument("--variants", type=int, default=1000, help="SNVs scored (score-variants)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "genome_scale.csv")
    a = p.parse_args(argv)
    rows = []
    if a.out.exists():
        import csv

        with open(a.out, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["command"] not in a.commands]
        for r in rows:
            r["gb"] = float(r["gb"])
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
            for run in ("first", "second") if "pretrain" in a.commands else ():
                rss, sec = timed(CLI + ["dna", "pretrain", "--fasta", str(fa), "--out",
                                        str(tmp / f"run{gb}{run}"), "--seq-len", "1024",
                                        "--max-steps", "3", "--val-every", "3", "--batch-size",
                                        "2", "--d-model", "16", "--n-layer", "1",
                                        "--val-windows", "4", "--no-progress"])
                rows.append({"gb": gb, "command": "pretrain", "run": run, "peak_rss_gb": rss,
                             "seconds": sec, "bases_per_s": ""})
                print(rows[-1], file=sys.stderr)
            if "score-variants" in a.commands:
                vcf = write_vcf(tmp / f"v{gb}.vcf", fa, a.variants)
                rss, sec = timed(CLI + ["dna", "score-variants", "--model", str(lm), "--fasta",
                                        str(fa), "--vcf", str(vcf), "--out",
                                        str(tmp / f"s{gb}.vcf"), "--window", "256"])
                rows.append({"gb": gb, "command": "score-variants", "run": "first",
                             "peak_rss_gb": rss, "seconds": sec, "bases_per_s": "",
                             "variants_per_s": a.variants / sec})
                print(rows[-1], file=sys.stderr)
            if gb in a.predict_sizes and "predict" in a.commands:
                rss, sec = timed(CLI + ["dna", "predict", "--model", str(lm), str(fa), "--out",
                                        str(tmp / f"p{gb}.tsv"), "--no-progress"])
                rows.append({"gb": gb, "command": "predict", "run": "first", "peak_rss_gb": rss,
                             "seconds": sec, "bases_per_s": gb * 1e9 / sec})
                print(rows[-1], file=sys.stderr)
            fa.unlink()
    for command, run in (("pretrain", "first"), ("pretrain", "second"), ("predict", "first"),
                         ("score-variants", "first")):
        pts = [(r["gb"], float(r["peak_rss_gb"])) for r in rows
               if (r["command"], r["run"]) == (command, run)]
        slope = float(np.polyfit(*zip(*pts), 1)[0]) if len(pts) > 1 else float("nan")
        for r in rows:
            if (r["command"], r["run"]) == (command, run):
                r["rss_slope_gb_per_gb"] = slope
    for r in rows:  # one set of columns for every row
        r.setdefault("variants_per_s", "")
    write_csv_atomic(rows, a.out)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
