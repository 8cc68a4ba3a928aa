"""The files ``seqmamba dna predict`` writes beside its table: the --track writer (bedGraph,
bigWig, one bigWig per class) and the --embed .npz of pooled and per-window embeddings.

``a`` is the parsed command line of ``seqmamba dna predict`` (``pipelines/dna/predict.py``);
``pipelines.dna.inference.predict_files`` calls these.
"""

from __future__ import annotations

import numpy as np

from seqmamba.atomic import atomic_output

from ..errors import InputError
from ..io.tracks import BigWigWriter, PerClassBigWig, TrackWriter
from .fasta import FastaFile


def track_writer(a, task: str, labels=()):
    """The --track writer: bedGraph, or bigWig for a --track ending in .bw/.bigwig (FASTA
    inputs only: the header needs every record's size up front), one bigWig per class for an
    annotation model (``labels``) without --track-class; None without --track."""
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


def write_embeddings(a, k: int, embeds: list, embed_ids: list, windows: list) -> None:
    """--embed as .npz: ``ids`` (records,), ``embeddings`` (records, k) float32; with
    --embed-window also ``window_record``, ``window_start``, ``window_end`` (windows,) and
    ``window_embeddings`` (windows, k) from ``windows``' (record, starts, ends, means)."""
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
