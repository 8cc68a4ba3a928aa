"""``seqmamba audio predict``: batch prediction on audio files, folders and glob patterns.

One output row per file: for a classifier the predicted label and the probability of every
class; for a mu-law language model the file's bits per sample.  Each file is read whole (mono,
resampled to the model's rate) and goes through the model in one piece, not a crop; a file
shorter than the classifier's training clips is centred in silence as in its evaluation.
Causal models read long files in pieces of ``--chunk-seconds`` with the state carried, so
memory stays bounded; a file longer than ``--max-seconds`` is reported and skipped.  Several
``--model`` classifiers (e.g. one recipe trained with several seeds) are an ensemble: each
file's class probabilities are the mean of theirs.  ``--balance`` re-weights a classifier's
probabilities over all the files towards equally frequent classes (``pipelines/balance.py``),
for a batch known to hold each class about equally often; the table is then written whole at
the end, from the model's own probabilities kept in ``OUT.partial``.

INPUTs are files, folders (searched recursively for .wav and .flac) or glob patterns
(quoted, e.g. 'clips/**/*.wav').  A file that cannot be used (empty, truncated, not audio,
NaN samples, too long ...) is reported on stderr and in ``OUT.errors.csv`` and the others are
still predicted; exit code 2 then, and no output file if every input failed.  Rows are
appended to ``OUT.partial`` as files are done and renamed to ``OUT`` at the end, so the output
is never half written; rerunning the same command continues from ``OUT.partial``.
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from seqmamba import MambaForSequenceClassification, MambaLMHeadModel
from seqmamba.atomic import write_csv_atomic, write_json_atomic

from ..errors import InputError, regular_file
from ..model_dirs import load_pretrained
from ..io.tables import OutputLock, PartialTable, check_outputs, model_provenance
from .crop import center_crop
from .datasets import read_clips
from .models import encode_input, model_extra, resolve_model_dir
from .io import AUDIO_EXTENSIONS, DEFAULT_MAX_SECONDS, normalize_peak, read_audio
from .mulaw import mulaw_encode

LN2 = math.log(2.0)
_GLOB_CHARS = set("*?[")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seqmamba audio predict", description=__doc__.split("\n")[0])
    p.add_argument("inputs", nargs="+",
                   help="audio files, folders, glob patterns, or CSV manifests "
                        "(path,label[,split][,group]: labelled clips are also scored)")
    p.add_argument("--model", type=Path, required=True, action="append",
                   help="RUN directory (or RUN/final) of seqmamba audio finetune or pretrain; "
                        "repeat it for an ensemble of classifiers (probabilities averaged)")
    p.add_argument("--out", type=Path, default=None,
                   help="predictions, one row per file (.csv, or .tsv)")
    p.add_argument("--track", type=Path, default=None,
                   help="classifiers: class probabilities over time along each recording, any "
                        "length, in bounded memory (.csv: file, start, end, label, p_...)")
    p.add_argument("--window", type=float, default=None,
                   help="--track: seconds per window (default: the model's training clips)")
    p.add_argument("--hop", type=float, default=None,
                   help="--track: seconds between window starts (default: a quarter window)")
    p.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                   help="longer files are reported and skipped")
    p.add_argument("--chunk-seconds", type=float, default=10.0,
                   help="causal models: seconds per piece (state carried between pieces)")
    p.add_argument("--batch-size", type=int, default=32,
                   help="classifiers: clips of the training length (or shorter) predicted "
                        "together; longer files go one at a time")
    p.add_argument("--balance", type=float, nargs="?", const=1.0, default=None,
                   metavar="STRENGTH",
                   help="classifiers, --out: the inputs hold every class about equally often "
                        "(e.g. one voice saying each digit a few times); re-weight the classes "
                        "so that over all inputs each is predicted equally often on average, "
                        "which undoes a model's bias on an unheard voice (pipelines/balance.py). "
                        "Wrong when the classes are skewed: STRENGTH < 1 (e.g. 0.3) goes part "
                        "of the way, for a smaller gain and loss (README, FSDD)")
    p.add_argument("--balance-by", choices=("all", "group", "folder"), default="all",
                   help="--balance: all inputs as one batch (all), each group of the CSV "
                        "manifests' group column on its own (group: one speaker each), or "
                        "the files of each folder on its own (folder); each batch must hold "
                        "every class about equally often")
    p.add_argument("--restart", action="store_true", help="ignore an earlier OUT.partial")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    return p


# ---------------------------------------------------------------- inputs

def expand_inputs(inputs: List[str], truth: Optional[dict] = None
                  ) -> Tuple[List[Path], List[Tuple[str, str]]]:
    """(files in order, first occurrence kept; (input, error) for inputs naming nothing).

    A CSV manifest (``path,label[,split][,group]``) stands for its clips; their labels and
    groups go into ``truth`` ({absolute path: (label, group)}) for the evaluation mode."""
    files, errors, seen = [], [], set()

    def add(p: Path):
        # absolute: the table's key, so a resume finds a file however it was typed
        key = os.path.normpath(os.path.abspath(p))
        if key not in seen:
            seen.add(key)
            files.append(Path(key))
        return key

    def audio_under(d: Path):
        return sorted(f for f in d.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS
                      and f.is_file() and not any(part.startswith(".")
                                                  for part in f.relative_to(d).parts))

    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            found = audio_under(p)
            if not found:
                errors.append((arg, f"{arg}: folder holds no .wav or .flac files"))
            for f in found:
                add(f)
        elif p.exists() and p.suffix.lower() == ".csv":
            try:
                clips = read_clips(regular_file(p))
            except InputError as e:
                errors.append((arg, str(e)))
                continue
            for c in clips:
                key = add(Path(c.path))
                if truth is not None:
                    truth[key] = (c.label, c.group or "")
        elif p.exists():
            try:
                add(regular_file(p))
            except InputError as e:
                errors.append((arg, str(e)))
        elif _GLOB_CHARS & set(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            found = []
            for m in map(Path, matches):
                if m.is_dir():
                    found += audio_under(m)
                elif m.is_file():
                    found.append(m)
            if not found:
                errors.append((arg, f"{arg}: the pattern matches no files"))
            for f in found:
                add(f)
        else:
            errors.append((arg, f"{arg}: no such file or folder"))
    return files, errors


# ---------------------------------------------------------------- the model

# what every member of an ensemble must share: it reads the same clips and names the same classes
ENSEMBLE_KEYS = ("task", "labels", "sample_rate", "seconds", "encoding", "peak")


class AudioPredictor:
    """One model, or an ensemble of classifiers read alike (``ENSEMBLE_KEYS``) whose class
    probabilities are averaged."""

    def __init__(self, model_dirs, device: str, chunk_seconds: float):
        if isinstance(model_dirs, (str, Path)):
            model_dirs = [model_dirs]
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

    def _chunk(self, cfg, chunk_seconds: float) -> Optional[int]:
        step = cfg.frame_size if cfg.input_type == "waveform" else 1
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

    def _bits(self, ids: torch.Tensor) -> float:
        """Bits per sample of samples 1..n-1, each given all before it (state carried)."""
        if len(ids) < 2:
            raise InputError("too short: a single sample has no next-sample prediction")
        m, cache = self.model, self.model.allocate_inference_cache(1)
        ids = ids.to(self.device)
        total, prev = 0.0, None
        for s in range(0, len(ids), self.chunk):
            piece = ids[s:s + self.chunk]
            logp = m(piece[None], inference_cache=cache).logits[0].float().log_softmax(-1)
            total -= float(logp[:-1].gather(-1, piece[1:, None]).sum())
            if prev is not None:
                total -= float(prev[piece[0]])
            prev = logp[-1]
        return total / (len(ids) - 1) / LN2


# ---------------------------------------------------------------- command

def run(argv=None) -> int:
    a = build_parser().parse_args(argv)
    if a.chunk_seconds <= 0 or (a.max_seconds is not None and a.max_seconds <= 0) \
            or a.batch_size < 1:
        raise InputError("--chunk-seconds, --max-seconds and --batch-size must be positive")
    if a.out is None and a.track is None:
        raise InputError("nothing to write: pass --out (a row per file) and/or --track "
                         "(probabilities over time)")
    if a.balance is not None and not 0.0 < a.balance <= 1.0:
        raise InputError(f"--balance {a.balance}: the strength must be in (0, 1]")
    if a.balance is not None and a.out is None:
        raise InputError("--balance re-weights the rows of --out; --track is not balanced",
                         fix="add --out FILE, or drop --balance")
    if a.balance_by != "all" and a.balance is None:
        raise InputError(f"--balance-by {a.balance_by} says how --balance groups the files",
                         fix="add --balance, or drop --balance-by")
    truth: dict = {}
    files, errors = expand_inputs(a.inputs, truth)
    table_outs = [] if a.out is None else [
        a.out, a.out.with_name(a.out.name + ".errors.csv"), eval_path(a.out, ".metrics.json"),
        eval_path(a.out, ".confusion.png")]
    check_outputs([a.track, *table_outs], files)
    predictor = AudioPredictor(a.model, a.device, a.chunk_seconds)
    if (truth or a.track or a.balance) and predictor.task != "audio-classify":
        raise InputError("labelled manifests, --track and --balance need a classifier; this "
                         "model is a language model", path=predictor.model_dir)
    group_of = None
    if a.balance:
        group_of = balance_groups_of(files, a.balance_by, truth)
        check_balance_groups(list(group_of.values()), len(predictor.labels), "files")
    for _, msg in errors:
        print(f"seqmamba: {msg}", file=sys.stderr)
    rc = 0
    if a.track is not None:
        rc = run_track(a, predictor, files, errors)
    if a.out is not None:
        with OutputLock(a.out, "table"):
            code, balance_info = _predict(a, predictor, files, errors, table_outs[1],
                                          group_of)
            rc = max(rc, code)
            if truth and a.out.exists():
                evaluate_table(a.out, truth, predictor.labels, balance=balance_info)
    return rc


def run_track(a, predictor, files, errors) -> int:
    """--track: class probabilities over time along each file (pipelines.audio.track)."""
    from .track import write_track

    window = a.window or float(predictor.extra.get("seconds") or 1.0)
    hop = a.hop or window / 4
    if window <= 0 or hop <= 0:
        raise InputError(f"--window and --hop must be positive, got {window} and {hop}")
    if not files:
        return 2
    with OutputLock(a.track, "track"):
        n = write_track(predictor, files, a.track, window, hop)
    print(f"wrote {a.track} ({n} windows of {window:g} s every {hop:g} s, {len(files)} file(s))")
    return 2 if errors else 0


def eval_path(out: Path, suffix: str) -> Path:
    return out.with_name(out.stem + suffix)


def evaluate_table(out: Path, truth: dict, labels: List[str], balance: Optional[dict] = None
                   ) -> dict:
    """The evaluation mode: the finished table against the manifests' labels -> accuracy,
    macro-F1, accuracy per group, the confusion matrix (OUT.metrics.json, written atomically)
    and its plot (OUT.confusion.png); a one-line summary per group on stdout.  ``balance``
    (--balance's strength and class weights) is recorded with them."""
    import csv

    import numpy as np

    from ..metrics import accuracy_by_group
    from ..plots import natural_order, plot_confusion

    delim = "\t" if out.suffix.lower() in (".tsv", ".txt") else ","
    with open(out, newline="") as f:
        rows = [r for r in csv.DictReader(f, delimiter=delim) if r["file"] in truth]
    unknown = sorted({truth[r["file"]][0] for r in rows} - set(labels))
    index = {n: i for i, n in enumerate(labels)}
    y = np.array([index.get(truth[r["file"]][0], -1) for r in rows])
    pred = np.array([index[r["label"]] for r in rows])
    groups = [truth[r["file"]][1] or "-" for r in rows]
    k = len(labels)
    known = y >= 0
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (y[known], pred[known]), 1)
    from sklearn.metrics import f1_score

    metrics = {"clips": len(rows), "accuracy": float((pred == y).mean()) if len(rows) else 0.0,
               "macro_f1": float(f1_score(y[known], pred[known], average="macro",
                                          labels=list(range(k)), zero_division=0))
               if known.any() else 0.0,
               "accuracy_by_group": accuracy_by_group(pred, y, groups),
               "labels": labels, "confusion": confusion.tolist(),
               "labels_the_model_lacks": unknown}
    if balance:
        metrics["balance"] = balance
    write_json_atomic(metrics, eval_path(out, ".metrics.json"))
    order = natural_order(labels)
    plot_confusion(confusion[np.ix_(order, order)], [labels[i] for i in order],
                   eval_path(out, ".confusion.png"))
    print(f"scored {len(rows)} labelled clips: accuracy {metrics['accuracy']:.4f}, macro-F1 "
          f"{metrics['macro_f1']:.4f}; {eval_path(out, '.metrics.json')}")
    for g, acc in metrics["accuracy_by_group"].items():
        print(f"  {g}: accuracy {acc:.4f}")
    if unknown:
        print(f"seqmamba: labels {unknown} are not among the model's ({', '.join(labels)}): "
              "those clips count as wrong", file=sys.stderr)
    return metrics


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

    pending: list = []  # (path, row, wave)
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


