"""WindowMLP: equal to a hand-written loop, and blind to everything outside its window."""
import pytest
import torch

from rnnlab.errors import ConfigError, InputShapeError, LengthsError
from rnnlab.models.window_mlp import WindowMLP


def reference(model: WindowMLP, x: torch.Tensor) -> torch.Tensor:
    """y_t = V tanh(A [x_{t-W+1}; ...; x_t] + a) + c, zeros before the start, one step at a time."""
    feats = model.features(x)  # (B, T, E)
    B, T, E = feats.shape
    out = []
    for t in range(T):
        parts = [feats[:, s] if s >= 0 else torch.zeros(B, E, dtype=feats.dtype) for s in range(t - model.window + 1, t + 1)]
        z = torch.cat(parts, dim=-1)
        out.append(model.output(torch.tanh(model.hidden(z))))
    return torch.stack(out, dim=1)


def test_float_inputs_match_reference_loop():
    torch.manual_seed(0)
    model = WindowMLP(3, 7, 2, window=4).double()
    x = torch.randn(2, 9, 3, dtype=torch.float64)
    y = model(x)
    assert y.shape == (2, 9, 2)
    torch.testing.assert_close(y, reference(model, x))


def test_token_inputs_match_reference_loop_with_window_longer_than_sequence():
    torch.manual_seed(1)
    model = WindowMLP(5, 6, 11, window=10, num_embeddings=20)
    x = torch.randint(0, 20, (3, 7))  # T < W: early steps see zero padding
    torch.testing.assert_close(model(x), reference(model, x))


def test_output_ignores_everything_outside_the_window():
    torch.manual_seed(2)
    W, T = 5, 16
    model = WindowMLP(4, 8, 3, window=W, num_embeddings=30)
    x = torch.randint(0, 30, (1, T))
    y = model(x)
    for changed in range(T):
        x2 = x.clone()
        x2[0, changed] = (x2[0, changed] + 1) % 30
        y2 = model(x2)
        for t in range(T):
            inside = t - W < changed <= t
            assert torch.equal(y[0, t], y2[0, t]) != inside, (changed, t)


def test_no_gradient_reaches_inputs_beyond_the_window():
    model = WindowMLP(2, 5, 1, window=3).double()
    x = torch.randn(1, 12, 2, dtype=torch.float64, requires_grad=True)
    model(x)[0, -1].sum().backward()
    grad_norm = x.grad[0].norm(dim=-1)
    assert (grad_norm[:9] == 0).all() and (grad_norm[9:] > 0).all()


def test_lengths_are_checked_and_change_nothing_at_valid_steps():
    model = WindowMLP(2, 4, 1, window=3)
    x = torch.randn(2, 6, 2)
    torch.testing.assert_close(model(x, torch.tensor([6, 3])), model(x))
    with pytest.raises(LengthsError):
        model(x, torch.tensor([7, 3]))


def test_bad_inputs_raise_typed_errors():
    with pytest.raises(ConfigError):
        WindowMLP(3, 4, 2, window=0)
    with pytest.raises(ConfigError):
        WindowMLP(3, 4, 2, num_embeddings=0)
    with pytest.raises(InputShapeError, match=r"\(B, T, 3\)"):
        WindowMLP(3, 4, 2)(torch.randn(2, 5, 4))
    with pytest.raises(InputShapeError, match="token ids"):
        WindowMLP(3, 4, 2, num_embeddings=9)(torch.randn(2, 5, 3))
