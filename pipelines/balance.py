"""Class balancing of a batch of predictions: a classifier's probabilities re-weighted per
class so that, over the batch, every class is predicted equally often on average.

Why: a classifier meeting a new voice (or microphone, or genome) is biased in ways that are
the same for every clip of it: leaving one FSDD speaker out, george's "three"s mostly come out
as "eight", and nicolas's as "six".  Those biases are one weight per class.  Unlabelled clips
cannot reveal them in general, since a class predicted too often could simply be frequent.
When the user knows the classes are about equally frequent among the inputs (each digit said
about as often), they can: the weights are the ones that make the mean predicted probability
of every class equal.  This is the prior correction of Saerens, Latinne & Decaestecker
(Neural Computation 2002, "Adjusting the outputs of a classifier to new a priori
probabilities"), with the new priors known (uniform) instead of estimated by EM.  Estimating
them by EM would not help: it reads the model's bias as the batch's class frequencies and
strengthens it.

The assumption matters.  ``experiments/audio_balance.py`` measures both sides: with the classes
equally frequent it lifts unheard voices by several points, and with skewed or missing
classes full balancing loses many; ``strength`` below 1 moves the weights only part of the
way (weights ** strength), keeping part of the gain and little of the loss.
"""

from __future__ import annotations

import torch


def class_weights(probs: torch.Tensor, iters: int = 1000, tol: float = 1e-7) -> torch.Tensor:
    """probs (n, classes), rows summing to 1 -> weights (classes,), their geometric mean 1,
    such that the rows of probs * weights, each renormalised to sum 1, have a mean of
    1/classes for every class.

    A fixed-point iteration (Sinkhorn's: scale the columns, renormalise the rows) in float64;
    a probability of 0 is taken as 1e-12 so that no class is out of reach."""
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise ValueError(f"class_weights needs probabilities (n >= 1, classes), got "
                         f"{tuple(probs.shape)}")
    p = probs.detach().double().clamp_min(1e-12)
    p = p / p.sum(-1, keepdim=True)
    k = p.shape[1]
    w = torch.ones(k, dtype=torch.float64)
    for _ in range(iters):
        q = p * w
        mean = (q / q.sum(-1, keepdim=True)).mean(0)
        if float((mean * k - 1).abs().max()) < tol:
            break
        w = w / (mean * k)
    return w / w.log().mean().exp()


def balance(probs: torch.Tensor, strength: float = 1.0, weights: torch.Tensor = None
            ) -> torch.Tensor:
    """probs (n, classes) -> the same clips' probabilities re-weighted towards equally frequent
    classes (n, classes), float32, rows summing to 1.

    ``strength`` 1 applies ``class_weights(probs)`` in full (the mean of every class's
    probability becomes 1/classes); 0 leaves probs as they are; between, the weights are
    raised to that power.  ``weights`` (classes,) may be passed when already computed."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"balance strength must be in [0, 1], got {strength}")
    w = (class_weights(probs) if weights is None else weights.double()) ** strength
    q = probs.detach().double().clamp_min(1e-12) * w
    return (q / q.sum(-1, keepdim=True)).float()


def balance_groups(probs: torch.Tensor, groups, strength: float = 1.0):
    """probs (n, classes) and ``groups`` (n keys: the speaker, folder, ... of each row) ->
    (probs balanced within each group (n, classes) float32, {group: its class weights
    (classes,) raised to ``strength``}), groups in order of first appearance.

    Each voice (or microphone) biases its own clips alike, and differently from the next one,
    so a batch holding several is balanced one group at a time: weights fitted over all of
    them would undo only the bias they share.  Each group must hold every class about
    equally often."""
    if len(groups) != probs.shape[0]:
        raise ValueError(f"balance_groups: {len(groups)} groups for {probs.shape[0]} rows")
    rows: dict = {}
    for i, g in enumerate(groups):
        rows.setdefault(g, []).append(i)
    out = torch.empty(probs.shape, dtype=torch.float32)
    weights = {}
    for g, idx in rows.items():
        idx = torch.tensor(idx)
        w = class_weights(probs[idx])
        out[idx] = balance(probs[idx], strength, w)
        weights[g] = w ** strength
    return out, weights
