"""DNA prediction over FASTA/TSV records: the library behind ``seqmamba dna predict``.

A record is read in pieces of ``a.chunk_size`` bases by a causal model, its state carried from
piece to piece by ``seqmamba.streaming.Stream`` (a bidirectional model reads the whole record at
once); a language model's bits per base are counted by ``NextTokenBits``, the one
implementation of bits per token over chunks.  ``predict_files`` runs every record of every
input into a resumable table (``pipelines.io.tables.PartialTable``), tracks, segments and
embeddings (the track writer and the embeddings .npz come from ``prediction_outputs``); a long
record's carried state is saved as it goes (``record_progress``).

``a`` is the parsed command line of ``seqmamba dna predict`` (``pipelines/dna/predict.py``).
"""

from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

import numpy as np
import torch

from seqmamba import (MambaForMaskedLM, MambaForSequenceClassification,
                      MambaForTokenClassification, MambaLMHeadModel, MambaPreTrainedModel)
from seqmamba.pooling import StreamingPool
from seqmamba.streaming import NextTokenBits, Stream

from ..errors import InputError, regular_file
from ..io.segments import SegmentWriter
from ..io.tables import PartialTable, model_provenance, write_errors
from ..io.tracks import PerClassBigWig, add_to_bins
from ..model_dirs import load_pretrained
from .annotation import segments as class_runs
from .fasta import FastaFile
from .models import DNA_TASKS, model_task, resolve_model_dir, tokenizer_of
from .prediction_outputs import track_writer, write_embeddings
from .record_progress import RecordProgress
from .tokenizer import DNATokenizer

Reader = Callable[[int, int], str]  # read(start, end) -> the record's bases [start, end)


def load_model(model_dir: Path, device: str) -> Tuple[MambaPreTrainedModel, str, DNATokenizer]:
    """(model in eval mode on ``device``, task, tokenizer) of a DNA run directory or RUN/final;
    the task (``dna-lm``, ``dna-classify``, ``dna-token``) picks the model class."""
    d = resolve_model_dir(model_dir)
    task = model_task(d)
    cls = {"dna-classify": MambaForSequenceClassification, "dna-mlm": MambaForMaskedLM,
           "dna-token": MambaForTokenClassification}.get(task, MambaLMHeadModel)
    if task not in DNA_TASKS:
        raise InputError(f"model task {task!r} is not a DNA model", path=d)
    model = load_pretrained(cls, d).to(device).eval()
    return model, task, tokenizer_of(d)


# ---------------------------------------------------------------- inputs

def iter_records(path: Path, max_length: Optional[int]) -> Iterator[Tuple[str, int, Reader]]:
    """(record name, length, reader(start, end) -> str) for each record of a FASTA (plain or
    bgzip) or of a TSV with ``id`` and ``sequence`` columns, cut to ``max_length`` bases."""
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
    """What one record gives: its table row, and what the optional outputs need."""

    def __init__(self):
        self.row: dict = {}
        self.embedding: Optional[np.ndarray] = None  # (k,) mean features over the record
        self.track = None  # (sums (bins,) or (bins, C), counts (bins,)) per --track-bin bases
        self.windows: Optional[np.ndarray] = None  # (n windows, k) mean features per window
        self.segments: list = []  # annotation models: (start, end, class, mean probability)


def _track_bins(a, length: int, classes: Optional[int]):
    """Zeroed --track bins of one record: sums (bins,), or (bins, classes) with ``classes``,
    float64, and counts (bins,) int64; (None, None) without --track."""
    if not a.track:
        return None, None
    n_bins = (length + a.track_bin - 1) // a.track_bin
    shape = (n_bins,) if classes is None else (n_bins, classes)
    return np.zeros(shape, np.float64), np.zeros(n_bins, np.int64)


def _carried_state(stream: Stream, pools: dict, bits: NextTokenBits, bin_sum, bin_cnt) -> dict:
    """Everything ``predict_record`` carries past a chunk, named as ``RecordProgress`` saves
    it: the stream's ``conv.{i}``/``ssm.{i}``, ``pool.*``/``embed.*``, ``bits``,
    ``prev_logits`` (vocab,) and the track bins."""
    t = stream.state()
    for key, p in pools.items():
        t.update({f"{key}.{k}": v for k, v in p.state().items()})
    t.update(bits.state())
    if "prev_logits" in t:
        t["prev_logits"] = t["prev_logits"][0]  # (1, vocab) -> (vocab,), as the file holds it
    if bin_sum is not None:
        t["bin_sum"], t["bin_cnt"] = torch.from_numpy(bin_sum), torch.from_numpy(bin_cnt)
    return t


