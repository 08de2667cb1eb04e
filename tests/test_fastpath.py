"""The fast explicit LSTM loop (one autograd node, hand-written backward) and its regularizers.

Everything is compared in float64 against ``torch.nn.LSTM`` or against the cells unrolled step by
step under autograd (``use_fastpath = False``), values and every gradient.
"""
import pytest
import torch

import rnnlab
from rnnlab.errors import ConfigError
from rnnlab.nn import fastpath
from rnnlab.nn.regularize import draw_masks

D64 = torch.float64


@pytest.fixture(autouse=True)
def python_loop(monkeypatch):
    """This file tests the Python loops; the compiled LSTM loop has tests/test_compiled.py."""
    monkeypatch.setenv("RNNLAB_COMPILED", "0")


def _grads(layer, x, hx, lengths=None, seed=None):
    """Outputs, final state and gradients of a loss touching all of them."""
    if seed is not None:
        torch.manual_seed(seed)
    out, (h_n, c_n) = layer(x, hx) if lengths is None else layer(x, hx, lengths=lengths)
    loss = (out * torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)).sum() + (h_n ** 2).sum() + c_n.sum()
    inputs = [x, *hx, *layer.parameters()]
    return [out, h_n, c_n, *torch.autograd.grad(loss, inputs)]


def _data(bidirectional, batch=3, steps=7, features=4, hidden=5, layers=2):
    x = torch.randn(batch, steps, features, dtype=D64, requires_grad=True)
    shape = (layers * (2 if bidirectional else 1), batch, hidden)
    hx = (torch.randn(shape, dtype=D64, requires_grad=True), torch.randn(shape, dtype=D64, requires_grad=True))
    return x, hx


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_fast_explicit_equals_torch_nn(bidirectional, with_lengths, monkeypatch):
    torch.manual_seed(0)
    ref = torch.nn.LSTM(4, 5, num_layers=2, bidirectional=bidirectional, batch_first=True).double()
    ours = rnnlab.LSTM.from_torch(ref, backend="explicit")
    calls = []
    original = fastpath._LSTMLoop.apply
    monkeypatch.setattr(fastpath._LSTMLoop, "apply", lambda *a: calls.append(1) or original(*a))
    x, hx = _data(bidirectional)
    lengths = torch.tensor([7, 3, 5]) if with_lengths else None
    got = _grads(ours, x, hx, lengths)
    assert len(calls) == 2 * (2 if bidirectional else 1)  # the fast loop ran, once per layer and direction
    if with_lengths:  # torch.nn needs a PackedSequence for lengths
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, (h_n, c_n) = ref(packed, hx)
        out = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=7)[0]
        loss = (out * torch.linspace(-1, 1, out.shape[-1], dtype=D64)).sum() + (h_n ** 2).sum() + c_n.sum()
        want = [out, h_n, c_n, *torch.autograd.grad(loss, [x, *hx, *ref.parameters()])]
    else:
        want = _grads(ref, x, hx)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "peephole", "layernorm"])
@pytest.mark.parametrize("regularizers", [{}, {"zoneout": (0.3, 0.2), "recurrent_dropout": 0.4}])
@pytest.mark.parametrize("training", [True, False])
def test_fast_loop_equals_unrolled_cells(cell, regularizers, training):
    torch.manual_seed(1)
    layer = rnnlab.LSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True, cell=cell, backend="explicit",
                        dtype=D64, **regularizers)
    layer.train(training)
    x, hx = _data(True)
    lengths = torch.tensor([7, 2, 6])
    fast = _grads(layer, x, hx, lengths, seed=5)  # same seed: the same masks on both paths
    layer.use_fastpath = False
    slow = _grads(layer, x, hx, lengths, seed=5)
    for g, w in zip(fast, slow):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


def _hand_loop(cell, x, drop, zone_h, zone_c):
    """Krueger et al.'s zoneout and Gal & Ghahramani's dropout written out over LSTMCell, time-major x."""
    h, c = cell.init_state(x.shape[1], dtype=x.dtype)
    outs = []
    for t in range(x.shape[0]):
        u = h if drop is None else h * drop
        h_new, c_new = cell(x[t], (u, c))
        c = zone_c[t] * c + (1 - zone_c[t]) * c_new
        h = zone_h[t] * h + (1 - zone_h[t]) * h_new
        outs.append(h)
    return torch.stack(outs), h, c


