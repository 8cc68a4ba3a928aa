"""Prediction on audio files: the library behind ``seqmamba audio predict``.

``AudioPredictor`` loads one model or an ensemble of classifiers and predicts a
file's row (a classifier's label and class probabilities, or a mu-law language model's bits
per sample, through ``seqmamba.streaming``); ``classified`` batches clips of one length with
an out-of-memory fallback to one clip at a time; ``predict_table`` is the loop that writes
the resumable table (``OUT.partial`` renamed to ``OUT``, failures in ``OUT.errors.tsv``) and
balances it (``prediction_balance``); ``predict_files`` is the whole command in one call.

Shapes: a file's samples are (samples,) float in [-1, 1] at the model's rate; a batch of
clips (batch, samples); class probabilities (batch, labels); mu-law ids (samples,) int64.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from seqmamba import MambaForSequenceClassification, MambaLMHeadModel
from seqmamba.streaming import NextTokenBits, Stream

from ..errors import InputError
from ..io.tables import (OutputLock, PartialTable, check_outputs, error_file, model_provenance,
                         write_errors)
from ..model_dirs import load_pretrained
from .crop import center_crop
from .evaluation import evaluate_table, evaluation_outputs
from .inputs import expand_inputs
from .io import normalize_peak, read_audio
from .models import encode_input, model_extra, resolve_model_dir
from .mulaw import mulaw_encode
from .prediction_balance import balance_groups_of, balanced_rows, check_balance_groups
from .voice_check import new_voice_note, stored_reference

# ---------------------------------------------------------------- the model

# what every member of an ensemble must share: it reads the same clips and names the same classes
ENSEMBLE_KEYS = ("task", "labels", "sample_rate", "seconds", "encoding", "peak")


class AudioPredictor:
    """One model, or an ensemble of classifiers read alike (``ENSEMBLE_KEYS``) whose class
    probabilities are averaged."""

    def __init__(self, model_dirs, device: str, chunk_seconds: float):
        if isinstance(model_dirs, (str, Path)):
            model_dirs = [model_dirs]
        self.model_arg = str(model_dirs[0])  # as the user gave it, for the new-voice note
        self.model_dirs = [resolve_model_dir(m, ("audio-classify", "audio-lm"))
                           for m in model_dirs]
        d = self.model_dir = self.model_dirs[0]
        self.extra = model_extra(d)
        self.task = self.extra["task"]
        for other in self.model_dirs[1:]:
            extra = model_extra(other)
            differ = [k for k in ENSEMBLE_KEYS if extra.get(k) != self.extra.get(k)]
            if differ:
                raise InputError(f"its {', '.join(differ)} differ from {d}'s", path=other,
                                 fix="an ensemble's models must be trained on the same labels, "
                                     "sample rate and clip length")
        if len(self.model_dirs) > 1 and self.task != "audio-classify":
            raise InputError("several --model are averaged for classifiers only; this is a "
                             "language model", path=d, fix="pass one --model")
        cls = MambaForSequenceClassification if self.task == "audio-classify" else MambaLMHeadModel
        self.models = [load_pretrained(cls, m).to(device).eval() for m in self.model_dirs]
        self.model = self.models[0]
        self.device = device
        self.sample_rate = int(self.extra.get("sample_rate", 16000))
        self.encoding = self.extra.get("encoding", "waveform")
        self.peak = self.extra.get("peak")
        self.labels = list(self.extra.get("labels", []))
        self.min_samples = int(round(float(self.extra.get("seconds", 0)) * self.sample_rate))
        # each model's piece size in samples (a multiple of its frame size for waveform input),
        # or None for a model that reads a file whole
        self.chunks = [self._chunk(m.config, chunk_seconds) for m in self.models]
        self.chunk = self.chunks[0]
        # what the new-voice check compares a batch with: one classifier's held-out figures
        self.voice_reference = stored_reference(d) \
            if len(self.models) == 1 and self.task == "audio-classify" else None

    def _chunk(self, cfg, chunk_seconds: float) -> Optional[int]:
        step = cfg.frontend.frame_size if cfg.frontend is not None else 1
        return max(step, int(chunk_seconds * self.sample_rate) // step * step) \
            if cfg.causal else None

    def provenance(self, **options) -> dict:
        """What the rows depend on (``runs.model_provenance``), for every member."""
        if len(self.model_dirs) == 1:
            return model_provenance(self.model_dir, **options)
        return {"models": [model_provenance(m) for m in self.model_dirs], **options}

    def fields(self) -> List[str]:
        if self.task == "audio-classify":
            return ["file", "seconds", "label"] + [f"p_{n}" for n in self.labels]
        return ["file", "seconds", "bits_per_sample"]

    def read(self, path: Path, max_seconds: Optional[float]) -> Tuple[dict, torch.Tensor]:
        """A file -> (its row so far: file and seconds; its samples (samples,) as the model
        reads them: peak-normalised, and a classifier's clip shorter than the training clips
        centred in silence, as in training)."""
        wave = read_audio(path, self.sample_rate, mono=True, max_seconds=max_seconds)[0][0]
        row = {"file": str(path), "seconds": round(wave.shape[-1] / self.sample_rate, 4)}
        if self.peak is not None:
            wave = normalize_peak(wave, self.peak)
        if self.task == "audio-classify" and wave.shape[-1] < self.min_samples:
            wave = center_crop(wave, self.min_samples)
        return row, wave

    @torch.no_grad()
    def classify(self, waves: torch.Tensor) -> torch.Tensor:
        """waves (batch, samples), one length -> class probabilities (batch, labels): the
        mean of the members' for an ensemble."""
        x = encode_input(waves, self.encoding).to(self.device)
        probs = 0
        for model, chunk in zip(self.models, self.chunks):
            chunk = chunk if chunk and x.shape[1] > chunk else None
            probs = probs + model(x, chunk_size=chunk).logits.float().softmax(-1)
        return (probs / len(self.models)).cpu()

    def table_probs(self, rows: List[dict]) -> torch.Tensor:
        """The class probabilities of the table's ``rows``: (files, labels)."""
        return torch.tensor([[float(r[f"p_{n}"]) for n in self.labels] for r in rows])

    def new_voice_note(self, probs: torch.Tensor, inputs, balanced: bool) -> Optional[str]:
        """The table's probabilities (files, labels: the model's own) through the new-voice
        check (``pipelines.audio.voice_check``, which also says None without a reference): its
        one line, or None."""
        return new_voice_note(probs, self.voice_reference, self.labels, self.model_arg, inputs,
                              balanced)

    def labelled(self, row: dict, probs: torch.Tensor) -> dict:
        """A file's row with its label and class probabilities (probs: (labels,))."""
        row = dict(row, label=self.labels[int(probs.argmax())])
        row.update({f"p_{n}": float(p) for n, p in zip(self.labels, probs.tolist())})
        return row

    @torch.no_grad()
    def __call__(self, path: Path, max_seconds: Optional[float]) -> dict:
        """One file's row (a classifier's label and probabilities, or an LM's bits/sample)."""
        row, wave = self.read(path, max_seconds)
        if self.task == "audio-classify":
            return self.labelled(row, self.classify(wave[None])[0])
        row["bits_per_sample"] = self._bits(mulaw_encode(wave.clamp(-1, 1)))
        return row

    @torch.no_grad()
    def _bits(self, ids: torch.Tensor) -> float:
        """Mu-law ids (samples,) -> bits per sample of samples 1..n-1, each given all before
        it: pieces of ``self.chunk`` samples, the state carried (``seqmamba.streaming``)."""
        if len(ids) < 2:
            raise InputError("too short: a single sample has no next-sample prediction")
        stream, bits = Stream(self.model, batch=1), NextTokenBits()
        ids = ids.to(self.device)[None]  # (1, samples)
        for s in range(0, ids.shape[1], self.chunk):
            piece = ids[:, s:s + self.chunk]  # (1, chunk)
            bits.update(stream.logits(stream.hidden(piece)), piece)
        return bits.per_token()