def balance_groups_of(files: List[Path], by: str, truth: dict) -> Dict[str, str]:
    """--balance-by: {file (the table's key): the batch it is balanced in}.  ``all``: one
    batch; ``folder``: each file's folder; ``group``: the group column of the CSV manifest
    that listed it (``truth``), which every file must have."""
    if by == "all":
        return {str(f): "all" for f in files}
    if by == "folder":
        return {str(f): str(f.parent) for f in files}
    out = {}
    for f in files:
        group = truth.get(str(f), ("", ""))[1]
        if not group:
            raise InputError("--balance-by group needs every file's group from a CSV "
                             "manifest's group column; this one has none", path=f,
                             fix="list the files in a manifest with a group column, or use "
                                 "--balance-by folder")
        out[str(f)] = group
    return out


def check_balance_groups(groups: List[str], classes: int, what: str,
                         fix: str = "predict the inputs of one voice together, or drop "
                                    "--balance", option: str = "--balance") -> None:
    """Refuse ``option`` (--balance, --pseudo-balance) when a batch (a group, or all the
    inputs) holds fewer ``what`` (files, predicted files) than there are classes: it cannot
    hold every class equally often."""
    from collections import Counter

    small = [(g, n) for g, n in Counter(groups).items() if n < classes] or \
        ([] if groups else [("all", 0)])
    if small:
        g, n = small[0]
        where = f"; got {n}" if g == "all" else f" in each group; {g} has {n}"
        raise InputError(f"{option} needs at least as many {what} as classes ({classes}){where}",
                         fix=fix)


