"""``seqmamba dna predict``: batch prediction on FASTA (and TSV) files.

One output row per record: for a classifier the predicted label and the probability of every
class; for a pretrained language model the record's bits per base.  Records are read and run
in pieces of ``--chunk-size`` bases with the model's state carried between pieces, so a whole
chromosome goes through in bounded memory (causal models; a bidirectional model needs the
whole record at once).  ``--track`` writes per-position scores as bedGraph (classifier: the
probability of ``--track-class`` read at each position; language model: the bits spent on
each base), averaged over ``--track-bin`` bases; ``--embed`` writes mean-pooled embeddings.
A base-level annotation model (``dna finetune --task token``) gives one row per record with
the fraction of bases in each class, a bigWig per class with ``--track x.bw``, and the
predicted segments (CDS per strand, introns, UTRs) as GFF3 or BED with ``--segments``; a
bidirectional one runs in overlapping windows (``--window``), block by block, so memory stays
bounded on any record.

Robustness: a record that fails (e.g. an unexpected character) is reported on stderr and in
``OUT.errors.tsv`` and the others are still predicted; exit code 2 then.  Rows are appended to
``OUT.partial`` as they are done and renamed to ``OUT`` at the end, so the output is never half
written; rerunning the same command continues from ``OUT.partial``.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import time
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import numpy as np
import torch

from seqmamba import (MambaForSequenceClassification, MambaForTokenClassification,
                      MambaLMHeadModel, MambaPreTrainedModel)
from seqmamba.atomic import atomic_output, write_text_atomic
from seqmamba.pooling import StreamingPool

from ..errors import InputError, regular_file
from ..io.segments import SegmentWriter
from ..io.tables import OutputLock, PartialTable, check_outputs, model_provenance
from ..io.tracks import BigWigWriter, PerClassBigWig, TrackWriter, add_to_bins
from .fasta import FastaFile
from ..model_dirs import load_pretrained, model_extra
from .annotation import segments as class_runs
from .models import DNA_TASKS, resolve_model_dir, tokenizer_of
from .tokenizer import DNATokenizer

LN2 = math.log(2.0)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seqmamba dna predict", description=__doc__.split("\n")[0])
    p.add_argument("inputs", nargs="+", type=Path, help="FASTA (plain/bgzip) or TSV files")
    p.add_argument("--model", type=Path, required=True, help="RUN directory or RUN/final")
    p.add_argument("--out", type=Path, required=True, help="predictions (.tsv or .csv)")
    p.add_argument("--track", type=Path, default=None,
                   help="per-position scores: .bedgraph, or .bw (bigWig, for IGV/JBrowse)")
    p.add_argument("--track-class", default=None, help="class whose probability the track shows "
                                                       "(default: the last label)")
    p.add_argument("--track-bin", type=int, default=1, help="bases per bedGraph interval")
    p.add_argument("--embed", type=Path, default=None, help="pooled embeddings (.npz)")
    p.add_argument("--embed-window", type=int, default=None,
                   help="--embed: also mean embeddings of every N-base window, with their "
                        "record, start and end (for clustering regions)")
    p.add_argument("--segments", type=Path, default=None,
                   help="annotation models: predicted segments as .gff3 or .bed")
    p.add_argument("--window", type=int, default=None,
                   help="annotation models: window for bidirectional ones (default: twice the "
                        "training window)")
    p.add_argument("--chunk-size", type=int, default=1 << 16, help="bases per piece")
    p.add_argument("--max-length", type=int, default=None,
                   help="use only the first N bases of each record")
    p.add_argument("--restart", action="store_true", help="ignore an earlier OUT.partial")
    p.add_argument("--save-every", type=float, default=60.0,
                   help="seconds between saves of a long record's progress (its carried state), "
                        "so a stopped run resumes inside the record (0: after every chunk)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--device", default="cpu")
    return p


def load_model(model_dir: Path, device: str) -> Tuple[MambaPreTrainedModel, str, DNATokenizer]:
    d = resolve_model_dir(model_dir)
    task = model_extra(d).get("task", "dna-lm")
    cls = {"dna-classify": MambaForSequenceClassification,
           "dna-token": MambaForTokenClassification}.get(task, MambaLMHeadModel)
    if task not in DNA_TASKS:
        raise InputError(f"model task {task!r} is not a DNA model", path=d)
    model = load_pretrained(cls, d).to(device).eval()
    return model, task, tokenizer_of(d)


# ---------------------------------------------------------------- inputs

def iter_records(path: Path, max_length: Optional[int]) -> Iterator[Tuple[str, int, object]]:
    """(record name, length, reader(start, end) -> str) for each record of a FASTA or TSV."""
    regular_file(path)
    if path.suffix.lower() in (".tsv", ".txt"):
        with open(path, newline="") as f:
            rows = list(csv.reader(f, delimiter="\t"))
        if not rows or "sequence" not in rows[0] or "id" not in rows[0]:
            raise InputError("TSV input needs a header with id and sequence columns", path=path)
        ci, cs = rows[0].index("id"), rows[0].index("sequence")
        for row in rows[1:]:
            if not row:
                continue
            seq = row[cs][:max_length] if max_length else row[cs]
            yield row[ci], len(seq), (lambda s, e, seq=seq: seq[s:e])
        return
    fa = FastaFile(path, strict=False)
    for r in fa.records:
        n = min(r.length, max_length) if max_length else r.length
        yield r.name, n, (lambda s, e, name=r.name: fa.fetch(name, s, e))


# ---------------------------------------------------------------- one record

class RecordResult:
    def __init__(self):
        self.row: dict = {}
        self.embedding: Optional[np.ndarray] = None
        self.track = None  # (sums, counts) per bin of --track-bin bases
        self.windows: Optional[np.ndarray] = None  # (n windows, k) mean features per window
        self.segments: list = []  # annotation models: (start, end, class, mean probability)


@torch.no_grad()
def predict_record(model, task, tok: DNATokenizer, name: str, length: int, read, a,
                   path: Path, track_class: int,
                   progress: Optional["RecordProgress"] = None) -> RecordResult:
    """Run one record in pieces with carried state; pooled outputs, track and embedding.
    With ``progress``, the state after a chunk is saved every ``a.save_every`` seconds and a
    saved state of this record is continued from (a long chromosome resumes where it was)."""
    if length == 0:
        raise InputError("empty record", path=path, record=name)
    if task == "dna-token":
        return predict_token_record(model, tok, name, length, read, a, path)
    res = RecordResult()
    causal = model.config.causal
    piece = a.chunk_size if causal else length
    device = a.device
    cache = model.allocate_inference_cache(1) if causal else None
    pool = StreamingPool(model.config.pooling if task == "dna-classify" else "mean")
    embed_pool = StreamingPool("mean") if a.embed else None
    whole = torch.tensor([length])  # the record's length, for pooling modes that need it (center)
    bits_total, bits_n = 0.0, 0
    prev_logits = None  # LM: the prediction for the first base of the next piece
    bin_sum = bin_cnt = None
    if a.track:
        n_bins = (length + a.track_bin - 1) // a.track_bin
        shape = (n_bins,) if track_class >= 0 else (n_bins, len(model.config.extra["labels"]))
        bin_sum, bin_cnt = np.zeros(shape, np.float64), np.zeros(n_bins, np.int64)
    first_start = 0
    win_sum = None
    # a record's saved progress does not hold window sums: with --embed-window it starts over
    saved = progress.load(name, length) if progress is not None and causal \
        and not a.embed_window else None
    if saved is not None:
        first_start, st = saved
        print(f"seqmamba: continuing {name} from base {first_start:,} (saved progress)",
              file=sys.stderr)
        for i, lc in enumerate(cache.layers):
            lc.conv, lc.ssm = st.pop(f"conv.{i}"), st.pop(f"ssm.{i}")
        cache.seqlen_offset = first_start
        for key, p in (("pool", pool), ("embed", embed_pool)):
            if p is not None:
                p.restore({k.split(".", 1)[1]: st.pop(k) for k in list(st)
                           if k.startswith(key + ".")}, first_start)
        bits = st.pop("bits")
        bits_total, bits_n = float(bits[0]), int(bits[1])
        prev_logits = st.pop("prev_logits", None)
        if a.track:
            bin_sum, bin_cnt = st.pop("bin_sum").numpy(), st.pop("bin_cnt").numpy()
    last_save = time.monotonic()
    for start in range(first_start, length, piece):
        end = min(length, start + piece)
        ids = tok.encode(read(start, end), record=name, offset=start, path=path).to(device)[None]
        h = model.backbone(ids, None, cache)
        feats = model.backbone.features(h)
        if embed_pool is not None:
            embed_pool.update(feats, whole)
        if a.embed_window:  # window sums: window w holds positions [w N, (w + 1) N)
            f = feats[0].float().cpu()
            idx = torch.arange(start, end) // a.embed_window
            if win_sum is None:
                win_sum = torch.zeros(-(-length // a.embed_window), f.shape[-1])
            win_sum.index_add_(0, idx, f)
        if task == "dna-classify":
            pool.update(feats, whole)
            probs = model.classifier(feats.to(model.classifier.weight.dtype)).float() \
                .softmax(-1)[0] if a.track else None
            # every class (L, C) for a bigWig per class, else the one --track-class (L,)
            scores = None if probs is None else probs if track_class < 0 else probs[:, track_class]
        else:
            logits = model.lm_head(h)[..., : model.config.vocab_size].float()
            logp = logits.log_softmax(-1)[0]
            tgt = ids[0]
            # bits of base t given bases < t: logits at t-1 (the previous piece's last for t=0)
            lp = torch.empty(end - start, device=device)
            lp[1:] = logp[:-1].gather(-1, tgt[1:, None])[:, 0]
            if prev_logits is not None:
                lp[0] = prev_logits[tgt[0]]
                bits_total -= float(lp.sum()) / LN2
                bits_n += end - start
            else:
                lp[0] = float("nan")
                bits_total -= float(lp[1:].sum()) / LN2
                bits_n += end - start - 1
            prev_logits = logp[-1]
            scores = -lp / LN2 if a.track else None
        if scores is not None:
            add_to_bins(bin_sum, bin_cnt, start, scores.double().cpu().numpy(), a.track_bin)
        if progress is not None and end < length and \
                time.monotonic() - last_save >= a.save_every:
            progress.save(name, length, end, cache, pool, embed_pool, bits_total, bits_n,
                          prev_logits, bin_sum, bin_cnt)
            last_save = time.monotonic()
    res.row = {"record": name, "length": length}
    if task == "dna-classify":
        pooled = pool.result()
        probs = model.classifier(pooled.to(model.classifier.weight.dtype)).float().softmax(-1)[0]
        names = model.config.extra["labels"]
        res.row["label"] = names[int(probs.argmax())]
        for n, p in zip(names, probs.tolist()):
            res.row[f"p_{n}"] = p
    else:
        res.row["bits_per_base"] = bits_total / bits_n if bits_n else float("nan")
    if embed_pool is not None:
        res.embedding = embed_pool.result()[0].float().cpu().numpy()
    if win_sum is not None:
        counts = torch.full((win_sum.shape[0], 1), float(a.embed_window))
        counts[-1] = length - (win_sum.shape[0] - 1) * a.embed_window
        res.windows = (win_sum / counts).numpy()
    if a.track:
        res.track = (bin_sum, bin_cnt)
    return res


@torch.no_grad()
def predict_token_record(model, tok, name, length, read, a, path) -> RecordResult:
    """A base-level annotation model on one record: class fractions (row), per-class track
    bins, predicted segments (``res.segments``: (start, end, class, mean probability)).
    Causal models run in --chunk-size pieces with carried state; bidirectional ones in
    overlapping windows (``genes.iter_tile_probs``)."""
    from .genes import iter_tile_probs

    res = RecordResult()
    labels = model.config.extra["labels"]
    k = len(labels)
    device = a.device

    def ids_of(s, e):
        return tok.encode(read(s, e), record=name, offset=s, path=path)

    if model.config.causal:
        cache = model.allocate_inference_cache(1)

        def blocks():
            for s in range(0, length, a.chunk_size):
                e = min(length, s + a.chunk_size)
                h = model.backbone(ids_of(s, e).to(device)[None], None, cache)
                yield s, model.head(h)[0].float().softmax(-1).cpu().numpy()
    else:
        window = a.window or 2 * int(model.config.extra.get("seq_len", 4096))

        def blocks():
            return iter_tile_probs(model, ids_of, length, window)

    counts = np.zeros(k, np.int64)
    bin_sum = bin_cnt = None
    if a.track:
        n_bins = (length + a.track_bin - 1) // a.track_bin
        bin_sum, bin_cnt = np.zeros((n_bins, k)), np.zeros(n_bins, np.int64)
    segs: List[list] = []  # [start, end, class, probability sum]
    for s, probs in blocks():
        cls = probs.argmax(-1)
        counts += np.bincount(cls, minlength=k)
        if a.track:
            add_to_bins(bin_sum, bin_cnt, s, probs, a.track_bin)
        if a.segments:
            for lo, hi, c in class_runs(cls):
                p = float(probs[lo:hi, c].sum())
                if segs and segs[-1][2] == c and segs[-1][1] == s + lo:  # across blocks
                    segs[-1][1], segs[-1][3] = s + hi, segs[-1][3] + p
                else:
                    segs.append([s + lo, s + hi, c, p])
    res.row = {"record": name, "length": length,
               **{f"frac_{n}": round(float(counts[i]) / length, 6) for i, n in enumerate(labels)},
               "cds_segments": sum(1 for g in segs if labels[g[2]].startswith("cds_"))
               if a.segments else ""}
    res.segments = [(s, e, c, p / (e - s)) for s, e, c, p in segs]
    if a.track:
        res.track = (bin_sum, bin_cnt)
    return res


class RecordProgress:
    """The progress of the record being predicted, kept beside the table
    (OUT.partial.record.safetensors, written atomically): where it stopped, the model's carried
    state, the pooled sums, the bits and the track bins so far.  A rerun continues that record
    from there; the file goes when the record's row is written."""

    def __init__(self, out: Path, file_key: str):
        self.path = out.with_name(out.name + ".partial.record.safetensors")
        self.file_key = file_key

    def save(self, name, length, start, cache, pool, embed_pool, bits_total, bits_n,
             prev_logits, bin_sum, bin_cnt) -> None:
        from safetensors.torch import save_file

        t = {}
        for i, lc in enumerate(cache.layers):
            t[f"conv.{i}"], t[f"ssm.{i}"] = lc.conv, lc.ssm
        for key, p in (("pool", pool), ("embed", embed_pool)):
            if p is not None:
                t.update({f"{key}.{k}": v for k, v in p.state().items()})
        t["bits"] = torch.tensor([bits_total, float(bits_n)], dtype=torch.float64)
        if prev_logits is not None:
            t["prev_logits"] = prev_logits
        if bin_sum is not None:
            t["bin_sum"], t["bin_cnt"] = torch.from_numpy(bin_sum), torch.from_numpy(bin_cnt)
        meta = {"file": self.file_key, "record": name, "length": str(length), "start": str(start)}
        with atomic_output(self.path, suffix=".safetensors") as tmp:
            save_file({k: v.detach().contiguous().cpu() for k, v in t.items()}, str(tmp), meta)

    def load(self, name, length):
        """(start, tensors) of a saved state of this record, else None."""
        from safetensors import safe_open

        if not self.path.is_file():
            return None
        try:
            with safe_open(str(self.path), "pt") as f:
                meta = f.metadata() or {}
                if (meta.get("file"), meta.get("record"), meta.get("length")) != \
                        (self.file_key, name, str(length)):
                    return None
                return int(meta["start"]), {k: f.get_tensor(k) for k in f.keys()}
        except Exception:  # a damaged state is not an error: the record starts over
            return None

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


