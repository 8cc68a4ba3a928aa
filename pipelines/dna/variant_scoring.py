"""Variant effects from a DNA model: the library behind ``seqmamba dna score-variants``.

Each ALT allele of a VCF record is scored on a window of ``window`` bases of the reference with
the variant starting at the middle (``alt_window``): a language model's log-likelihood ratio
``log P(alt window) - log P(ref window)`` in nats (``lm_loglik``, ``score_batch``), or a
classifier's change of every class probability, alt minus ref; an RC-equivariant model scores
both strands and averages them. A masked LM scores an SNV as PlantCaduceus and GPN do
(``masked_window``, ``masked_llr``): the variant's base is masked at index (window - 1) // 2 of
a reference window (N beyond the record's ends) and the score is log P(alt) - log P(ref) there;
one forward pass serves every ALT of a site; a model that is not RC-equivariant is scored on
both strands, averaged. ``score_variants`` runs the whole command after its option checks:
model, reference and VCF, a first pass appending scores batch by batch to the resumable
``OUT.scores.partial`` (``_score_pass``), and a second pass over the input writing the VCF
(INFO ``SM_LLR`` or ``SM_D_<label>``, FILTER ``SM_REF_MISMATCH``) to a temporary file renamed
when complete. VCF reading and writing is pysam's (htslib).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional, Tuple

import torch

from seqmamba.atomic import atomic_output

from ..checksums import file_sha256
from ..errors import InputError, regular_file
from ..io.tables import OutputLock, PartialTable, model_provenance
from ..model_dirs import load_pretrained, model_extra
from .fasta import FastaFile
from .models import model_task, resolve_model_dir, tokenizer_of

LLR_FIELD = "SM_LLR"
MISMATCH = "SM_REF_MISMATCH"
NOT_SNV = "SM_NOT_SNV"
SCORED_TASKS = ("dna-lm", "dna-mlm", "dna-classify")
SCORING = {"dna-lm": "causal-window-llr", "dna-mlm": "masked-site-llr",
           "dna-classify": "classifier-delta"}


def open_vcf(path: Path):
    """A ``pysam.VariantFile`` on a VCF (plain, gzip-as-BGZF or bgzip) or a BCF; an
    ``InputError`` naming the fix for a plain-gzip or unreadable file."""
    import pysam

    regular_file(path)
    try:
        return pysam.VariantFile(str(path))
    except NotImplementedError:  # htslib reads gzip only as BGZF here
        raise InputError("plain gzip: a compressed VCF must be bgzip-compressed", path=path,
                         fix=f"gunzip -c {path.name} | bgzip > {path.stem}.bgz.gz "
                             "(bgzip is in htslib/tabix), or gunzip it") from None
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read as VCF/BCF ({e})", path=path,
                         fix="give a VCF (plain, gzip or bgzip) or a BCF") from None


def alt_window(fa: FastaFile, chrom: str, pos0: int, ref: str, alt: str, window: int
               ) -> Optional[Tuple[str, str]]:
    """(ref window, alt window) of ``window`` bases with the variant starting at the middle, or
    None where the record is too close to the chromosome's end for a full window."""
    n = fa.length(chrom)
    left = window // 2
    start = pos0 - left
    if start < 0 or pos0 + len(ref) > n:
        return None
    ref_win_end = start + window
    if ref_win_end > n:
        return None
    ref_w = fa.fetch(chrom, start, ref_win_end)
    right_len = window - left - len(alt)
    if right_len < 0:
        return None
    right_start = pos0 + len(ref)
    right = fa.fetch(chrom, right_start, min(n, right_start + right_len))
    if len(right) < right_len:
        return None
    alt_w = ref_w[:left] + alt + right
    return ref_w, alt_w


