"""Zero-shot variant effects with a known answer: nonsense SNVs in M. tuberculosis genes should
look less likely than synonymous ones to a DNA language model that never saw M. tuberculosis.

    python experiments/mtb_variant_sets.py                          # the two sets (once)
    python experiments/variant_zero_shot.py --model runs/ecoli      # a model pretrained elsewhere

Both sets go through ``seqmamba dna score-variants`` (LLR = log P(alt window) - log P(ref
window)); the score of "nonsense" is -LLR, and AUROC (nonsense vs synonymous) is reported with
a bootstrap 95% interval (2,000 resamples).  Beside it, the same LLR from Markov models of
orders 0-8 fitted on ``--markov-fasta`` (default: the E. coli genome the recipe pretrains on),
each over the same windows.  Writes ``experiments/results/variant_zero_shot.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipelines.dna.fasta import FastaFile  # noqa: E402
from pipelines.dna.markov import MarkovModel  # noqa: E402
from pipelines.dna.models import model_extra, resolve_model_dir  # noqa: E402
from pipelines.dna.tokenizer import DNATokenizer  # noqa: E402
from pipelines.dna.variant_scoring import alt_window  # noqa: E402
from seqmamba.atomic import write_json_atomic  # noqa: E402

GENOME = ROOT / "data" / "genomes" / "Mtb_H37Rv_NC_000962.2.fa.gz"
SETS = ROOT / "data" / "variants"
ECOLI = ROOT / "data" / "genomes" / "Ecoli_K12_MG1655.fa.gz"


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting half."""
    s = np.concatenate([pos, neg])
    ranks = s.argsort().argsort().astype(np.float64) + 1
    _, inv, counts = np.unique(s, return_inverse=True, return_counts=True)
    sums = np.zeros(len(counts))
    np.add.at(sums, inv, ranks)
    ranks = (sums / counts)[inv]  # average ranks of ties
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def bootstrap_ci(pos, neg, n=2000, seed=0) -> tuple:
    rng = np.random.default_rng(seed)
    vals = [auroc(rng.choice(pos, len(pos)), rng.choice(neg, len(neg))) for _ in range(n)]
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def read_llrs(vcf: Path) -> list:
    import pysam

    return [(r.pos, r.ref, r.alts[0], r.info["SM_LLR"][0]) for r in pysam.VariantFile(str(vcf))
            if "SM_LLR" in r.info and r.info["SM_LLR"][0] is not None]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--window", type=int, default=None)
    p.add_argument("--markov-fasta", type=Path, default=ECOLI)
    p.add_argument("--out", type=Path, default=HERE / "results" / "variant_zero_shot.json")
    a = p.parse_args(argv)
    d = resolve_model_dir(a.model)
    window = a.window or int(model_extra(d).get("seq_len", 1024))
    scored, seconds = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("synonymous", "nonsense"):
            out = Path(tmp) / f"{kind}.vcf"
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "pipelines.cli", "dna", "score-variants",
                            "--model", str(a.model), "--fasta", str(GENOME), "--vcf",
                            str(SETS / f"mtb_{kind}.vcf"), "--out", str(out), "--window",
                            str(window)], check=True, cwd=ROOT)
            seconds[kind] = time.perf_counter() - t0
            scored[kind] = read_llrs(out)
    syn = np.array([x[3] for x in scored["synonymous"]])
    non = np.array([x[3] for x in scored["nonsense"]])
    model_auc = auroc(-non, -syn)
    # Markov LLRs over the same windows, each order fitted on --markov-fasta
    tok = DNATokenizer()
    fa, mfa = FastaFile(GENOME), FastaFile(a.markov_fasta)
    train = [tok.encode(mfa.fetch(r.name)).numpy() for r in mfa.records]
    chrom = fa.records[0].name
    markov = {}
    for k in range(9):
        m = MarkovModel(k).fit(train)
        llr = {}
        for kind, rows in scored.items():
            vals = []
            for pos, ref, alt, _ in rows:
                rw, aw = alt_window(fa, chrom, pos - 1, ref, alt, window)
                b_ref, _ = m.bits([tok.encode(rw).numpy()])
                b_alt, _ = m.bits([tok.encode(aw).numpy()])
                vals.append((b_ref - b_alt) * math.log(2))  # nats, as the model's LLR
            llr[kind] = np.array(vals)
        auc = auroc(-llr["nonsense"], -llr["synonymous"])
        markov[k] = {"auroc": auc, "ci95": bootstrap_ci(-llr["nonsense"], -llr["synonymous"])}
    best = max(markov, key=lambda k: markov[k]["auroc"])
    n_variants = len(syn) + len(non)
    cfg = json.loads((d / "config.json").read_text())
    report = {"model": {k: cfg.get(k) for k in ("d_model", "n_layer", "d_state")} |
              {"fasta": cfg.get("extra", {}).get("fasta")}, "window": window, "n_synonymous": len(syn),
              "n_nonsense": len(non), "model_auroc": model_auc,
              "model_ci95": bootstrap_ci(-non, -syn),
              "mean_llr": {"synonymous": float(syn.mean()), "nonsense": float(non.mean())},
              "markov_fitted_on": a.markov_fasta.name, "markov": markov,
              "best_markov_order": best, "best_markov_auroc": markov[best]["auroc"],
              "variants_per_second": n_variants / sum(seconds.values())}
    write_json_atomic(report, a.out)
    print(f"AUROC nonsense vs synonymous: model {model_auc:.3f} "
          f"[{report['model_ci95'][0]:.3f}, {report['model_ci95'][1]:.3f}] | best Markov "
          f"(order {best}) {markov[best]['auroc']:.3f} | {report['variants_per_second']:.0f} "
          f"variants/s (with start-up); wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
