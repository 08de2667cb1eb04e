"""minGRU / minLSTM layers (the scans themselves: test_scan.py), checked against a plain loop written from the paper.

The reference below is deliberately independent of the library: one sequence at a time, cut to
its own length, each layer and direction stepped with Python loops over Feng et al.'s equations.
"""
import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnlab.errors import ConfigError, InputShapeError, LengthsError, StateError
from rnnlab.nn.minimal import MinGRUCell, MinLSTMCell
from rnnlab.nn.minimal_layers import MinGRU, MinLSTM

D64 = torch.float64


def _g(x):
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def _paper_step(kind, k, h):
    """One step of the paper's equations from the projected input ``k``."""
    if kind == "gru":
        k_z, k_n = k.chunk(2, -1)
        z = torch.sigmoid(k_z)
        return (1 - z) * h + z * _g(k_n)
    k_f, k_i, k_g = k.chunk(3, -1)
    f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
    return f / (f + i) * h + i / (f + i) * _g(k_g)


def reference(layer, x, h0=None, lengths=None):
    """Batch-first ``x (B, T, F)`` -> output ``(B, T, D*H)``, ``h_n (L*D, B, H)``, by loops."""
    kind = "gru" if isinstance(layer, MinGRU) else "lstm"
    batch, steps = x.shape[:2]
    dirs = 2 if layer.bidirectional else 1
    out = torch.zeros(batch, steps, dirs * layer.hidden_size, dtype=x.dtype)
    h_n = torch.zeros(layer.num_layers * dirs, batch, layer.hidden_size, dtype=x.dtype)
    for b in range(batch):
        n = steps if lengths is None else int(lengths[b])
        seq = x[b, :n]  # (n, F)
        for l in range(layer.num_layers):
            outs = []
            for d in range(dirs):
                sfx = f"_l{l}" + ("_reverse" if d else "")
                w, bias = getattr(layer, "weight_ih" + sfx), getattr(layer, "bias_ih" + sfx)
                h = torch.zeros(layer.hidden_size, dtype=x.dtype) if h0 is None else h0[l * dirs + d, b]
                ys = [None] * n
                for t in (range(n - 1, -1, -1) if d else range(n)):
                    h = _paper_step(kind, w @ seq[t] + bias, h)
                    ys[t] = h
                h_n[l * dirs + d, b] = h
                outs.append(torch.stack(ys))
            seq = torch.cat(outs, -1)
        out[b, :n] = seq
    return out, h_n


@pytest.fixture(params=[MinGRU, MinLSTM], ids=["mingru", "minlstm"])
def layer_class(request):
    return request.param


# ----- layers against the paper's equations ---------------------------------------------------------
@pytest.mark.parametrize("scan", ["chunked", "log", "sequential"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_layer_equals_paper_loop_with_lengths(layer_class, scan, bidirectional):
    torch.manual_seed(3)
    layer = layer_class(3, 4, num_layers=2, bidirectional=bidirectional, batch_first=True, scan=scan).double()
    x = torch.randn(3, 7, 3, dtype=D64)
    h0 = torch.randn(2 * (2 if bidirectional else 1), 3, 4, dtype=D64)
    lengths = torch.tensor([7, 2, 5])
    out, h_n = layer(x, h0, lengths=lengths)
    ref_out, ref_h = reference(layer, x, h0, lengths)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h_n, ref_h, rtol=1e-10, atol=1e-12)
    out, h_n = layer(x)  # no lengths, zero state
    ref_out, ref_h = reference(layer, x)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h_n, ref_h, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("scan", ["chunked", "log"])
def test_parallel_gradients_equal_sequential(layer_class, scan):
    torch.manual_seed(4)
    layer = layer_class(3, 4, num_layers=2, bidirectional=True, scan="sequential").double()
    x = torch.randn(9, 2, 3, dtype=D64, requires_grad=True)
    h0 = torch.randn(4, 2, 4, dtype=D64, requires_grad=True)
    lengths = torch.tensor([9, 4])
    inputs = [x, h0, *layer.parameters()]

    def grads():
        out, h_n = layer(x, h0, lengths=lengths)
        return torch.autograd.grad((out ** 2).sum() + h_n.sum(), inputs)

    ref = grads()
    layer.scan = scan
    for got, want in zip(grads(), ref):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)


