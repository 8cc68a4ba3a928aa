"""The vocabularies of DNA models seqmamba did not train: Caduceus's and PlantCaduceus's (GPN's).

A checkpoint's own tokenizer files are read where present: ``tokenizer.json`` (a Hugging Face
fast tokenizer: its ``model.vocab``), or ``tokenizer_config.json`` with Caduceus's
``characters``.  Without them the vocabulary follows from the model family and its size:

* Caduceus: ``[CLS]0 [SEP]1 [BOS]2 [MASK]3 [PAD]4 [RESERVED]5 [UNK]6 A7 C8 G9 T10 N11``,
  upper case, and the tokenizer appends ``[SEP]`` to a sequence;
* PlantCaduceus (GPN's vocabulary): ``[PAD]0 [MASK]1 [UNK]2 a3 c4 g5 t6``, lower case.

Input is folded to the vocabulary's case; a base the vocabulary lacks (N for GPN, IUPAC codes)
becomes N where there is one, else ``[UNK]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import InputError
from .tokenizer import IUPAC_AMBIGUOUS, DNATokenizer

CADUCEUS_SPECIALS = ["[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]"]
GPN_TOKENS = ["[PAD]", "[MASK]", "[UNK]", "a", "c", "g", "t"]
_COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A", "N": "N"}


class CheckpointVocab(DNATokenizer):
    """A fixed vocabulary: ``tokens`` in id order, bases in one case; ``suffix`` ids are
    appended to every sequence a model reads whole (Caduceus's ``[SEP]``)."""

    def __init__(self, tokens, suffix=()):
        self.keep_case = False
        self.tokens = list(tokens)
        ids = {t: i for i, t in enumerate(self.tokens)}
        bases = [t for t in self.tokens if t.upper() in _COMPLEMENT and len(t) == 1]
        if not {b.upper() for b in bases} >= set("ACGT") or "[MASK]" not in ids:
            raise InputError(f"the checkpoint's vocabulary {self.tokens} lacks A, C, G, T or "
                             "[MASK]; seqmamba reads DNA masked LMs only")
        self.symbols = bases
        self.case = "lower" if bases[0].islower() else "upper"
        self.special_ids = {t: i for t, i in ids.items() if t not in bases}
        self.mask_id = ids["[MASK]"]
        self.pad_id = ids.get("[PAD]", self.mask_id)
        self.unk_id = ids.get("[UNK]")
        self.suffix = [ids[t] for t in suffix]
        self._ids = ids
        fallback = ids.get(self._sym("N"), self.unk_id)
        lut = np.full(256, -1, dtype=np.int16)
        for c in "ACGTN" + IUPAC_AMBIGUOUS:
            i = ids.get(self._sym(c)) if c in "ACGTN" else None
            i = fallback if i is None else i
            if i is not None:
                lut[ord(c)] = lut[ord(c.lower())] = i
        self._lut = lut

    def _sym(self, base: str) -> str:
        return base.lower() if self.case == "lower" else base.upper()

    @property
    def complement_map(self) -> list:
        out = list(range(self.vocab_size))
        for s in self.symbols:
            out[self._ids[s]] = self._ids.get(self._sym(_COMPLEMENT[s.upper()]), self._ids[s])
        return out

    @property
    def acgt_ids(self) -> list:
        return [self._ids[self._sym(b)] for b in "ACGT"]

    @property
    def base_ids(self) -> list:
        return [self._ids[s] for s in self.symbols]

    def decode(self, ids, skip_special: bool = True) -> str:
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        return "".join(self.tokens[i] for i in ids
                       if not (skip_special and self.tokens[i] in self.special_ids))

    def to_dict(self) -> dict:
        return {"type": "dna-vocab", "tokens": self.tokens,
                "suffix": [self.tokens[i] for i in self.suffix]}


def _read_json(path: Path) -> Optional[dict]:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read the tokenizer file ({e})", path=path) from None
    return data if isinstance(data, dict) else None


def checkpoint_vocab(model_dir: Path, config: dict) -> CheckpointVocab:
    """The vocabulary of a Caduceus-family checkpoint directory (see the module docstring)."""
    d = Path(model_dir)
    fast = _read_json(d / "tokenizer.json")
    vocab = ((fast or {}).get("model") or {}).get("vocab")
    if isinstance(vocab, dict) and vocab:
        tokens = sorted(vocab, key=vocab.get)
        if [vocab[t] for t in tokens] != list(range(len(tokens))):
            raise InputError("tokenizer.json: model.vocab ids are not 0..n-1", path=d)
        return CheckpointVocab(tokens)
    chars = ((_read_json(d / "tokenizer_config.json") or {}).get("characters"))
    if isinstance(chars, list) and chars:
        return CheckpointVocab(CADUCEUS_SPECIALS + [str(c).upper() for c in chars],
                               suffix=["[SEP]"])
    size = config.get("vocab_size")
    if size in (12, 16):
        return CheckpointVocab(CADUCEUS_SPECIALS + list("ACGTN"), suffix=["[SEP]"])
    if size in (7, 8):
        return CheckpointVocab(GPN_TOKENS)
    raise InputError(f"no tokenizer.json or tokenizer_config.json, and vocab_size {size} is "
                     "neither Caduceus's (12) nor PlantCaduceus's (7)", path=d,
                     fix="put the model's tokenizer files beside config.json")