@torch.no_grad()
def predict_record(model, task: str, tok: DNATokenizer, name: str, length: int, read: Reader,
                   a, path: Path, track_class: int,
                   progress: Optional[RecordProgress] = None) -> RecordResult:
    """One record of ``length`` bases through the model: its row (a classifier's label and
    class probabilities, a language model's bits per base), --track bins, --embed pooled
    features (k,) and --embed-window means (windows, k).

    A causal model reads pieces of ``a.chunk_size`` bases (token ids (1, piece) -> hidden
    (1, piece, d_model)) through a ``Stream``; a bidirectional one the whole record at once.
    Track scores per base: the probability of class ``track_class`` (piece,), of every class
    (piece, C) when ``track_class`` is -1, or a language model's bits (piece,) from
    ``NextTokenBits.update`` (NaN for the record's first base, which no bin counts).
    With ``progress``, the carried state after a piece is saved every ``a.save_every``
    seconds, and a saved state of this record is continued from (not with --embed-window,
    whose window sums are not saved).  Base-level annotation models go to
    ``predict_token_record``."""
    if length == 0:
        raise InputError("empty record", path=path, record=name)
    if task == "dna-token":
        return predict_token_record(model, tok, name, length, read, a, path)
    res = RecordResult()
    stream = Stream(model) if model.config.causal else None
    piece = a.chunk_size if stream is not None else length
    pools = {"pool": StreamingPool(model.config.pooling if task == "dna-classify" else "mean")}
    if a.embed:
        pools["embed"] = StreamingPool("mean")
    # a language model's bits; a classifier keeps its zero sums too (the saved file has them)
    bits = NextTokenBits()
    whole = torch.tensor([length])  # the record's length, for pooling modes that need it (center)
    n_classes = len(model.config.extra["labels"]) if track_class < 0 else None
    bin_sum, bin_cnt = _track_bins(a, length, n_classes)
    first_start = 0
    win_sum = None  # (windows, k) feature sums of --embed-window windows
    saved = progress.load(name, length) if progress is not None and stream is not None \
        and not a.embed_window else None
    if saved is not None:
        first_start, st = saved
        print(f"seqmamba: continuing {name} from base {first_start:,} (saved progress)",
              file=sys.stderr)
        stream.restore(st, first_start)
        for key, p in pools.items():
            p.restore({k.split(".", 1)[1]: st.pop(k) for k in list(st)
                       if k.startswith(key + ".")}, first_start)
        bits.restore(st)
        if a.track:
            bin_sum, bin_cnt = st.pop("bin_sum").numpy(), st.pop("bin_cnt").numpy()
    last_save = time.monotonic()
    for start in range(first_start, length, piece):
        end = min(length, start + piece)
        ids = tok.encode(read(start, end), record=name, offset=start, path=path) \
            .to(a.device)[None]  # (1, L)
        h = stream.hidden(ids) if stream is not None else model.backbone(ids, None, None)
        feats = model.backbone.features(h)  # (1, L, k)
        if "embed" in pools:
            # under RC sharing, the mean of the two strands' halves (PlantCaduceus's recipe)
            pools["embed"].update(feats / 2 if model.config.rc_equivariant else feats, whole)
        if a.embed_window:  # window sums: window w holds positions [w N, (w + 1) N)
            f = feats[0].float().cpu() / (2 if model.config.rc_equivariant else 1)
            idx = torch.arange(start, end) // a.embed_window
            if win_sum is None:
                win_sum = torch.zeros(-(-length // a.embed_window), f.shape[-1])
            win_sum.index_add_(0, idx, f)
        if task == "dna-classify":
            pools["pool"].update(feats, whole)
            probs = model.classifier(feats.to(model.classifier.weight.dtype)).float() \
                .softmax(-1)[0] if a.track else None  # (L, C)
            # every class (L, C) for a bigWig per class, else the one --track-class (L,)
            scores = None if probs is None else probs if track_class < 0 else probs[:, track_class]
        elif task == "dna-mlm":
            scores = None  # embeddings only (the command refuses --track)
        else:  # bits of base t given the bases before it, the prediction carried across pieces
            per_base = bits.update(stream.logits(h), ids)[0]  # (L,)
            scores = per_base if a.track else None
        if scores is not None:
            add_to_bins(bin_sum, bin_cnt, start, scores.double().cpu().numpy(), a.track_bin)
        if progress is not None and end < length and \
                time.monotonic() - last_save >= a.save_every:
            progress.save(name, length, end, _carried_state(stream, pools, bits, bin_sum, bin_cnt))
            last_save = time.monotonic()
    res.row = {"record": name, "length": length}
    if task == "dna-classify":
        pooled = pools["pool"].result()  # (1, k)
        probs = model.classifier(pooled.to(model.classifier.weight.dtype)).float().softmax(-1)[0]
        names = model.config.extra["labels"]
        res.row["label"] = names[int(probs.argmax())]
        for n, p in zip(names, probs.tolist()):
            res.row[f"p_{n}"] = p
    elif task != "dna-mlm":
        res.row["bits_per_base"] = bits.per_token()
    if "embed" in pools:
        res.embedding = pools["embed"].result()[0].float().cpu().numpy()
    if win_sum is not None:
        counts = torch.full((win_sum.shape[0], 1), float(a.embed_window))
        counts[-1] = length - (win_sum.shape[0] - 1) * a.embed_window
        res.windows = (win_sum / counts).numpy()
    if a.track:
        res.track = (bin_sum, bin_cnt)
    return res


@torch.no_grad()
def predict_token_record(model, tok: DNATokenizer, name: str, length: int, read: Reader, a,
                         path: Path) -> RecordResult:
    """A base-level annotation model on one record: class fractions (row), per-class track
    bins (sums (bins, C)), predicted segments (``res.segments``: (start, end, class, mean
    probability)).  A causal model runs in ``a.chunk_size`` pieces through a ``Stream`` (ids
    (1, piece) -> class probabilities (piece, C)); a bidirectional one in overlapping windows
    of ``a.window`` bases (``genes.iter_tile_probs``), block by block."""
    from .genes import iter_tile_probs

    res = RecordResult()
    labels = model.config.extra["labels"]
    k = len(labels)

    def ids_of(s, e):  # token ids (e - s,)
        return tok.encode(read(s, e), record=name, offset=s, path=path)

    if model.config.causal:
        stream = Stream(model)

        def blocks():
            for s in range(0, length, a.chunk_size):
                h = stream.hidden(ids_of(s, min(length, s + a.chunk_size)).to(a.device)[None])
                yield s, model.head(h)[0].float().softmax(-1).cpu().numpy()
    else:
        window = a.window or 2 * int(model.config.extra.get("seq_len", 4096))

        def blocks():
            return iter_tile_probs(model, ids_of, length, window)

    counts = np.zeros(k, np.int64)
    bin_sum, bin_cnt = _track_bins(a, length, k)
    segs: List[list] = []  # [start, end, class, probability sum]
    for s, probs in blocks():  # probs (m, C) for bases s..s + m
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


# ---------------------------------------------------------------- every record of every input

def predict_files(a, model, task: str, tok: DNATokenizer) -> int:
    """Every record of ``a.inputs`` into the table ``a.out`` (one row per record, keyed by
    file and record, resumed from ``OUT.partial``) and the --track, --segments and --embed
    files.  A record or file that fails is reported on stderr and in ``OUT.errors.tsv`` and
    the others go on.  Returns the exit code: 0, or 2 when any input failed."""
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
        [] if task == "dna-mlm" else ["bits_per_base"])
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
    errors: List[Tuple[str, str, str]] = []  # (file, record, message)
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
            write_embeddings(a, model.backbone.feature_dim, embeds, embed_ids, windows)
        tracks = ", ".join(map(str, getattr(track, "paths", [a.track]))) if a.track else ""
        print(f"wrote {a.out} ({n_done} records)" + (f", {tracks}" if a.track else "")
              + (f", {a.segments}" if a.segments else "")
              + (f", {a.embed}" if a.embed else ""))
        if errors:
            write_errors(a.out, errors)
            for f, r, msg in errors:
                print(f"seqmamba: {msg}", file=sys.stderr)
            print(f"seqmamba: {len(errors)} input(s) failed; the others are in {a.out}",
                  file=sys.stderr)
            return 2
        return 0
    except BaseException:  # no orphan temporary track on an error (a full disk, say)
        if track is not None:
            track.abort()  # (a no-op for a track already finished: its file was renamed)
        raise