def masked_window(fa: FastaFile, chrom: str, pos0: int, window: int) -> str:
    """The ``window`` reference bases with position ``pos0`` at index (window - 1) // 2, padded
    with N beyond the record's ends (the caller masks the centre)."""
    start = pos0 - (window - 1) // 2
    n = fa.length(chrom)
    left, right = max(0, -start), max(0, start + window - n)
    return "N" * left + fa.fetch(chrom, max(0, start), min(n, start + window)) + "N" * right


@torch.no_grad()
def masked_llr(model, tok, items, device, rc_equivariant: bool) -> torch.Tensor:
    """items: (window, ref base, alt base) -> log P(alt) - log P(ref) (n,) in nats at the
    masked centre.  Each distinct window (a site) goes through the model once; a model that is
    not RC-equivariant also reads the reverse complement (centre mirrored, bases complemented)
    and the two strands are averaged."""
    windows = list(dict.fromkeys(w for w, _, _ in items))
    row = {w: i for i, w in enumerate(windows)}
    ids = torch.stack([tok.encode(w) for w in windows])
    c = (ids.shape[1] - 1) // 2
    ids[:, c] = tok.mask_id
    comp = torch.tensor(tok.complement_map)
    strands = [(ids, c, torch.arange(len(comp)))]
    if not rc_equivariant:
        strands.append((comp[ids].flip(-1), ids.shape[1] - 1 - c, comp))
    suffix = torch.tensor(tok.suffix, dtype=torch.long)
    rows = torch.tensor([row[w] for w, _, _ in items])
    ref = torch.stack([tok.encode(r)[0] for _, r, _ in items])
    alt = torch.stack([tok.encode(a)[0] for _, _, a in items])
    out = torch.zeros(len(items))
    for x, centre, perm in strands:
        x = torch.cat([x, suffix.expand(len(x), -1)], 1) if len(suffix) else x
        lp = model(x.to(device)).logits[:, centre].float().log_softmax(-1).cpu()
        out += lp[rows, perm[alt]] - lp[rows, perm[ref]]
    return out / len(strands)


@torch.no_grad()
def lm_loglik(model, ids: torch.Tensor) -> torch.Tensor:
    """ids (batch, L) -> log-likelihood of positions 1..L-1 given the ones before (batch,)."""
    logits = model(ids).logits.float()
    lp = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]
    return lp.sum(1)


@torch.no_grad()
def score_batch(model, task, tok, pairs: List[Tuple[str, str]], device, rc: bool):
    """pairs of (ref window, alt window) -> LLR (n,) for an LM, or delta probabilities
    (n, classes) for a classifier; both strands averaged for an RC-equivariant model."""
    ref = torch.stack([tok.encode(r) for r, _ in pairs]).to(device)
    alt = torch.stack([tok.encode(a) for _, a in pairs]).to(device)
    strands = [(ref, alt)] + ([(tok.reverse_complement(ref), tok.reverse_complement(alt))]
                              if rc else [])
    out = 0
    for r, a in strands:
        if task == "dna-lm":
            out = out + (lm_loglik(model, a) - lm_loglik(model, r))
        else:
            out = out + (model(a).logits.float().softmax(-1) - model(r).logits.float().softmax(-1))
    return (out / len(strands)).cpu()


