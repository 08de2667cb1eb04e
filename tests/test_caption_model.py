"""The captioner: one decoder step against the equations in float64, attention, greedy and beam search."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from rnnlab.errors import ConfigError, InputShapeError
from rnnlab.models.captioner import CELLS, Captioner, CaptionerConfig
from rnnlab.tasks.caption import caption_loss


def model(dtype=torch.float64, seed=0, **options) -> Captioner:
    torch.manual_seed(seed)
    config = dict(vocab_size=9, channels=1, image_size=16, embed=6, hidden=10, features=8, attention_size=5,
                  dropout=0.0) | options
    return Captioner(CaptionerConfig(**config)).to(dtype).eval()


def images(n=3, dtype=torch.float64, seed=1, channels=1, size=16):
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_one_step_follows_the_equations_in_float64():
    """Xu et al.'s soft attention, written out from the raw weights, against Captioner.step."""
    m = model()
    x = images()
    memory, state = m.encode(x)
    a = m.encoder(x)                                                         # (B, L, D)
    h0 = torch.tanh(a.mean(1) @ m.init_h.weight.T + m.init_h.bias)
    c0 = torch.tanh(a.mean(1) @ m.init_c.weight.T + m.init_c.bias)
    torch.testing.assert_close(state[0], h0, rtol=0, atol=1e-12)
    torch.testing.assert_close(state[1], c0, rtol=0, atol=1e-12)
    y = torch.tensor([1, 4, 7])
    logits, (h, c), alpha = m.step(memory, y, state)
    e = torch.tanh(a @ m.att_regions.weight.T + m.att_regions.bias + (h0 @ m.att_hidden.weight.T).unsqueeze(1))
    scores = (e @ m.att_score.weight.T).squeeze(2) + m.att_score.bias
    expect_alpha = torch.exp(scores) / torch.exp(scores).sum(1, keepdim=True)
    beta = torch.sigmoid(h0 @ m.beta.weight.T + m.beta.bias)
    z = beta * (expect_alpha.unsqueeze(2) * a).sum(1)
    emb = m.embedding.weight[y]
    gates = torch.cat([emb, z], 1) @ m.cell.weight_ih.T + m.cell.bias_ih + h0 @ m.cell.weight_hh.T + m.cell.bias_hh
    i, f, g, o = gates.chunk(4, 1)
    c1 = torch.sigmoid(f) * c0 + torch.sigmoid(i) * torch.tanh(g)
    h1 = torch.sigmoid(o) * torch.tanh(c1)
    deep = emb + h1 @ m.out_hidden.weight.T + m.out_hidden.bias + z @ m.out_context.weight.T
    for got, want in ((alpha, expect_alpha), (c, c1), (h, h1), (logits, deep @ m.out.weight.T + m.out.bias)):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_attention_weights_sum_to_one(cell):
    m = model(cell=cell)
    tokens = torch.randint(3, 9, (3, 6), generator=torch.Generator().manual_seed(0))
    logits, alphas, _ = m(images(), tokens)
    assert logits.shape == (3, 6, 9) and alphas.shape == (3, 6, 4)
    torch.testing.assert_close(alphas.sum(2), torch.ones(3, 6, dtype=torch.float64), rtol=0, atol=1e-12)
    assert (alphas >= 0).all()


@pytest.mark.parametrize("options", [{}, {"cell": "gru"}, {"attention": False}, {"encoder": "mlp", "attention": False},
                                     {"gate": False}])
def test_greedy_decoding_equals_teacher_forcing_on_its_own_output(options):
    """Step-by-step decoding (one state carried) and the full teacher-forced pass agree in float64."""
    m = model(**options)
    x = images(4)
    tokens, alphas = m.greedy(x, max_len=7)
    inputs = torch.cat([torch.full((4, 1), m.config.bos_id), tokens[:, :-1].clamp(min=0)], 1)
    logits, forced_alphas, _ = m(x, inputs)
    for b in range(4):
        n = int((tokens[b] != m.config.pad_id).sum())
        assert torch.equal(logits[b, :n].argmax(1), tokens[b, :n])
        if alphas is not None:
            torch.testing.assert_close(alphas[b, :n], forced_alphas[b, :n], rtol=0, atol=1e-12)


