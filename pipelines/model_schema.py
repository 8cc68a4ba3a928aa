"""The schema of a model directory's metadata, checked once when a command opens the directory,
before any output exists.

A seqmamba model directory's ``config.json`` is a ``MambaConfig`` (its fields and their
invariants: types, sizes, an RC model's complement map an involution) plus ``extra``, what the
command that trained it stored for the commands that use it:

    task        one of TASKS; the head class the config's "architecture" must name
    labels      (classifiers) a list of num_labels distinct names, the head's outputs in order
    tokenizer   (DNA) seqmamba's character tokenizer, or a checkpoint's vocabulary, of exactly
                the model's vocab_size tokens
    sample_rate (audio) a positive integer of Hz; encoding "waveform" (a front end reads the
                samples) or "mulaw8" (8-bit mu-law tokens); seconds and peak are numbers

A hand-edited, truncated or foreign config.json fails here with one line naming the
directory, the key and what it must hold, never later as a KeyError half-way through a job.
Directories of other formats (mamba-ssm, transformers, Caduceus) are checked by their
importers, and a seqmamba model saved from Python without a task is taken as it is.
"""

from __future__ import annotations

import json
from numbers import Real
from pathlib import Path

from .errors import InputError

# task -> the head class that serves it
TASKS = {"dna-lm": "MambaLMHeadModel", "dna-mlm": "MambaForMaskedLM",
         "dna-classify": "MambaForSequenceClassification",
         "dna-token": "MambaForTokenClassification",
         "audio-lm": "MambaLMHeadModel", "audio-classify": "MambaForSequenceClassification"}
LABELLED = ("dna-classify", "dna-token", "audio-classify")
ENCODINGS = ("waveform", "mulaw8")


def read_config(d: Path) -> dict:
    """A model directory's config.json as a dict; InputError naming ``d`` where it cannot be
    read or is not a JSON object."""
    try:
        raw = json.loads((Path(d) / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read config.json ({e})", path=d) from None
    if not isinstance(raw, dict):
        raise InputError("config.json must hold a JSON object of settings", path=d)
    return raw


def check_model_dir(d: Path) -> None:
    """Refuse (InputError, naming ``d`` and the key) a seqmamba model directory whose
    config.json breaks the schema above."""
    raw = read_config(d)
    if raw.get("model_type") != "seqmamba":
        return  # another format: its importer checks it
    from seqmamba import MambaConfig

    try:
        cfg = MambaConfig.from_dict(raw)
    except (ValueError, TypeError) as e:
        raise InputError(f"config.json: {e}", path=d,
                         fix="restore the file its training command wrote") from None
    extra = raw.get("extra") or {}
    if not isinstance(extra, dict):
        _bad(d, "extra", "an object of settings", extra)
    task = extra.get("task")
    if task is None:
        return
    if task not in TASKS:
        _bad(d, "extra.task", f"one of {', '.join(TASKS)}", task)
    arch = raw.get("architecture")
    if arch is not None and arch != TASKS[task]:
        raise InputError(f"config.json: extra.task is {task!r} but the weights are a {arch} "
                         f"(a {task} model is a {TASKS[task]})", path=d,
                         fix="restore the file its training command wrote")
    if task in LABELLED:
        labels = extra.get("labels")
        if (not isinstance(labels, list) or not all(isinstance(x, str) for x in labels)
                or len(set(labels)) != len(labels)):
            _bad(d, "extra.labels", "a list of distinct class names", labels)
        if len(labels) != cfg.num_labels:
            _bad(d, "extra.labels", f"num_labels={cfg.num_labels} names (one per output of "
                                    f"the head)", f"{len(labels)} names", described=True)
    if task.startswith("dna-"):
        _check_tokenizer(d, extra.get("tokenizer"), cfg.vocab_size)
    else:
        _check_audio(d, extra, cfg)


def _bad(d: Path, key: str, expected: str, got, described: bool = False) -> None:
    """``got``: the value found, or with ``described`` what was found, in words."""
    raise InputError(f"config.json: {key} must be {expected}, got "
                     f"{got if described else repr(got)}", path=d,
                     fix="restore the file its training command wrote")


def _check_tokenizer(d: Path, saved, vocab_size: int) -> None:
    if saved is None:
        return  # written before tokenizers were stored: seqmamba's default
    if not isinstance(saved, dict) or saved.get("type") not in ("dna-char", "dna-vocab"):
        _bad(d, "extra.tokenizer", "an object with type 'dna-char' or 'dna-vocab'", saved)
    from .dna.models import tokenizer_of

    tok = tokenizer_of(d)
    if tok.vocab_size != vocab_size:
        _bad(d, "extra.tokenizer", f"a vocabulary of the model's vocab_size={vocab_size} "
                                   "tokens", f"{tok.vocab_size} tokens", described=True)


def _check_audio(d: Path, extra: dict, cfg) -> None:
    rate = extra.get("sample_rate")
    if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
        _bad(d, "extra.sample_rate", "a positive integer (Hz)", rate)
    encoding = extra.get("encoding", "waveform")
    if encoding not in ENCODINGS:
        _bad(d, "extra.encoding", f"one of {', '.join(ENCODINGS)}", encoding)
    if (encoding == "waveform") != (cfg.frontend is not None):
        _bad(d, "extra.encoding", "'waveform' exactly when the model has a front end "
                                  f"(frontend is {'set' if cfg.frontend else 'null'})", encoding)
    for key in ("seconds", "peak", "seq_len"):
        v = extra.get(key)
        if v is not None and (not isinstance(v, Real) or isinstance(v, bool) or v <= 0):
            _bad(d, f"extra.{key}", "a positive number", v)
