"""README and docs/dna.md blocks of the DNA jobs: recipe results, gene annotation, variant
effects, the masked LM, genome scale (built by ``readme_tables.py``)."""

from __future__ import annotations

import numpy as np

from tables_common import _csv, _json, _minutes, _pow2  # noqa: F401


def dna_results() -> str:
    pre = _json("dna_ecoli_pretrain_report.json")
    splice = _json("dna_splice_report.json")
    species = _json("dna_species_report.json")
    by_len = {int(r["length"]): r for r in _csv("dna_species_accuracy_by_length.csv")}
    shown = [n for n in (64, 256, 1024, 2048, 4096) if n in by_len]
    lens = " / ".join(_pow2(n) for n in shown)
    n_test = by_len[shown[0]]["n_test"]
    model = " / ".join(f"{float(by_len[n]['model_acc']):.3f}" for n in shown)
    base = " / ".join(f"{float(by_len[n]['kmer3_logreg_acc']):.3f}" for n in shown)
    return "\n".join([
        "| task | seqmamba | classic baseline, same split |",
        "|---|---|---|",
        f"| E. coli pretraining, held-out last 10% (`dna_pretrain_ecoli.yaml`, {pre['steps']} "
        f"steps; `dna_ecoli_pretrain_report.json`) | {pre['val_bits_per_base']:.3f} bits/base "
        f"| best Markov (order {pre['best_markov_order']}) "
        f"{pre['best_markov_bits_per_base']:.3f} |",
        f"| splice junctions, stratified 20% (`dna_splice.yaml`, center pooling + EMA; "
        f"`dna_splice_report.json`) | {splice['model']['acc']:.3f} accuracy "
        f"| {splice['baseline']['name']} {splice['baseline']['acc']:.3f} |",
        f"| species of origin, {lens} bases, {n_test} test windows each (`seqmamba dna "
        f"species`, {_minutes(species['train_seconds'])} of training; "
        f"`dna_species_report.json`) | {model} | 3-mer profile LR {base} |",
    ])


def gene_annotation() -> str:
    r = _json("dna_genes_umaydis_report.json")
    m, b = r["model"], r["baseline"]
    out = [f"Held out: {', '.join(r['split']['val_records'])} ({m['bases']:,} bases, scored "
           f"base by base); {len(r['split']['train_records'])} records (chromosomes and contigs) trained on for "
           f"{r['steps']} steps ({_minutes(r['train_seconds'])} on 2 cores); "
           f"`dna_genes_umaydis_report.json`.", "",
           f"| | seqmamba | {b['name']} |", "|---|---|---|"]
    for c in r["labels"]:
        out.append(f"| F1 {c} | {m['f1'][c]:.3f} | {b['f1'][c]:.3f} |")
    out.append(f"| **macro-F1** | **{m['macro_f1']:.3f}** | **{b['macro_f1']:.3f}** |")
    out.append(f"| per-base accuracy | {m['acc']:.3f} | {b['acc']:.3f} |")
    mb, bb = m["cds_boundary_recall"], b["cds_boundary_recall"]
    out.append(f"| CDS runs with both ends within 3 bases (of {mb['runs']:,}) "
               f"| {mb['exact']:.3f} | {bb['exact']:.3f} |")
    out.append(f"| CDS starts / ends within 3 bases | {mb['start']:.3f} / {mb['end']:.3f} "
               f"| {bb['start']:.3f} / {bb['end']:.3f} |")
    return "\n".join(out)


def variant_zero_shot() -> str:
    r = _json("variant_zero_shot.json")
    k = r["best_markov_order"]
    m = r["markov"][str(k)]  # (JSON object keys are strings)
    return (f"Zero-shot variant effects (`experiments/variant_zero_shot.py`, "
            f"`variant_zero_shot.json`): {r['n_nonsense']} nonsense against {r['n_synonymous']} "
            f"synonymous SNVs in M. tuberculosis genes (`data/variants/`), scored with "
            f"{r['window']}-base windows by a model pretrained on E. coli only "
            f"(`dna_pretrain_ecoli.yaml`): AUROC {r['model_auroc']:.3f} (95% "
            f"{r['model_ci95'][0]:.3f}-{r['model_ci95'][1]:.3f}); the best Markov LLR "
            f"(order {k}, fitted on {r['markov_fitted_on']}) {m['auroc']:.3f} "
            f"({m['ci95'][0]:.3f}-{m['ci95'][1]:.3f}). Level with the baseline so far.")


