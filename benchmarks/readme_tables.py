"""The measured figures of README.md and docs/*.md, regenerated from the files the benchmarks and
recipes wrote.

    python benchmarks/readme_tables.py            # rewrite every block, wherever it lives
    python benchmarks/readme_tables.py --check    # exit 1 if a block differs (the tests run this)

Each block sits between ``<!-- NAME: begin -->`` and ``<!-- NAME: end -->`` (each marker on a line
of its own) in README.md or one of docs/*.md, and is built by one function below from
``benchmarks/results/``: no figure in those blocks is typed by hand.  Every block of BLOCKS must
be in exactly one of those files, once; a marker without its partner, or one naming a block this
script does not know, is an error.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

from tables_common import (HERE, RESULTS, ROOT, _csv, _json, _pow2,  # noqa: F401
                           wilson_interval)  # wilson_interval: the tests' import
from tables_arch import (arch_dna_classify, arch_dna_lm, arch_fsdd, arch_species, arch_speed,
                         arch_verdict, ssd_speed)
from tables_equal_time import arch_equal_time
from tables_gpu import gpu_static
from tables_fsdd import (FSDD_SEEDS, audio_holdout, audio_results, fsdd_ablation, fsdd_adapt,
                         fsdd_balance, fsdd_channels, fsdd_digits, fsdd_loso, fsdd_noise,
                         fsdd_recipe_speed, fsdd_seeds, fsdd_voices)
from tables_synthetic import copying_curve, induction_far_key, induction_probe, synthetic
from tables_audio import (fsdd_new_voice, fsdd_new_voice_check,
                          fsdd_new_voice_check_transformer, fsdd_spread)
from tables_dna import (_ci, dna_results, gene_annotation, genome_scale, mlm_science, mlm_speed,
                        variant_speed, variant_zero_shot)

README = ROOT / "README.md"
DOCS = ROOT / "docs"


# ------------------------------------------------------------------------------------- blocks

def _busy_table(rows, header: str, cells) -> str:
    """A table of speeds on idle and busy cores: 'other jobs' column, then ``cells(row)``."""
    out = [f"| other jobs | {header} |", "|---" * (header.count("|") + 2) + "|"]
    for r in rows:
        busy = "one core busy" if int(r["busy_cores"]) else "none"
        out.append(f"| {busy} | " + " | ".join(cells(r)) + " |")
    return "\n".join(out)


def busy_cores() -> str:
    return _busy_table(_csv("busy_cores.csv"),
                       "torch threads | training steps/s | vs idle machine, all threads",
                       lambda r: [f"{r['threads']} of {r['cores']}", f"{float(r['steps_per_s']):.2f}",
                                  f"{float(r['vs_idle_all_threads']):.2f}x"])


def audio_predict_speed() -> str:
    return _busy_table(_csv("audio_predict_speed.csv"),
                       "clips per forward pass | clips/s | vs idle machine, one at a time",
                       lambda r: [r["batch"], f"{float(r['clips_per_s']):,.0f}",
                                  f"{float(r['vs_idle_one_at_a_time']):.2f}x"])


def generation() -> str:
    rows = _csv("generation.csv")
    tps = [float(r["tokens_per_s"]) for r in rows]
    r0 = rows[0]
    return (f"Generation (`benchmarks/generation.py`, `generation.csv`; d_model {r0['d_model']}, "
            f"{r0['n_layer']} layers, {r0['new_tokens']} new tokens after prompts of "
            f"{int(rows[0]['context']):,} to {int(rows[-1]['context']):,} tokens): "
            f"{min(tps):,.0f}-{max(tps):,.0f} tokens/s, the slowest context at "
            f"{max(float(r['relative_to_shortest']) for r in rows):.2f}x the shortest's "
            f"per-token time.")


def _scan(device: str) -> str:
    sys.path.insert(0, str(HERE))
    from scan import report_from_csv

    return "```\n" + "\n".join(report_from_csv(RESULTS / f"scan_{device}.csv")) + "\n```"


def scan_cpu() -> str:
    return _scan("cpu")


def scan_cuda() -> str:
    return _scan("cuda")


def cpu_scan() -> str:
    sys.path.insert(0, str(HERE))
    from cpu_scan import readme_tables

    return readme_tables()


def _scan_rows(device: str) -> Dict[tuple, dict]:
    """scan_<device>.csv keyed by (impl, mode, length)."""
    return {(r["impl"], r["mode"], int(r["length"])): r for r in _csv(f"scan_{device}.csv")}


def headline() -> str:
    """README's first table: each job's headline figure beside its baseline, and the scan's speed
    at lengths where others run out of memory, all from the files the docs' own blocks read."""
    pre = _json("dna_ecoli_pretrain_report.json")
    splice = _json("dna_splice_report.json")
    genes = _json("dna_genes_umaydis_report.json")
    digits = _json("audio_digits_mixed_report.json")
    fsdd_runs = [{r["held_out"]: r for r in _csv(f)} for f in FSDD_SEEDS["audio_fsdd"]]
    fsdd = [run["mean"] for run in fsdd_runs]
    fsdd_mean = lambda k: np.mean([float(r[k]) for r in fsdd])  # noqa: E731
    speakers = len(fsdd_runs[0]) - 1
    out = ["| job | seqmamba | classic baseline, same split | more |", "|---|---|---|---|",
           f"| DNA language model, E. coli, held-out last 10% | {pre['val_bits_per_base']:.3f} "
           f"bits/base | best Markov (order {pre['best_markov_order']}) "
           f"{pre['best_markov_bits_per_base']:.3f} | [dna](docs/dna.md) |",
           f"| splice junctions | {splice['model']['acc']:.3f} accuracy "
           f"| {splice['baseline']['name']} {splice['baseline']['acc']:.3f} | [dna](docs/dna.md) |",
           f"| base-level gene annotation, *U. maydis*, {len(genes['split']['val_records'])} "
           f"held-out chromosomes | {genes['model']['macro_f1']:.3f} macro-F1 "
           f"| {genes['baseline']['name']} {genes['baseline']['macro_f1']:.3f} "
           f"| [dna](docs/dna.md) |",
           f"| spoken digits, {len(digits['split']['val_groups'])} synthetic voices never heard "
           f"| {digits['model']['acc']:.3f} accuracy | log-mel + logistic regression "
           f"{digits['baseline']['acc']:.3f} | [audio](docs/audio.md) |",
           f"| spoken digits, a real speaker never heard (FSDD, each of {speakers} left out, "
           f"{len(fsdd)} seeds) | {fsdd_spread(fsdd_runs)} "
           f"| log-mel + MFCC + RBF SVM {fsdd_mean('svm_acc'):.3f} | [audio](docs/audio.md) |"]
    zs = _json("mlm_zero_shot.json")["results"]
    best = max((k for k in zs if k not in ("mlm", "lm")), key=lambda k: zs[k]["auroc"])
    speed = _csv("mlm_speed.csv")
    out += [f"| masked LM (Caduceus-PS), zero-shot nonsense vs synonymous SNVs in a genome it "
            f"never saw | AUROC {_ci(zs['mlm'])} | best count model ({best}) "
            f"{_ci(zs[best])} | [dna](docs/dna.md) |",
            f"| PlantCaduceus_l20-shaped SNV scoring on a CPU core, 512-base windows | "
            f"{float(speed[0]['variants_per_s']):.2f} variants/s | Caduceus's CPU path "
            f"(mamba-ssm reference scan) {float(speed[1]['variants_per_s']):.3f} variants/s "
            f"| [dna](docs/dna.md) |"]
    arch = {(r["arch"], r["kind"], int(r["length"])): r for r in _csv("arch_speed.csv")}
    m, t = arch[("mamba", "train", 1 << 14)], arch[("transformer", "train", 1 << 14)]
    out.append(f"| causal LM training step, {_pow2(1 << 14)} tokens, 2 CPU cores "
               f"({int(m['params']) / 1e3:.0f}k parameters) | {float(m['tokens_per_s']):,.0f} "
               f"tokens/s | Transformer++, {int(t['params']) / 1e3:.0f}k parameters: "
               f"{float(t['tokens_per_s']):,.0f} tokens/s | [benchmarks](docs/benchmarks.md) |")
    cpu = _scan_rows("cpu")
    lengths = sorted({k[2] for k in cpu})
    fits = [n for n in lengths if cpu.get(("mambapy", "fwd+bwd", n), {}).get("status") == "ok"]
    oom = [n for n in lengths if "out of memory" in cpu.get(("mambapy", "fwd+bwd", n), {})
           .get("status", "")]
    if not (fits and oom):
        raise SystemExit("scan_cpu.csv: the headline needs a length where mamba.py's pscan ran "
                         "forward + backward and one where it ran out of memory")
    n, m = fits[-1], lengths[-1]
    ours, peer, big = (cpu[("cpu", "fwd+bwd", n)], cpu[("mambapy", "fwd+bwd", n)],
                       cpu[("cpu", "fwd+bwd", m)])
    shape = f"batch {big['batch']}, dim {big['dim']}, state {big['state']}"
    out.append(f"| selective scan on 2 CPU cores, forward + backward, {_pow2(n)} tokens "
               f"({shape}) | {float(ours['time_s']):.2f} s, {float(ours['peak_mem_mb']):,.0f} MB "
               f"| mamba.py pscan {float(peer['time_s']):.1f} s, "
               f"{float(peer['peak_mem_mb']):,.0f} MB | [benchmarks](docs/benchmarks.md) |")
    out.append(f"| the same at {_pow2(m)} tokens | {float(big['time_s']):.1f} s, "
               f"{float(big['peak_mem_mb']):,.0f} MB | mamba.py pscan: out of memory "
               f"from {_pow2(oom[0])} | [benchmarks](docs/benchmarks.md) |")
    gpu = _scan_rows("cuda")
    m = max(k[2] for k in gpu)
    tri, tor = gpu[("triton", "fwd", m)], gpu[("torch", "fwd", m)]
    with open(RESULTS / "gpu" / "nvidia_smi.txt", newline="") as f:  # the lent GPU's name
        card = next(csv.DictReader(f, skipinitialspace=True))["name"]
    out.append(f"| selective scan on one {card}, "
               f"forward, {_pow2(m)} tokens (batch {tri['batch']}, dim {tri['dim']}) "
               f"| {1e3 * float(tri['time_s']):.0f} ms (Triton) | seqmamba's portable PyTorch "
               f"path {1e3 * float(tor['time_s']):,.0f} ms | [gpu](docs/gpu.md) |")
    return "\n".join(out)


