"""DNA model directories: where a run's model is, and the tokenizer it was trained with."""

from __future__ import annotations

from pathlib import Path

from ..model_dirs import model_extra
from ..model_dirs import resolve_model_dir as _resolve
from .tokenizer import DNATokenizer


def resolve_model_dir(path: Path) -> Path:
    return _resolve(path, "seqmamba dna pretrain or finetune")


def tokenizer_of(model_dir: Path) -> DNATokenizer:
    extra = model_extra(model_dir)
    return DNATokenizer.from_dict(extra["tokenizer"]) if "tokenizer" in extra else DNATokenizer()