# ---------------------------------------------------------------- output files

def run(argv=None) -> int:
    a = build_parser().parse_args(argv)
    if a.chunk_size < 1 or a.track_bin < 1 or (a.max_length is not None and a.max_length < 1):
        raise InputError("--chunk-size, --track-bin and --max-length must be positive")
    if a.embed_window is not None and (a.embed_window < 1 or a.embed is None):
        raise InputError("--embed-window takes a positive number of bases, with --embed FILE")
    if a.window is not None and a.window < 1:
        raise InputError("--window must be positive")
    check_outputs([a.out, a.track, a.embed, a.segments], a.inputs)
    model, task, tok = load_model(a.model, a.device)
    if a.segments is not None and task != "dna-token":
        raise InputError("--segments is for base-level annotation models (dna finetune --task "
                         "token)", path=a.model)
    lock = OutputLock(a.out, "table")
    try:
        return _predict(a, model, task, tok)
    finally:
        lock.release()


def track_writer(a, task, labels=()):
    """bedGraph, or bigWig for a --track ending in .bw/.bigwig (FASTA inputs: the header needs
    every record's size up front)."""
    if a.track is None:
        return None
    if a.track.suffix.lower() not in (".bw", ".bigwig"):
        return TrackWriter(a.track, task)
    sizes = []
    for path in a.inputs:
        if path.suffix.lower() in (".tsv", ".txt"):
            raise InputError("a bigWig track is along FASTA records; TSV rows have no "
                             "coordinates", path=path, fix="write the track as .bedgraph")
        sizes += [(r.name, r.length) for r in FastaFile(path, strict=False).records]
    names = [n for n, _ in sizes]
    if len(set(names)) != len(names):
        raise InputError("two inputs share a record name; one bigWig cannot hold both",
                         path=a.track, fix="write one track per FASTA")
    if labels and a.track_class is None:
        return PerClassBigWig(a.track, sizes, labels)
    return BigWigWriter(a.track, sizes)