@pytest.mark.parametrize("options", [{}, {"attention": False}])
def test_beam_of_one_is_greedy(options):
    m = model(dtype=torch.float32, seed=3, **options)
    x = images(6, dtype=torch.float32, seed=5)
    tokens, alphas = m.greedy(x, max_len=8)
    for b in range(6):
        best, best_alpha, score = m.beam_search(x[b], 1, max_len=8)
        n = int((tokens[b] != m.config.pad_id).sum())
        assert torch.equal(best, tokens[b, :n])
        if alphas is not None:
            torch.testing.assert_close(best_alpha, alphas[b, :n], rtol=0, atol=1e-6)  # batch of 1 vs 6: float32 rounding


@torch.no_grad()
def _log_prob(m, image, sequence):
    logits, _, _ = m(image.unsqueeze(0), torch.tensor([[m.config.bos_id] + list(sequence[:-1])]))
    return float(F.log_softmax(logits[0], 1)[torch.arange(len(sequence)), torch.tensor(sequence)].sum())


def test_wide_beam_finds_the_most_likely_caption_by_brute_force():
    """With a beam as wide as every prefix, beam search is exhaustive: compare with enumeration."""
    m = model(vocab_size=4, seed=7)
    image, eos, max_len = images(1, seed=9)[0], m.config.eos_id, 3
    candidates = []
    for length in range(1, max_len + 1):
        for words in itertools.product(range(4), repeat=length - 1):
            if eos not in words:
                candidates.append(list(words) + [eos])
    for words in itertools.product(range(4), repeat=max_len):  # cut at max_len without EOS
        if eos not in words:
            candidates.append(list(words))
    best = max(candidates, key=lambda s: _log_prob(m, image, s))
    tokens, _, score = m.beam_search(image, beam=16, max_len=max_len)
    assert tokens.tolist() == best
    assert score == pytest.approx(_log_prob(m, image, best), abs=1e-9)


def test_doubly_stochastic_penalty_matches_its_formula():
    m = model()
    x = images(2)
    tokens = torch.tensor([[1, 5, 6, 2, 0], [1, 7, 2, 0, 0]])
    loss, ce, words = caption_loss(m, x, tokens, penalty=0.5)
    logits, alphas, _ = m(x, tokens[:, :-1])
    targets = tokens[:, 1:]
    expect_ce = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=0)
    sums = torch.stack([alphas[0, :3].sum(0), alphas[1, :2].sum(0)])  # each caption's own steps (words + EOS)
    expect = expect_ce + 0.5 * ((1 - sums) ** 2).sum(1).mean()
    assert words == 5
    torch.testing.assert_close(ce, expect_ce, rtol=0, atol=1e-12)
    torch.testing.assert_close(loss, expect, rtol=0, atol=1e-12)


def test_word_detection_loss_is_a_max_over_regions():
    """Multiple-instance word detection: image score = best region's score; BCE against the caption's words."""
    m = model()
    x = images(2)
    tokens = torch.tensor([[1, 5, 6, 2, 0], [1, 7, 7, 2, 0]])
    loss, ce, _ = caption_loss(m, x, tokens, penalty=0.0, concepts=0.25)
    regions = m.encoder(x)
    scores = torch.stack([torch.stack([regions[b] @ m.concept.weight[w] + m.concept.bias[w] for w in range(9)], 1)
                          .max(0).values for b in range(2)])                         # (B, V) by hand
    present = torch.tensor([[0, 0, 0, 0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1, 0]], dtype=torch.float64)
    p = torch.sigmoid(scores[:, 3:])
    bce = -(present[:, 3:] * torch.log(p) + (1 - present[:, 3:]) * torch.log(1 - p)).sum() / 2
    torch.testing.assert_close(loss, ce + 0.25 * bce, rtol=0, atol=1e-10)
    assert model(concepts=False)(x, tokens[:, :-1])[2] is None


def test_bad_configs_and_inputs_are_named():
    with pytest.raises(ConfigError, match="nothing to attend over"):
        model(encoder="mlp")
    with pytest.raises(ConfigError, match="multiple of 8"):
        model(image_size=20)
    with pytest.raises(ConfigError, match="--cell must be one of"):
        model(cell="transformer")
    with pytest.raises(InputShapeError, match=r"expects images of shape \(batch, 1, 16, 16\); got \(2, 3, 16, 16\)"):
        model().greedy(images(2, channels=3), 4)
    with pytest.raises(ConfigError, match="beam must be >= 1"):
        model().beam_search(images(1)[0], 0, 4)
