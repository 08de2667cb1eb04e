"""Layers against torch.nn in float64: outputs, final states and every gradient, both backends."""
import itertools

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnlab
from rnnlab.errors import ConfigError, InputShapeError, LengthsError, StateDictError, StateError

TORCH = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
OURS = {"lstm": rnnlab.LSTM, "gru": rnnlab.GRU, "rnn": rnnlab.RNN}
T, B, F, H = 6, 4, 3, 5
LENGTHS = torch.tensor([6, 2, 5, 1])


def make_pair(kind, num_layers, bidirectional, batch_first=False, **kw):
    torch.manual_seed(0)
    ref = TORCH[kind](F, H, num_layers, batch_first=batch_first, bidirectional=bidirectional, **kw).double()
    ours = OURS[kind].from_torch(ref)
    return ref, ours


def initial_state(kind, num_layers, bidirectional):
    shape = (num_layers * (2 if bidirectional else 1), B, H)
    h0 = torch.randn(shape, dtype=torch.double, requires_grad=True)
    if kind == "lstm":
        return (h0, torch.randn(shape, dtype=torch.double, requires_grad=True))
    return h0


def run_torch(ref, x, hx, lengths):
    if lengths is None:
        return ref(x, hx)
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    out, state = ref(packed, hx)
    return pad_packed_sequence(out, total_length=x.shape[0])[0], state


def flat(state):
    return list(state) if isinstance(state, tuple) else [state]


def grads(module, x, hx, forward):
    """Outputs, final states and the gradient of a fixed random functional w.r.t. everything."""
    out, state = forward(x, hx)
    torch.manual_seed(123)
    loss = sum((t * torch.randn_like(t)).sum() for t in [out, *flat(state)])
    inputs = [x, *flat(hx), *module.parameters()]
    return [out, *flat(state)], torch.autograd.grad(loss, inputs)


CASES = list(itertools.product(["lstm", "gru", "rnn"], [1, 2], [False, True], [False, True]))


@pytest.mark.parametrize("kind,num_layers,bidirectional,with_lengths", CASES)
def test_explicit_and_fused_equal_torch(kind, num_layers, bidirectional, with_lengths):
    ref, ours = make_pair(kind, num_layers, bidirectional)
    torch.manual_seed(1)
    x = torch.randn(T, B, F, dtype=torch.double, requires_grad=True)
    hx = initial_state(kind, num_layers, bidirectional)
    lengths = LENGTHS if with_lengths else None
    expected, expected_grads = grads(ref, x, hx, lambda x, hx: run_torch(ref, x, hx, lengths))
    for backend in ("fused", "explicit"):
        ours.backend = backend
        got, got_grads = grads(ours, x, hx, lambda x, hx: ours(x, hx, lengths=lengths))
        for a, b in zip(got + list(got_grads), expected + list(expected_grads)):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        if with_lengths:  # padded outputs are exactly zero
            mask = torch.arange(T).unsqueeze(1) >= LENGTHS.unsqueeze(0)  # (T, B)
            assert got[0][mask].abs().max() == 0


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_packed_sequence_input_explicit_equals_torch(kind):
    ref, ours = make_pair(kind, 2, True, batch_first=True)
    ours.backend = "explicit"
    x = torch.randn(B, T, F, dtype=torch.double)
    packed = pack_padded_sequence(x, LENGTHS, batch_first=True, enforce_sorted=False)
    (out_ref, state_ref), (out, state) = ref(packed), ours(packed)
    torch.testing.assert_close(out.data, out_ref.data)
    assert torch.equal(out.batch_sizes, out_ref.batch_sizes)
    assert torch.equal(out.unsorted_indices, out_ref.unsorted_indices)
    for a, b in zip(flat(state), flat(state_ref)):
        torch.testing.assert_close(a, b)


def test_lstm_projection_explicit_equals_torch():
    torch.manual_seed(0)
    ref = torch.nn.LSTM(F, 6, 2, proj_size=3, bidirectional=True).double()
    ours = rnnlab.LSTM.from_torch(ref, backend="explicit")
    x = torch.randn(T, B, F, dtype=torch.double)
    (out_ref, (h_ref, c_ref)), (out, (h, c)) = run_torch(ref, x, None, LENGTHS), ours(x, lengths=LENGTHS)
    torch.testing.assert_close(out, out_ref)
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(c, c_ref)


