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
from .options import check_range


def add_trainer_args(p: argparse.ArgumentParser, exclude=()) -> None:
    """The training, model and hardware options (``pipelines.options``), less ``exclude``: the
    fields this command cannot honour."""
    from .options import add_training_options

    add_training_options(p, exclude)


def add_pooling_arg(g) -> None:
    """--pooling, the one way a sequence classifier's per-position features become one vector."""
    from seqmamba.config import POOLING_MODES

    g.add_argument("--pooling", default="mean", choices=list(POOLING_MODES),
                   help="how per-position features become one vector (center: the middle "
                        "position, for windows centred on a site)")


def declared_options(parser: argparse.ArgumentParser) -> dict:
    """{dest: argparse action} of every option the parser declares.  argparse offers no public
    view of its actions; this is the one place that reads them."""
    return {a.dest: a for a in parser._actions if a.dest != "help"}


def read_recipe(name) -> tuple:
    """(path, {key: value}) of a ``--config`` recipe: a YAML file, or a shipped recipe's name."""
    path = Path(name)
    if path.exists():
        regular_file(path)  # a folder, or a FIFO that would block
    else:
        path = shipped_recipe(str(name))
    if path is None:
        raise InputError("no such recipe file", path=name,
                         fix="give a YAML file or a shipped recipe: "
                             + ", ".join(shipped_recipe_names()))
    try:
        recipe = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise InputError(f"not valid YAML ({str(e).splitlines()[0]})", path=path) from None
    if not isinstance(recipe, dict):
        raise InputError("a recipe is a mapping of option: value", path=path)
    return path, {str(k).replace("-", "_"): v for k, v in recipe.items()}


def parse_sets(items) -> dict:
    """``--set key=value ...`` -> {key: value}, each value read as YAML (numbers, lists,
    null), as it would be in a recipe."""
    out = {}
    for item in items or ():
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise InputError(f"--set {item!r}: expected KEY=VALUE, e.g. --set max_steps=500")
        try:
            out[key.strip().replace("-", "_")] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip().replace("-", "_")] = value
    return out


def _check_value(action, key: str, value, where: str, path=None) -> None:
    """A recipe or --set value of the option ``action`` has its type and is one of its
    choices, or one line naming the key and what it takes."""
    if value is None:
        return
    many = action.nargs in ("+", "*") or isinstance(action.nargs, int)
    values = value if many and isinstance(value, list) else [value]
    def converts(v, kind) -> bool:  # a string converts as argparse converts it from a flag
        if isinstance(v, bool):
            return False
        if isinstance(v, str):
            try:
                kind(v)
            except ValueError:
                return False
            return True
        return isinstance(v, int) if kind is int else isinstance(v, (int, float))

    if action.nargs == 0:  # a switch (store_true)
        ok, what = isinstance(value, bool), "true or false"
    elif action.type in (int, float):
        ok = all(converts(v, action.type) for v in values)
        what = "an integer" if action.type is int else "a number"
    else:
        ok, what = all(isinstance(v, (str, int, float)) for v in values), "a value"
    if ok and action.choices is not None:
        ok = all(v in action.choices for v in values)
        what = "one of " + ", ".join(map(str, action.choices))
    if not ok:
        raise InputError(f"{where} key {key}: {value!r} is not {what}", path=path,
                         fix=f"it sets {action.option_strings[-1]}")


def parse_with_recipe(parser: argparse.ArgumentParser, argv) -> argparse.Namespace:
    """Parse argv; the ``--config`` recipe's keys, then ``--set key=value`` items, become
    defaults that the options given as flags override.  Every key must be an option of the
    command, with a value of its type (one line naming the key otherwise)."""
    args = parser.parse_args(argv)
    if getattr(args, "config", None) or getattr(args, "set", None):
        actions = declared_options(parser)
        path, recipe = read_recipe(args.config) if args.config else (None, {})
        sets = parse_sets(getattr(args, "set", None))
        for where, mapping, at in (("recipe", recipe, path), ("--set", sets, None)):
            unknown = sorted(set(mapping) - set(actions) - {"config", "set"})
            if unknown:
                raise InputError(f"unknown {where} keys {unknown}", path=at,
                                 fix="use the command's option names, e.g. max_steps, seq_len "
                                     f"(see {parser.prog} -h)")
            for key, value in mapping.items():
                if key in ("config", "set"):
                    raise InputError(f"{where} key {key} cannot be set there", path=at)
                _check_value(actions[key], key, value, where, at)
        for key, value in recipe.items():  # paths in a recipe are relative to the recipe
            if actions[key].type is Path and value is not None:  # one path, or a list (--train A B)
                recipe[key] = ([str(path.parent / v) for v in value] if isinstance(value, list)
                               else str(path.parent / value))
        parser.set_defaults(**{**recipe, **sets})
        args = parser.parse_args(argv)
    if str(args.devices).isdigit():
        args.devices = int(args.devices)
    check_trainer_args(args)
    return args


def check_trainer_args(a) -> None:
    """Options of :func:`add_trainer_args` (and the finetune commands' ``--baseline-steps``)
    that cannot make a run, refused before anything is read or written (an untrained model is
    never exported: --max-steps is at least 1)."""
    for name, low in (("max_steps", 1), ("batch_size", 1), ("val_every", 1), ("warmup_steps", 0),
                      ("workers", 0), ("num_nodes", 1), ("d_model", 1), ("n_layer", 1),
                      ("d_state", 1), ("n_head", 1), ("head_dim", 1)):
        check_range(a, name, low)
    check_range(a, "lr", 0, low_open=True)
    check_range(a, "weight_decay", 0)
    if getattr(a, "baseline_steps", None) is not None:  # the finetune commands' CNN baseline
        if a.baseline != "cnn":
            raise InputError("--baseline-steps sets the steps of the CNN baseline",
                             fix="add --baseline cnn, or leave --baseline-steps out")
        check_range(a, "baseline_steps", 1)
    check_range(a, "dropout", 0, 1, high_open=True)
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