def score_variants(model_dir: Path, fasta: Path, vcf: Path, out: Path, *,
                   window: Optional[int] = None, batch_size: int = 64, restart: bool = False,
                   device: str = "cpu") -> int:
    """Score every allele of ``vcf`` against ``fasta`` with the model ``model_dir`` and write
    the VCF ``out`` (VCF, .vcf.gz or BCF by its name), resuming from ``OUT.scores.partial``
    unless ``restart``; ``window`` defaults to the model's training windows, else 1024.
    Checks, in order: the model's task, the VCF, its header's contigs against the FASTA.
    Prints the summary (REF mismatches on stderr); returns the exit code, 0."""
    d = resolve_model_dir(model_dir)
    extra = model_extra(d)
    task = model_task(d)
    if task not in SCORED_TASKS:
        raise InputError(f"a {task} model does not score variants", path=d,
                         fix="pass a language model (dna pretrain) or a sequence classifier")
    from seqmamba import MambaForMaskedLM, MambaForSequenceClassification, MambaLMHeadModel

    cls = {"dna-classify": MambaForSequenceClassification, "dna-mlm": MambaForMaskedLM}.get(
        task, MambaLMHeadModel)
    model = load_pretrained(cls, d).to(device).eval()
    tok = tokenizer_of(d)
    window = window or int(extra.get("seq_len", 512 if task == "dna-mlm" else 1024))
    fa = FastaFile(fasta)
    vin = open_vcf(vcf)
    contigs = {r.name for r in fa.records}
    missing = [c for c in vin.header.contigs if c not in contigs]
    if missing:
        raise InputError(f"contig(s) {missing[:5]} of the VCF header are not in {fasta}",
                         path=vcf, fix="score against the reference the VCF was called on")
    labels = extra.get("labels", [])
    header = vin.header.copy()
    header.add_line(f"##seqmamba_scoring={SCORING[task]}")
    if task == "dna-lm":
        header.info.add(LLR_FIELD, "A", "Float",
                        f"seqmamba: log P(alt window) - log P(ref window), nats, {window}-base "
                        f"windows centred on the variant ({d})")
    elif task == "dna-mlm":
        header.info.add(LLR_FIELD, "A", "Float",
                        f"seqmamba masked LM: log P(alt) - log P(ref) at the variant's masked "
                        f"position, nats, {window}-base window with the variant at index "
                        f"{(window - 1) // 2} ({d})")
        header.filters.add(NOT_SNV, None, None, "an ALT is not an SNV: a masked LM scores "
                                                "SNVs only (that ALT's SM_LLR is missing)")
    else:
        for lab in labels:
            header.info.add(f"SM_D_{lab}", "A", "Float",
                            f"seqmamba: P({lab} | alt window) - P({lab} | ref window) ({d})")
    header.filters.add(MISMATCH, None, None, "REF differs from the reference FASTA (not scored)")
    import pysam

    mode = "wb" if out.suffix == ".bcf" else "wz" if out.name.endswith(".gz") else "w"
    rc = bool(model.config.rc_equivariant)
    value_cols = [f"d_{lab}" for lab in labels] if task == "dna-classify" else ["llr"]
    provenance = model_provenance(d, window=window, vcf=str(vcf.resolve()),
                                  vcf_sha256=file_sha256(vcf), fasta=str(fasta.resolve()))
    with OutputLock(out, "VCF"):
        table = PartialTable(out.with_name(out.name + ".scores"), ["record", "alt"] + value_cols,
                             restart, key=("record", "alt"), default_delim="\t",
                             provenance=provenance)
        if table.done:
            print(f"seqmamba: continuing: {len(table.done):,} alleles already scored "
                  f"({table.partial})", file=sys.stderr)
        try:
            counts, mismatches, not_snv = _score_pass(
                vin, fa, contigs, model, task, tok, window, rc, table, batch_size=batch_size,
                device=device, fasta=fasta, vcf=vcf)
            vin.close()
            scores = {(int(r["record"]), int(r["alt"])): [float(r[c]) for c in value_cols]
                      for r in table.rows()}
            with atomic_output(out, suffix=out.suffix) as tmp:
                vout = pysam.VariantFile(str(tmp), mode, header=header)
                for i, rec in enumerate(open_vcf(vcf)):
                    rec.translate(vout.header)  # the same record, under the header with ours
                    if i in mismatches:
                        rec.filter.add(MISMATCH)
                    if i in not_snv:
                        rec.filter.add(NOT_SNV)
                    mine = {k: v if task == "dna-classify" else v[0]
                            for k in range(len(rec.alts or ()))
                            if (v := scores.get((i, k))) is not None}
                    if mine:
                        write_scores(rec, mine, task, labels)
                    vout.write(rec)
                vout.close()
        except BaseException:
            table.f.close()  # kept: the rerun continues from it
            raise
        table.discard()
    for m in list(mismatches.values())[:20]:
        print(f"seqmamba: {vcf}: {m}", file=sys.stderr)
    print(f"wrote {out}: {counts['scored']} records scored, {len(mismatches)} REF mismatches "
          f"(FILTER {MISMATCH}), {counts['skipped']} not scorable (symbolic alleles, or too near "
          "an end)" + (f"; {len(not_snv)} with an indel ALT left unscored (FILTER {NOT_SNV})"
                       if not_snv else ""))
    return 0