@pytest.mark.parametrize("training", [True, False])
def test_zoneout_and_dropout_follow_the_papers(training):
    torch.manual_seed(2)
    layer = rnnlab.LSTM(3, 4, zoneout=(0.4, 0.3), recurrent_dropout=0.5, dtype=D64).train(training)
    x = torch.randn(6, 2, 3, dtype=D64)
    torch.manual_seed(7)
    drop, zone_h, zone_c = draw_masks(0.5, (0.4, 0.3), training, 6, 2, 4, x)
    if training:
        assert set(drop.unique().tolist()) <= {0.0, 2.0}  # one mask per sequence, scaled by 1/(1-p)
        assert set(zone_h.unique().tolist()) <= {0.0, 1.0}
    else:  # eval: no dropout, zoneout mixes with the constant probability
        assert drop is None and torch.all(zone_h == 0.3) and torch.all(zone_c == 0.4)
    torch.manual_seed(7)
    out, (h_n, c_n) = layer(x)
    want_out, want_h, want_c = _hand_loop(layer.bound_cell(0, 0), x, drop, zone_h, zone_c)
    torch.testing.assert_close(out, want_out)
    torch.testing.assert_close(h_n[0], want_h)
    torch.testing.assert_close(c_n[0], want_c)


def test_zoneout_one_keeps_the_state_and_zero_is_plain_lstm():
    torch.manual_seed(3)
    ref = torch.nn.LSTM(3, 4).double()
    x = torch.randn(5, 2, 3, dtype=D64)
    hx = (torch.randn(1, 2, 4, dtype=D64), torch.randn(1, 2, 4, dtype=D64))
    frozen = rnnlab.LSTM.from_torch(ref, zoneout=1.0).train()
    out, (h_n, c_n) = frozen(x, hx)
    torch.testing.assert_close(out, hx[0].expand(5, 2, 4))
    torch.testing.assert_close(h_n, hx[0])
    torch.testing.assert_close(c_n, hx[1])
    plain = rnnlab.LSTM.from_torch(ref, zoneout=0.0, recurrent_dropout=0.3).eval()  # dropout is off in eval
    assert plain.path() == "fast"  # explicit, one autograd node
    for got, want in zip(plain(x, hx)[1] + (plain(x, hx)[0],), ref(x, hx)[1] + (ref(x, hx)[0],)):
        torch.testing.assert_close(got, want)


def test_recurrent_dropout_changes_training_only():
    torch.manual_seed(4)
    layer = rnnlab.LSTM(3, 4, recurrent_dropout=0.5)
    x = torch.randn(8, 2, 3)
    layer.eval()
    torch.testing.assert_close(layer(x)[0], layer(x)[0])
    layer.train()
    assert not torch.allclose(layer(x)[0], layer(x)[0])


def test_record_with_zoneout_reproduces_outputs():
    layer = rnnlab.LSTM(3, 4, zoneout=0.3, batch_first=True).eval()
    x = torch.randn(2, 5, 3)
    out, _ = layer(x)
    out_rec, _, rec = layer(x, record=True)
    torch.testing.assert_close(out_rec, out)
    torch.testing.assert_close(rec[0][0]["h"], out)


def test_regularizer_options_are_checked():
    with pytest.raises(ConfigError, match="zoneout"):
        rnnlab.LSTM(3, 4, zoneout=1.5)
    with pytest.raises(ConfigError, match="zoneout"):
        rnnlab.LSTM(3, 4, zoneout=(0.1, 0.2, 0.3))
    with pytest.raises(ConfigError, match="recurrent_dropout"):
        rnnlab.LSTM(3, 4, recurrent_dropout=1.0)
    with pytest.raises(ConfigError, match="zoneout"):
        rnnlab.LSTM(3, 4, zoneout=0.1, backend="fused")(torch.randn(2, 1, 3))
