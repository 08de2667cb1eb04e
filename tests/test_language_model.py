"""Language models: step == forward, overfitting, reproducible generation, dropout options, evaluation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnlab.checkpoint import load_checkpoint, save_checkpoint
from rnnlab.data.tokenizer import CharTokenizer
from rnnlab.errors import ConfigError, DataError
from rnnlab.models import LanguageModel, LanguageModelConfig, WindowLanguageModel, WindowLanguageModelConfig
from rnnlab.models.language import locked_dropout, sample_next
from rnnlab.tasks.lm import LanguageModelTask, evaluate_stream
from rnnlab.train import TrainConfig, Trainer


def lm(cell="lstm", **kw):
    torch.manual_seed(0)
    return LanguageModel(LanguageModelConfig(11, cell=cell, embed_size=6, hidden_size=8, num_layers=2, **kw)).eval()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "layernorm"])
def test_step_over_a_sequence_equals_forward(cell):
    model = lm(cell)
    x = torch.randint(0, 11, (3, 9))
    full, state_full = model(x)
    state, outs = None, []
    for t in range(9):
        logits, state = model.step(x[:, t], state)
        outs.append(logits)
    torch.testing.assert_close(torch.stack(outs, 1), full, rtol=1e-5, atol=1e-6)
    flat = lambda s: torch.cat([p.flatten() for layer in s for p in (layer if isinstance(layer, tuple) else (layer,))])
    torch.testing.assert_close(flat(state), flat(state_full), rtol=1e-5, atol=1e-6)


def test_window_model_is_causal_with_carried_context():
    torch.manual_seed(0)
    model = WindowLanguageModel(WindowLanguageModelConfig(11, embed_size=4, hidden_size=8, window=3)).eval()
    x = torch.randint(0, 11, (2, 10))
    full, _ = model(x)
    first, state = model(x[:, :4])
    second, _ = model(x[:, 4:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), full)
    y = x.clone()
    y[:, 5] = (y[:, 5] + 1) % 11  # changes outputs at 5, 6, 7 only (window 3)
    changed = (model(y)[0] - full).abs().amax(dim=(0, 2)) > 0
    assert changed.tolist() == [False] * 5 + [True] * 3 + [False] * 2
    steps, state = [], None
    for t in range(10):
        logits, state = model.step(x[:, t], state)
        steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), full)


def test_tied_weights_share_one_matrix_and_survive_a_checkpoint(tmp_path):
    model = lm(tie_weights=True)
    assert model.decoder.weight is model.embedding.weight
    untied = lm()
    # untied: last LSTM 8->8 and an 11x8 output matrix; tied: last LSTM 8->6 and no output matrix of its own
    last_untied, last_tied = 4 * 8 * (8 + 8) + 2 * 4 * 8, 4 * 6 * (8 + 6) + 2 * 4 * 6
    assert sum(p.numel() for p in untied.parameters()) - sum(p.numel() for p in model.parameters()) == \
        (last_untied - last_tied) + 11 * 8
    save_checkpoint(tmp_path, model, step=0)
    loaded = load_checkpoint(tmp_path).model
    assert loaded.decoder.weight is loaded.embedding.weight
    x = torch.randint(0, 11, (2, 5))
    torch.testing.assert_close(loaded.eval()(x)[0], model(x)[0], rtol=0, atol=0)


def test_locked_dropout_mask_is_constant_over_time():
    torch.manual_seed(0)
    x = torch.ones(4, 7, 5)
    y = locked_dropout(x, 0.5, training=True)
    assert torch.equal(y, y[:, :1].expand_as(y)) and set(y.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(locked_dropout(x, 0.5, training=False), x)


def test_weight_drop_only_in_training_and_gradients_reach_the_weights():
    model = lm(weight_drop=0.5)
    x = torch.randint(0, 11, (2, 6))
    reference = lm()
    torch.testing.assert_close(model(x)[0], reference(x)[0])  # eval: no drop, same weights
    model.train()
    a, b = model(x)[0], model(x)[0]
    assert not torch.allclose(a, b)  # a new DropConnect mask each call
    a.sum().backward()
    assert model.layers[0].weight_hh_l0.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="has none"):
        lm("mingru", weight_drop=0.3)
    with pytest.raises(ConfigError, match="dropout_input"):
        lm(dropout_input=1.0)


@pytest.mark.parametrize("cell", ["lstm", "gru", "peephole", "layernorm"])
def test_weight_drop_uses_the_dropped_matrix_on_every_path(cell):
    # The explicit cells are bound to the layer's tensors once; a dropped W_hh must reach them for the call and
    # the layer must be back on its own weights afterwards (a stale binding would pass the first check only).
    model = lm(cell, weight_drop=0.5).double().train()
    x = torch.randint(0, 11, (2, 6))
    torch.manual_seed(5)
    dropped = model(x)[0]
    torch.manual_seed(5)
    masks = [F.dropout(layer.weight_hh_l0, 0.5, training=True) for layer in model.layers]
    manual = lm(cell).double()
    manual.load_state_dict(model.state_dict())
    with torch.no_grad():
        for layer, matrix in zip(manual.layers, masks):
            layer.weight_hh_l0.copy_(matrix)
    torch.testing.assert_close(dropped, manual(x)[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(model.eval()(x)[0], lm(cell).double().eval()(x)[0], rtol=0, atol=1e-12)


def test_activation_penalties_are_awd_lstm_ar_and_tar_and_reach_the_loss():
    model = lm(activation_reg=2.0, temporal_reg=1.0).double().train()
    x = torch.randint(0, 11, (3, 7))
    logits, _ = model(x)
    h = model.embedding(x).double()
    for layer in model.layers:
        h, _ = layer(h)
    expected = 2.0 * h.pow(2).mean() + 1.0 * (h[:, 1:] - h[:, :-1]).pow(2).mean()
    torch.testing.assert_close(model.activation_penalty(), expected, rtol=1e-12, atol=0)
    assert model.activation_penalty() is None  # read once
    model.eval()(x)
    assert model.activation_penalty() is None  # never in evaluation
    ids = np.random.default_rng(0).integers(0, 11, 400)
    task = LanguageModelTask({"train": ids, "valid": ids}, CharTokenizer(list("abcdefghijk")), batch_size=3, bptt=7)
    batch = next(iter(task.train_batches(0)))
    torch.manual_seed(0)
    with_penalty, _, _ = task.loss(model.train(), batch, None)
    torch.manual_seed(0)
    plain_logits, _ = model(batch[0])
    penalty = model.activation_penalty()
    plain = F.cross_entropy(plain_logits.reshape(-1, 11), batch[1].reshape(-1))
    torch.testing.assert_close(with_penalty, plain + penalty)
    with pytest.raises(ConfigError, match="activation_reg"):
        lm(activation_reg=-1.0)


def test_embedding_dropout_drops_whole_words():
    model = lm(dropout_embed=0.5).train()
    torch.manual_seed(3)
    e = model._embed(torch.tensor([[1, 1, 1, 2, 2, 2]]))
    for word in (e[0, :3], e[0, 3:]):  # the same word type is all kept or all dropped
        assert torch.equal(word, word[:1].expand_as(word))


def test_generation_is_reproducible_and_checked():
    model = lm()
    a = model.generate([1, 2, 3], 20, temperature=1.0, seed=7)
    assert a == model.generate([1, 2, 3], 20, temperature=1.0, seed=7)
    assert a != model.generate([1, 2, 3], 20, temperature=1.0, seed=8)
    greedy = model.generate([1, 2, 3], 10, temperature=0)
    assert greedy == model.generate([1, 2, 3], 10, top_k=1, seed=1)
    logits, state = model(torch.tensor([[1, 2, 3]]))
    assert greedy[0] == int(logits[0, -1].argmax())
    with pytest.raises(ConfigError, match="temperature must be >= 0"):
        model.generate([1], 3, temperature=-1)
    with pytest.raises(ConfigError, match="top_p"):
        model.generate([1], 3, top_p=0)
    with pytest.raises(DataError, match="empty"):
        model.generate([], 3)
    with pytest.raises(DataError, match=r"ids must be in \[0, 11\)"):
        model.generate([11], 3)


def test_top_k_and_top_p_restrict_the_choices():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    g = torch.Generator().manual_seed(0)
    picks = {int(sample_next(logits, temperature=1, top_k=2, top_p=None, generator=g)) for _ in range(200)}
    assert picks == {0, 1}
    picks = {int(sample_next(logits, temperature=1, top_k=None, top_p=0.8, generator=g)) for _ in range(200)}
    assert picks == {0, 1}  # 0.5 + 0.3 reaches 0.8: the nucleus is the first two
    picks = {int(sample_next(logits, temperature=1, top_k=None, top_p=0.81, generator=g)) for _ in range(300)}
    assert picks == {0, 1, 2}


def test_evaluate_stream_covers_every_token_with_carried_state():
    model = lm()
    ids = np.random.default_rng(0).integers(0, 11, 53)
    x = torch.from_numpy(ids).long()[None]
    full, _ = model(x[:, :-1])
    reference = F.cross_entropy(full[0], x[0, 1:]).item()
    assert math.isclose(evaluate_stream(model, ids, batch_size=1, bptt=5)["loss"], reference, rel_tol=1e-6)
    # three streams of 17 targets from zero state, then the 1 left over continues stream 2
    total, state = 0.0, None
    for b in range(3):
        logits, state = model(x[:, b * 17:(b + 1) * 17])
        total += F.cross_entropy(logits[0], x[0, b * 17 + 1:(b + 1) * 17 + 1], reduction="sum").item()
    logits, _ = model(x[:, 51:52], state)
    total += F.cross_entropy(logits[0], x[0, 52:53], reduction="sum").item()
    result = evaluate_stream(model, ids, batch_size=3, bptt=4)
    assert result["tokens"] == 52 and math.isclose(result["loss"], total / 52, rel_tol=1e-6)


def test_small_model_overfits_a_tiny_corpus():
    text = "the clouds are in the sky. " * 6
    tok = CharTokenizer.fit([text])
    ids = np.asarray(tok.encode(text))
    torch.manual_seed(0)
    model = LanguageModel(LanguageModelConfig(tok.vocab_size, embed_size=16, hidden_size=48, num_layers=1))
    task = LanguageModelTask({"train": ids, "valid": ids}, tok, batch_size=2, bptt=20)
    summary = Trainer(model, task, TrainConfig(lr=0.03, max_epochs=60, eval_every=40, progress=False)).fit()
    assert summary["best_valid_loss"] < 0.2  # memorised (the floor: each eval stream starts without context)
    prompt = tok.encode("the clouds are in the")
    assert tok.decode(model.generate(prompt, 6, temperature=0)) == " sky. "
