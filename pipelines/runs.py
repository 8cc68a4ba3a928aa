"""Plumbing the commands share: recipes, run directories, final exports, output checks and
locks, and resumable prediction tables."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence

import yaml

from seqmamba.atomic import commit, remove_orphans, write_json_atomic

from .bundled import shipped_recipe, shipped_recipe_names
from .errors import InputError, regular_file


def add_trainer_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--out", type=Path, required=True, help="run directory")
    g.add_argument("--config", type=Path, default=None,
                   help="recipe YAML, or the name of a shipped recipe (e.g. dna_splice): any of "
                        "these options as keys; the command line wins")
    g.add_argument("--max-steps", type=int, default=1000)
    g.add_argument("--batch-size", type=int, default=16)
    g.add_argument("--lr", type=float, default=2e-3)
    g.add_argument("--weight-decay", type=float, default=0.1)
    g.add_argument("--warmup-steps", type=int, default=100)
    g.add_argument("--val-every", type=int, default=200, help="validate every N steps")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--ema", type=float, default=0.0,
                   help="keep an exponential moving average of the weights with this decay "
                        "(e.g. 0.995; 0: off), validate and export it: steadier final models")
    g.add_argument("--resume", action="store_true", help="continue RUN from its last checkpoint")
    g.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("model (ignored with --init or --resume)")
    g.add_argument("--d-model", type=int, default=128)
    g.add_argument("--n-layer", type=int, default=4)
    g.add_argument("--d-state", type=int, default=16)
    g.add_argument("--bidirectional", default=None, choices=["add", "ew_multiply"])
    g.add_argument("--rc-equivariant", action="store_true")
    g.add_argument("--dropout", type=float, default=0.0)
    g = p.add_argument_group("hardware (passed to Lightning)")
    g.add_argument("--accelerator", default="auto")
    g.add_argument("--devices", default="auto")
    g.add_argument("--num-nodes", type=int, default=1)
    g.add_argument("--strategy", default="auto")
    g.add_argument("--precision", default=None,
                   help="e.g. 32-true, bf16-mixed (default: bf16-mixed on GPU, 32-true on CPU)")


def add_pooling_arg(g) -> None:
    """--pooling, the one way a sequence classifier's per-position features become one vector."""
    from seqmamba.config import POOLING_MODES

    g.add_argument("--pooling", default="mean", choices=list(POOLING_MODES),
                   help="how per-position features become one vector (center: the middle "
                        "position, for windows centred on a site)")


def parse_with_recipe(parser: argparse.ArgumentParser, argv) -> argparse.Namespace:
    """Parse argv; keys of the ``--config`` recipe become defaults the command line overrides."""
    args = parser.parse_args(argv)
    if getattr(args, "config", None):
        path = Path(args.config)
        if path.exists():
            regular_file(path)  # a folder, or a FIFO that would block
        else:
            path = shipped_recipe(str(args.config))
        if path is None:
            raise InputError("no such recipe file", path=args.config,
                             fix="give a YAML file or a shipped recipe: "
                                 + ", ".join(shipped_recipe_names()))
        try:
            recipe = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise InputError(f"not valid YAML ({str(e).splitlines()[0]})", path=path) from None
        if not isinstance(recipe, dict):
            raise InputError("a recipe is a mapping of option: value", path=path)
        known = {a.dest for a in parser._actions}
        recipe = {k.replace("-", "_"): v for k, v in recipe.items()}
        unknown = sorted(set(recipe) - known)
        if unknown:
            raise InputError(f"unknown recipe keys {unknown}", path=path,
                             fix="use the command's option names, e.g. max_steps, seq_len")
        for a in parser._actions:  # paths in a recipe are relative to the recipe
            if a.dest not in recipe or a.type is not Path or recipe[a.dest] is None:
                continue
            value = recipe[a.dest]  # one path, or a list of them (--train A B)
            recipe[a.dest] = ([str(path.parent / v) for v in value] if isinstance(value, list)
                              else str(path.parent / value))
        parser.set_defaults(**recipe)
        args = parser.parse_args(argv)
    if str(args.devices).isdigit():
        args.devices = int(args.devices)
    check_trainer_args(args)
    return args


