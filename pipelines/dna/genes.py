"""``seqmamba dna finetune --task token``: label every base of a genome from its GFF3.

    seqmamba dna finetune --task token --fasta genome.fa.gz --annotation genes.gff3.gz \\
        --val-records chr20,chr21 --seq-len 8192 --out runs/genes

Classes come from the annotation (``pipelines/dna/annotation.py``): intergenic, CDS on each
strand, intron, and UTR where the file has it.  Whole records are held out
(``--val-records``), never windows of a record that is trained on.  Training windows of
``--seq-len`` bases are drawn at random from the other annotated records (records the GFF3
does not mention are not used: their genes are unknown, not absent).  ``--class-weights
balanced`` weighs the loss by inverse class frequency (square-rooted, so rare classes are not
drowned but do not dominate either).  With ``--rc-equivariant`` the model is strand-symmetric
by construction: a + strand CDS is a - strand CDS on the reverse complement.

The report scores every base of the held-out records (overlapping windows, each base taken
from the windows around it weighted towards their centres) against the annotation: per-base
accuracy, per-class F1, macro-F1 and CDS boundary recall (a CDS run whose start and end a
predicted run of the same class hits within 3 bases), beside the classic codon-position-aware
Markov gene finder (``pipelines/dna/genefinder.py``) fitted on the same training records, and
draws RUN/gene_track.png: annotation, model and baseline along a held-out stretch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..options import backbone_fields
from ..errors import InputError
from .annotation import IGNORE, Annotation, read_annotation, segments
from .fasta import FastaFile
from .tokenizer import DNATokenizer
from .windows import POOL, record_names

BOUNDARY_SLACK = 3  # bases: a CDS boundary predicted this close counts as exact


class GeneWindows(Dataset):
    """Windows of ``seq_len`` bases of ``records`` with per-base class labels.

    item: {"input_ids": (seq_len,) int64, "labels": (seq_len,) int64 (-100: not scored)}.
    Window i of epoch e is a pure function of (seed, e, i) (``fixed``: of (seed, i));
    records are drawn in proportion to their length.  ``rc_prob``: a window is replaced by its
    reverse complement, labels reversed and strand classes swapped (``label_complement``)."""

    def __init__(self, fasta: str, ann: Annotation, records: Sequence[str], seq_len: int,
                 tok: DNATokenizer, samples: int, seed: int = 0, fixed: bool = False,
                 rc_prob: float = 0.0):
        self.fasta, self.ann, self.tok, self.samples = fasta, ann, tok, samples
        self.records = [r for r in records if len(ann.classes[r]) >= seq_len]
        if not self.records:
            raise InputError(f"no record of the split holds a window of {seq_len:,} bases",
                             path=fasta, fix="use a shorter --seq-len")
        lengths = np.array([len(ann.classes[r]) - seq_len + 1 for r in self.records], float)
        self.weights = lengths / lengths.sum()
        self.seq_len, self.seed, self.fixed, self.rc_prob, self.epoch = \
            seq_len, seed, fixed, rc_prob, 0
        self.swap = torch.tensor(ann.label_complement())

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, 0 if self.fixed else self.epoch, i])
        r = self.records[rng.choice(len(self.records), p=self.weights)]
        s = int(rng.integers(0, len(self.ann.classes[r]) - self.seq_len + 1))
        ids = self.tok.encode(POOL.get(self.fasta).fetch(r, s, s + self.seq_len), record=r,
                              offset=s, path=self.fasta)
        labels = torch.from_numpy(self.ann.classes[r][s:s + self.seq_len].astype(np.int64))
        labels[labels == IGNORE] = -100
        if self.rc_prob and rng.random() < self.rc_prob:
            ids = self.tok.reverse_complement(ids)
            labels = labels.flip(0)
            ok = labels >= 0
            labels[ok] = self.swap[labels[ok]]
        return {"input_ids": ids, "labels": labels}


def class_weights(ann: Annotation, records: Sequence[str]) -> List[float]:
    """Square-rooted inverse class frequencies over ``records``, mean 1 over the classes
    present (a class absent from training gets weight 0: it cannot be learnt)."""
    counts = np.zeros(len(ann.labels))
    for r in records:
        c = ann.classes[r]
        counts += np.bincount(c[c >= 0], minlength=len(ann.labels))
    w = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), 0.0)
    return (w / w[counts > 0].mean()).round(4).tolist()


def tile_starts(n: int, window: int) -> List[int]:
    """Starts of the windows that tile a record of n bases: every window // 2 bases, and one
    ending at the record's end."""
    w = min(window, n)
    step = max(1, w // 2)
    starts = list(range(0, n - w + 1, step))
    if starts[-1] + w < n:
        starts.append(n - w)
    return starts


@torch.no_grad()
def iter_tile_probs(model, read, n: int, window: int, block: int = 1 << 18,
                    batch: int = 4) -> Iterator[Tuple[int, np.ndarray]]:
    """Class probabilities along one record, block by block: yields (start, probs (m, C)
    float32) for consecutive blocks of up to ``block`` bases.  ``read(start, end)`` -> token
    ids (end - start,).

    Windows of ``window`` bases overlap by half (``tile_starts``); each base's probabilities
    are the average over the windows holding it, weighted by a tent that is highest at a
    window's centre (a base near a window's edge sees context on one side only).  A block sums
    exactly the windows that touch it, so the result does not depend on ``block``, and memory
    is bounded by a block and a batch of windows, whatever the record's length."""
    device = next(model.parameters()).device
    w = min(window, n)
    starts = np.array(tile_starts(n, w))
    tent = torch.minimum(torch.arange(w) + 1.0, w - torch.arange(w).float()).to(device)
    for b0 in range(0, n, block):
        b1 = min(n, b0 + block)
        mine = starts[(starts < b1) & (starts + w > b0)].tolist()
        lo = mine[0]
        ids = read(lo, mine[-1] + w)
        acc = torch.zeros(b1 - b0, model.config.num_labels, device=device)
        norm = torch.zeros(b1 - b0, device=device)
        for k in range(0, len(mine), batch):
            chunk = mine[k:k + batch]
            x = torch.stack([ids[s - lo:s - lo + w] for s in chunk]).to(device)
            p = model(x).logits.float().softmax(-1)
            for j, s in enumerate(chunk):
                a, e = max(s, b0), min(s + w, b1)  # the part of window s inside the block
                acc[a - b0:e - b0] += p[j, a - s:e - s] * tent[a - s:e - s, None]
                norm[a - b0:e - b0] += tent[a - s:e - s]
        yield b0, (acc / norm[:, None]).cpu().numpy()


def tile_probs(model, ids: torch.Tensor, window: int) -> np.ndarray:
    """``iter_tile_probs`` of a whole record held in memory: ids (n,) -> (n, C)."""
    n = ids.shape[0]
    return np.concatenate([p for _, p in iter_tile_probs(model, lambda s, e: ids[s:e], n,
                                                         window)])


def boundary_recall(truth: np.ndarray, pred: np.ndarray, coding: Sequence[int],
                    slack: int = BOUNDARY_SLACK) -> dict:
    """CDS runs of the annotation found exactly: a run of a coding class whose start and end a
    predicted run of the same class matches within ``slack`` bases (both -> ``exact``, each
    end alone -> ``start`` / ``end``; start = the left end, whatever the strand)."""
    true_runs = segments(truth, keep=set(coding))
    pred_runs = segments(pred, keep=set(coding))
    by_start: Dict[int, list] = {}
    for s, e, c in pred_runs:
        by_start.setdefault(c, []).append((s, e))
    ends = {c: np.array([e for _, e in v]) for c, v in by_start.items()}
    starts = {c: np.array([s for s, _ in v]) for c, v in by_start.items()}
    n = len(true_runs)
    hit_s = hit_e = hit_both = 0
    for s, e, c in true_runs:
        if c not in starts:
            continue
        ms = np.abs(starts[c] - s) <= slack
        me = np.abs(ends[c] - e) <= slack
        hit_s += bool(ms.any())
        hit_e += bool(me.any())
        hit_both += bool((ms & me).any())
    return {"cds_runs": n, "start": hit_s / n if n else float("nan"),
            "end": hit_e / n if n else float("nan"),
            "exact": hit_both / n if n else float("nan")}


def score_annotation(truth: Dict[str, np.ndarray], pred: Dict[str, np.ndarray],
                     labels: Sequence[str]) -> dict:
    """Per-base accuracy, per-class F1, macro-F1 and CDS boundary recall over records."""
    from ..metrics import confusion_scores

    k = len(labels)
    cm = np.zeros((k, k), np.int64)
    coding = [labels.index(c) for c in ("cds_plus", "cds_minus")]
    runs = {"cds_runs": 0, "start": 0.0, "end": 0.0, "exact": 0.0}
    for r, y in truth.items():
        p = pred[r].astype(np.int64)
        ok = y >= 0
        cm += np.bincount(y[ok].astype(np.int64) * k + p[ok], minlength=k * k).reshape(k, k)
        b = boundary_recall(y, p, coding)
        for key in ("start", "end", "exact"):
            if b["cds_runs"]:
                runs[key] += b[key] * b["cds_runs"]
        runs["cds_runs"] += b["cds_runs"]
    m = confusion_scores(cm)
    n = max(runs["cds_runs"], 1)
    return {"bases": int(cm.sum()), "acc": round(m["acc"], 4),
            "macro_f1": round(m["macro_f1"], 4),
            "f1": {c: round(f, 4) for c, f in zip(labels, m["f1"])},
            "cds_boundary_recall": {"runs": runs["cds_runs"],
                                    "exact": round(runs["exact"] / n, 4),
                                    "start": round(runs["start"] / n, 4),
                                    "end": round(runs["end"] / n, 4)}}


COLOURS = {"intergenic": "#f2f2f2", "cds_plus": "#1f77b4", "cds_minus": "#d62728",
           "intron": "#ffbf00", "utr": "#2ca02c"}


def plot_gene_track(tracks: Dict[str, np.ndarray], labels: Sequence[str], record: str,
                    start: int, out_png: Path) -> None:
    """Rows of coloured class segments (annotation, model, baseline ...) along one stretch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from ..plots import save_figure

    # one image row per track, one column per base: fast for any number of segments
    palette = ["#ffffff"] + [COLOURS.get(c, "#888888") for c in labels]  # masked first
    rows = np.stack([np.asarray(t, np.int64) + 1 for t in tracks.values()])  # IGNORE -> 0
    n = rows.shape[1]
    fig, ax = plt.subplots(figsize=(12, 0.6 + 0.55 * len(tracks)))
    ax.imshow(rows, aspect="auto", interpolation="nearest", cmap=ListedColormap(palette),
              vmin=0, vmax=len(palette) - 1, extent=(start, start + n, len(tracks) - 0.5, -0.5))
    ax.set_yticks(range(len(tracks)), list(tracks))
    ax.set_xlabel(f"{record} (bases)")
    ax.legend(handles=[Patch(color=COLOURS.get(c, "#888888"), label=c) for c in labels],
              loc="upper center", bbox_to_anchor=(0.5, -0.45), ncol=len(labels), frameon=False)
    fig.tight_layout()
    save_figure(fig, out_png)


def read_split(a, tok: DNATokenizer):
    """(FastaFile path, Annotation, training records, held-out records, records not used)."""
    if a.fasta is None or a.annotation is None:
        raise InputError("--task token needs --fasta GENOME and --annotation GFF3")
    if not a.val_records:
        raise InputError("--task token needs --val-records: whole records (chromosomes) to "
                         "hold out", fix="e.g. --val-records chr20,chr21")
    fa = FastaFile(a.fasta)
    lengths = {r.name: r.length for r in fa.records}
    ann = read_annotation(a.annotation, lengths, overlaps=a.overlaps)
    val = record_names(a.val_records)
    for r in val:
        if r not in lengths:
            raise InputError(f"--val-records: no record {r!r} in the FASTA", path=a.fasta)
    annotated = [r for r in lengths if (ann.classes[r] != ann.labels.index("intergenic")).any()]
    for r in val:
        if r not in annotated:
            raise InputError(f"--val-records: {r} has no annotated gene to score",
                             path=a.annotation)
    train = [r for r in annotated if r not in val]
    if not train:
        raise InputError("every annotated record is held out: nothing to train on",
                         path=a.annotation, fix="hold out fewer --val-records")
    unused = [r for r in lengths if r not in annotated and r not in val]
    return str(a.fasta), ann, train, val, unused


def run_token(a) -> int:
    """The ``--task token`` training command (arguments from ``dna finetune``)."""
    from ..training import Job, TokenTask, run_training, training_loader
    from .genefinder import CodingMarkov
    from .labelled import pad_collate
    from .models import resolve_model_dir, tokenizer_of

    init = resolve_model_dir(a.init) if a.init else None
    tok = tokenizer_of(init) if init else DNATokenizer()
    fasta, ann, train, val, unused = read_split(a, tok)
    seq_len = a.seq_len
    eval_len = a.eval_seq_len or seq_len
    samples = max(a.batch_size * a.max_steps, a.batch_size)
    collate = pad_collate(tok.pad_id)
    val_ds = GeneWindows(fasta, ann, val, min(seq_len, min(len(ann.classes[r]) for r in val)),
                         tok, a.val_windows, seed=a.seed + 1, fixed=True)
    val_loader = DataLoader(val_ds, batch_size=a.batch_size, collate_fn=collate)
    weights = class_weights(ann, train) if a.class_weights == "balanced" else None

    def job() -> Job:
        ds = GeneWindows(fasta, ann, train, seq_len, tok, samples, seed=a.seed,
                         rc_prob=0.5 if a.rc_augment else 0.0)
        loader = training_loader(ds, a.batch_size, a.seed, shuffle=False, collate_fn=collate,
                                 num_workers=a.workers, drop_last=True,
                                 persistent_workers=a.workers > 0)
        extra = {"task": "dna-token", "labels": ann.labels, "tokenizer": tok.to_dict(),
                 "seq_len": seq_len}
        config = dict(**backbone_fields(a),
                      vocab_size=tok.vocab_size, pad_token_id=tok.pad_id,
                      num_labels=len(ann.labels), bidirectional=a.bidirectional,
                      rc_equivariant=a.rc_equivariant,
                      complement_map=tok.complement_map if a.rc_equivariant else None,
                      label_complement=ann.label_complement() if a.rc_equivariant else None,
                      extra=extra)
        return Job(TokenTask, config, loader, val_loader, init,
                   step_positions=a.batch_size * seq_len,
                   task_options={"class_weights": weights} if weights else {})

    def report(model):
        reader = FastaFile(fasta)
        truth, pred, base = {}, {}, {}
        gf = CodingMarkov(ann.labels, order=5).fit(
            {r: tok.encode(reader.fetch(r)).numpy() for r in train}, ann)
        for r in val:
            ids = tok.encode(reader.fetch(r), record=r, path=fasta)
            truth[r] = ann.classes[r]
            pred[r] = tile_probs(model, ids, eval_len).argmax(-1).astype(np.int8)
            base[r] = gf.predict(ids.numpy())
        m = score_annotation(truth, pred, ann.labels)
        b = score_annotation(truth, base, ann.labels)
        r0 = val[0]
        lo = _plot_start(truth[r0], [ann.labels.index(c) for c in ("cds_plus", "cds_minus")],
                         a.plot_length)
        sl = slice(lo, lo + a.plot_length)
        plot_gene_track({"annotation": truth[r0][sl], "seqmamba": pred[r0][sl],
                         "Markov-5 gene finder": base[r0][sl]}, ann.labels, r0, lo,
                        a.out / "gene_track.png")
        fields = {"task": "dna-token", "labels": ann.labels,
                  "split": {"train_records": train, "val_records": val,
                            "unannotated_records_not_used": len(unused),
                            "masked_conflicting_bases": ann.conflicts},
                  "seq_len": seq_len, "eval_seq_len": eval_len, "class_weights": weights,
                  "model": m, "baseline": {"name": "codon-position Markov-5, 96-base window",
                                           **b},
                  "init": str(init) if init else None}
        lines = [f"held-out records {', '.join(val)} ({m['bases']:,} bases); "
                 f"{len(unused)} unannotated records not used"]
        for name, s in (("model", m), ("baseline Markov-5 gene finder", b)):
            f1 = " ".join(f"{c} {v:.3f}" for c, v in s["f1"].items())
            lines.append(f"{name}: acc {s['acc']:.4f} macro-F1 {s['macro_f1']:.4f} "
                         f"(F1 {f1}); CDS boundaries within {BOUNDARY_SLACK} bases "
                         f"{s['cds_boundary_recall']['exact']:.3f}")
        return fields, lines

    return run_training(a, job, report)


def _plot_start(truth: np.ndarray, coding_ids: Sequence[int], length: int) -> int:
    """Start of a plotted stretch that shows genes: the first CDS run's start, less 1 kb."""
    coding = np.flatnonzero(np.isin(truth, coding_ids))
    s = max(0, int(coding[0]) - 1000) if coding.size else 0
    return max(0, min(s, len(truth) - length))