def variant_speed() -> str:
    rows = _csv("variant_speed.csv")
    r0 = rows[0]
    parts = ", ".join(f"{int(r['variants_per_s']):,} variants/s with {r['window']}-base windows"
                      for r in rows)
    return (f"Scoring speed (`benchmarks/variant_speed.py`, `variant_speed.csv`; {r0['variants']} "
            f"SNVs, a d_model {r0['d_model']}, {r0['n_layer']}-layer language model, "
            f"{r0['threads']} CPU threads): {parts}.")


def mlm_speed() -> str:
    """benchmarks/mlm_speed.py: masked-LM SNV scoring, seqmamba's fused CPU scan against
    mamba-ssm's reference scan in Caduceus's wiring (same weights), beside PlantCaduceus's own
    H100 figure (quoted); then peak memory of one long window per fresh process."""
    # PlantCaduceus README, "Performance benchmarks": 5,000 SNPs, PlantCaduceus_l20 on one H100
    # in 16 s (the l32 model: 47 s).  Quoted, not measured here.
    h100_snps, h100_seconds = 5000, 16
    rows = _csv("mlm_speed.csv")
    ours = rows[0]
    out = [f"SNV scoring, {ours['model']} (PlantCaduceus_l20's shape), random weights, "
           f"{ours['window']}-base windows, batch {ours['batch']}, {ours['threads']} torch "
           f"thread{'' if ours['threads'] == '1' else 's'}, 1-minute load average "
           f"{float(ours['load_1min']):.1f} at the start "
           "(`mlm_speed.csv`):", "",
           "| path | variants | seconds | variants/s | ratio |", "|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "ok":
            out.append(f"| {r['path']} | - | - | - | {r['status']} |")
            continue
        ratio = f"{float(r['ratio']):.1f}x" if r["ratio"] else "-"  # none without the peer
        out.append(f"| {r['path']} | {r['variants']} | {float(r['seconds']):.1f} "
                   f"| {float(r['variants_per_s']):.3g} | {ratio} |")
    out.append(f"| PlantCaduceus_l20, Caduceus's CUDA kernels, one H100 (PlantCaduceus README; "
               f"quoted, not measured here) | {h100_snps:,} | {h100_seconds} "
               f"| {h100_snps / h100_seconds:,.0f} | - |")
    if ours.get("max_abs_diff"):
        out += ["", f"Scores of the peer's variants: largest difference "
                    f"{float(ours['max_abs_diff']):.1e} nats (largest score "
                    f"{float(ours['max_abs_score']):.1e})."]
    mem = _csv("mlm_memory.csv")
    out += ["", f"One window through a masked LM of {mem[0]['model']} (Caduceus-131k's shape), "
                "each in a fresh process (`mlm_memory.csv`):", "",
            "| path | length | peak resident set (GiB) | seconds |", "|---|---|---|---|"]
    for r in mem:
        if r["status"] not in ("ok", "extrapolated"):
            out.append(f"| {r['path']} | {int(r['length']):,} | {r['status']} | - |")
            continue
        how = " (extrapolated)" if r["status"] == "extrapolated" else ""
        out.append(f"| {r['path']}{how} | {int(r['length']):,} | {float(r['peak_gib']):.2f} "
                   f"| {float(r['seconds']):,.0f} |")
    return "\n".join(out)


def _ci(r: dict) -> str:
    return f"{r['auroc']:.3f} ({r['ci95'][0]:.3f}-{r['ci95'][1]:.3f})"


def mlm_science() -> str:
    """The masked-LM recipe beside its causal twin and the count baselines: held-out bits on
    the genome none saw, and zero-shot AUROC on its variant sets (experiments/mlm_zero_shot.py)."""
    mlm, lm = _json("dna_mlm_bacteria_report.json"), _json("dna_lm_bacteria_report.json")
    zs, old = _json("mlm_zero_shot.json"), _json("variant_zero_shot.json")
    res = zs["results"]
    best_m = max((k for k in res if k.startswith("markov")), key=lambda k: res[k]["auroc"])
    best_t = max((k for k in res if k.startswith("two-sided")), key=lambda k: res[k]["auroc"])
    lo, hi = zs["mlm_minus_best_baseline_ci95"]
    k_old = str(old["best_markov_order"])
    verdict = ("ahead of the best baseline by a margin its interval does not cross" if lo > 0
               else "behind the best baseline" if hi < 0 else
               "level with the best baseline (the interval crosses 0)")
    return "\n".join([
        f"Four bacteria train ({mlm['train_bases']:,} bases), M. tuberculosis is held out whole "
        f"({mlm['val_bases']:,} bases; {mlm['val_windows']} held-out windows of "
        f"{mlm['seq_len']}); {mlm['steps']:,} steps each, on {mlm['hardware']['threads']} CPU "
        f"thread each (the two runs shared a 2-core machine); "
        f"{zs['n_nonsense']} nonsense against {zs['n_synonymous']} synonymous SNVs "
        f"(`mlm_zero_shot.json`, `dna_mlm_bacteria_report.json`, `dna_lm_bacteria_report.json`):",
        "",
        "| model or baseline | held-out M. tuberculosis | zero-shot AUROC (95% CI) |",
        "|---|---|---|",
        f"| masked LM, Caduceus-PS (`dna_pretrain_mlm_bacteria`, "
        f"{_minutes(mlm['train_seconds'])}) | {mlm['val_bits_per_base']:.3f} bits per masked "
        f"base | {_ci(res['mlm'])} |",
        f"| two-sided counts, best order ({mlm['best_two_sided_order']} bases each side; "
        f"masked-site LLR order {best_t.split('-')[-1]}) | "
        f"{mlm['best_two_sided_bits_per_base']:.3f} bits per masked base | {_ci(res[best_t])} |",
        f"| causal LM, same genomes, steps and width (`dna_lm_bacteria.yaml`, "
        f"{_minutes(lm['train_seconds'])}) | {lm['val_bits_per_base']:.3f} bits per base "
        f"| {_ci(res['lm'])} |",
        f"| Markov, best order ({lm['best_markov_order']}; window LLR order "
        f"{best_m.split('-')[-1]}), same genomes | {lm['best_markov_bits_per_base']:.3f} bits "
        f"per base | {_ci(res[best_m])} |",
        f"| Markov order {k_old} fitted on E. coli alone (`variant_zero_shot.json`) | - | "
        f"{_ci(old['markov'][k_old])} |",
        "",
        f"Masked LM minus the best baseline ({zs['best_baseline']}), paired bootstrap: "
        f"{lo:+.3f} to {hi:+.3f}: {verdict}. Masked LM minus the causal LM: "
        f"{zs['mlm_minus_lm_ci95'][0]:+.3f} to {zs['mlm_minus_lm_ci95'][1]:+.3f}.",
    ])


def genome_scale() -> str:
    """benchmarks/genome_scale.py: peak memory and time of pretrain (first and second run),
    predict and score-variants against genome size, with the fitted lines projected to hg38's
    3.1 Gb."""
    rows = _csv("genome_scale.csv")
    get = {(float(r["gb"]), r["command"], r["run"]): r for r in rows}
    sizes = sorted({float(r["gb"]) for r in rows})

    def cell(r, rate=None):
        if r is None:
            return "-"
        extra = ""
        if rate == "bases" and r.get("bases_per_s"):
            extra = f" ({float(r['bases_per_s']) / 1e6:.2f} Mb/s)"
        elif rate == "variants" and r.get("variants_per_s"):
            extra = f" ({float(r['variants_per_s']):.0f} variants/s)"
        return f"{float(r['peak_rss_gb']):.2f} GB, {float(r['seconds']):.0f} s{extra}"

    out = ["| genome | pretrain, first run | pretrain, second run | predict, whole genome "
           "| score-variants, 1,000 SNVs |", "|---|---|---|---|---|"]
    for gb in sizes:
        out.append(f"| {gb:g} Gb | {cell(get.get((gb, 'pretrain', 'first')))} "
                   f"| {cell(get.get((gb, 'pretrain', 'second')))} "
                   f"| {cell(get.get((gb, 'predict', 'first')), 'bases')} "
                   f"| {cell(get.get((gb, 'score-variants', 'first')), 'variants')} |")
    proj = []
    for command, run, what in (("pretrain", "first", "pretrain (first run)"),
                               ("pretrain", "second", "pretrain (second run)"),
                               ("predict", "first", "predict"),
                               ("score-variants", "first", "score-variants")):
        pts = [(gb, float(get[(gb, command, run)]["peak_rss_gb"])) for gb in sizes
               if (gb, command, run) in get]
        if len(pts) > 1:
            slope, icpt = np.polyfit(*zip(*pts), 1)
            proj.append(f"{what} {slope:+.2f} GB per Gb, {icpt + slope * 3.1:.2f} GB at 3.1 Gb")
    return "\n".join(out + ["", "Peak RSS fitted against genome size, projected to hg38 "
                                "(`genome_scale.csv`): " + "; ".join(proj) + "."])