BLOCKS: Dict[str, Callable[[], str]] = {
    "headline": headline,
    "cpu_scan tables": cpu_scan, "scan_cpu": scan_cpu, "scan_cuda": scan_cuda,
    "synthetic": synthetic,
    "induction probe": induction_probe, "induction far key": induction_far_key,
    "copying curve": copying_curve,
    "dna results": dna_results, "gene annotation": gene_annotation,
    "audio results": audio_results,
    "audio holdout": audio_holdout, "generation": generation,
    "variant zero shot": variant_zero_shot, "variant speed": variant_speed, "fsdd loso": fsdd_loso, "fsdd noise": fsdd_noise,
    "fsdd ablation": fsdd_ablation, "fsdd seeds": fsdd_seeds, "fsdd digits": fsdd_digits,
    "fsdd voices": fsdd_voices,
    "fsdd adapt": fsdd_adapt, "fsdd balance": fsdd_balance,
    "fsdd new voice": fsdd_new_voice, "fsdd new voice check": fsdd_new_voice_check,
    "fsdd new voice check transformer": fsdd_new_voice_check_transformer,
    "fsdd channels": fsdd_channels, "fsdd recipe speed": fsdd_recipe_speed,
    "busy cores": busy_cores,
    "audio predict speed": audio_predict_speed,
    "mlm-speed": mlm_speed,
    "mlm-science": mlm_science,
    "genome scale": genome_scale,
    "arch speed": arch_speed,
    "ssd speed": ssd_speed,
    "arch dna lm": arch_dna_lm,
    "arch fsdd": arch_fsdd, "arch dna classify": arch_dna_classify, "arch verdict": arch_verdict,
    "arch species": arch_species, "arch equal time": arch_equal_time,
    "gpu static": gpu_static,
}




