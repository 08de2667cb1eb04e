"""minGRU / minLSTM gates and scan fused into one autograd node, with the backward written by hand.

Under plain autograd the gate math of :mod:`rnnlab.nn.minimal` (sigmoids, the piecewise ``g``,
the minLSTM normalisation) costs ~20 full ``(T, B, H)`` passes forward and backward, more than the
scan itself. Here the forward computes ``a, b`` in ~7 passes and calls the chunked scan
(:func:`rnnlab.nn.scan._scan_forward`); the backward runs the adjoint scan
``l_t = dL/dh_t + a_{t+1} l_{t+1}`` and then, with ``da_t = l_t h_{t-1}``, ``db_t = l_t``::

    g(x) = sigmoid(min(x, 0)) + max(x, 0)          g'(x) = 1 if x >= 0 else s(1 - s), s = sigmoid(x)
    minGRU:  s = sigmoid(k_z), a = 1 - s, b = s g(k_n)
             dk_z = (db g - da) s (1 - s),   dk_n = db s g'(k_n)
    minLSTM: d = softplus(-k_f) - softplus(-k_i), s = sigmoid(d) (= i'), a = 1 - s (= f'), b = s g(k_g)
             dd = (db g - da) s (1 - s),  dk_f = -dd sigmoid(-k_f),  dk_i = dd sigmoid(-k_i),  dk_g = db s g'(k_g)

``tests/test_minimal.py`` checks it against the same layers under autograd (``scan="sequential"``)
in float64, values and gradients.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnnlab.nn.scan import _scan_forward


def _g_parts(x: Tensor) -> tuple[Tensor, Tensor]:
    """``g(x)`` and ``t = sigmoid(min(x, 0))`` (kept for the derivative)."""
    t = torch.sigmoid(x.clamp(max=0.0))
    return t + x.clamp(min=0.0), t


def _g_prime(t: Tensor, nonneg: Tensor) -> Tensor:
    return torch.ops.aten.sigmoid_backward(torch.ones_like(t), t).masked_fill_(nonneg, 1.0)


class _GatedScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, proj: Tensor, h0: Tensor | None, kind: str, chunk: int | None):
        if kind == "gru":
            k_z, k_n = proj.chunk(2, dim=-1)
            s = torch.sigmoid(k_z)
        else:
            k_f, k_i, k_n = proj.chunk(3, dim=-1)
            s = torch.sigmoid(F.softplus(-k_f) - F.softplus(-k_i))
        g, t = _g_parts(k_n)
        a, b = 1.0 - s, s * g
        h = _scan_forward(a, b, h0, chunk)
        ctx.kind, ctx.chunk = kind, chunk
        ctx.save_for_backward(proj if kind == "lstm" else None, h0, s, g, t, k_n >= 0, h)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h: Tensor):
        proj, h0, s, g, t, nonneg, h = ctx.saved_tensors
        a = 1.0 - s
        a_next = torch.cat([a[1:], a.new_zeros((1,) + a.shape[1:])])
        lam = _scan_forward(a_next, grad_h.contiguous(), None, ctx.chunk, reverse=True)  # dL/db_t, (T, B, H)
        da = torch.empty_like(lam)  # l_t * h_{t-1}
        torch.mul(lam[1:], h[:-1], out=da[1:])
        if h0 is None:
            da[0] = 0.0
        else:
            torch.mul(lam[0], h0, out=da[0])
        ds = torch.addcmul(-da, lam, g)  # db g - da
        d_inner = torch.ops.aten.sigmoid_backward(ds, s)  # dk_z (GRU) or dd (LSTM)
        dk_n = lam * s * _g_prime(t, nonneg)
        if ctx.kind == "gru":
            d_proj = torch.cat([d_inner, dk_n], dim=-1)
        else:
            k_f, k_i, _ = proj.chunk(3, dim=-1)
            d_proj = torch.cat([-d_inner * torch.sigmoid(-k_f), d_inner * torch.sigmoid(-k_i), dk_n], dim=-1)
        d_h0 = None if h0 is None or not ctx.needs_input_grad[1] else a[0] * lam[0]
        return d_proj, d_h0, None, None


def gated_scan(proj: Tensor, h0: Tensor | None, kind: str, chunk: int | None = None) -> Tensor:
    """``proj (T, B, G*H)`` (time-major input projection), ``h0 (B, H)`` or None -> ``h (T, B, H)``.

    ``kind`` is ``"gru"`` (G = 2: ``z, n``) or ``"lstm"`` (G = 3: ``f, i, g``).
    """
    return _GatedScan.apply(proj.contiguous(), None if h0 is None else h0.contiguous(), kind, chunk)