# ---------------------------------------------------------------- batching, failures

def _about(path: Path, e: InputError) -> str:
    """An error about reading ``path`` as one line that names it."""
    return str(e) if str(path) in str(e) else f"{path}: {e}"


def _oom(path: Path) -> str:
    return f"{path}: out of memory (lower --max-seconds, or --chunk-seconds for a causal model)"


def _attempt(fn, path: Path, failed):
    """``fn()``, or None after ``failed(path, one-line message)`` when reading ``path`` fails
    (a file that cannot be used, or one that does not fit in memory)."""
    try:
        return fn()
    except InputError as e:
        failed(path, _about(path, e))
    except (torch.OutOfMemoryError, MemoryError):
        failed(path, _oom(path))
    return None


def classified(predictor: AudioPredictor, paths, max_seconds: Optional[float], batch_size: int,
               failed):
    """Yield (path, row, class probabilities (labels,)) for each of ``paths`` a classifier
    can read; a file that cannot be read or does not fit in memory goes to
    ``failed(path, one-line message)`` instead.

    Clips of one length (every clip up to the training length is padded to it) are
    classified together: one forward pass for many short clips costs little more than one,
    and on a machine whose cores are shared, each of the many small operations of a one-clip
    pass waits for a descheduled thread (measured: benchmarks/audio_predict_speed.py)."""
    def flush(batch):
        try:
            probs = predictor.classify(torch.stack([w for _, _, w in batch]))
        except (torch.OutOfMemoryError, MemoryError):
            if len(batch) > 1:  # one at a time, so only a file that cannot fit fails
                for item in batch:
                    yield from flush([item])
            else:
                failed(batch[0][0], _oom(batch[0][0]))
            return
        for (path, row, _), p in zip(batch, probs):
            yield path, row, p

    pending: list = []  # (path, row, wave (samples,))
    for path in paths:
        got = _attempt(lambda: predictor.read(path, max_seconds), path, failed)
        if got is None:
            continue
        row, wave = got
        if pending and pending[0][2].shape != wave.shape:
            yield from flush(pending)
            pending = []
        pending.append((path, row, wave))
        if len(pending) >= batch_size:
            yield from flush(pending)
            pending = []
    if pending:
        yield from flush(pending)


