"""Gradient flow analysis against cases computable by hand."""
import math

import pytest
import torch
from torch import nn

from rnnlab.analysis.gradients import decay_factor, gradient_norms, state_gradients


class LinearRNN(nn.Module):
    """h_t = W h_{t-1} + U x_t, with the torch.nn layer calling convention (batch first)."""

    def __init__(self, W: torch.Tensor, U: torch.Tensor) -> None:
        super().__init__()
        self.W, self.U = nn.Parameter(W), nn.Parameter(U)

    def forward(self, x, hx=None):
        h = torch.zeros(1, x.shape[0], self.W.shape[0], dtype=x.dtype) if hx is None else hx
        outputs = []
        for t in range(x.shape[1]):
            h = h @ self.W.T + (x[:, t] @ self.U.T)[None]
            outputs.append(h[0])
        return torch.stack(outputs, 1), h


def test_linear_rnn_matches_hand_computed_powers_of_w_transpose():
    torch.manual_seed(0)
    H, F, T, B = 5, 3, 12, 4
    W = torch.randn(H, H, dtype=torch.float64) * 0.4
    U = torch.randn(H, F, dtype=torch.float64)
    v = torch.randn(H, dtype=torch.float64)
    layer = LinearRNN(W, U)
    x = torch.randn(B, T, F, dtype=torch.float64)
    grads = state_gradients(layer, x, lambda h_T: (h_T @ v).sum())["h"]  # (B, T, H)
    assert grads.shape == (B, T, H)
    for t in range(T):  # step t (0-based) is T - 1 - t steps before the loss
        expected = torch.linalg.matrix_power(W.T, T - 1 - t) @ v
        for b in range(B):  # linear: the same for every sequence
            torch.testing.assert_close(grads[b, t], expected)


def test_decay_factor_recovers_scalar_recurrence():
    W = 0.8 * torch.eye(3, dtype=torch.float64)
    layer = LinearRNN(W, torch.eye(3, dtype=torch.float64))
    v = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    grads = state_gradients(layer, torch.randn(2, 30, 3, dtype=torch.float64), lambda h: (h @ v).sum())["h"]
    norms = gradient_norms(grads)
    torch.testing.assert_close(norms[-1], v.norm())
    assert decay_factor(norms) == pytest.approx(0.8, rel=1e-9)
    assert decay_factor(norms, skip=0) == pytest.approx(0.8, rel=1e-9)


def test_decay_factor_ignores_underflow_and_needs_two_points():
    norms = torch.tensor([0.0, 0.0, 0.5**3, 0.5**2, 0.5, 1.0], dtype=torch.float64)
    assert decay_factor(norms, skip=0) == pytest.approx(0.5)
    assert math.isnan(decay_factor(torch.tensor([0.0, 1.0])))


def test_tanh_rnn_gradients_obey_backward_recurrence():
    """dL/dh_{t-1} = W_hh^T ((1 - h_t^2) * dL/dh_t) for h_t = tanh(W_ih x_t + W_hh h_{t-1} + b)."""
    torch.manual_seed(1)
    layer = nn.RNN(3, 6, batch_first=True).double()
    x = torch.randn(2, 9, 3, dtype=torch.float64)
    head = torch.randn(6, dtype=torch.float64)
    grads = state_gradients(layer, x, lambda h: (h @ head).sum())["h"]  # (B, T, H)
    h, _ = layer(x)  # (B, T, H), same states as the step-by-step unroll
    torch.testing.assert_close(grads[:, -1], head.expand(2, 6))
    for t in range(8, 0, -1):
        expected = ((1 - h[:, t] ** 2) * grads[:, t]) @ layer.weight_hh_l0
        torch.testing.assert_close(grads[:, t - 1], expected.detach())


def test_lstm_returns_cell_gradients_matching_the_last_steps_by_hand():
    """State convention: (h_t, c_t) are what step t+1 consumes, and L reads h_T only.

    So dL/dh_T = dL/dh (here 1), dL/dc_T = 0 (nothing consumes c_T), and since c_{T-1} reaches L only
    through c_T = f_T c_{T-1} + i_T g_T and h_T = o_T tanh(c_T):
    dL/dc_{T-1} = dL/dh_T * o_T * (1 - tanh(c_T)^2) * f_T.
    """
    torch.manual_seed(2)
    layer = nn.LSTM(2, 4, batch_first=True).double()
    x = torch.randn(3, 7, 2, dtype=torch.float64)
    grads = state_gradients(layer, x, lambda h: h.sum())
    assert set(grads) == {"h", "c"} and grads["c"].shape == (3, 7, 4)
    torch.testing.assert_close(grads["h"][:, -1], torch.ones(3, 4, dtype=torch.float64))
    torch.testing.assert_close(grads["c"][:, -1], torch.zeros(3, 4, dtype=torch.float64))
    with torch.no_grad():
        _, (h_prev, _) = layer(x[:, :-1])
        _, (h_n, c_n) = layer(x)
        gates = x[:, -1] @ layer.weight_ih_l0.T + layer.bias_ih_l0 + h_prev[0] @ layer.weight_hh_l0.T + layer.bias_hh_l0
        _, f, _, o = torch.sigmoid(gates).chunk(4, dim=-1)
        expected = o * (1 - torch.tanh(c_n[0]) ** 2) * f
    torch.testing.assert_close(grads["c"][:, -2], expected)
