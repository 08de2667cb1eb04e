"""CTC decoding on hand-made posteriors: best path, prefix beam search against brute force, alignment."""
import itertools
import math

import numpy as np
import pytest
import torch

from rnnlab.errors import ConfigError, DataError, InputShapeError
from rnnlab.models.ctc import (
    align,
    collapse,
    combine,
    greedy_decode,
    label_confidences,
    log_likelihood,
    prefix_beam_search,
)


def _log(rows):
    p = np.asarray(rows, dtype=np.float64)
    return np.log(p / p.sum(axis=1, keepdims=True))


def _brute_force(log_probs):
    """p(l | x) of every labelling, by summing over all C^T paths."""
    T, C = log_probs.shape
    totals: dict[tuple, float] = {}
    for path in itertools.product(range(C), repeat=T):
        label = tuple(collapse(path))
        totals[label] = totals.get(label, 0.0) + math.exp(sum(log_probs[t, k] for t, k in enumerate(path)))
    return totals


def test_collapse_and_greedy_by_hand():
    assert collapse([1, 1, 0, 1, 2, 2, 0, 0, 3]) == [1, 1, 2, 3]
    assert collapse([0, 0, 0]) == []
    # frames' argmax: a a - a b -  ->  a a b   (a = 1, b = 2, blank = 0)
    y = _log([[.1, .8, .1], [.2, .7, .1], [.6, .3, .1], [.1, .5, .4], [.1, .2, .7], [.9, .05, .05]])
    assert greedy_decode(y) == [1, 1, 2]
    assert greedy_decode(torch.from_numpy(y)) == [1, 1, 2]


def test_prefix_beam_finds_a_labelling_the_best_path_misses():
    # Best path is "- -" (0.6 · 0.6 = 0.36), so greedy says nothing; but "a" has
    # p = 0.4·0.6 + 0.6·0.4 + 0.4·0.4 = 0.64: the most probable labelling.
    y = _log([[.6, .4], [.6, .4]])
    assert greedy_decode(y) == []
    labels, logp = prefix_beam_search(y, beam=4)
    assert labels == [1] and logp == pytest.approx(math.log(0.64))


def _random_log_probs(seed, T=5, C=3):
    """Peaky random posteriors ``(T, C)`` (Dirichlet 0.7), natural log."""
    return np.log(np.random.default_rng(seed).dirichlet(np.ones(C) * 0.7, size=T))


@pytest.mark.parametrize("seed", range(6))
def test_prefix_beam_equals_brute_force_best_labelling(seed):
    y = _random_log_probs(seed)
    T = len(y)
    totals = _brute_force(y)
    best = max(totals, key=totals.get)
    labels, logp = prefix_beam_search(y, beam=1000, prune=-math.inf)
    assert tuple(labels) == best
    assert logp == pytest.approx(math.log(totals[best]), rel=1e-12)
    # ... and its probability is the one torch's CTC loss gives that labelling
    if labels:
        nll = torch.nn.functional.ctc_loss(torch.from_numpy(y).unsqueeze(1), torch.tensor([labels]), torch.tensor([T]),
                                           torch.tensor([len(labels)]), reduction="sum")
        assert -nll.item() == pytest.approx(logp, rel=1e-9)


@pytest.mark.parametrize("seed", range(10))
def test_beam_one_equals_greedy_on_confident_posteriors(seed):
    rng = np.random.default_rng(100 + seed)
    T, C = 30, 5
    top = rng.integers(0, C, size=T)
    top[rng.random(T) < 0.5] = 0  # blank-dominated, as CTC outputs are
    p = np.full((T, C), 0.02)
    p[np.arange(T), top] = 0.92
    y = _log(p)
    assert prefix_beam_search(y, beam=1)[0] == greedy_decode(y)
    assert prefix_beam_search(y, beam=8)[0] == greedy_decode(y)  # one path dominates everything


def test_align_is_the_best_path_of_the_labelling():
    rng = np.random.default_rng(7)
    T, C = 6, 3
    y = np.log(rng.dirichlet(np.ones(C), size=T))
    labels = [1, 1, 2]
    symbols, states = align(y, labels)
    assert collapse(symbols) == labels
    best = max((p for p in itertools.product(range(C), repeat=T) if collapse(p) == labels),
               key=lambda p: sum(y[t, k] for t, k in enumerate(p)))
    assert list(symbols) == list(best)
    with pytest.raises(DataError, match="at least 4 frames"):
        align(y[:3], [1, 1, 2])


def test_label_confidences_and_spans():
    y = _log([[.9, .05, .05], [.1, .85, .05], [.2, .7, .1], [.9, .05, .05], [.1, .1, .8], [.95, .025, .025]])
    confidences, spans = label_confidences(y, [1, 2])
    assert spans == [(1, 2), (4, 4)]
    assert confidences == pytest.approx([0.85, 0.8])
    assert label_confidences(y, []) == ([], [])


@pytest.mark.parametrize("seed", range(4))
def test_log_likelihood_is_the_sum_over_paths(seed):
    y = _random_log_probs(seed)
    T = len(y)
    totals = _brute_force(y)
    for labels in ([], [1], [2, 1], [1, 1], [1, 2, 1], [2, 2, 1]):
        expected = math.log(totals[tuple(labels)]) if tuple(labels) in totals else -math.inf
        assert log_likelihood(y, labels) == pytest.approx(expected, rel=1e-12)
    nll = torch.nn.functional.ctc_loss(torch.from_numpy(y).unsqueeze(1), torch.tensor([[1, 1]]), torch.tensor([T]),
                                       torch.tensor([2]), reduction="sum")
    assert log_likelihood(y, [1, 1]) == pytest.approx(-nll.item(), rel=1e-9)
    assert log_likelihood(y[:2], [1, 1, 2]) == -math.inf  # "a - a b" needs 4 frames


def test_combine_multiplies_the_models_probabilities():
    # Two models hear "a" (label 1) on different frames: averaging their posteriors frame by frame is blank
    # everywhere (a spike of 0.9 averages to 0.45 < 0.5), but each model's own labelling is "a".
    first = _log([[.05, .9, .05], [.9, .05, .05], [.9, .05, .05]])
    second = _log([[.9, .05, .05], [.9, .05, .05], [.05, .9, .05]])
    average = np.log((np.exp(first) + np.exp(second)) / 2)
    assert greedy_decode(average) == []
    best, totals = combine([first, second], [greedy_decode(first), greedy_decode(second), []])
    assert best == [1]
    assert totals[0] == pytest.approx(log_likelihood(first, [1]) + log_likelihood(second, [1]))
    # Disagreeing models: the product decides. p1(a) = 0.6, p1(b) = 0.3; p2(a) = 0.2, p2(b) = 0.7:
    # 0.6 * 0.2 = 0.12 < 0.3 * 0.7 = 0.21, so "b" although the first model prefers "a" more strongly.
    one, two = _log([[.1, .6, .3]]), _log([[.1, .2, .7]])
    best, totals = combine([one, two], [[1], [2]])
    assert best == [2] and np.exp(totals) == pytest.approx([0.12, 0.21])
    assert combine([one, two], [[2], [2]])[0] == [2]  # ties: the first
    with pytest.raises(ConfigError, match="at least one candidate"):
        combine([one], [])
    with pytest.raises(ConfigError, match="at least one model"):
        combine([], [[1]])


def test_bad_arguments():
    with pytest.raises(InputShapeError, match=r"\(T, C\)"):
        greedy_decode(np.zeros(5))
    with pytest.raises(ConfigError, match="beam must be >= 1"):
        prefix_beam_search(np.zeros((3, 2)), beam=0)