# ---------------------------------------------------------------- the command's work

def predict_table(predictor: AudioPredictor, files: List[Path], errors: List[Tuple[str, str]],
                  out: Path, max_seconds: Optional[float], batch_size: int = 32,
                  restart: bool = False, progress: bool = True, balance: Optional[float] = None,
                  balance_by: str = "all", group_of: Optional[Dict[str, str]] = None,
                  inputs=()) -> Tuple[int, Optional[dict]]:
    """The table ``out``, one row per file, resumed from ``OUT.partial`` unless ``restart``;
    files that fail join ``errors`` ((file, message) pairs), all listed in ``OUT.errors.tsv``.
    With ``balance`` (a strength), the rows are re-weighted within each batch of ``group_of``
    before ``out`` is written.  A classifier's rows then go through the new-voice check, whose
    note names ``inputs`` (the command's).  -> (exit code: 0, or 2 when an input failed; what
    --balance did, or None)."""
    from tqdm.auto import tqdm

    balance_info = None
    err_file = error_file(out)
    table = PartialTable(out, predictor.fields(), restart, key=("file",),
                         provenance=predictor.provenance(max_seconds=max_seconds))
    todo = [f for f in files if (str(f),) not in table.done]
    n_done = 0
    bar = tqdm(todo, unit="file", disable=not progress, file=sys.stderr, dynamic_ncols=True)

    def failed(path, msg):
        errors.append((str(path), msg))
        tqdm.write(f"seqmamba: {msg}", file=sys.stderr)

    if predictor.task == "audio-classify":
        for _, row, probs in classified(predictor, bar, max_seconds, batch_size, failed):
            table.add(predictor.labelled(row, probs))
            n_done += 1
    else:
        for path in bar:
            row = _attempt(lambda: predictor(path, max_seconds), path, failed)
            if row is not None:
                table.add(row)
                n_done += 1
    bar.close()
    if errors:
        write_errors(out, [(f, "", m) for f, m in errors])
    elif err_file.exists():
        err_file.unlink()  # from an earlier run whose failures are now fixed
    if n_done == 0 and not table.done:
        table.discard()
        print(f"seqmamba: every input failed ({len(errors)}); nothing written to {out} "
              f"(errors in {err_file})", file=sys.stderr)
        return 2, None
    rows = table.rows() if predictor.voice_reference is not None or balance else []
    probs = predictor.table_probs(rows)  # (files, labels), read once for the note and --balance
    note = predictor.new_voice_note(probs, inputs, balanced=bool(balance))
    if balance:
        try:
            check_balance_groups([group_of[r["file"]] for r in rows], len(predictor.labels),
                                 "predicted files", fix="fix the failed inputs, or drop --balance")
        except InputError:
            table.close()  # the model's own probabilities stay in OUT.partial for a rerun
            raise
        rows, balance_info = balanced_rows(predictor, rows, probs, balance, group_of)
        balance_info["by"] = balance_by
        table.finish(rows)
    else:
        table.finish()
    kept = f", {len(table.done)} kept from {table.partial.name}" if table.done else ""
    print(f"wrote {out} ({n_done} files predicted{kept})")
    if note:
        print(f"seqmamba: {note}", file=sys.stderr)
    if errors:
        print(f"seqmamba: {len(errors)} input(s) failed (listed in {err_file}); the others are "
              f"in {out}", file=sys.stderr)
        return 2, balance_info
    return 0, balance_info


