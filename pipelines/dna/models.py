"""DNA model directories: where a run's model is, and the tokenizer it was trained with."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from ..model_dirs import model_extra
from ..model_dirs import resolve_model_dir as _resolve
from .checkpoint_vocab import CheckpointVocab, checkpoint_vocab
from .tokenizer import DNATokenizer


DNA_TASKS = ("dna-lm", "dna-mlm", "dna-classify", "dna-token")


def resolve_model_dir(path: Path) -> Path:
    """RUN or RUN/final of a DNA command -> the directory holding config.json.  A directory
    without a task (an imported mamba-ssm or transformers checkpoint) is taken as a language
    model; another domain's model is refused."""
    d = _resolve(path, "seqmamba dna pretrain or finetune")
    task = model_extra(d).get("task")
    if task is not None and task not in DNA_TASKS:
        raise InputError(f"model task {task!r} is not a DNA model ({', '.join(DNA_TASKS)})", path=d,
                         fix="pass the RUN directory of seqmamba dna pretrain or finetune")
    return d


def _raw_config(model_dir: Path) -> dict:
    try:
        raw = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read config.json ({e})", path=model_dir) from None
    return raw if isinstance(raw, dict) else {}


def model_task(model_dir: Path) -> str:
    """The task of a DNA model directory: the one its command stored; for an imported
    checkpoint, a masked LM (Caduceus family) or a causal LM (mamba-ssm, transformers)."""
    task = model_extra(model_dir).get("task")
    if task:
        return task
    return "dna-mlm" if _raw_config(model_dir).get("model_type") == "caduceus" else "dna-lm"


def tokenizer_of(model_dir: Path) -> DNATokenizer:
    """The tokenizer a model was trained with: stored by the command that trained it, else
    the checkpoint's own vocabulary (Caduceus family), else seqmamba's default."""
    saved = model_extra(model_dir).get("tokenizer")
    if saved is not None:
        if isinstance(saved, dict) and saved.get("type") == "dna-vocab":
            return CheckpointVocab(saved.get("tokens") or [], saved.get("suffix") or ())
        return DNATokenizer.from_dict(saved)
    raw = _raw_config(model_dir)
    if raw.get("model_type") == "caduceus":
        return checkpoint_vocab(model_dir, raw)
    return DNATokenizer()
