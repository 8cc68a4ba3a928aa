"""Zero-shot variant effects of a masked LM beside a causal LM and count baselines, on a genome
none of them saw: nonsense vs synonymous SNVs in M. tuberculosis genes.

    seqmamba dna pretrain --config dna_pretrain_mlm_bacteria --out runs/mlm_bacteria
    seqmamba dna pretrain --config experiments/recipes/dna_lm_bacteria.yaml --out runs/lm_bacteria
    python experiments/mlm_zero_shot.py --mlm runs/mlm_bacteria --lm runs/lm_bacteria

Both models go through ``seqmamba dna score-variants`` (the masked LM by the masked-site LLR,
the causal LM by the window LLR).  Beside them, fitted on the same four training genomes
(the split ``bacteria-mtb-holdout``): Markov models of orders 0-8 scored by the same window LLR,
and two-sided count models of orders 1-6 scored by the masked-site LLR.  The score of
"nonsense" is -LLR; AUROC (nonsense vs synonymous) with a bootstrap 95% interval (2,000
resamples), and a paired bootstrap interval of the masked LM's AUROC minus the best
baseline's.  Writes ``experiments/results/mlm_zero_shot.json``.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from experiments.variant_zero_shot import GENOME, SETS, auroc, bootstrap_ci, read_llrs  # noqa: E402
from pipelines.dna.fasta import FastaFile  # noqa: E402
from pipelines.dna.manifest import load_split  # noqa: E402
from pipelines.dna.markov import MarkovModel  # noqa: E402
from pipelines.dna.tokenizer import DNATokenizer  # noqa: E402
from pipelines.dna.two_sided import TwoSidedCounts  # noqa: E402
from pipelines.dna.variant_scoring import alt_window, masked_window  # noqa: E402
from pipelines.dna.windows import POOL  # noqa: E402
from seqmamba.atomic import write_json_atomic  # noqa: E402

MANIFEST = ROOT / "data_manifests" / "genomes.yaml"
KINDS = ("synonymous", "nonsense")


def score(model: Path, window: int, tmp: Path) -> dict:
    """{kind: [(pos, ref, alt, llr)]} from ``dna score-variants``."""
    out = {}
    for kind in KINDS:
        vcf = tmp / f"{model.name}_{kind}.vcf"
        subprocess.run([sys.executable, "-m", "pipelines.cli", "dna", "score-variants",
                        "--model", str(model), "--fasta", str(GENOME), "--vcf",
                        str(SETS / f"mtb_{kind}.vcf"), "--out", str(vcf), "--window",
                        str(window)], check=True, cwd=ROOT)
        out[kind] = read_llrs(vcf)
    return out


def summary(non: np.ndarray, syn: np.ndarray) -> dict:
    """AUROC of -LLR (nonsense positive) with its bootstrap interval."""
    return {"auroc": auroc(-non, -syn), "ci95": bootstrap_ci(-non, -syn)}


def paired_difference(a: dict, b: dict, n=2000, seed=1) -> tuple:
    """Bootstrap 95% interval of AUROC(a) - AUROC(b) over the same resampled variants;
    a and b: {kind: llr array} aligned by variant."""
    rng = np.random.default_rng(seed)
    n_non, n_syn = len(a["nonsense"]), len(a["synonymous"])
    diffs = []
    for _ in range(n):
        i, j = rng.integers(0, n_non, n_non), rng.integers(0, n_syn, n_syn)
        diffs.append(auroc(-a["nonsense"][i], -a["synonymous"][j])
                     - auroc(-b["nonsense"][i], -b["synonymous"][j]))
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mlm", type=Path, required=True, help="the masked LM's run directory")
    p.add_argument("--lm", type=Path, required=True, help="the causal LM's run directory")
    p.add_argument("--window", type=int, default=512)
    p.add_argument("--out", type=Path, default=HERE / "results" / "mlm_zero_shot.json")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = {"mlm": score(a.mlm, a.window, Path(tmp)), "lm": score(a.lm, a.window, Path(tmp))}
    llr = {m: {k: np.array([r[3] for r in rows[m][k]]) for k in KINDS} for m in rows}
    for k in KINDS:  # every method scores the same variants, in the same order
        assert [r[:3] for r in rows["mlm"][k]] == [r[:3] for r in rows["lm"][k]]
    tok = DNATokenizer()
    train_iv, _, _ = load_split(MANIFEST, "bacteria-mtb-holdout")
    train = [tok.encode(POOL.get(iv.path).fetch(iv.record, iv.start, iv.end)).numpy()
             for iv in train_iv]
    fa = FastaFile(GENOME)
    chrom = fa.records[0].name
    baselines = {}
    for k in range(9):  # Markov: the causal LM's window LLR
        m = MarkovModel(k).fit(train)
        baselines[f"markov-{k}"] = {kind: np.array([
            (m.bits([tok.encode(rw).numpy()])[0] - m.bits([tok.encode(aw).numpy()])[0])
            * math.log(2) for rw, aw in (alt_window(fa, chrom, pos - 1, ref, alt, a.window)
                                         for pos, ref, alt, _ in rows["mlm"][kind])])
            for kind in KINDS}
    counts = TwoSidedCounts(6).fit([np.where(s < 4, s, 4) for s in train])
    c = (a.window - 1) // 2
    for k in range(1, 7):  # two-sided counts: the masked LM's masked-site LLR
        out = {}
        for kind in KINDS:
            ref_w, alt_w = [], []
            for pos, ref, alt, _ in rows["mlm"][kind]:
                w = tok.encode(masked_window(fa, chrom, pos - 1, a.window)).numpy()
                ref_w.append(w)
                alt_w.append(np.concatenate([w[:c], tok.encode(alt).numpy(), w[c + 1:]]))
            centre = [np.array([c])] * len(ref_w)
            lp_ref, _ = counts.log2_probs(ref_w, centre, k)
            lp_alt, _ = counts.log2_probs(alt_w, centre, k)
            out[kind] = (lp_alt - lp_ref) * math.log(2)
        baselines[f"two-sided-{k}"] = out
    results = {name: summary(v["nonsense"], v["synonymous"])
               for name, v in {**llr, **baselines}.items()}
    best = max(baselines, key=lambda n: results[n]["auroc"])
    report = {"window": a.window, "n_synonymous": len(llr["mlm"]["synonymous"]),
              "n_nonsense": len(llr["mlm"]["nonsense"]), "trained_on": "bacteria-mtb-holdout",
              "results": results, "best_baseline": best,
              "mlm_minus_best_baseline_ci95": paired_difference(llr["mlm"], baselines[best]),
              "mlm_minus_lm_ci95": paired_difference(llr["mlm"], llr["lm"]),
              "models": {"mlm": str(a.mlm), "lm": str(a.lm)}}
    write_json_atomic(report, a.out)
    r = results
    print(f"AUROC nonsense vs synonymous: masked LM {r['mlm']['auroc']:.3f} | causal LM "
          f"{r['lm']['auroc']:.3f} | best baseline ({best}) {r[best]['auroc']:.3f}; "
          f"masked LM - best baseline 95% CI {report['mlm_minus_best_baseline_ci95']}; "
          f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
