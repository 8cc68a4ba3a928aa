"""Masked-LM corruption of DNA windows, as BERT and Caduceus do it: 15% of the bases are
chosen; of those 80% become ``[MASK]``, 10% a random base and 10% stay; the loss is over the
chosen positions only.

The choice is a pure function of (seed, window), never of the process's random state, so a
resumed run masks each window as the uninterrupted run did, and the held-out set is masked
the same way in every run.  Held-out windows are scored with every chosen position ``[MASK]``:
the model then sees none of the bases it is scored on (the two-sided count baseline is
scored on exactly those positions, with the same ones hidden from its contexts).
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

MASK_RATE = 0.15
REPLACE = (0.8, 0.1)  # of the chosen positions: fraction set to [MASK], fraction a random base


def mask_window(ids: torch.Tensor, rng: np.random.Generator, mask_id: int, base_ids,
                heldout: bool = False):
    """ids (length,) int64 -> (input_ids (length,), labels (length,)): labels hold the true
    id at the chosen positions and -100 elsewhere.  Only A/C/G/T (``base_ids``) are chosen.
    At least one base of a window with any is chosen, so no window is without a loss term."""
    ids_np = ids.numpy()
    is_base = np.isin(ids_np, base_ids)
    chosen = is_base & (rng.random(len(ids_np)) < MASK_RATE)
    if is_base.any() and not chosen.any():
        chosen[rng.choice(np.flatnonzero(is_base))] = True
    labels = np.where(chosen, ids_np, -100)
    out = ids_np.copy()
    if heldout:
        out[chosen] = mask_id
    else:
        r = rng.random(len(ids_np))
        out[chosen & (r < REPLACE[0])] = mask_id
        swap = chosen & (r >= REPLACE[0]) & (r < REPLACE[0] + REPLACE[1])
        out[swap] = np.asarray(base_ids)[rng.integers(0, len(base_ids), int(swap.sum()))]
    return torch.from_numpy(out), torch.from_numpy(labels)


class MaskingCollate:
    """A DataLoader collate for GenomeWindows items: stacks the windows and masks each one
    from a generator seeded by (seed, record, start, strand)."""

    def __init__(self, mask_id: int, base_ids, seed: int, heldout: bool):
        self.mask_id, self.base_ids = mask_id, list(base_ids)
        self.seed, self.heldout = seed, heldout

    def __call__(self, items):
        inputs, labels, names = [], [], []
        for it in items:
            name = f"{it['path']}:{it['record']}:{it['start']}{it['strand']}"
            rng = np.random.default_rng([self.seed, zlib.crc32(name.encode())])
            x, y = mask_window(it["input_ids"], rng, self.mask_id, self.base_ids, self.heldout)
            inputs.append(x)
            labels.append(y)
            names.append(name)
        return {"input_ids": torch.stack(inputs), "labels": torch.stack(labels), "window": names}