# a marker is a line of its own: "<!-- NAME: begin -->" or "<!-- NAME: end -->"
MARKER = re.compile(r"^<!-- (.+?): (begin|end) -->$", re.M)


def doc_files(root: Path = ROOT) -> List[Path]:
    """The files that hold blocks: README.md, then docs/*.md in name order."""
    return [root / "README.md"] + sorted((root / "docs").glob("*.md"))


def _spans(text: str, where: str) -> List[tuple]:
    """(name, end of the begin marker, start of the end marker) of each block in ``text``, in
    order; SystemExit on a marker without its partner, a block inside another, or a name the
    script does not know."""
    spans, open_ = [], None
    for m in MARKER.finditer(text):
        name, kind = m.groups()
        if name not in BLOCKS:
            raise SystemExit(f"{where}: block {name!r} is not one readme_tables.py builds "
                             f"(known: {', '.join(sorted(BLOCKS))})")
        if kind == "begin":
            if open_ is not None:
                raise SystemExit(f"{where}: block {open_[0]!r} has no end marker (block "
                                 f"{name!r} begins inside it)")
            open_ = (name, m.end())
        elif open_ is None or open_[0] != name:
            raise SystemExit(f"{where}: end marker of block {name!r} without its begin marker")
        else:
            spans.append((name, open_[1], m.start()))
            open_ = None
    if open_ is not None:
        raise SystemExit(f"{where}: block {open_[0]!r} has no end marker")
    return spans


