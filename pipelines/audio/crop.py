"""Fit clips to a fixed number of samples: random crop/pad for training, the centre for evaluation.

Both act on the last dimension, so (samples,) and (channels, samples) alike.  A longer clip is
cut to ``length``; a shorter one is placed inside ``length`` zeros (silence).  In training the
offset is drawn from a seeded generator, which doubles as time-shift augmentation; in
evaluation it is the centre, so a clip always gives the same input.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

Generator = Union[torch.Generator, np.random.Generator]


def _draw(generator: Generator, high: int) -> int:
    """A uniform integer in [0, high]."""
    if isinstance(generator, np.random.Generator):
        return int(generator.integers(0, high + 1))
    if isinstance(generator, torch.Generator):
        return int(torch.randint(0, high + 1, (1,), generator=generator))
    raise TypeError(f"generator must be a torch.Generator or numpy Generator, got "
                    f"{type(generator).__name__} (seed one for reproducible crops)")


def place(x: torch.Tensor, length: int, offset: int) -> torch.Tensor:
    """Cut ``length`` samples of ``x`` from ``offset`` (clip longer than ``length``), or put
    ``x`` at ``offset`` inside ``length`` zeros (clip shorter); (..., n) -> (..., length)."""
    if length < 1:
        raise ValueError(f"length must be positive, got {length}")
    n = x.shape[-1]
    if not 0 <= offset <= abs(n - length):
        raise ValueError(f"offset {offset} outside [0, {abs(n - length)}] for {n} -> {length}")
    if n >= length:
        return x[..., offset:offset + length]
    out = x.new_zeros(*x.shape[:-1], length)
    out[..., offset:offset + n] = x
    return out


def random_crop(x: torch.Tensor, length: int, generator: Generator) -> torch.Tensor:
    """(..., n) -> (..., length) at an offset drawn uniformly from ``generator``."""
    return place(x, length, _draw(generator, abs(x.shape[-1] - length)))


def center_crop(x: torch.Tensor, length: int) -> torch.Tensor:
    """(..., n) -> (..., length), centred; with an odd surplus the extra sample is at the end."""
    return place(x, length, abs(x.shape[-1] - length) // 2)
