"""``seqmamba audio adapt``: adapt a classifier to new voices from their recordings, no labels.

    seqmamba audio adapt --model RUN new_voice/ --out RUN_ADAPTED
    seqmamba audio adapt --model RUN --model RUN_S1 voice_a/ voice_b/ --out RUN_ADAPTED

One ``audio finetune`` run with the settings measured for a new voice (docs/audio.md, "A new
voice"): the --model classifiers (probabilities averaged) label the recordings, balanced over
each voice's clips (``--pseudo-balance``; per folder when the recordings lie in several
folders, one voice a folder); the clips they are sure of join the first model's training clips;
and the first model trains 500 more steps at lr 0.001 (warm-up 50) from where it was, with the
options its run was trained with (recorded in RUN/report.json; ``--config`` for an older run).
``--resume`` continues a stopped adaptation as ``audio finetune --resume`` does, on the same
pseudo-labels (RUN_ADAPTED/pseudo_labels.csv).

Refused in one line, before RUN_ADAPTED is made: a --model that is not an audio classifier,
too few recordings to balance (fewer than ``MIN_PER_CLASS`` clips per class in a voice's
folder), a run that recorded no options and no --config, and whatever ``audio finetune``
refuses.  Balancing assumes each voice says every class about equally often.
"""

from __future__ import annotations

import argparse
import shlex
import tempfile
from collections import Counter
from pathlib import Path
from typing import List, Optional

import yaml

from ..errors import InputError
from ..options import add_field
from ..runs import declared_options
from . import finetune, run_options
from .inputs import expand_inputs
from .models import model_extra, resolve_model_dir

# Balancing needs every class in each voice's clips about equally often; below this many clips
# per class (on average, per folder) the shares of what was recorded are too uneven to trust
# (random batches of 10 per class already gain little from balancing: docs/audio.md) and few
# clips are left to train on.
MIN_PER_CLASS = 5


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seqmamba audio adapt", description=__doc__.split("\n")[0])
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="the new voices' recordings, no labels: files, folders (one per voice) "
                        "or glob patterns; each voice saying every class about equally often")
    add_field(p, "model", action="append",
              help="the classifier run to adapt (RUN of seqmamba audio finetune); repeat it for "
                   "an ensemble that labels the recordings (the first one is trained further)")
    add_field(p, "out", required=True, help="the adapted run's directory")
    add_field(p, "config", help="the recipe the first --model was trained with (default: the "
                                "options its report.json recorded; needed for a run trained "
                                "before they were)")
    add_field(p, "max_steps", default=500)
    add_field(p, "lr", default=1e-3)
    add_field(p, "warmup_steps", default=50)
    for name in ("resume", "no_progress"):
        add_field(p, name)
    return p


def run(argv=None) -> int:
    a = build_parser().parse_args(argv)
    return adapt(a.model, a.inputs, a.out, config=a.config, max_steps=a.max_steps, lr=a.lr,
                 warmup_steps=a.warmup_steps, resume=a.resume, progress=not a.no_progress)


def balance_by(inputs: List[str], classes: int) -> str:
    """How the recordings are balanced: "folder" when they lie in several folders (a voice a
    folder), else "all"; refused in one line when a voice has fewer than ``MIN_PER_CLASS``
    clips per class."""
    files, errors = expand_inputs(list(inputs))
    if errors:
        raise InputError(errors[0][1])
    by = "folder" if len({f.parent for f in files}) > 1 else "all"
    counts = Counter(str(f.parent) if by == "folder" else "all" for f in files)
    need = MIN_PER_CLASS * classes
    small = sorted((n, g) for g, n in counts.items() if n < need)
    if small:
        n, g = small[0]
        where = "the recordings number" if by == "all" else f"the folder {g} holds"
        raise InputError(f"{where} {n} clips: adapting balances the labels over each voice's "
                         f"clips, which needs at least {need} ({MIN_PER_CLASS} per class, "
                         f"{classes} classes) per voice",
                         fix="record more of that voice, every class about equally often, or "
                             "use seqmamba audio predict --balance on what there is")
    return by


def recipe_file(run_dir: Path, config: Optional[str], folder: Path) -> str:
    """--config for the finetune: the recipe given, or a YAML of the options RUN recorded."""
    if config is not None:
        return config
    options = run_options.stored(run_dir)
    if options is None:
        raise InputError("its report.json records no training options (a run trained before "
                         "they were recorded)", path=run_dir,
                         fix="pass --config RECIPE, the recipe it was trained with, e.g. "
                             "--config audio_fsdd")
    known = declared_options(finetune.build_parser())
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in options.items() if k in known}))
    return str(path)


def adapt(models: List[Path], inputs: List[str], out: Path, config: Optional[str] = None,
          max_steps: int = 500, lr: float = 1e-3, warmup_steps: int = 50,
          resume: bool = False, progress: bool = True) -> int:
    """Check the models and recordings, then run ``audio finetune`` in this process with the
    new-voice settings; its exit code."""
    dirs = [resolve_model_dir(m, ("audio-classify",)) for m in models]
    by = balance_by(list(map(str, inputs)), len(model_extra(dirs[0]).get("labels", [])))
    argv = ["--init", str(models[0]), "--teacher", *map(str, models), "--unlabelled",
            *map(str, inputs), "--pseudo-balance", "--pseudo-balance-by", by,
            "--max-steps", str(max_steps), "--lr", str(lr), "--warmup-steps", str(warmup_steps),
            "--baseline", "none", "--out", str(out)]
    argv += ["--resume"] if resume else []
    argv += [] if progress else ["--no-progress"]
    with tempfile.TemporaryDirectory(prefix="seqmamba_adapt_") as tmp:
        recipe = recipe_file(dirs[0].parent, config, Path(tmp))
        what = f"--config {config}" if config else f"the options {dirs[0].parent} was trained with"
        print(f"adapting: seqmamba audio finetune {shlex.join(argv)}, with {what}", flush=True)
        return finetune.run(["--config", str(recipe), *argv])
