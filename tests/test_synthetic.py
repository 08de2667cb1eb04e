"""Synthetic long-term dependency tasks: targets computed correctly, lengths and seeds honoured."""
import math

import pytest
import torch

from rnnlab.data.synthetic import AddingProblem, CopyMemory, LongGapCue, TemporalOrder
from rnnlab.data.synthetic_words import COUNTRIES, FILLER_WORDS, FRAME_WORDS
from rnnlab.errors import ConfigError


def test_word_lists_are_disjoint_and_large_enough():
    countries = {c for c, _ in COUNTRIES}
    languages = {lang for _, lang in COUNTRIES}
    assert len(COUNTRIES) >= 20 and len(languages) == len(COUNTRIES)  # one language per country
    assert len(FILLER_WORDS) >= 200 and len(set(FILLER_WORDS)) == len(FILLER_WORDS)
    assert not set(FILLER_WORDS) & (countries | languages | set(FRAME_WORDS))


@pytest.mark.parametrize("filler", ["words", "grammar"])
def test_cue_language_matches_country_and_frame_is_exact(filler):
    task = LongGapCue(15, num_countries=25, filler=filler, seed=3)
    batch = task.sample(64)
    assert batch.inputs.shape == (64, 23) and (batch.lengths == 23).all()
    language_of = dict(COUNTRIES)
    for row, target in zip(batch.inputs, batch.targets):
        words = task.decode(row).split()
        assert words[:4] == ["i", "grew", "up", "in"] and words[-3:] == ["i", "speak", "fluent"]
        assert language_of[words[4]] == task.languages[int(target)]
        assert all(w in FILLER_WORDS for w in words[5:-3])  # the gap holds filler only
    assert task.chance == pytest.approx(1 / 25)
    assert set(batch.targets.tolist()) <= set(range(25))


def test_cue_variable_gaps_and_padding():
    task = LongGapCue(30, min_gap=10, seed=0)
    batch = task.sample(200)
    gaps = batch.lengths - 8
    assert gaps.min() >= 10 and gaps.max() <= 30 and len(set(gaps.tolist())) > 5
    assert batch.inputs.shape[1] == int(batch.lengths.max())
    for row, length in zip(batch.inputs, batch.lengths):
        assert (row[length:] == 0).all() and (row[:length] != 0).all()
        assert task.decode(row[length - 3 : length]) == "i speak fluent"


def test_cue_distractors_are_other_countries_in_the_filler():
    task = LongGapCue(12, distractors=3, seed=1)
    batch = task.sample(100)
    first, last = task.index[task.countries[0]], task.index[task.countries[-1]]
    for row, target in zip(batch.inputs, batch.targets):
        gap = row[5:-3]
        is_country = (gap >= first) & (gap <= last)
        assert int(is_country.sum()) == 3
        assert not (gap[is_country] == first + target).any()  # the true country is never a distractor


def test_seeds_reproduce_and_differ():
    for make in (lambda s: LongGapCue(7, seed=s), lambda s: AddingProblem(20, seed=s),
                 lambda s: CopyMemory(9, seed=s), lambda s: TemporalOrder(30, seed=s)):
        a, b, c = make(5).sample(16), make(5).sample(16), make(6).sample(16)
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
        assert not torch.equal(a.inputs, c.inputs)
        g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
        assert torch.equal(make(0).sample(8, generator=g1).inputs, make(99).sample(8, generator=g2).inputs)


def test_adding_target_is_the_sum_of_the_marked_values():
    task = AddingProblem(40, min_length=20, seed=2)
    batch = task.sample(256)
    values, markers = batch.inputs[..., 0], batch.inputs[..., 1]
    for b in range(256):
        length = int(batch.lengths[b])
        marked = markers[b].nonzero().flatten().tolist()
        assert len(marked) == 2 and marked[0] < length // 2 <= marked[1] < length
        assert batch.targets[b] == pytest.approx(float(values[b, marked].sum()))
        assert (values[b, length:] == 0).all()
    # Predicting 1 gives MSE near Var(u1 + u2) = 1/6.
    big = AddingProblem(50, seed=0).sample(20000)
    assert float(((big.targets - 1) ** 2).mean()) == pytest.approx(1 / 6, abs=0.01)


def test_copy_target_is_the_copied_symbols_after_the_delimiter():
    task = CopyMemory(30, seed=4)
    batch = task.sample(32)
    assert batch.inputs.shape == (32, 50) and batch.targets.shape == (32, 50)
    symbols = batch.inputs[:, :10]
    assert ((symbols >= 1) & (symbols <= 8)).all()
    assert (batch.inputs[:, 10:39] == 0).all() and (batch.inputs[:, 39] == 9).all() and (batch.inputs[:, 40:] == 0).all()
    assert torch.equal(batch.targets[:, -10:], symbols) and (batch.targets[:, :-10] == 0).all()
    assert task.chance == pytest.approx(10 * math.log(8) / 50)


def test_temporal_order_class_matches_symbol_order():
    task = TemporalOrder(100, seed=5)
    batch = task.sample(300)
    assert (batch.lengths >= 100).all() and (batch.lengths <= 110).all()
    names = {7: 0, 8: 1}  # X, Y
    for row, length, target in zip(batch.inputs, batch.lengths, batch.targets):
        length = int(length)
        assert row[0] == 1 and row[length - 1] == 2 and (row[length:] == 0).all()
        where = [t for t in range(length) if int(row[t]) in names]
        assert len(where) == 2
        assert math.ceil(0.1 * length) <= where[0] <= math.floor(0.2 * length)
        assert math.ceil(0.5 * length) <= where[1] <= math.floor(0.6 * length)
        assert int(target) == names[int(row[where[0]])] * 2 + names[int(row[where[1]])]
        others = [int(row[t]) for t in range(1, length - 1) if t not in where]
        assert set(others) <= {3, 4, 5, 6}
    assert set(batch.targets.tolist()) == {0, 1, 2, 3}


@pytest.mark.parametrize("make", [
    lambda: LongGapCue(0), lambda: LongGapCue(-3), lambda: LongGapCue(10, num_countries=41),
    lambda: LongGapCue(10, min_gap=11), lambda: LongGapCue(5, distractors=6), lambda: LongGapCue(5, filler="poems"),
    lambda: AddingProblem(0), lambda: AddingProblem(10, min_length=20), lambda: CopyMemory(0),
    lambda: TemporalOrder(5), lambda: TemporalOrder(20, max_length=10), lambda: LongGapCue(2.5),
])
def test_bad_configuration_raises_config_error(make):
    with pytest.raises(ConfigError):
        make()


def test_bad_batch_size_raises():
    with pytest.raises(ConfigError, match="batch_size"):
        LongGapCue(4).sample(0)
