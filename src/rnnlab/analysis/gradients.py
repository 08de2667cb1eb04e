"""Gradient flow through time: ||dL/dh_t|| for every step t when the loss sits at the last step.

For a recurrent layer h_t = f(h_{t-1}, x_t) and a loss L(h_T) read at the last step T, the chain
rule gives

    dL/dh_t = (dh_{t+1}/dh_t)^T dL/dh_{t+1} = J_{t+1}^T ... J_T^T dL/dh_T,

a product of T - t Jacobians. If their norms stay below 1 the gradient shrinks exponentially with
the distance d = T - t, roughly ||dL/dh_t|| ~ C * rho^d: the vanishing gradient. The LSTM's cell
path c_t = f_t * c_{t-1} + ... has Jacobian diag(f_t), which stays near 1 when the forget gate is
open, so its gradient decays far more slowly.

:func:`state_gradients` steps any ``torch.nn``-style recurrent layer (batch-first, ``forward(x,
hx) -> (output, state)``) one step at a time, keeps every intermediate state, and returns
dL/dh_t (and dL/dc_t for an LSTM). :func:`decay_factor` fits rho by least squares on
log ||dL/dh_t|| against d. Hand check (tested): for h_t = W h_{t-1} + U x_t and L = v . h_T,
dL/dh_t = (W^T)^(T-t) v.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from rnnlab.errors import InputShapeError


def _states(state) -> dict[str, Tensor]:
    """Name the parts of a layer state: a tensor is "h", an LSTM's (h, c) is "h" and "c"."""
    if isinstance(state, tuple):
        return {"h": state[0], "c": state[1]}
    return {"h": state}


def state_gradients(layer: nn.Module, inputs: Tensor, loss_fn: Callable[[Tensor], Tensor],
                    hx=None) -> dict[str, Tensor]:
    """dL/dh_t for t = 1..T with L = loss_fn(h_T).

    Args:
        layer: a batch-first recurrent layer with the ``torch.nn`` calling convention,
            ``layer(x (B, 1, F), state) -> (output, state)``; state is (L*D, B, H) or an (h, c) tuple.
        inputs: (B, T, F) features (already embedded).
        loss_fn: maps the last step's top-layer hidden state (B, H) to a scalar loss.
        hx: initial state (default: the layer's zeros).

    Returns:
        {"h": (B, T, H_state)} and, for an LSTM, {"c": ...}: the gradient of the loss with respect
        to each step's state, all layers concatenated along the last dimension. The state at step t
        is what step t + 1 consumes; the loss reads h_T only, so dL/dc_T is zero and dL/dc_t for
        t < T is the full derivative through every later step.
    """
    if inputs.dim() != 3:
        raise InputShapeError(f"state_gradients expects inputs of shape (B, T, F); got {tuple(inputs.shape)}")
    if getattr(layer, "bidirectional", False):
        raise InputShapeError("state_gradients steps forward in time; a bidirectional layer has no single last step")
    steps = inputs.shape[1]
    state, kept = hx, []
    with torch.enable_grad():
        for t in range(steps):
            _, state = layer(inputs[:, t : t + 1], state)
            parts = _states(state)
            for tensor in parts.values():
                tensor.retain_grad()  # intermediate, not a leaf: keep its .grad after backward
            kept.append(parts)
        # Read the loss from the final *state* (top layer), not from ``output``: a fused kernel returns
        # the two as separate tensors, and only the state is what earlier steps feed.
        loss = loss_fn(kept[-1]["h"][-1])
        loss.backward()
    grads = {}
    for name in kept[0]:
        per_step = []
        for parts in kept:
            g = parts[name].grad
            g = torch.zeros_like(parts[name]) if g is None else g  # no path to the loss: exactly zero
            per_step.append(g.permute(1, 0, 2).reshape(g.shape[1], -1))  # (L*D, B, H) -> (B, L*D*H)
        grads[name] = torch.stack(per_step, dim=1).detach()  # (B, T, L*D*H)
    return grads


def gradient_norms(grads: Tensor) -> Tensor:
    """(B, T, H) gradients -> (T,) mean over the batch of ||dL/dh_t||_2."""
    return grads.norm(dim=-1).mean(dim=0)


def decay_factor(norms, *, skip: int = 1, floor: float = 1e-300) -> float:
    """Fitted per-step factor rho in ||dL/dh_t|| ~ C rho^(T - t).

    ``norms`` (T,) indexed by step (last = the loss step, distance 0). A least-squares line is fitted
    to log norm against distance d = T - 1 - t, leaving out the first ``skip`` distances (the loss
    step itself is not a product of Jacobians) and norms at or below ``floor`` (underflow to zero);
    rho = exp(slope). Returns NaN with fewer than two usable points.
    """
    values = torch.as_tensor(norms, dtype=torch.float64).flip(0)  # index = distance
    distance = torch.arange(values.numel(), dtype=torch.float64)
    keep = (distance >= skip) & torch.isfinite(values) & (values > floor)
    if int(keep.sum()) < 2:
        return math.nan
    d, y = distance[keep], values[keep].log()
    d_c = d - d.mean()
    slope = float((d_c * (y - y.mean())).sum() / (d_c * d_c).sum())
    return math.exp(slope)
