"""Plumbing the training commands share: recipes, run directories and final exports."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Optional

import yaml

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
