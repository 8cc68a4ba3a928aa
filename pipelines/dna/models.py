"""DNA model directories: where a run's model is, and the tokenizer it was trained with."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..model_dirs import model_extra
from ..model_dirs import resolve_model_dir as _resolve
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


def tokenizer_of(model_dir: Path) -> DNATokenizer:
    extra = model_extra(model_dir)
    return DNATokenizer.from_dict(extra["tokenizer"]) if "tokenizer" in extra else DNATokenizer()
