"""The saved progress of the record ``seqmamba dna predict`` is reading, so that a run stopped
inside a long record (a chromosome) continues there instead of from its first base.

The file is ``OUT.partial.record.safetensors`` beside the table, written atomically.  Its
tensors (all on the CPU):

  ``conv.{i}``, ``ssm.{i}``   each layer's carried state (``seqmamba.streaming.Stream.state``)
  ``bits``                    float64 (2,): bits summed so far and the number of bases scored
  ``prev_logits``             float32 (vocab,): a language model's log-probabilities for the
                              next base (``NextTokenBits.state``, batch dimension dropped)
  ``pool.*``, ``embed.*``     the pooled sums (``StreamingPool.state``) of the classifier's
                              pooling and of ``--embed``
  ``bin_sum``, ``bin_cnt``    ``--track`` bins so far: float64 (bins,) or (bins, classes), and
                              int64 (bins,)

and its metadata: ``file`` (the input's absolute path), ``record``, ``length`` and ``start``
(the bases read so far), all strings.  A saved state is used only for the same file, record
and length; the file goes when the record's row is in the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from seqmamba.atomic import atomic_output


class RecordProgress:
    """The progress of one input file's record being predicted (see the module docstring)."""

    def __init__(self, out: Path, file_key: str):
        """``out``: the prediction table; ``file_key``: the input file's absolute path."""
        self.path = out.with_name(out.name + ".partial.record.safetensors")
        self.file_key = file_key

    def save(self, name: str, length: int, start: int, tensors: Dict[str, torch.Tensor]) -> None:
        """Write ``tensors`` (named as in the module docstring) as the state of record ``name``
        (``length`` bases) after its first ``start`` bases, replacing any earlier state."""
        from safetensors.torch import save_file

        meta = {"file": self.file_key, "record": name, "length": str(length), "start": str(start)}
        with atomic_output(self.path, suffix=".safetensors") as tmp:
            save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp),
                      meta)

    def load(self, name: str, length: int) -> Optional[Tuple[int, Dict[str, torch.Tensor]]]:
        """(start, tensors) of a saved state of this file's record ``name`` of ``length``
        bases, else None (none saved, another record's, or a damaged file)."""
        from safetensors import safe_open

        if not self.path.is_file():
            return None
        try:
            with safe_open(str(self.path), "pt") as f:
                meta = f.metadata() or {}
                if (meta.get("file"), meta.get("record"), meta.get("length")) != \
                        (self.file_key, name, str(length)):
                    return None
                return int(meta["start"]), {k: f.get_tensor(k) for k in f.keys()}
        except Exception:  # a damaged state is not an error: the record starts over
            return None

    def clear(self) -> None:
        """Remove the saved state (the record's row is written, or the table starts over)."""
        self.path.unlink(missing_ok=True)
