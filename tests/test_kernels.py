"""The one decision of which code runs (rnnlab.nn.kernels): every layer configuration takes the path it should."""
import pytest
import torch

import rnnlab
from rnnlab.errors import ConfigError
from rnnlab.nn.cells import LSTMCell
from rnnlab.nn.kernels import KERNELS, choose_path, fast_lstm, kernels_for, scan_method
from rnnlab.nn.minimal_layers import MinGRU, MinLSTM

D64 = torch.float64


@pytest.mark.parametrize("layer, record, expected", [
    (lambda: rnnlab.LSTM(3, 4), False, "fused"),
    (lambda: rnnlab.LSTM(3, 4), True, "rebuild"),  # fused outputs, gates rebuilt at once
    (lambda: rnnlab.LSTM(3, 4, backend="explicit"), True, "unroll"),
    (lambda: rnnlab.LSTM(3, 4, cell="peephole"), True, "unroll"),
    (lambda: rnnlab.LSTM(3, 4, zoneout=0.1), True, "unroll"),
    (lambda: rnnlab.GRU(3, 4), True, "rebuild"),
    (lambda: rnnlab.LSTM(3, 4, backend="explicit"), False, "fast"),
    (lambda: rnnlab.LSTM(3, 4, cell="peephole"), False, "fast"),
    (lambda: rnnlab.LSTM(3, 4, cell="layernorm"), False, "fast"),
    (lambda: rnnlab.LSTM(3, 4, zoneout=0.1), False, "fast"),
    (lambda: rnnlab.LSTM(3, 4, recurrent_dropout=0.2), False, "fast"),
    (lambda: rnnlab.LSTM(3, 4, proj_size=2), False, "fused"),
    (lambda: rnnlab.LSTM(3, 4, proj_size=2, backend="explicit"), False, "unroll"),  # no fast loop with projection
    (lambda: rnnlab.GRU(3, 4), False, "fused"),
    (lambda: rnnlab.GRU(3, 4, backend="explicit"), False, "fast"),
    (lambda: rnnlab.RNN(3, 4, backend="explicit"), True, "unroll"),
    (lambda: rnnlab.RNN(3, 4, backend="explicit"), False, "fast"),
    (lambda: rnnlab.RNN(3, 4), True, "rebuild"),
    (lambda: MinGRU(3, 4), False, "scan"),
    (lambda: MinLSTM(3, 4), True, "scan"),
    (lambda: MinGRU(3, 4, scan="sequential"), False, "unroll"),
])
def test_each_layer_takes_its_path(layer, record, expected):
    assert layer().path(record) == expected


def test_use_fastpath_false_falls_back_to_the_reference_loop():
    layer = rnnlab.LSTM(3, 4, backend="explicit")
    layer.use_fastpath = False
    assert layer.path() == "unroll"


def test_a_subclassed_cell_gets_only_the_reference_loop():
    class MyCell(LSTMCell):
        pass

    assert kernels_for(MyCell).fast is None and not kernels_for(MyCell).fused
    assert choose_path(MyCell) == "unroll"
    assert KERNELS[LSTMCell].fast is fast_lstm  # the compiled loop or fastpath's (tests/test_compiled.py)


def test_fused_backend_refuses_what_it_cannot_compute():
    assert choose_path(LSTMCell, backend="fused", record=True) == "rebuild"  # recording no longer needs unrolling
    with pytest.raises(ConfigError, match="gate recording"):
        choose_path(LSTMCell, backend="fused", record=True, projected=True)
    with pytest.raises(ConfigError, match="zoneout"):
        choose_path(LSTMCell, backend="fused", regularized=True)
    with pytest.raises(ConfigError, match="backend must be one of"):
        rnnlab.LSTM(3, 4, backend="gpu")


def test_scan_method_auto_is_chunked_on_cpu_and_log_on_gpu():
    assert scan_method("auto", is_cuda=False) == "chunked"
    assert scan_method("auto", is_cuda=True) == "log"
    with pytest.raises(ConfigError, match="scan must be one of"):
        scan_method("parallel", is_cuda=False)


@pytest.mark.parametrize("make", [lambda: rnnlab.LSTM(3, 5, backend="explicit", num_layers=2, bidirectional=True, batch_first=True),
                                  lambda: rnnlab.LSTM(3, 5, cell="layernorm", bidirectional=True, batch_first=True),
                                  lambda: rnnlab.GRU(3, 5, backend="explicit", num_layers=2, bidirectional=True,
                                                     batch_first=True),
                                  lambda: rnnlab.RNN(3, 5, backend="explicit", num_layers=2, bidirectional=True,
                                                     batch_first=True),
                                  lambda: rnnlab.RNN(3, 5, nonlinearity="relu", backend="explicit", batch_first=True)],
                         ids=["lstm", "layernorm", "gru", "rnn", "rnn-relu"])
def test_fast_path_equals_the_reference_loop_in_float64(make):
    torch.manual_seed(0)
    layer = make().double()
    x = torch.randn(4, 7, 3, dtype=D64)
    lengths = torch.tensor([7, 3, 5, 1])
    assert layer.path() == "fast"
    x.requires_grad_(True)
    results = []
    for fast in (True, False):  # the fast kernel, then the reference loop
        layer.use_fastpath = fast
        out, state = layer(x, lengths=lengths)
        state = state if isinstance(state, tuple) else (state,)
        loss = (out * torch.linspace(-1, 1, out.shape[-1], dtype=D64)).sum() + sum(s.square().sum() for s in state)
        results.append((out, state, torch.autograd.grad(loss, [x, *layer.parameters()])))
    (out, state, grads), (ref_out, ref_state, ref_grads) = results
    torch.testing.assert_close(out, ref_out)
    for got, want in zip((*state, *grads), (*ref_state, *ref_grads)):
        torch.testing.assert_close(got, want)