def balanced_rows(predictor: AudioPredictor, rows: List[dict], strength: float,
                  group_of: Dict[str, str]) -> Tuple[list, dict]:
    """--balance: the table's rows with their probabilities re-weighted within each batch of
    ``group_of`` (``pipelines.balance``) and each label the new top class; and what was done
    (strength, and per batch its files, class weights and labels changed), which is also
    printed."""
    from ..balance import balance_groups

    labels = predictor.labels
    probs = torch.tensor([[float(r[f"p_{n}"]) for n in labels] for r in rows])
    groups = [group_of[r["file"]] for r in rows]
    balanced, weights = balance_groups(probs, groups, strength)
    new = [predictor.labelled(r, p) for r, p in zip(rows, balanced)]
    per = {g: {"files": 0, "labels_changed": 0,
               "class_weights": {n: round(float(x), 4) for n, x in zip(labels, w)}}
           for g, w in weights.items()}
    for g, r, n in zip(groups, rows, new):
        per[g]["files"] += 1
        per[g]["labels_changed"] += r["label"] != n["label"]
    changed = sum(v["labels_changed"] for v in per.values())
    info = {"strength": strength, "files": len(rows), "labels_changed": changed,
            "groups": per}
    batches = "" if list(per) == ["all"] else f" in {len(per)} groups"
    print(f"balanced {len(rows)} files{batches} (strength {strength:g}): {changed} labels "
          "changed")
    return new, info