def test_batch_first_and_unbatched_match_torch():
    ref, ours = make_pair("lstm", 1, False, batch_first=True)
    x = torch.randn(B, T, F, dtype=torch.double)
    for backend in ("fused", "explicit"):
        ours.backend = backend
        torch.testing.assert_close(ours(x)[0], ref(x)[0])
        torch.testing.assert_close(ours(x[0])[0], ref(x[0])[0])  # unbatched (T, F)


def test_final_state_is_last_valid_step_and_carries_over():
    _, ours = make_pair("lstm", 1, False)
    x = torch.randn(T, B, F, dtype=torch.double)
    out, (h, c) = ours(x, lengths=LENGTHS)
    for b, length in enumerate(LENGTHS):
        torch.testing.assert_close(h[0, b], out[length - 1, b])
    # Carrying the state across two chunks equals one pass over the whole sequence.
    full, _ = ours(x)
    first, state = ours(x[:3])
    second, _ = ours(x[3:], state)
    torch.testing.assert_close(torch.cat([first, second]), full)


def test_same_seed_same_init_as_torch_and_state_dict_both_ways():
    torch.manual_seed(5)
    ref = torch.nn.LSTM(F, H, 2, bidirectional=True)
    torch.manual_seed(5)
    ours = rnnlab.LSTM(F, H, 2, bidirectional=True, forget_bias=None)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert torch.equal(a, b)
    back = torch.nn.LSTM(F, H, 2, bidirectional=True)
    back.load_state_dict(rnnlab.LSTM(F, H, 2, bidirectional=True).state_dict())


def test_record_reproduces_outputs_by_the_equations():
    _, ours = make_pair("lstm", 2, True, batch_first=True)
    x = torch.randn(B, T, F, dtype=torch.double)
    out, (h_n, c_n), record = ours(x, lengths=LENGTHS, record=True)
    assert ours.backend == "auto"  # recording chose the explicit path by itself
    for layer in range(2):
        for direction, steps in ((0, range(T)), (1, range(T - 1, -1, -1))):
            g = record[layer][direction]  # each (B, T, H)
            c_prev = torch.zeros(B, H, dtype=torch.double)
            for t in steps:
                valid = (t < LENGTHS).unsqueeze(1)
                c = torch.where(valid, g["f"][:, t] * c_prev + g["i"][:, t] * g["g"][:, t], torch.zeros(()))
                torch.testing.assert_close(g["c"][:, t], c)
                torch.testing.assert_close(g["h"][:, t], g["o"][:, t] * torch.tanh(c))
                c_prev = torch.where(valid, c, c_prev)
    top = torch.cat([record[1][0]["h"], record[1][1]["h"]], dim=-1)
    torch.testing.assert_close(top, out)


def test_gru_record_reproduces_outputs():
    _, ours = make_pair("gru", 1, False)
    x = torch.randn(T, B, F, dtype=torch.double)
    out, h_n, record = ours(x, record=True)
    g, h_prev = record[0][0], torch.zeros(B, H, dtype=torch.double)
    for t in range(T):
        h = (1 - g["z"][t]) * g["n"][t] + g["z"][t] * h_prev
        torch.testing.assert_close(h, out[t])
        h_prev = h


@pytest.mark.parametrize("cell", ["peephole", "layernorm"])
def test_variants_run_explicitly_with_lengths(cell):
    torch.manual_seed(0)
    layer = rnnlab.LSTM(F, H, 2, bidirectional=True, cell=cell).double()
    x = torch.randn(T, B, F, dtype=torch.double)
    out, (h, c) = layer(x, lengths=LENGTHS)
    # Each sequence alone (no padding) gives the same result as inside the padded batch.
    for b, length in enumerate(LENGTHS.tolist()):
        alone, (h_alone, _) = layer(x[:length, b : b + 1])
        torch.testing.assert_close(out[:length, b], alone[:, 0])
        torch.testing.assert_close(h[:, b], h_alone[:, 0])
    with pytest.raises(ConfigError, match="fused"):
        rnnlab.LSTM(F, H, cell=cell, backend="fused")(x.float())


