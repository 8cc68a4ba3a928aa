"""Tables and the files around them: output checks, one-writer locks, resumable prediction
tables (``OUT.partial``), and the one error-file format of every prediction command."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from seqmamba.atomic import atomic_output, commit, remove_orphans, write_json_atomic, \
    write_text_atomic

from ..errors import InputError


def check_outputs(outputs: Sequence[Optional[Path]], inputs: Sequence[Path]) -> None:
    """Refuse, before any work, outputs that would destroy or clash: an output that is one of
    the inputs (it would be overwritten), an output that is a directory, two outputs that
    are one file."""
    seen = {}
    in_files = {}
    for p in inputs:
        p = Path(p)
        if p.is_file():
            in_files[os.path.realpath(p)] = p
    for out in outputs:
        if out is None:
            continue
        out = Path(out)
        if out.is_dir():
            raise InputError("is a directory, not an output file", path=out,
                             fix="name the file to write, e.g. OUT/predictions.tsv")
        real = os.path.realpath(out)
        if real in in_files:
            raise InputError(f"is also an input ({in_files[real]}); writing it would destroy it",
                             path=out, fix="write the output to another file")
        if real in seen:
            raise InputError(f"is named by two outputs ({seen[real]} and {out})", path=out)
        seen[real] = out


class OutputLock:
    """An exclusive lock on an output (``PATH.lock`` beside it, ``flock``): a second process
    writing the same output is refused with a message instead of interleaving rows or
    checkpoints.  The kernel releases the lock when a process dies, so a killed run never
    leaves a stale lock behind; the lock file is removed on a clean exit."""

    def __init__(self, path: Path, what: str = "output"):
        import fcntl

        self.path = Path(str(path) + ".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(self.path, "a+")
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.f.close()
            raise InputError(f"another seqmamba process is writing this {what}", path=path,
                             fix="wait for it to finish, or choose another output") from None
        # ours now: temporary files a killed writer left beside it can go
        remove_orphans(self.path.parent)

    def release(self) -> None:
        if not self.f.closed:
            self.path.unlink(missing_ok=True)
            self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def model_provenance(model_dir: Path, **options) -> dict:
    """What a prediction table's rows depend on: the model directory, its weights' checksum
    and the options that change the values (kept beside a partial table to refuse a resume
    under anything else)."""
    from ..checksums import file_sha256

    model_dir = Path(model_dir)
    weights = model_dir / "model.safetensors"
    return {"model": str(model_dir.resolve()),
            "weights_sha256": file_sha256(weights) if weights.is_file() else None, **options}


class PartialTable:
    """A prediction table written row by row to OUT.partial (flushed per row) and renamed to
    OUT by ``finish``: a reader never sees half a table, and a stopped run resumes where it
    stopped.  ``done`` holds the ``key`` column values (tuples) of the rows already there.

    ``provenance`` (the model and the options that shape the rows) is kept beside the partial
    (OUT.partial.json); a resume under another model or other options is refused, so rows of
    two runs are never merged into one table.  Delimiter: "," for .csv, tab for .tsv/.txt,
    else ``default_delim``.  A last row cut short when the previous run was killed is dropped
    (it will be predicted again)."""

    def __init__(self, out: Path, fields, restart: bool, key=("file",), default_delim=",",
                 provenance: Optional[dict] = None):
        self.out, self.fields = out, list(fields)
        self.partial = out.with_name(out.name + ".partial")
        self.meta = out.with_name(out.name + ".partial.json")
        provenance = json.loads(json.dumps(provenance or {}))  # as it reads back from JSON
        suffix = out.suffix.lower()
        self.delim = "," if suffix == ".csv" else "\t" if suffix in (".tsv", ".txt") else default_delim
        self.done: set = set()
        rows = []
        if self.partial.exists() and not restart:
            before = json.loads(self.meta.read_text()) if self.meta.is_file() else None
            if before != provenance:
                changed = sorted(k for k in set(before or {}) | set(provenance)
                                 if (before or {}).get(k) != provenance.get(k))
                raise InputError("an earlier OUT.partial was written by another model or other "
                                 f"options ({', '.join(changed) or 'unrecorded'}); its rows "
                                 "cannot be merged", path=self.partial,
                                 fix="rerun with the same model and options, or pass --restart")
            text = self.partial.read_text()
            if text and not text.endswith("\n"):
                text = text[:text.rfind("\n") + 1]
                self.partial.write_text(text)
            rows = list(csv.reader(text.splitlines(), delimiter=self.delim))
            if rows and rows[0] != self.fields:
                raise InputError("an earlier OUT.partial has other columns", path=self.partial,
                                 fix="pass --restart to start over")
            idx = [self.fields.index(k) for k in key]
            self.done = {tuple(r[i] for i in idx) for r in rows[1:] if len(r) == len(self.fields)}
        self.resumed = bool(rows)  # an earlier partial (its header at least) is continued
        if rows:
            self.f = open(self.partial, "a", newline="")
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(provenance, self.meta)
            self.f = open(self.partial, "w", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=self.fields, delimiter=self.delim)
        if not rows:
            self.w.writeheader()
            self.f.flush()

    @staticmethod
    def _cells(row: dict) -> dict:
        """A row as written: floats to 6 significant digits."""
        return {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}

    def add(self, row: dict) -> None:
        self.w.writerow(self._cells(row))
        self.f.flush()

    def rows(self) -> List[dict]:
        """Every complete row written so far (this run's and a resumed run's)."""
        self.f.flush()
        with open(self.partial, newline="") as f:
            return [r for r in csv.DictReader(f, delimiter=self.delim)
                    if None not in r.values()]

    def finish(self, rows: Optional[List[dict]] = None) -> None:
        """OUT := the partial's rows, or ``rows`` in their place (the partial's rows
        transformed as a whole, e.g. re-weighted over the batch), written atomically."""
        self.f.close()
        if rows is None:
            commit(self.partial, self.out)
        else:
            with atomic_output(self.out) as tmp, open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=self.fields, delimiter=self.delim)
                w.writeheader()
                w.writerows(map(self._cells, rows))
            self.partial.unlink(missing_ok=True)
        self.meta.unlink(missing_ok=True)

    def close(self) -> None:
        """Stop writing and keep OUT.partial, so that a rerun resumes from it."""
        self.f.close()

    def discard(self) -> None:
        self.f.close()
        self.partial.unlink(missing_ok=True)
        self.meta.unlink(missing_ok=True)


def error_file(out: Path) -> Path:
    """Where a prediction command lists the inputs it could not read: ``OUT.errors.tsv``."""
    return out.with_name(out.name + ".errors.tsv")


def write_errors(out: Path, errors: Sequence[Tuple[str, str, str]]) -> Path:
    """``OUT.errors.tsv`` (columns file, record, error; record empty for a whole file) from
    (file, record, message) triples, written atomically; the same format in both domains."""
    path = error_file(out)
    clean = [(str(f), str(r), " ".join(str(m).split())) for f, r, m in errors]
    write_text_atomic("file\trecord\terror\n" + "".join(f"{f}\t{r}\t{m}\n" for f, r, m in clean),
                      path)
    return path