def _predict(a, predictor, files, errors, err_file, group_of=None
             ) -> Tuple[int, Optional[dict]]:
    """The --out table -> (exit code, what --balance did or None)."""
    from tqdm.auto import tqdm

    balance_info = None
    provenance = predictor.provenance(max_seconds=a.max_seconds)
    table = PartialTable(a.out, predictor.fields(), a.restart, key=("file",),
                         provenance=provenance)
    todo = [f for f in files if (str(f),) not in table.done]
    n_done = 0
    bar = tqdm(todo, unit="file", disable=a.no_progress, file=sys.stderr, dynamic_ncols=True)

    def failed(path, msg):
        errors.append((str(path), msg))
        tqdm.write(f"seqmamba: {msg}", file=sys.stderr)

    if predictor.task == "audio-classify":
        for _, row, probs in classified(predictor, bar, a.max_seconds, a.batch_size, failed):
            table.add(predictor.labelled(row, probs))
            n_done += 1
    else:
        for path in bar:
            row = _attempt(lambda: predictor(path, a.max_seconds), path, failed)
            if row is not None:
                table.add(row)
                n_done += 1
    bar.close()
    if errors:
        write_csv_atomic([{"file": f, "error": m} for f, m in errors], err_file)
    elif err_file.exists():
        err_file.unlink()  # from an earlier run whose failures are now fixed
    if n_done == 0 and not table.done:
        table.discard()
        print(f"seqmamba: every input failed ({len(errors)}); nothing written to {a.out} "
              f"(errors in {err_file})", file=sys.stderr)
        return 2, None
    if a.balance:
        rows = table.rows()
        try:
            check_balance_groups([group_of[r["file"]] for r in rows], len(predictor.labels),
                                 "predicted files", fix="fix the failed inputs, or drop --balance")
        except InputError:
            table.close()  # the model's own probabilities stay in OUT.partial for a rerun
            raise
        rows, balance_info = balanced_rows(predictor, rows, a.balance, group_of)
        balance_info["by"] = a.balance_by
        table.finish(rows)
    else:
        table.finish()
    kept = f", {len(table.done)} kept from {table.partial.name}" if table.done else ""
    print(f"wrote {a.out} ({n_done} files predicted{kept})")
    if errors:
        print(f"seqmamba: {len(errors)} input(s) failed (listed in {err_file}); the others are "
              f"in {a.out}", file=sys.stderr)
        return 2, balance_info
    return 0, balance_info
