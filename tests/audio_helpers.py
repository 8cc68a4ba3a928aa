"""Helpers the audio tests share (here and in tests/scripts/)."""

import torch


def _band_db(w: torch.Tensor, ref: torch.Tensor, sr: int, lo: float, hi: float) -> float:
    """Power of w over ref in the band [lo, hi) Hz, in dB."""
    f = torch.fft.rfftfreq(w.shape[-1], 1.0 / sr)
    band = (f >= lo) & (f < hi)
    pw, pr = (torch.fft.rfft(x.double()).abs().pow(2)[band].sum() for x in (w, ref))
    return float(10 * torch.log10(pw / pr))


def biased_batch(seed, n_per_class=40, k=10, bias_scale=2.0):
    """(true labels (n,), the model's unbiased probabilities (n, k), the same model's
    probabilities under a per-class logit bias (n, k), the bias (k,)): a batch with every
    class equally frequent, as an unheard voice shifts some classes' scores up and others down
    for every clip alike."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(k).repeat_interleave(n_per_class)
    logits = torch.randn(len(y), k, generator=g) * 1.5
    logits[torch.arange(len(y)), y] += 2.5
    bias = torch.randn(k, generator=g) * bias_scale
    return y, logits.softmax(-1), (logits + bias).softmax(-1), bias
