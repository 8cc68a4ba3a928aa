"""Character tokenizer for DNA: A C G T N, optional soft-masked lowercase, special tokens.

IUPAC ambiguity codes (R Y S W K M B D H V) become N (n when lowercase is kept); anything
else is an error naming the record, the position and the character.  Encoding goes through a
256-entry lookup table, so a chromosome is tokenized at memory speed.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..errors import InputError

BASES = "ACGTN"
SPECIALS = ("[PAD]", "[MASK]", "[BOS]", "[EOS]", "[UNK]", "[CLS]", "[SEP]")
IUPAC_AMBIGUOUS = "RYSWKMBDHV"
_COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A", "N": "N"}


class DNATokenizer:
    """ids: A C G T N = 0..4, then a c g t n = 5..9 if ``keep_case``, then the specials.

    ``keep_case=False`` folds soft-masked (lowercase, usually repeats) bases to uppercase.
    """

    # ids appended to a sequence a model reads whole (Caduceus's [SEP]); none here
    suffix: tuple = ()

    def __init__(self, keep_case: bool = False):
        self.keep_case = keep_case
        self.symbols = list(BASES) + ([b.lower() for b in BASES] if keep_case else [])
        self.tokens = self.symbols + list(SPECIALS)
        self.special_ids = {name: len(self.symbols) + i for i, name in enumerate(SPECIALS)}
        self.pad_id = self.special_ids["[PAD]"]
        self.mask_id = self.special_ids["[MASK]"]
        self.bos_id = self.special_ids["[BOS]"]
        self.eos_id = self.special_ids["[EOS]"]
        self.cls_id = self.special_ids["[CLS]"]
        lut = np.full(256, -1, dtype=np.int16)  # 256 entries: ids fit
        for i, s in enumerate(self.symbols):
            lut[ord(s)] = i
        n_up = self.symbols.index("N")
        n_low = self.symbols.index("n") if keep_case else n_up
        for c in IUPAC_AMBIGUOUS:
            lut[ord(c)] = n_up
            lut[ord(c.lower())] = n_low
        if not keep_case:
            for c in BASES:
                lut[ord(c.lower())] = self.symbols.index(c)
        self._lut = lut

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @property
    def complement_map(self) -> list:
        """token id -> id of its complement (specials map to themselves)."""
        out = list(range(self.vocab_size))
        for i, s in enumerate(self.symbols):
            c = _COMPLEMENT[s.upper()]
            out[i] = self.symbols.index(c if s.isupper() else c.lower())
        return out

    @property
    def acgt_ids(self) -> list:
        """ids of A C G T (then a c g t with keep_case): the bases a masked LM predicts."""
        return [self.symbols.index(b) for b in ("ACGTacgt" if self.keep_case else "ACGT")]

    @property
    def base_ids(self) -> list:
        """ids of the nucleotide symbols (what a DNA language model should generate)."""
        return list(range(len(self.symbols)))

    def encode(self, seq: Union[str, bytes], record: Optional[str] = None, offset: int = 0,
               path: Optional[object] = None) -> torch.Tensor:
        """seq (length,) characters -> token ids (length,) int64.

        ``record``, ``offset`` and ``path`` only make the error message exact.
        """
        return torch.from_numpy(self.encode_array(seq, record, offset, path).astype(np.int64))

    def encode_array(self, seq: Union[str, bytes], record: Optional[str] = None,
                     offset: int = 0, path: Optional[object] = None) -> np.ndarray:
        """seq (length,) characters -> token ids (length,) int16, checked as ``encode``: the
        form for counting a genome, a quarter of the memory of int64."""
        raw = seq.encode("latin-1", errors="replace") if isinstance(seq, str) else bytes(seq)
        ids = self._lut[np.frombuffer(raw, dtype=np.uint8)]
        if (ids < 0).any():
            pos = int(np.flatnonzero(ids < 0)[0])
            ch = raw[pos:pos + 1].decode("latin-1")
            what = {"\r": "a carriage return (CRLF line ends)", " ": "a space", "\t": "a tab"}.get(
                ch, repr(ch))
            raise InputError(f"unexpected character {what} at position {offset + pos + 1:,} "
                             f"(1-based)", path=path, record=record,
                             fix="DNA may hold A C G T N, IUPAC codes and lowercase; "
                                 "convert line ends with dos2unix and remove other characters")
        return ids

    def decode(self, ids: Union[Sequence[int], torch.Tensor], skip_special: bool = True) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        n = len(self.symbols)
        return "".join(self.tokens[i] for i in ids if not (skip_special and i >= n))

    def reverse_complement(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (..., length) -> the reverse complement, ids (..., length)."""
        comp = torch.tensor(self.complement_map, device=ids.device)
        return comp[ids].flip(-1)

    def to_dict(self) -> dict:
        return {"type": "dna-char", "keep_case": self.keep_case, "tokens": self.tokens}

    @classmethod
    def from_dict(cls, d: dict) -> "DNATokenizer":
        if d.get("type") != "dna-char":
            raise InputError(f"tokenizer type {d.get('type')!r} is not the DNA character tokenizer")
        tok = cls(keep_case=bool(d.get("keep_case", False)))
        if d.get("tokens") and d["tokens"] != tok.tokens:
            raise InputError("the saved tokenizer's vocabulary differs from this version's")
        return tok
