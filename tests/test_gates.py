"""Gate traces, text features and the interpretable-unit ranking (rnnlab.analysis.gates)."""
import math

import numpy as np
import pytest
import torch

from rnnlab.analysis.gates import (
    best_per_feature,
    correlations,
    gate_traces,
    rank_units,
    record_language_model,
    text_features,
)
from rnnlab.analysis.next_token import next_tokens, next_words
from rnnlab.data.tokenizer import CharTokenizer
from rnnlab.errors import ConfigError, InputShapeError
from rnnlab.models.language import LanguageModel, LanguageModelConfig


def test_text_features_by_hand():
    text = 'ab "c (d)" e\nf'
    f = text_features(list(text))
    #           a  b  _  "  c  _  (  d  )  "  _  e  \n f
    quotes = [0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    brackets = [0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0]
    column = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 1]
    end = [0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 1]
    assert f["inside quotes"].tolist() == quotes
    assert f["inside brackets"].tolist() == brackets
    assert f["position in line"].tolist() == column
    assert f["end of word"].tolist() == end


def test_text_features_multi_char_tokens_take_their_last_character():
    tokens = ["ab ", '"cd', ' e"', "\n"]
    f = text_features(tokens)
    assert f["inside quotes"].tolist() == [0, 1, 0, 0]
    assert f["position in line"].tolist() == [3, 6, 9, 0]


def test_blank_line_ends_an_unmatched_quote():
    f = text_features(list('a "b\n\nc'))
    assert f["inside quotes"].tolist() == [0, 0, 1, 1, 1, 0, 0]


def test_correlations_match_numpy_and_drop_constant_features():
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(50, 6))
    acts[:, 2] = 0.0  # a unit that never moves
    feats = {"x": rng.normal(size=50), "const": np.ones(50)}
    r = correlations(acts, feats)
    assert set(r) == {"x"}
    for unit in (0, 1, 3, 4, 5):
        assert r["x"][unit] == pytest.approx(np.corrcoef(acts[:, unit], feats["x"])[0, 1], abs=1e-12)
    assert r["x"][2] == 0.0
    with pytest.raises(InputShapeError, match=r"\(50,\)"):
        correlations(acts, {"short": np.ones(49)})


def test_rank_units_finds_planted_units():
    rng = np.random.default_rng(1)
    feats = text_features(list('x = f("a b", (c, d))\n' * 20))
    T = len(feats["inside quotes"])
    c = rng.normal(size=(T, 10))
    c[:, 7] = 3 * feats["inside quotes"] + 0.1 * rng.normal(size=T)
    c[:, 2] = -feats["position in line"] + 0.1 * rng.normal(size=T)
    h = rng.normal(size=(T, 10))
    ranked = rank_units({"c": c, "h": h}, feats, top=3)
    top = {(r["unit"], r["feature"]) for r in ranked[:2]}
    assert top == {(7, "inside quotes"), (2, "position in line")}
    assert all(r["signal"] == "c" for r in ranked[:2])
    assert len({r["unit"] for r in ranked}) == len(ranked)  # each unit once
    best = best_per_feature({"c": c, "h": h}, feats)
    assert best["inside quotes"]["unit"] == 7 and best["position in line"]["r"] < -0.9


def _model(vocab: int, *, layers: int = 1, seed: int = 0, cell: str = "lstm") -> LanguageModel:
    torch.manual_seed(seed)
    return LanguageModel(LanguageModelConfig(vocab_size=vocab, embed_size=5, hidden_size=7, num_layers=layers, cell=cell))


def test_recorded_gates_are_the_models_own_computation():
    model = _model(11, layers=2)
    ids = torch.randint(0, 11, (30,))
    tr = record_language_model(model, ids)  # last layer
    assert set(tr) == {"i", "f", "g", "o", "c", "h"} and tr["c"].shape == (30, 7)
    logits, _ = model(ids[None])
    decoded = model.decoder(torch.from_numpy(tr["h"]).float())
    torch.testing.assert_close(decoded, logits[0], atol=1e-5, rtol=1e-5)  # h of the last layer feeds the output
    c_prev = np.vstack([np.zeros((1, 7)), tr["c"][:-1]])
    np.testing.assert_allclose(tr["c"], tr["f"] * c_prev + tr["i"] * tr["g"], atol=1e-6)  # c_t = f c_{t-1} + i g
    np.testing.assert_allclose(tr["h"], tr["o"] * np.tanh(tr["c"]), atol=1e-6)
    first = record_language_model(model, ids, layer=0)
    out0, _ = model.layers[0](model.embedding(ids[None]))
    np.testing.assert_allclose(first["h"], out0[0].detach().numpy(), atol=1e-6)
    assert model.training  # mode restored


def test_gate_traces_errors():
    with pytest.raises(ConfigError, match="record=True"):
        gate_traces([])
    with pytest.raises(ConfigError, match="LanguageModel"):
        record_language_model(torch.nn.Linear(2, 2), [1, 2])
    with pytest.raises(InputShapeError, match="empty"):
        record_language_model(_model(5), [])


def test_next_tokens_are_the_models_distribution():
    tok = CharTokenizer(["\n", " ", ".", "a", "b", "<unk>"])
    model = _model(tok.vocab_size)
    prompt = tok.encode("ab a")
    top = next_tokens(model, prompt, tok, k=3)
    probs = model.next_distribution(prompt)
    expected = probs.topk(3)
    assert [p for _, p in top] == pytest.approx(expected.values.tolist())
    assert [t for t, _ in top] == [tok.decode([int(i)]) for i in expected.indices]


def test_next_words_equal_brute_force_enumeration():
    """Every word of up to 3 letters over {a, b}, scored exactly: the beam search must find the same top 5."""
    tok = CharTokenizer(["\n", " ", ".", "a", "b", "<unk>"])
    model = _model(tok.vocab_size, seed=3).eval()
    prompt = tok.encode("ab ba ")
    letters, enders = [tok.index["a"], tok.index["b"]], [tok.index[c] for c in ("\n", " ", ".", "<unk>")]

    @torch.no_grad()
    def logp(seq):  # log p(seq | prompt) as a sum over steps
        logits, _ = model(torch.tensor([prompt + seq]))
        lp = logits[0, len(prompt) - 1:].log_softmax(-1)
        return sum(float(lp[k, t]) for k, t in enumerate(seq)), lp[len(seq)]

    exact = {}
    for n in (1, 2, 3):
        for code in range(2 ** n):
            seq = [letters[(code >> k) & 1] for k in range(n)]
            lp, last = logp(seq)
            exact[tok.decode(seq)] = math.exp(lp + float(torch.logsumexp(last[enders], 0)))
    _, first = logp([])
    for e in enders:  # a non-letter straight away is its own "word"
        exact[tok.decode([e]) if tok.tokens[e] != "<unk>" else "<unk>"] = math.exp(float(first[e]))
    found = next_words(model, prompt, tok, k=5, beam=8, max_chars=3)
    best = sorted(exact.items(), key=lambda kv: -kv[1])[:5]
    assert [w for w, _ in found] == [w for w, _ in best]
    assert [p for _, p in found] == pytest.approx([p for _, p in best], rel=1e-5)