def _predict(a, model, task, tok) -> int:
    from tqdm.auto import tqdm

    names = model.config.extra.get("labels", []) if task in ("dna-classify", "dna-token") else []
    track_class = len(names) - 1 if names else 0
    if a.track_class is not None:
        if a.track_class not in names:
            raise InputError(f"--track-class {a.track_class!r} is not a label of the model "
                             f"({', '.join(names)})")
        track_class = names.index(a.track_class)
    fields = ["file", "record", "length"] + (
        ["label"] + [f"p_{n}" for n in names] if task == "dna-classify" else
        [f"frac_{n}" for n in names] + ["cds_segments"] if task == "dna-token" else
        ["bits_per_base"])
    segments = SegmentWriter(a.segments, names) if a.segments else None
    track = track_writer(a, task, names)  # a bigWig reads every FASTA's index first
    if isinstance(track, PerClassBigWig):
        track_class = -1  # every class, one bigWig each
    provenance = model_provenance(resolve_model_dir(a.model), max_length=a.max_length)
    try:
        table = PartialTable(a.out, fields, a.restart, key=("file", "record"),
                             default_delim="\t", provenance=provenance)
    except BaseException:
        if track is not None:
            track.abort()
        raise
    if not table.resumed:  # a record's saved progress belongs to the partial table it extends
        RecordProgress(a.out, "").clear()
    errors: List[Tuple[str, str, str]] = []
    try:
        embeds, embed_ids, windows = [], [], []
        n_done = 0
        bar = tqdm(total=None, unit="record", disable=a.no_progress, file=sys.stderr)
        for path in a.inputs:
            try:
                records = list(iter_records(path, a.max_length))
            except InputError as e:
                errors.append((str(path), "", str(e)))
                continue
            file_key = os.path.abspath(path)  # the same file however it was typed
            for name, length, read in records:
                if (file_key, name) in table.done and not (a.track or a.embed or a.segments):
                    continue
                progress = RecordProgress(a.out, file_key)
                try:
                    res = predict_record(model, task, tok, name, length, read, a, path,
                                         track_class, progress)
                except InputError as e:
                    errors.append((str(path), name, str(e)))
                    continue
                if (file_key, name) not in table.done:
                    table.add({"file": file_key, **res.row})
                progress.clear()  # the row is in the table: its progress is no longer needed
                n_done += 1
                bar.update(1)
                if track is not None:
                    sums, counts = res.track
                    if sums.ndim == 2 and track_class >= 0:  # one class of an annotation model
                        sums = sums[:, track_class]
                    track.write(name, length, a.track_bin, sums, counts)
                if segments is not None:
                    segments.add(name, res.segments)
                if res.embedding is not None:
                    embeds.append(res.embedding)
                    embed_ids.append(f"{path.name}:{name}")
                if res.windows is not None:
                    starts = np.arange(len(res.windows)) * a.embed_window
                    windows.append((name, starts, np.minimum(starts + a.embed_window, length),
                                    res.windows))
        bar.close()
        if n_done == 0 and not table.done:
            table.discard()
            if track is not None:
                track.abort()
            for f, r, msg in errors:
                print(f"seqmamba: {msg}", file=sys.stderr)
            return 2
        table.finish()
        RecordProgress(a.out, "").clear()
        if track is not None:
            track.finish()
        if segments is not None:
            segments.finish()
        if a.embed:
            k = model.backbone.feature_dim
            extra = {}
            if a.embed_window:
                extra = dict(
                    window_record=np.array([w[0] for w in windows for _ in w[1]]),
                    window_start=np.concatenate([w[1] for w in windows]) if windows else
                    np.zeros(0, np.int64),
                    window_end=np.concatenate([w[2] for w in windows]) if windows else
                    np.zeros(0, np.int64),
                    window_embeddings=np.concatenate([w[3] for w in windows]).astype(np.float32)
                    if windows else np.zeros((0, k), np.float32))
            with atomic_output(a.embed, suffix=".npz") as tmp:
                np.savez(tmp, ids=np.array(embed_ids), embeddings=np.stack(embeds) if embeds else
                         np.zeros((0, k), np.float32), **extra)
        tracks = ", ".join(map(str, getattr(track, "paths", [a.track]))) if a.track else ""
        print(f"wrote {a.out} ({n_done} records)" + (f", {tracks}" if a.track else "")
              + (f", {a.segments}" if a.segments else "")
              + (f", {a.embed}" if a.embed else ""))
        if errors:
            rows = "".join(f"{f}\t{r}\t{m}\n" for f, r, m in errors)
            write_text_atomic("file\trecord\terror\n" + rows,
                              a.out.with_name(a.out.name + ".errors.tsv"))
            for f, r, msg in errors:
                print(f"seqmamba: {msg}", file=sys.stderr)
            print(f"seqmamba: {len(errors)} input(s) failed; the others are in {a.out}", file=sys.stderr)
            return 2
        return 0
    except BaseException:  # no orphan temporary track on an error (a full disk, say)
        if track is not None:
            track.abort()  # (a no-op for a track already finished: its file was renamed)
        raise
