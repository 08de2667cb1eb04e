"""The compiled LSTM time loop (rnnlab.nn.compiled): equal to the reference loop, and its fallback.

Equality is checked in float64 against the cells unrolled step by step under autograd (``use_fastpath =
False``): outputs, final states and the gradients of inputs, initial states, weights, biases and
peephole weights. Tests that need the built extension skip with the reason when it cannot be built
(no compiler or ninja); the first build takes about a minute and is cached in ``~/.cache/rnnlab``.
"""
import pytest
import torch

import rnnlab
from rnnlab.nn import compiled, fastpath, kernels
from rnnlab.nn.cells import LSTMCell
from rnnlab.nn.variants import PeepholeLSTMCell

D64 = torch.float64


@pytest.fixture(scope="module")
def built():
    """Skip unless the extension is built (once per session; later sessions load it from the cache)."""
    if not compiled.available():
        pytest.skip(f"compiled LSTM loop {compiled.status()}")


@pytest.fixture
def count_calls(monkeypatch):
    """How many times each loop ran: {"compiled": n, "python": n}."""
    calls = {"compiled": 0, "python": 0}
    for key, loop in (("compiled", compiled._CompiledLSTMLoop), ("python", fastpath._LSTMLoop)):
        original = loop.apply
        monkeypatch.setattr(loop, "apply", lambda *a, _key=key, _f=original: calls.__setitem__(_key, calls[_key] + 1)
                            or _f(*a))
    return calls


def _run(layer, x, hx, lengths):
    """Outputs, final state and gradients of a loss touching all of them."""
    out, (h_n, c_n) = layer(x, hx, lengths=lengths)
    weights = torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)
    loss = (out * weights).sum() + (h_n ** 2).sum() + c_n.sum()
    return [out, h_n, c_n, *torch.autograd.grad(loss, [x, *hx, *layer.parameters()])]


def _compare(cell, batch, lengths, bidirectional, dtype, tol):
    torch.manual_seed(0)
    layers, directions = 2, 2 if bidirectional else 1
    layer = rnnlab.LSTM(4, 5, num_layers=layers, bidirectional=bidirectional, batch_first=True, cell=cell,
                        backend="explicit", dtype=dtype)
    x = torch.randn(batch, 7, 4, dtype=dtype, requires_grad=True)
    hx = tuple(torch.randn(layers * directions, batch, 5, dtype=dtype, requires_grad=True) for _ in range(2))
    got = _run(layer, x, hx, lengths)
    layer.use_fastpath = False  # the reference: the cells unrolled under autograd
    want = _run(layer, x, hx, lengths)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, **tol)