def locate(root: Path = ROOT) -> Dict[str, Path]:
    """Each block's file; SystemExit unless every block of BLOCKS is in exactly one file, once."""
    where: Dict[str, Path] = {}
    for path in doc_files(root):
        for name, _, _ in _spans(path.read_text(), _rel(path, root)):
            if name in where:
                raise SystemExit(f"block {name!r} is in {_rel(where[name], root)} and again in "
                                 f"{_rel(path, root)}: it must be in exactly one file, once")
            where[name] = path
    missing = [n for n in BLOCKS if n not in where]
    if missing:
        raise SystemExit(f"no file holds block(s) {', '.join(map(repr, missing))} (looked in "
                         f"README.md and docs/*.md)")
    return where


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def render(text: str, only=None, where: str = "README.md") -> str:
    """``text`` with every block in it (or those in ``only``) rebuilt."""
    out, pos = [], 0
    for name, start, stop in _spans(text, where):
        if only and name not in only:
            continue
        out += [text[pos:start], "\n", BLOCKS[name](), "\n"]
        pos = stop
    return "".join(out) + text[pos:]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    p.add_argument("--only", nargs="+", choices=sorted(BLOCKS), help="rebuild these blocks only")
    p.add_argument("--root", type=Path, default=ROOT,
                   help="the checkout whose README.md and docs/*.md hold the blocks")
    a = p.parse_args(argv)
    root = a.root.resolve()
    files = sorted(set(locate(root).values()), key=doc_files(root).index)
    differ = False
    for path in files:
        text = path.read_text()
        new = render(text, a.only, _rel(path, root))
        if new == text:
            continue
        if a.check:
            import difflib

            differ = True
            name = _rel(path, root)
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True),
                                                       name, f"{name} (regenerated)"))
            continue
        sys.path.insert(0, str(ROOT))
        from seqmamba.atomic import write_text_atomic

        write_text_atomic(new, path)
        print(f"updated {_rel(path, root)}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