def test_init_options_set_the_biases_they_claim():
    layer = rnnlab.LSTM(F, H, 2)  # default forget bias 1.0
    for k in range(2):
        effective = layer.get_parameter(f"bias_ih_l{k}") + layer.get_parameter(f"bias_hh_l{k}")
        torch.testing.assert_close(effective[H : 2 * H], torch.ones(H))
    chrono = rnnlab.LSTM(F, H, chrono_tmax=100)
    b = chrono.bias_ih_l0 + chrono.bias_hh_l0
    b_i, b_f = b[:H], b[H : 2 * H]
    assert torch.all(b_f >= 0) and torch.all(b_f <= torch.log(torch.tensor(99.0)))
    torch.testing.assert_close(b_i, -b_f)
    ortho = rnnlab.GRU(F, H, recurrent_init="orthogonal")
    for block in ortho.weight_hh_l0.detach().chunk(3):
        torch.testing.assert_close(block @ block.t(), torch.eye(H), atol=1e-5, rtol=0)


def test_build_recurrent_registry():
    layer = rnnlab.build_recurrent("gru", F, H, num_layers=2)
    assert isinstance(layer, rnnlab.GRU) and layer.batch_first
    with pytest.raises(ConfigError, match="unknown recurrent kind 'tcn'"):
        rnnlab.build_recurrent("tcn", F, H)


# ----- bad input -------------------------------------------------------------------------------
@pytest.fixture
def lstm():
    return rnnlab.LSTM(F, H, 2)


def test_wrong_rank_and_feature_size(lstm):
    with pytest.raises(InputShapeError, match=r"F=3.*got \(6, 4, 7\)"):
        lstm(torch.randn(T, B, 7))
    with pytest.raises(InputShapeError, match="got \\(1, 6, 4, 3\\)"):
        lstm(torch.randn(1, T, B, F))
    with pytest.raises(InputShapeError, match="dtype"):
        lstm(torch.randn(T, B, F, dtype=torch.double))


@pytest.mark.parametrize("lengths,match", [
    ([6, 0, 1, 2], "at least 1"), ([6, -1, 1, 2], "at least 1"), ([7, 1, 1, 2], "cannot exceed .* 6"),
    ([6, 1, 1], r"shape \(4,\)"), ([[6, 1, 1, 2]], r"shape \(4,\)"), ([6.0, 1.0, 1.0, 2.0], "integers"),
])
def test_bad_lengths(lstm, lengths, match):
    for backend in ("fused", "explicit"):
        lstm.backend = backend
        with pytest.raises(LengthsError, match=match):
            lstm(torch.randn(T, B, F), lengths=torch.tensor(lengths))


def test_bad_initial_state(lstm):
    h = torch.zeros(2, B, H)
    with pytest.raises(StateError, match=r"c_0 must have shape \(2, 4, 5\).*got \(1, 4, 5\)"):
        lstm(torch.randn(T, B, F), (h, torch.zeros(1, B, H)))
    with pytest.raises(StateError, match="tuple"):
        lstm(torch.randn(T, B, F), h)
    with pytest.raises(StateError, match="dtype"):
        lstm(torch.randn(T, B, F), (h.double(), h.double()))
    with pytest.raises(StateError, match=r"h_0 must have shape \(1, 4, 5\)"):
        rnnlab.GRU(F, H)(torch.randn(T, B, F), torch.zeros(1, 3, H))


def test_state_dict_from_differently_sized_module(lstm):
    with pytest.raises(StateDictError, match=r"weight_ih_l0.*\(20, 3\).*\(28, 3\)"):
        lstm.load_state_dict(torch.nn.LSTM(F, 7, 2).state_dict())
    with pytest.raises(StateDictError, match="missing"):
        lstm.load_state_dict(torch.nn.LSTM(F, H, 1).state_dict())


def test_bad_config():
    with pytest.raises(ConfigError, match="backend"):
        rnnlab.LSTM(F, H, backend="cudnn")
    with pytest.raises(ConfigError, match="cell"):
        rnnlab.LSTM(F, H, cell="mogrifier")
    with pytest.raises(ConfigError, match="chrono_tmax"):
        rnnlab.LSTM(F, H, chrono_tmax=1)
    with pytest.raises(ConfigError, match="nonlinearity"):
        rnnlab.RNN(F, H, nonlinearity="sigmoid")