def check_trainer_args(a) -> None:
    """Options of :func:`add_trainer_args` that cannot make a run, refused before anything is
    read or written (an untrained model is never exported: --max-steps is at least 1)."""
    rules = [("max_steps", 1, "--max-steps must be at least 1"),
             ("batch_size", 1, "--batch-size must be at least 1"),
             ("val_every", 1, "--val-every must be at least 1"),
             ("warmup_steps", 0, "--warmup-steps must be >= 0"),
             ("workers", 0, "--workers must be >= 0"),
             ("num_nodes", 1, "--num-nodes must be at least 1"),
             ("d_model", 1, "--d-model must be at least 1"),
             ("n_layer", 1, "--n-layer must be at least 1"),
             ("d_state", 1, "--d-state must be at least 1")]
    for name, low, message in rules:
        if getattr(a, name) < low:
            raise InputError(f"{message}, got {getattr(a, name)}")
    if not a.lr > 0 or not a.weight_decay >= 0:
        raise InputError(f"--lr must be > 0 and --weight-decay >= 0, got {a.lr} and "
                         f"{a.weight_decay}")
    if not 0 <= a.dropout < 1:
        raise InputError(f"--dropout must be in [0, 1), got {a.dropout}")
    if a.devices == 0 or (isinstance(a.devices, str) and a.devices != "auto"
                          and not all(p.strip().lstrip("-").isdigit()
                                      for p in a.devices.split(",") if p.strip())):
        raise InputError(f"--devices must be 'auto', a count >= 1 or a list such as 0,1; got "
                         f"{a.devices!r}")
    if a.precision is not None and a.precision not in PRECISIONS:
        raise InputError(f"--precision {a.precision!r} is not one of {', '.join(PRECISIONS)}")


# what Lightning's Trainer(precision=...) accepts
PRECISIONS = ("64-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true",
              "transformer-engine", "transformer-engine-float16", "64", "32", "16", "bf16")


def run_dir_checkpoint(out: Path, resume: bool) -> Optional[str]:
    """The checkpoint a run continues from (``--resume``), or None for a new run; checks only,
    creates nothing.  A finished or started run is never silently overwritten, and ``--out``
    must be a directory (or not exist yet)."""
    if out.exists() and not out.is_dir():
        raise InputError("--out names a file, not a run directory", path=out,
                         fix="choose a new directory name for the run")
    last = out / "checkpoints" / "last.ckpt"
    if resume:
        if not last.exists():
            raise InputError("nothing to resume: no checkpoints/last.ckpt", path=out,
                             fix="drop --resume to start a new run")
        return str(last)
    if (out / "checkpoints").exists() or (out / "final").exists():
        raise InputError("run directory already holds a run", path=out,
                         fix="pass --resume to continue it, or choose another --out")
    return None


def export_final(model, out: Path) -> Path:
    """RUN/final: config.json (with task and tokenizer metadata) + model.safetensors.
    Written to a temporary directory and renamed, so a reader never sees half of it."""
    final = out / "final"
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".final."))
    model.save_pretrained(tmp)
    if final.exists():
        old = out / ".final.old"
        os.replace(final, old)
        os.replace(tmp, final)
        import shutil

        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    return final


def best_or_last(trainer) -> Optional[str]:
    """The best (else last) checkpoint, relative to the run directory when inside it, so a
    report stays true when the run is moved or copied (no temporary-folder paths)."""
    cb = trainer.checkpoint_callback
    path = (cb.best_model_path or cb.last_model_path) if cb else None
    if not path:
        return None
    try:
        return str(Path(path).resolve().relative_to(Path(trainer.default_root_dir).resolve()))
    except ValueError:
        return path


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
    from .checksums import file_sha256

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
        import csv
        import json

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
        import csv

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
            import csv

            from seqmamba.atomic import atomic_output

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
