"""Short DNA classification, Mamba against the Transformer++ and the one-hot CNN of matched size,
beside one-hot logistic regression: UCI splice junctions (3 classes, 60 bases) and E. coli
promoters (2 classes, 57 bases), held-out accuracy and MCC over seeds.

    python benchmarks/arch_dna_classify.py                    # both tasks, seeds 0 1 2
    python benchmarks/arch_dna_classify.py --tasks splice --seeds 3 4 --archs transformer

Every row trains through the product command (``seqmamba dna finetune --config dna_splice`` or
``dna_promoters``: the recipe's split, steps, batch, lr schedule, EMA and seed), with
``--baseline cnn``: the one-hot CNN is trained on the model's own batches for its steps, at its
parameter count (within 10%).  The one-hot + logistic-regression baseline is fitted on the same
split.  The Transformer++ is d_model 56 x 2 blocks of 4 heads (78k parameters against the Mamba
recipe's 83k), attending over the whole sequence in both directions.

Writes ``benchmarks/results/arch_dna_classify.csv``: one row per (task, arch, seed) with the
model's, the CNN's and the logistic regression's accuracy and MCC, parameters and seconds.
Rows of other (task, arch, seed) already in the file are kept.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from arch_dna_lm import _merge  # noqa: E402  (rows into a result file, keeping the others)

TASKS = {"splice": "dna_splice", "promoters": "dna_promoters"}
ARCHS = {"mamba": [],
         "transformer": ["--arch", "transformer", "--d-model", "56", "--n-layer", "2",
                         "--n-head", "4"]}
OUT = HERE / "results" / "arch_dna_classify.csv"


def train(task: str, arch: str, seed: int, out: Path) -> dict:
    """One finetune run (the model and its CNN baseline) plus the logistic regression, as a
    row."""
    from pipelines.bundled import shipped_recipe
    from pipelines.cli import main as cli

    rc = cli(["dna", "finetune", "--config", str(shipped_recipe(TASKS[task])), "--out", str(out),
              "--seed", str(seed), "--baseline", "cnn", "--no-progress", *ARCHS[arch]])
    if rc != 0:
        raise SystemExit(f"dna finetune {task} {arch} seed {seed} failed ({rc})")
    rep = json.loads((out / "report.json").read_text())
    cnn = rep["baseline"]
    return {"task": task, "arch": arch, "seed": seed,
            "model_acc": round(rep["model"]["acc"], 4), "model_mcc": round(rep["model"]["mcc"], 4),
            "cnn_acc": round(cnn["acc"], 4), "cnn_mcc": round(cnn["mcc"], 4),
            **logistic_row(task, seed),
            "params": rep["parameters"], "cnn_params": cnn["parameters"],
            "train_seconds": rep["train_seconds"], "cnn_train_seconds": cnn["train_seconds"],
            "val_examples": rep["val_examples"], "steps": rep["steps"]}


def logistic_row(task: str, seed: int) -> dict:
    """One-hot + logistic regression on the split ``dna finetune`` makes for the recipe and
    seed."""
    from pipelines.dna.baselines import logistic_baseline
    from pipelines.dna.finetune import _split, build_parser
    from pipelines.dna.labelled import read_labelled
    from pipelines.dna.tokenizer import DNATokenizer
    from pipelines.bundled import shipped_recipe
    from pipelines.runs import parse_with_recipe

    a = parse_with_recipe(build_parser(), ["--config", str(shipped_recipe(TASKS[task])),
                                           "--out", "-", "--seed", str(seed)])
    train_ex, val_ex = _split(read_labelled(a.train, DNATokenizer(), a.fasta), a.val_fraction, seed)
    names = sorted({e.label for e in train_ex})
    b = logistic_baseline(train_ex, val_ex, names, "onehot", seed)
    return {"lr_acc": round(b["acc"], 4), "lr_mcc": round(b["mcc"], 4)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    for task in a.tasks:
        for arch in a.archs:
            for seed in a.seeds:
                with tempfile.TemporaryDirectory() as tmp:
                    row = train(task, arch, seed, Path(tmp) / "run")
                print(row, flush=True)
                # each row as it comes (a stop loses one run); rows of other runs are kept
                _merge(a.out, [row], lambda r: (r["task"], r["arch"], str(r["seed"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