@pytest.mark.parametrize("cell", ["lstm", "peephole"])
@pytest.mark.parametrize("batch, lengths", [(1, None), (3, None), (3, [7, 2, 5])], ids=["b1", "b3", "b3-lengths"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["forward", "bidirectional"])
def test_compiled_loop_equals_the_reference_in_float64(built, count_calls, cell, batch, lengths, bidirectional):
    _compare(cell, batch, None if lengths is None else torch.tensor(lengths), bidirectional, D64,
             dict(rtol=1e-10, atol=1e-12))
    assert count_calls == {"compiled": 2 * (2 if bidirectional else 1), "python": 0}  # every layer and direction


@pytest.mark.parametrize("cell", ["lstm", "peephole"])
def test_compiled_loop_is_close_in_float32(built, count_calls, cell):
    _compare(cell, 3, torch.tensor([7, 2, 5]), True, torch.float32, dict(rtol=1e-4, atol=1e-5))
    assert count_calls["compiled"] == 4


@pytest.mark.parametrize("cell_class", [LSTMCell, PeepholeLSTMCell])
def test_gradcheck(built, cell_class):
    torch.manual_seed(1)
    cell = cell_class(2, 3, dtype=D64)
    lengths = torch.tensor([4, 2])

    def loop(x, h0, c0, weight_hh, *peephole):
        xp = torch.nn.functional.linear(x, cell.weight_ih, cell.bias_ih + cell.bias_hh)
        return compiled._CompiledLSTMLoop.apply(xp, h0, c0, weight_hh, *(peephole or (None,)), lengths)

    inputs = [torch.randn(4, 2, 2, dtype=D64), torch.randn(2, 3, dtype=D64), torch.randn(2, 3, dtype=D64),
              cell.weight_hh.detach().clone()]
    if cell_class is PeepholeLSTMCell:
        inputs.append(cell.weight_peephole.detach().clone())
    assert torch.autograd.gradcheck(loop, [t.requires_grad_() for t in inputs])


def test_regularizers_run_the_python_loop(built, count_calls):
    layer = rnnlab.LSTM(3, 4, zoneout=0.1, recurrent_dropout=0.2)
    layer(torch.randn(5, 2, 3))
    assert count_calls == {"compiled": 0, "python": 1}


def test_rnnlab_compiled_0_falls_back_to_the_python_loop(monkeypatch, count_calls):
    monkeypatch.setenv("RNNLAB_COMPILED", "0")
    assert not compiled.available()
    assert compiled.status().startswith("not available: disabled by RNNLAB_COMPILED=0")
    _compare("peephole", 3, torch.tensor([7, 2, 5]), True, D64, dict(rtol=1e-10, atol=1e-12))
    assert count_calls == {"compiled": 0, "python": 4}


def test_a_failed_build_falls_back_and_says_why(monkeypatch, count_calls):
    monkeypatch.delenv("RNNLAB_COMPILED", raising=False)
    monkeypatch.setattr(compiled, "_built", {"error": "RuntimeError: Ninja is required to load C++ extensions"})
    assert compiled.status() == ("not available: RuntimeError: Ninja is required to load C++ extensions "
                                 "(the Python loop of rnnlab.nn.fastpath runs)")
    out, _ = kernels.fast_lstm(LSTMCell(3, 4), torch.randn(5, 2, 3))
    assert out.shape == (5, 2, 4) and count_calls == {"compiled": 0, "python": 1}


def test_status_names_the_build_directory(built):
    assert compiled.status().startswith("compiled (built in ") and "rnnlab" in compiled.status()


@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("batch", [1, 4])
def test_recording_without_gradients_comes_from_the_compiled_forward(built, with_lengths, batch, monkeypatch):
    torch.manual_seed(0)
    layer = rnnlab.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True).double()
    x = torch.randn(batch, 7, 3, dtype=D64)
    lengths = torch.tensor([7, 2, 5, 1][:batch]) if with_lengths else None
    hx = tuple(torch.randn_like(h) for h in layer.init_state(batch, dtype=D64))
    calls = []
    original = compiled.record_lstm
    monkeypatch.setattr(compiled, "record_lstm", lambda *a, **k: calls.append(1) or original(*a, **k))
    assert layer.path(record=True) == "rebuild"
    with torch.no_grad():
        out, state, record = layer(x, hx, lengths=lengths, record=True)
        assert len(calls) == 4  # 2 layers x 2 directions
        layer.use_fastpath = False  # the reference: cells unrolled step by step
        ref_out, ref_state, ref_record = layer(x, hx, lengths=lengths, record=True)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-12)
    for got, want in zip(state, ref_state):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    for layer_record, ref_layer in zip(record, ref_record):
        for direction, ref_direction in zip(layer_record, ref_layer):
            assert direction.keys() == ref_direction.keys()
            for name in direction:
                torch.testing.assert_close(direction[name], ref_direction[name], rtol=1e-10, atol=1e-12, msg=name)
    layer.use_fastpath = True
    layer(x.requires_grad_(), hx, lengths=lengths, record=True)  # gradients wanted: the fused rebuild, not this
    assert len(calls) == 4