def test_padding_does_not_leak(layer_class):
    torch.manual_seed(5)
    layer = layer_class(2, 3, bidirectional=True, batch_first=True)
    x = torch.randn(2, 6, 2, requires_grad=True)
    lengths = torch.tensor([6, 3])
    out, h_n = layer(x, lengths=lengths)
    assert torch.all(out[1, 3:] == 0)
    x2 = x.detach().clone()
    x2[1, 3:] = 1e3  # garbage in the padding changes nothing
    out2, h_n2 = layer(x2, lengths=lengths)
    torch.testing.assert_close(out2, out)
    torch.testing.assert_close(h_n2, h_n)
    (out.sum() + h_n.sum()).backward()
    assert torch.all(x.grad[1, 3:] == 0) and torch.all(torch.isfinite(x.grad))


def test_packed_sequence_equals_lengths(layer_class):
    torch.manual_seed(6)
    layer = layer_class(2, 3, num_layers=2, batch_first=True)
    x, lengths = torch.randn(3, 5, 2), torch.tensor([2, 5, 4])
    out, h_n = layer(x, lengths=lengths)
    packed_out, packed_h = layer(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    torch.testing.assert_close(pad_packed_sequence(packed_out, batch_first=True, total_length=5)[0], out)
    torch.testing.assert_close(packed_h, h_n)


# ----- inference step by step -------------------------------------------------------------------
def test_step_by_step_inference_equals_parallel(layer_class):
    torch.manual_seed(7)
    layer = layer_class(3, 4, num_layers=2, batch_first=True).double()
    x = torch.randn(2, 12, 3, dtype=D64)
    out, h_n = layer(x)
    state, steps = None, []
    for t in range(x.shape[1]):  # constant-size state carried between one-step calls
        y, state = layer(x[:, t : t + 1], state)
        steps.append(y)
    torch.testing.assert_close(torch.cat(steps, 1), out)
    torch.testing.assert_close(state, h_n)
    # and the bare cells of layer 0 give layer 0's states
    cell, h = layer.bound_cell(0, 0), None
    first_layer = layer_class(3, 4, batch_first=True).double()
    first_layer.load_state_dict({k[:-3] + "_l0": v for k, v in layer.state_dict().items() if k.endswith("_l0")})
    for t in range(x.shape[1]):
        h = cell(x[:, t], h)
    torch.testing.assert_close(h, first_layer(x)[1][0])


def test_cells_are_the_paper_step():
    torch.manual_seed(8)
    for cls, kind in ((MinGRUCell, "gru"), (MinLSTMCell, "lstm")):
        cell = cls(3, 4).double()
        x, h = torch.randn(5, 3, dtype=D64), torch.randn(5, 4, dtype=D64)
        want = _paper_step(kind, F.linear(x, cell.weight_ih, cell.bias_ih), h)
        torch.testing.assert_close(cell(x, h), want)
        new, gates = cell(x, h, record=True)
        assert set(gates) == set(cls.gate_names)
    assert torch.allclose(gates["f"] + gates["i"], torch.ones_like(gates["f"]))  # minLSTM normalisation


def test_record_gates_layout_and_padding(layer_class):
    layer = layer_class(2, 3, batch_first=True, bidirectional=True)
    out, _, rec = layer(torch.randn(2, 5, 2), lengths=torch.tensor([5, 2]), record=True)
    for direction in range(2):
        gates = rec[0][direction]
        assert set(gates) == set(layer.cell_class.gate_names)
        assert all(v.shape == (2, 5, 3) and torch.all(v[1, 2:] == 0) for v in gates.values())
    torch.testing.assert_close(torch.cat([rec[0][0]["h"], rec[0][1]["h"]], -1), out)


def test_training_gradients_finite_long_sequence(layer_class):
    torch.manual_seed(9)
    layer = layer_class(4, 8, num_layers=2)
    with torch.no_grad():
        for p in layer.parameters():
            p.mul_(8.0)  # saturated gates: the products of a_t underflow over 1500 steps
    x = torch.randn(1500, 2, 4)
    out, h_n = layer(x)
    (out.square().mean() + h_n.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())
    assert torch.isfinite(out).all()


def test_dropout_between_layers_only_in_training(layer_class):
    layer = layer_class(2, 3, num_layers=2, dropout=0.5)
    x = torch.randn(4, 2, 2)
    layer.eval()
    torch.testing.assert_close(layer(x)[0], layer(x)[0])
    layer.train()
    torch.manual_seed(0)
    a = layer(x)[0]
    torch.manual_seed(1)
    assert not torch.allclose(a, layer(x)[0])


def test_unbatched_input(layer_class):
    layer = layer_class(2, 3, num_layers=2)
    x = torch.randn(5, 2)
    out, h_n = layer(x)
    want_out, want_h = layer(x.unsqueeze(1))
    torch.testing.assert_close(out, want_out.squeeze(1))
    torch.testing.assert_close(h_n, want_h.squeeze(1))


def test_forget_bias_sets_the_initial_keep_coefficient(layer_class):
    layer = layer_class(3, 4, num_layers=2, forget_bias=3.0)
    for lay in range(2):
        cell = layer.bound_cell(lay, 0)
        a, _ = cell.coefficients(cell.bias_ih.unsqueeze(0))  # input x = 0
        torch.testing.assert_close(a, torch.full_like(a, torch.sigmoid(torch.tensor(3.0)).item()))
    with pytest.raises(ConfigError, match="forget_bias"):
        layer_class(3, 4, bias=False, forget_bias=1.0)


def test_registered_by_name_for_models():
    from rnnlab.nn import RECURRENT, build_recurrent

    assert RECURRENT["mingru"] is MinGRU and RECURRENT["minlstm"] is MinLSTM
    layer = build_recurrent("minlstm", 3, 5, num_layers=2, bidirectional=True)
    assert isinstance(layer, MinLSTM) and layer.batch_first
    out, h_n = layer(torch.randn(2, 6, 3), lengths=torch.tensor([6, 4]))
    assert out.shape == (2, 6, 10) and h_n.shape == (4, 2, 5)


def test_language_model_runs_on_mingru_and_steps_like_it_trains():
    from rnnlab.models.language import LanguageModel, LanguageModelConfig

    torch.manual_seed(10)
    model = LanguageModel(LanguageModelConfig(cell="mingru", vocab_size=11, embed_size=6, hidden_size=8, num_layers=2))
    ids = torch.randint(0, 11, (2, 9))
    logits = model(ids)[0]
    assert logits.shape == (2, 9, 11) and torch.isfinite(logits).all()
    logits.logsumexp(-1).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


# ----- bad input ------------------------------------------------------------------------------
def test_bad_input_raises_typed_errors(layer_class):
    layer = layer_class(3, 4, num_layers=2, batch_first=True)
    x = torch.randn(2, 5, 3)
    with pytest.raises(InputShapeError, match="F=3"):
        layer(torch.randn(2, 5, 4))
    with pytest.raises(InputShapeError):
        layer(torch.randn(2, 5, 3, 1))
    with pytest.raises(InputShapeError, match="dtype"):
        layer(x.double())
    with pytest.raises(LengthsError):
        layer(x, lengths=torch.tensor([5, 6]))
    with pytest.raises(LengthsError):
        layer(x, lengths=torch.tensor([0, 2]))
    with pytest.raises(LengthsError):
        layer(x, lengths=torch.tensor([2.0, 3.0]))
    with pytest.raises(StateError, match=r"\(2, 2, 4\)"):
        layer(x, torch.zeros(1, 2, 4))
    with pytest.raises(StateError, match="no cell state"):
        layer(x, (torch.zeros(2, 2, 4), torch.zeros(2, 2, 4)))
    with pytest.raises(ConfigError, match="scan"):
        layer_class(3, 4, scan="fast")
    with pytest.raises(ConfigError, match="backend"):
        layer_class(3, 4, backend="fused")
    with pytest.raises(ConfigError):
        layer_class(3, 0)
    with pytest.raises(ConfigError):
        layer_class(3, 4, dropout=1.5)
    cell = layer_class.cell_class(3, 4)
    with pytest.raises(InputShapeError):
        cell(torch.randn(2, 4))
    with pytest.raises(StateError):
        cell(torch.randn(2, 3), torch.zeros(3, 4))
