"""Shared helpers for the DNA pipeline tests."""

import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def seqmamba(*args, timeout=600, cwd=ROOT, env=None):
    """Run the seqmamba command line in a fresh process; (returncode, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    p = subprocess.run([sys.executable, "-m", "pipelines.cli", *map(str, args)],
                       capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


def tiny_classifier(directory: Path, labels=("neg", "pos"), **kw) -> Path:
    """A small random DNA classifier saved like `seqmamba dna finetune` saves one."""
    from pipelines.dna.tokenizer import DNATokenizer
    from seqmamba import MambaConfig, MambaForSequenceClassification

    tok = DNATokenizer()
    torch.manual_seed(0)
    cfg = MambaConfig(d_model=32, n_layer=2, d_state=8, vocab_size=tok.vocab_size,
                      num_labels=len(labels), pad_token_id=tok.pad_id,
                      extra={"task": "dna-classify", "labels": list(labels),
                             "tokenizer": tok.to_dict()}, **kw)
    MambaForSequenceClassification(cfg).save_pretrained(directory / "final")
    return directory


def tiny_lm(directory: Path) -> Path:
    from pipelines.dna.tokenizer import DNATokenizer
    from seqmamba import MambaConfig, MambaLMHeadModel

    tok = DNATokenizer()
    torch.manual_seed(0)
    cfg = MambaConfig(d_model=32, n_layer=2, d_state=8, vocab_size=tok.vocab_size,
                      pad_token_id=tok.pad_id, extra={"task": "dna-lm", "tokenizer": tok.to_dict()})
    MambaLMHeadModel(cfg).save_pretrained(directory / "final")
    return directory
