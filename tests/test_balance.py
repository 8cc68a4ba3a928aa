"""Class balancing of a batch of predictions (pipelines/balance.py) on fresh random batches."""

import pytest
import torch

from pipelines.balance import balance, balance_groups, class_weights


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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_balancing_makes_every_class_equally_frequent_on_average(seed):
    _, _, p, _ = biased_batch(seed)
    q = balance(p)
    assert torch.allclose(q.sum(-1), torch.ones(len(q)), atol=1e-5)
    assert torch.allclose(q.mean(0), torch.full((10,), 0.1), atol=1e-5)
    assert (p.mean(0) - 0.1).abs().max() > 0.02  # the batch was not balanced to begin with
    w = class_weights(p)
    assert abs(float(w.log().mean())) < 1e-9  # weights normalised: geometric mean 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_balancing_undoes_a_per_class_bias_when_the_classes_are_equally_frequent(seed):
    """The weights found from the biased probabilities alone are close to exp(-bias) (up to a
    constant), and the balanced labels are right about as often as the unbiased model's."""
    y, clean, p, bias = biased_batch(seed)
    acc = lambda probs: float((probs.argmax(-1) == y).float().mean())  # noqa: E731
    assert acc(p) < acc(clean) - 0.1  # the bias costs
    assert acc(balance(p)) > acc(clean) - 0.03
    logw = class_weights(p).log()
    want = -bias.double() - (-bias.double()).mean()
    assert float((logw - want).abs().max()) < 0.35, (logw, want)


def test_groups_with_their_own_biases_are_balanced_each_on_its_own():
    """Two voices, each biasing its clips its own way, shuffled together: balancing by group
    recovers each voice's own weights and beats one set of weights for the whole batch."""
    (y1, _, p1, b1), (y2, _, p2, b2) = biased_batch(10), biased_batch(11)
    order = torch.randperm(len(y1) + len(y2), generator=torch.Generator().manual_seed(0))
    y, p = torch.cat([y1, y2])[order], torch.cat([p1, p2])[order]
    groups = [("a", "b")[int(i >= len(y1))] for i in order]
    q, weights = balance_groups(p, groups, 1.0)
    assert list(weights) == [groups[0], "b" if groups[0] == "a" else "a"]
    for g, bias in (("a", b1), ("b", b2)):
        rows = torch.tensor([i for i, h in enumerate(groups) if h == g])
        assert torch.allclose(q[rows].mean(0), torch.full((10,), 0.1), atol=1e-5)
        want = -bias.double() - (-bias.double()).mean()
        assert float((weights[g].log() - want).abs().max()) < 0.35
    acc = lambda probs: float((probs.argmax(-1) == y).float().mean())  # noqa: E731
    assert acc(q) > acc(balance(p)) + 0.05
    with pytest.raises(ValueError, match="groups"):
        balance_groups(p, groups[:-1])


def test_strength_moves_the_weights_part_of_the_way():
    _, _, p, _ = biased_batch(3)
    w = class_weights(p)
    assert torch.allclose(balance(p, 0.0), p, atol=1e-6)
    half = p.double() * w.sqrt()
    assert torch.allclose(balance(p, 0.5), (half / half.sum(-1, keepdim=True)).float(), atol=1e-6)
    spread = lambda q: float((q.mean(0) - 0.1).abs().max())  # noqa: E731
    assert spread(balance(p, 1.0)) < spread(balance(p, 0.5)) < spread(p)


def test_an_already_balanced_batch_is_left_alone_and_zeros_are_reachable():
    # a batch symmetric under relabelling: every class's mean is already 1/k
    p = torch.eye(4) * 0.6 + 0.1
    assert torch.allclose(class_weights(p), torch.ones(4, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(balance(p), p, atol=1e-6)
    # a class no clip gives any probability still gets its share: no NaN, no infinity
    z = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.4, 0.0]])
    q = balance(z)
    assert torch.isfinite(q).all() and torch.allclose(q.mean(0), torch.full((3,), 1 / 3),
                                                       atol=1e-4)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="strength"):
        balance(torch.full((3, 2), 0.5), 1.5)
    with pytest.raises(ValueError, match="probabilities"):
        class_weights(torch.ones(5))
    with pytest.raises(ValueError, match="probabilities"):
        class_weights(torch.ones(0, 3))


def test_balance_benchmark_draws_the_batches_it_names_and_scores_both_sides():
    """benchmarks/audio_balance.py: each kind of batch holds what its name says, and a biased
    model on balanced batches gains from balancing while skewed batches are scored too."""
    import sys
    from pathlib import Path

    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from audio_balance import batches, score

    y = np.repeat(np.arange(10), 50)
    seen = {}
    for name, ix in batches(y, np.random.default_rng(0), draws=3):
        counts = np.bincount(y[ix], minlength=10)
        seen.setdefault(name, []).append(counts)
        if name == "all":
            assert (counts == 50).all()
        elif name.startswith("stratified"):
            assert (counts == int(name.split()[1]) // 10).all() and len(set(ix)) == len(ix)
        elif name == "random 100":
            assert counts.sum() == 100 and len(set(ix)) == 100
        elif name == "seven digits":
            assert counts.sum() == 200 and (counts > 0).sum() == 7
        else:
            assert name == "skewed" and counts.sum() == 500
    assert {k: len(v) for k, v in seen.items()} == {
        "all": 1, "stratified 100": 3, "stratified 20": 3, "random 100": 3, "skewed": 3,
        "seven digits": 3}
    assert max(c.max() / max(c.min(), 1) for c in seen["skewed"]) > 3  # really skewed

    yt, _, p, _ = biased_batch(5, n_per_class=50)
    got = score(p, yt.numpy(), [1.0, 0.3], draws=2, seed=0)
    before, after, clips = np.array(got[("all", 1.0)]).T
    assert clips[0] == 500 and after[0] > before[0] + 0.05
    assert len(got[("skewed", 0.3)]) == 2