def _score_pass(vin, fa, contigs, model, task, tok, window, rc, table, *, batch_size: int,
                device, fasta: Path, vcf: Path):
    """Score every scorable allele not in ``table`` yet, appending rows (record index, alt
    index, values) batch by batch (``batch_size`` window pairs per ``score_batch`` call).
    Returns ({"scored", "skipped"} record counts, {record index: REF mismatch message},
    {record indices with an ALT a masked LM cannot score})."""
    counts = {"scored": 0, "skipped": 0}
    mismatches, not_snv = {}, set()
    masked = task == "dna-mlm"
    pending: list = []  # (record index, allele index, (ref window, alt window))

    def flush():
        for j in range(0, len(pending), batch_size):
            part = pending[j:j + batch_size]
            if masked:
                s = masked_llr(model, tok, [p[2] for p in part], device, rc)
            else:
                s = score_batch(model, task, tok, [p[2] for p in part], device, rc)
            for (i, k, _), v in zip(part, s):
                vals = [float(x) for x in v] if task == "dna-classify" else [float(v)]
                # 9 significant digits hold a float32 exactly: a resumed run writes the same
                table.add({"record": i, "alt": k, **dict(zip(table.fields[2:],
                                                             (f"{x:.9g}" for x in vals)))})
        pending.clear()

    for i, rec in enumerate(vin):
        if rec.chrom not in contigs:
            raise InputError(f"record {rec.chrom}:{rec.pos}: contig {rec.chrom!r} is not in "
                             f"{fasta}", path=vcf)
        pos0 = rec.pos - 1
        ref_fa = fa.fetch(rec.chrom, pos0, min(fa.length(rec.chrom), pos0 + len(rec.ref)))
        if ref_fa.upper() != rec.ref.upper():
            mismatches[i] = (f"{rec.chrom}:{rec.pos} REF {rec.ref} but the FASTA has "
                             f"{ref_fa or '(past the end)'}")
            continue
        any_scored = False
        for k, alt in enumerate(rec.alts or ()):
            if not alt or not set(alt.upper()) <= set("ACGTN"):
                continue  # symbolic (<DEL>), breakend or missing: left unscored
            if masked:
                if len(alt) != 1 or len(rec.ref) != 1 or alt.upper() == "N":
                    not_snv.add(i)
                    continue
                pair = (masked_window(fa, rec.chrom, pos0, window), ref_fa, alt)
            else:
                pair = alt_window(fa, rec.chrom, pos0, rec.ref, alt, window)
            if pair is not None:
                any_scored = True
                if (str(i), str(k)) not in table.done:
                    pending.append((i, k, pair))
        counts["scored" if any_scored else "skipped"] += 1
        if len(pending) >= 8 * batch_size:
            flush()
    flush()
    return counts, mismatches, not_snv


def write_scores(rec, scores: dict, task: str, labels) -> None:
    """Set ``rec``'s INFO from scores {alt index: value}, the value an LLR (float) for an LM or
    the class deltas (classes,) for a classifier: one value per ALT (missing where not
    scored)."""
    n = len(rec.alts)
    if task != "dna-classify":
        rec.info[LLR_FIELD] = tuple(round(float(scores[k]), 5) if k in scores else None
                                    for k in range(n))
    else:
        for j, lab in enumerate(labels):
            rec.info[f"SM_D_{lab}"] = tuple(round(float(scores[k][j]), 6) if k in scores
                                            else None for k in range(n))
