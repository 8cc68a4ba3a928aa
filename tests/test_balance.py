"""Class balancing of a batch of predictions (pipelines/balance.py) on fresh random batches."""

import pytest
import torch

from audio_helpers import biased_batch
from pipelines.balance import balance, balance_groups, class_weights


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
