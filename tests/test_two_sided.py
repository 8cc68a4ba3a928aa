"""The two-sided count baseline for masked-LM bits per base (pipelines/dna/two_sided.py)."""

import math
from collections import Counter

import numpy as np
import pytest

from pipelines.dna.two_sided import TwoSidedCounts, two_sided_bits

A, C, G, T, N = 0, 1, 2, 3, 4
MASK = 6   # some special token: not a base


def ref_log2_probs(train, windows, masked, k):
    """A slow twin of TwoSidedCounts(k).fit(train).log2_probs(windows, masked): plain loops and
    dictionaries, written from the definition rather than from the vectorised code."""
    def is_base(t):
        return 0 <= t < 4

    counts = Counter()   # (order, context tuple, centre) -> count
    for s in train:
        s = [int(t) for t in s]
        for i, c in enumerate(s):
            for j in range(k + 1):
                if is_base(c) and i - j >= 0 and i + j < len(s):
                    ctx = tuple(s[i - j:i] + s[i + 1:i + j + 1])
                    if all(is_base(t) for t in ctx):
                        counts[j, ctx, c] += 1
    out = []
    for w, m in zip(windows, masked):
        w, hidden = [int(t) for t in w], {int(p) for p in m}
        for i in m:
            if not is_base(w[i]):
                continue
            for j in range(k, -1, -1):
                near = list(range(i - j, i)) + list(range(i + 1, i + j + 1))
                if any(p < 0 or p >= len(w) or p in hidden or not is_base(w[p]) for p in near):
                    continue
                ctx = tuple(w[p] for p in near)
                n = [counts[j, ctx, b] for b in range(4)]
                if j > 0 and sum(n) == 0:
                    continue
                out.append((math.log2((n[w[i]] + 0.5) / (sum(n) + 2)), j))
                break
    return out


def test_matches_the_slow_twin_on_random_data_with_ns_specials_and_masks():
    rng = np.random.default_rng(1)
    tokens = np.array([A, C, G, T, A, C, A, N, MASK])   # skewed, so some long contexts repeat
    train = [rng.choice(tokens[:4], 3000), rng.choice(tokens, 500), rng.choice(tokens, 3)]
    windows = [rng.choice(tokens, n) for n in (40, 25, 7, 1)]
    masked = [rng.choice(len(w), max(1, len(w) // 4), replace=False) for w in windows]
    for k in range(4):
        logp, used = TwoSidedCounts(k).fit(train).log2_probs(windows, masked)
        ref = ref_log2_probs(train, windows, masked, k)
        assert len(ref) == logp.size > 0
        np.testing.assert_allclose(logp, [r[0] for r in ref], rtol=0, atol=1e-12)
        assert used.tolist() == [r[1] for r in ref]
        if k >= 2:
            assert set(used.tolist()) >= {0, 1, 2}   # the case exercises every back-off step


def test_a_centre_fixed_by_both_neighbours_is_learnt_at_order_1():
    """Centre = (left + right) % 4: order 1 sees both sides and needs ~0 bits; order 0 needs 2;
    order 2 contexts hold an N and back off to order 1."""
    rng = np.random.default_rng(0)

    def triples(n):
        left, right = rng.integers(0, 4, n), rng.integers(0, 4, n)
        x = np.stack([left, (left + right) % 4, right, np.full(n, N)], 1).reshape(-1)
        return x, np.arange(1, x.size, 4)   # the centres

    train, _ = triples(5000)
    windows, masked = zip(*[triples(50) for _ in range(20)])
    bits = two_sided_bits([train], windows, masked, orders=[0, 1, 2])
    assert bits[0] > 1.95
    assert bits[1] < 0.1
    assert bits[2] == pytest.approx(bits[1])
    # A one-sided rule cannot do it: given the left base alone, the centre is uniform.
    joint = np.zeros((4, 4))
    np.add.at(joint, (train[0::4], train[1::4]), 1)
    assert (joint / joint.sum(1, keepdims=True)).max() < 0.3


# Training by hand: order-1 context (A, G) has centre C twice and T once;
# order 0 counts A 3, C 2, G 3, T 1 (9 bases); the Ns split the sequence.
TRAIN = [np.array([A, C, G, N, A, C, G, N, A, T, G])]


def test_one_probability_by_hand():
    logp, used = TwoSidedCounts(1).fit(TRAIN).log2_probs(
        [np.array([A, C, G]), np.array([A, T, G])], [np.array([1]), np.array([1])])
    assert used.tolist() == [1, 1]
    np.testing.assert_allclose(logp, [math.log2((2 + 0.5) / (3 + 2)), math.log2((1 + 0.5) / (3 + 2))])


def test_a_masked_neighbour_an_edge_an_n_or_an_unseen_context_backs_off_to_order_0():
    order0 = {b: math.log2((n + 0.5) / (9 + 2)) for b, n in [(A, 3), (C, 2), (G, 3), (T, 1)]}
    model = TwoSidedCounts(1).fit(TRAIN)
    windows = [np.array([A, C, G]),    # position 0 (edge) and 1 (left neighbour masked)
               np.array([N, C, G]),    # an N on the left
               np.array([C, C, C])]    # context (C, C) never seen in training
    masked = [np.array([0, 1]), np.array([1]), np.array([1])]
    logp, used = model.log2_probs(windows, masked)
    assert used.tolist() == [0, 0, 0, 0]
    np.testing.assert_allclose(logp, [order0[A], order0[C], order0[C], order0[C]])


def test_non_base_centres_are_not_scored():
    windows = [np.array([A, N, G]), np.array([A, C, G]), np.array([A, MASK, G])]
    masked = [np.array([1]), np.array([1]), np.array([1])]
    bits = two_sided_bits(TRAIN, windows, masked, orders=[1])
    assert bits[1] == pytest.approx(-math.log2(2.5 / 5))   # only the C is scored
    assert math.isnan(two_sided_bits(TRAIN, windows[:1], masked[:1], orders=[0])[0])


def test_order_0_is_the_smoothed_base_frequencies():
    rng = np.random.default_rng(2)
    train = rng.choice(4, 20000, p=[0.5, 0.25, 0.15, 0.1])
    windows = [rng.integers(0, 4, 100) for _ in range(10)]
    masked = [rng.choice(100, 30, replace=False) for _ in windows]
    freq = (np.bincount(train, minlength=4) + 0.5) / (train.size + 2)
    truth = np.concatenate([w[m] for w, m in zip(windows, masked)])
    assert two_sided_bits([train], windows, masked, orders=[0])[0] == pytest.approx(
        -np.log2(freq[truth]).mean())
    # With no bases in training, every count is 0 and KT gives each base 1/4: exactly 2 bits.
    assert two_sided_bits([np.array([N, MASK])], windows, masked, orders=[0, 3]) == {0: 2.0, 3: 2.0}


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="0..6"):
        TwoSidedCounts(7)
    model = TwoSidedCounts(1).fit(TRAIN)
    with pytest.raises(ValueError, match=r"masked\[0\]"):
        model.log2_probs([np.array([A, C])], [np.array([2])])
    with pytest.raises(ValueError, match="order k"):
        model.log2_probs([np.array([A, C])], [np.array([1])], k=2)
    with pytest.raises(ValueError, match=r"seqs\[0\]"):
        model.fit([np.zeros((2, 2), int)])