def track_files(predictor: AudioPredictor, files: List[Path], errors: list, track: Path,
                window: Optional[float] = None, hop: Optional[float] = None) -> int:
    """--track: class probabilities over time along each file (``pipelines.audio.track``),
    windows of ``window`` seconds (default: the training clips) every ``hop`` (default: a
    quarter window).  -> exit code (2 when an input failed)."""
    from .track import write_track

    window = window or float(predictor.extra.get("seconds") or 1.0)
    hop = hop or window / 4
    if window <= 0 or hop <= 0:
        raise InputError(f"--window and --hop must be positive, got {window} and {hop}")
    if not files:
        return 2
    with OutputLock(track, "track"):
        n = write_track(predictor, files, track, window, hop)
    print(f"wrote {track} ({n} windows of {window:g} s every {hop:g} s, {len(files)} file(s))")
    return 2 if errors else 0


def predict_files(inputs: List[str], models: List[Path], out: Optional[Path] = None,
                  track: Optional[Path] = None, window: Optional[float] = None,
                  hop: Optional[float] = None, max_seconds: Optional[float] = None,
                  chunk_seconds: float = 10.0, batch_size: int = 32,
                  balance: Optional[float] = None, balance_by: str = "all",
                  restart: bool = False, progress: bool = True, device: str = "cpu") -> int:
    """``seqmamba audio predict`` after its option checks: expand ``inputs``, refuse clashing
    outputs, load the model(s), write ``track`` and/or the table ``out`` (balanced with
    ``balance``), and score the table when the inputs included labelled manifests
    (``pipelines.audio.evaluation``).  -> exit code (0, or 2 when an input failed)."""
    truth: dict = {}
    files, errors = expand_inputs(inputs, truth)
    table_outs = [] if out is None else [out, error_file(out), *evaluation_outputs(out)]
    check_outputs([track, *table_outs], files)
    predictor = AudioPredictor(models, device, chunk_seconds)
    if (truth or track or balance) and predictor.task != "audio-classify":
        raise InputError("labelled manifests, --track and --balance need a classifier; this "
                         "model is a language model", path=predictor.model_dir)
    group_of = None
    if balance:
        group_of = balance_groups_of(files, balance_by, truth)
        check_balance_groups(list(group_of.values()), len(predictor.labels), "files")
    for _, msg in errors:
        print(f"seqmamba: {msg}", file=sys.stderr)
    rc = 0
    if track is not None:
        rc = track_files(predictor, files, errors, track, window, hop)
    if out is not None:
        with OutputLock(out, "table"):
            code, balance_info = predict_table(
                predictor, files, errors, out, max_seconds, batch_size, restart=restart,
                progress=progress, balance=balance, balance_by=balance_by, group_of=group_of,
                inputs=inputs)
            rc = max(rc, code)
            if truth and out.exists():
                evaluate_table(out, truth, predictor.labels, balance=balance_info)
    return rc
