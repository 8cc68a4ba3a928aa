"""Training the from-scratch CNN baselines on the batches the model trained on.

A baseline network (the log-mel CNN of ``audio finetune --baseline cnn``, the one-hot CNN of
``dna finetune --baseline cnn``) is trained with the model's optimiser settings, on the same
loader (same split, augmentation and order) for the same number of steps and from the same
seed: AdamW (betas 0.9/0.95) with weight decay on matrices only, the warm-up + cosine schedule,
and the weight EMA from the end of warm-up when the run uses one.  Only the architecture
differs, so the report's comparison is model against model, not recipe against recipe.

It is a plain loop rather than a second Lightning run: the baseline writes no checkpoints and
no run directory of its own (it is part of the model's report), and a resumed run retrains it
from its seed, which gives the same network.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from seqmamba.heads import ModelOutput
from seqmamba.model import weight_decay_groups
from seqmamba.schedule import warmup_cosine

from .tasks import mean_step


@dataclass
class FitSettings:
    """The model's optimiser settings, copied from the command's options."""

    max_steps: int
    lr: float
    weight_decay: float
    warmup_steps: int
    seed: int
    ema: float = 0.0

    @classmethod
    def from_args(cls, a) -> "FitSettings":
        steps = getattr(a, "baseline_steps", None) or a.max_steps
        return cls(steps, a.lr, a.weight_decay, a.warmup_steps, a.seed,
                   getattr(a, "ema", 0.0) or 0.0)


class ClassifierNet(nn.Module):
    """A baseline network: ``body(input_ids (batch, length)) -> logits (batch, classes)``,
    called like a seqmamba classifier (``.logits`` of the output) so the report scores it with
    the model's own scoring code."""

    def body(self, input_ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, input_ids, attention_mask=None, labels=None) -> ModelOutput:
        logits = self.body(input_ids)
        loss = None if labels is None else F.cross_entropy(logits.float(), labels)
        return ModelOutput(logits=logits, loss=loss)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def width_for(build: Callable[[int], nn.Module], target: int, lo: int = 4,
              hi: int = 1024) -> int:
    """The width w in [lo, hi] whose ``build(w)`` has the parameter count nearest ``target``
    (parameters grow with w, so a bisection finds it)."""
    def count(w):
        return sum(p.numel() for p in build(w).parameters())

    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid) < target else (lo, mid)
    return min((lo, hi), key=lambda w: abs(count(w) - target))


def fit_baseline_net(net: ClassifierNet, loader, s: FitSettings) -> dict:
    """Train ``net`` in place for ``s.max_steps`` batches of ``loader`` ({input_ids, label});
    the EMA weights replace the trained ones at the end when ``s.ema`` > 0.  Returns
    {"train_seconds", "steps", "step_seconds"} (the mean step, with its batch loading)."""
    torch.manual_seed(s.seed)
    opt = torch.optim.AdamW(weight_decay_groups(net, s.weight_decay), lr=s.lr, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: warmup_cosine(i, s.warmup_steps, s.max_steps))
    average = None
    step, epoch, t0 = 0, 0, time.perf_counter()
    gaps, last = [], t0
    net.train()
    while step < s.max_steps:
        for ds in (loader.dataset, getattr(loader, "sampler", None)):
            if hasattr(ds, "set_epoch"):  # the epoch's crops and order, as the model saw them
                ds.set_epoch(epoch)
        for batch in loader:
            loss = net(batch["input_ids"], labels=batch["label"]).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
            if s.ema and step > s.warmup_steps:
                average = _ema_update(average, net, s.ema)
            if step >= s.max_steps:
                break
        epoch += 1
    if average is not None:
        net.load_state_dict(average.state_dict())
    net.eval()
    return {"train_seconds": round(time.perf_counter() - t0, 1), "steps": step,
            "step_seconds": mean_step(gaps)}


def train_and_score(build: Callable[[int], ClassifierNet], target_params: int, loader,
                    val_loader, a) -> tuple:
    """Build the baseline at the width nearest ``target_params`` parameters (the model's), train
    it on ``loader`` with the command's settings ``a``, score it on ``val_loader``.
    Returns (report fields {acc, mcc, macro_f1, auroc, parameters, width, train_seconds,
    steps, step_seconds}, held-out probabilities (n, classes))."""
    from ..metrics import classification_metrics
    from .evaluate import predict_probs

    width = width_for(build, target_params)
    net = build(width)
    settings = FitSettings.from_args(a)
    print(f"baseline: training a {type(net).__name__} of {net.num_parameters():,} parameters "
          f"for {settings.max_steps} steps", flush=True)
    fit = fit_baseline_net(net, loader, settings)
    probs, labels = predict_probs(net, val_loader)
    m = classification_metrics(labels, probs)
    m.pop("confusion")
    return {**m, "parameters": net.num_parameters(), "width": width, **fit}, probs


@torch.no_grad()
def _ema_update(average, net: nn.Module, decay: float):
    """The running average of ``net``'s weights (floating buffers follow the net: batch-norm
    statistics are not averaged)."""
    if average is None:
        return copy.deepcopy(net)
    for a, p in zip(average.parameters(), net.parameters()):
        a.lerp_(p, 1.0 - decay)
    for a, b in zip(average.buffers(), net.buffers()):
        a.copy_(b)
    return average
