"""DNA language modelling, Mamba against the Transformer++ of matched size: E. coli held-out
bits per base from the shipped recipe, beside the Markov baselines of the same split.

    python benchmarks/arch_dna_lm.py                          # 1k, seeds 0 1 (about 30 min)
    python benchmarks/arch_dna_lm.py --seq-lens 1024 4096 --seeds 0 1 2

Both models train through the product command (``seqmamba dna pretrain --config
dna_pretrain_ecoli``: split ecoli-90-10, 750 steps of 8 windows, the same lr schedule, RC
augmentation and seed), with ``--arch`` the only difference besides the size that matches
their parameters (within 10%, two Mamba blocks per Transformer block as in the Mamba paper):
Mamba d_model 128 x 3 blocks (352k parameters), Mamba-2 d_model 128 x 3 blocks of 4 heads of
64 channels with state 64 (354k), and Transformer++ d_model 120 x 2 blocks of 4 heads (348k).
At a longer ``--seq-len`` the batch shrinks so a step holds the same 8,192 bases, and the
Transformer attends over the whole window.

Writes ``benchmarks/results/arch_dna_lm.csv``: one row per (seq_len, arch, seed) with the
held-out bits per base, training seconds, parameters and the best Markov model's bits.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from seqmamba.atomic import write_csv_atomic  # noqa: E402

ARCHS = {"mamba": ["--arch", "mamba", "--d-model", "128", "--n-layer", "3"],
         "mamba2": ["--arch", "mamba2", "--d-model", "128", "--n-layer", "3", "--d-state", "64",
                    "--head-dim", "64"],
         "transformer": ["--arch", "transformer", "--d-model", "120", "--n-layer", "2",
                         "--n-head", "4"]}
STEP_BASES = 8192


def train(arch: str, seq_len: int, seed: int, out: Path, threads: int) -> dict:
    cmd = [sys.executable, "-m", "pipelines.cli", "--threads", str(threads), "dna", "pretrain",
           "--config", "dna_pretrain_ecoli", "--out", str(out), "--seed", str(seed),
           "--seq-len", str(seq_len), "--batch-size", str(max(1, STEP_BASES // seq_len)),
           "--no-progress", *ARCHS[arch]]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    rep = json.loads((out / "report.json").read_text())
    import seqmamba

    params = seqmamba.from_pretrained(str(out / "final")).num_parameters()
    return {"seq_len": seq_len, "arch": arch, "seed": seed,
            "val_bits_per_base": rep["val_bits_per_base"], "train_seconds": rep["train_seconds"],
            "params": params, "steps": rep["steps"],
            "best_markov_bits_per_base": rep["best_markov_bits_per_base"],
            "best_markov_order": rep["best_markov_order"]}


def _read(path: Path) -> list:
    import csv

    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _merge(path: Path, new: list, key) -> None:
    """Write ``new`` into the result file in place of its rows with the same ``key``, keeping
    every other row.  The file is read again just before writing, so two runs of a script
    (on two cores, say) can fill the same file without losing each other's rows."""
    keys = {key(r) for r in new}
    write_csv_atomic([r for r in _read(path) if key(r) not in keys] + new, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seq-lens", type=int, nargs="+", default=[1024])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=HERE / "results" / "arch_dna_lm.csv")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for seq_len in a.seq_lens:
            for seed in a.seeds:
                for arch in a.archs:
                    row = train(arch, seq_len, seed, Path(tmp) / f"{arch}{seq_len}s{seed}",
                                a.threads)
                    print(json.dumps(row), flush=True)
                    # each run as it comes (a stop loses one); rows of other runs are kept
                    _merge(a.out, [row], lambda r: (str(r["seq_len"]), r["arch"], str(r["seed"])))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
