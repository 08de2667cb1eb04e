"""Gate recording at fused speed (rnnlab.nn.rebuild) equals the unrolled recording, values and gradients, in float64."""
import pytest
import torch

import rnnlab

D64 = torch.float64


@pytest.mark.parametrize("make", [
    lambda: rnnlab.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True),
    lambda: rnnlab.LSTM(3, 5, batch_first=True, forget_bias=None),
    lambda: rnnlab.GRU(3, 5, num_layers=2, bidirectional=True, batch_first=True),
    lambda: rnnlab.RNN(3, 5, num_layers=2, batch_first=True),
    lambda: rnnlab.RNN(3, 5, nonlinearity="relu", bidirectional=True, batch_first=True),
], ids=["lstm-2x2", "lstm", "gru-2x2", "rnn-2", "rnn-relu-bi"])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_rebuilt_gates_equal_the_unrolled_recording(make, with_lengths):
    torch.manual_seed(0)
    layer = make().double()
    x = torch.randn(4, 7, 3, dtype=D64, requires_grad=True)
    lengths = torch.tensor([7, 2, 5, 1]) if with_lengths else None
    hx = layer.init_state(4, dtype=D64)
    hx = tuple(torch.randn_like(h) for h in hx) if isinstance(hx, tuple) else torch.randn_like(hx)
    assert layer.path(record=True) == "rebuild"
    out, state, record = layer(x, hx, lengths=lengths, record=True)
    layer.use_fastpath = False  # the reference: cells unrolled step by step
    assert layer.path(record=True) == "unroll"
    ref_out, ref_state, ref_record = layer(x, hx, lengths=lengths, record=True)
    torch.testing.assert_close(out, ref_out)
    for got, want in zip(state if isinstance(state, tuple) else (state,),
                         ref_state if isinstance(ref_state, tuple) else (ref_state,)):
        torch.testing.assert_close(got, want)
    for layer_record, ref_layer in zip(record, ref_record):
        for direction, ref_direction in zip(layer_record, ref_layer):
            assert direction.keys() == ref_direction.keys()
            for name in direction:
                torch.testing.assert_close(direction[name], ref_direction[name], msg=name)
    # gradients through outputs and recorded gates alike
    weights = torch.randn_like(out)
    gate = record[-1][0]["h"]

    def loss(o, g):
        return (o * weights).sum() + g.square().sum()

    grads = torch.autograd.grad(loss(out, gate), [x, *layer.parameters()])
    ref_grads = torch.autograd.grad(loss(ref_out, ref_record[-1][0]["h"]), [x, *layer.parameters()])
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)
