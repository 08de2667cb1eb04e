"""Cells against torch.nn cells and hand-written reference steps, in float64."""
import pytest
import torch

import rnnlab
from rnnlab.errors import ConfigError, InputShapeError, StateDictError, StateError

B, F, H = 3, 4, 5


@pytest.mark.parametrize("ours_cls,torch_cls,kwargs", [
    (rnnlab.LSTMCell, torch.nn.LSTMCell, {}),
    (rnnlab.GRUCell, torch.nn.GRUCell, {}),
    (rnnlab.RNNCell, torch.nn.RNNCell, {"nonlinearity": "tanh"}),
    (rnnlab.RNNCell, torch.nn.RNNCell, {"nonlinearity": "relu"}),
])
@pytest.mark.parametrize("bias", [True, False])
def test_cells_equal_torch_cells(ours_cls, torch_cls, kwargs, bias):
    torch.manual_seed(0)
    ref = torch_cls(F, H, bias=bias, **kwargs).double()
    ours = ours_cls(F, H, bias=bias, **({} if ours_cls is not rnnlab.LSTMCell or not bias else {"forget_bias": None}),
                    **kwargs).double()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(B, F, dtype=torch.double, requires_grad=True)
    state = ours.init_state(B)
    state = tuple(s.normal_().requires_grad_() for s in state) if isinstance(state, tuple) else state.normal_().requires_grad_()
    expected, got = ref(x, state), ours(x, state)
    expected_parts = expected if isinstance(expected, tuple) else (expected,)
    got_parts = got if isinstance(got, tuple) else (got,)
    loss_ref = sum((p * (k + 1)).sum() for k, p in enumerate(expected_parts))
    loss = sum((p * (k + 1)).sum() for k, p in enumerate(got_parts))
    state_parts = list(state) if isinstance(state, tuple) else [state]
    g_ref = torch.autograd.grad(loss_ref, [x, *state_parts, *ref.parameters()])
    g = torch.autograd.grad(loss, [x, *state_parts, *ours.parameters()])
    for a, b in zip([*got_parts, *g], [*expected_parts, *g_ref]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_same_seed_same_init_as_torch_cell():
    torch.manual_seed(3)
    ref = torch.nn.LSTMCell(F, H)
    torch.manual_seed(3)
    ours = rnnlab.LSTMCell(F, H, forget_bias=None)
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert torch.equal(a, b)


def test_lstm_cell_gates_follow_the_equations():
    cell = rnnlab.LSTMCell(F, H).double()
    x = torch.randn(B, F, dtype=torch.double)
    h0, c0 = torch.randn(B, H, dtype=torch.double), torch.randn(B, H, dtype=torch.double)
    (h, c), gates = cell(x, (h0, c0), record=True)
    z = x @ cell.weight_ih.t() + cell.bias_ih + h0 @ cell.weight_hh.t() + cell.bias_hh
    zi, zf, zg, zo = z.chunk(4, 1)
    torch.testing.assert_close(gates["i"], torch.sigmoid(zi))
    torch.testing.assert_close(gates["f"], torch.sigmoid(zf))
    torch.testing.assert_close(gates["g"], torch.tanh(zg))
    torch.testing.assert_close(gates["o"], torch.sigmoid(zo))
    torch.testing.assert_close(c, gates["f"] * c0 + gates["i"] * gates["g"])
    torch.testing.assert_close(h, gates["o"] * torch.tanh(c))


def reference_peephole_step(cell, x, h0, c0):
    """Gers & Schmidhuber 2000, written out independently of the cell's code."""
    W, U, b = cell.weight_ih, cell.weight_hh, cell.bias_ih + cell.bias_hh
    Wi, Wf, Wg, Wo = W.chunk(4)
    Ui, Uf, Ug, Uo = U.chunk(4)
    bi, bf, bg, bo = b.chunk(4)
    pi, pf, po = cell.weight_peephole
    i = torch.sigmoid(x @ Wi.t() + h0 @ Ui.t() + pi * c0 + bi)
    f = torch.sigmoid(x @ Wf.t() + h0 @ Uf.t() + pf * c0 + bf)
    c = f * c0 + i * torch.tanh(x @ Wg.t() + h0 @ Ug.t() + bg)
    o = torch.sigmoid(x @ Wo.t() + h0 @ Uo.t() + po * c + bo)
    return o * torch.tanh(c), c


def reference_layernorm_step(cell, x, h0, c0, eps=1e-5):
    """Ba et al. 2016, written out with explicit means and variances."""
    def ln(v, gain, shift=0.0):
        mean, var = v.mean(-1, keepdim=True), v.var(-1, unbiased=False, keepdim=True)
        return (v - mean) / torch.sqrt(var + eps) * gain + shift
    z = ln(x @ cell.weight_ih.t(), cell.ln_ih_weight) + ln(h0 @ cell.weight_hh.t(), cell.ln_hh_weight) \
        + cell.bias_ih + cell.bias_hh
    zi, zf, zg, zo = z.chunk(4, 1)
    c = torch.sigmoid(zf) * c0 + torch.sigmoid(zi) * torch.tanh(zg)
    return torch.sigmoid(zo) * torch.tanh(ln(c, cell.ln_c_weight, cell.ln_c_bias)), c


@pytest.mark.parametrize("cls,reference", [(rnnlab.PeepholeLSTMCell, reference_peephole_step),
                                           (rnnlab.LayerNormLSTMCell, reference_layernorm_step)])
def test_variants_equal_hand_written_step(cls, reference):
    torch.manual_seed(0)
    cell = cls(F, H).double()
    with torch.no_grad():  # move LN gains/shifts off their 1/0 start so they are really tested
        for p in cell.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(B, F, dtype=torch.double)
    h0, c0 = torch.randn(B, H, dtype=torch.double), torch.randn(B, H, dtype=torch.double)
    h, c = cell(x, (h0, c0))
    h_ref, c_ref = reference(cell, x, h0, c0)
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(c, c_ref)


def test_cell_init_state_and_bad_input():
    cell = rnnlab.LSTMCell(F, H)
    h, c = cell.init_state(2)
    assert h.shape == (2, H) and c.shape == (2, H) and h.abs().sum() == 0
    with pytest.raises(InputShapeError, match=r"\(batch, 4\); got \(3, 7\)"):
        cell(torch.randn(B, 7))
    with pytest.raises(StateError, match=r"c must have shape \(3, 5\)"):
        cell(torch.randn(B, F), (torch.zeros(B, H), torch.zeros(B, 2)))
    with pytest.raises(StateError, match="tuple"):
        cell(torch.randn(B, F), torch.zeros(B, H))
    with pytest.raises(StateDictError, match="weight_ih"):
        cell.load_state_dict(torch.nn.LSTMCell(F + 1, H).state_dict())
    with pytest.raises(ConfigError, match="hidden_size"):
        rnnlab.GRUCell(F, 0)
    with pytest.raises(ConfigError, match="recurrent_init"):
        rnnlab.GRUCell(F, H, recurrent_init="xavier")
