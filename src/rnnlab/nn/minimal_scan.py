"""minGRU / minLSTM gates and scan fused into one autograd node, with the backward written by hand.

Under plain autograd the gate math of :mod:`rnnlab.nn.minimal` (sigmoids, the piecewise ``g``,
the minLSTM normalisation) costs ~20 full ``(T, B, H)`` passes forward and backward, more than the
scan itself. Here the forward computes ``a, b`` in ~7 passes and calls the chunked scan
(:func:`rnnlab.nn.scan.scan_forward`); the backward runs the adjoint scan
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

from rnnlab.nn.scan import scan_forward


def _g_parts(x: Tensor) -> tuple[Tensor, Tensor]:
    """``g(x)`` and ``t = sigmoid(min(x, 0))`` (kept for the derivative)."""
    t = x.clamp(max=0.0).sigmoid_()
    return x.clamp(min=0.0).add_(t), t


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
        h = scan_forward(1.0 - s, s * g, h0, chunk)
        ctx.kind, ctx.chunk = kind, chunk
        ctx.save_for_backward(proj if kind == "lstm" else None, h0, s, g, t, k_n >= 0, h)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h: Tensor):
        # Full (T, B, H) temporaries are few and reused: at T in the thousands each one costs page
        # faults comparable to its arithmetic.
        proj, h0, s, g, t, nonneg, h = ctx.saved_tensors
        hidden = s.shape[-1]
        a_next = torch.empty_like(s)  # a_{t+1} = 1 - s_{t+1}, 0 past the end
        a_next[:-1].copy_(s[1:]).neg_().add_(1.0)
        a_next[-1] = 0.0
        lam = scan_forward(a_next, grad_h.contiguous(), None, ctx.chunk, reverse=True)  # dL/db_t, (T, B, H)
        d_h0 = None if h0 is None or not ctx.needs_input_grad[1] else (1.0 - s[0]) * lam[0]
        ds = a_next  # reuse: ds = db g - da = l_t g_t - l_t h_{t-1}
        torch.mul(lam[1:], h[:-1], out=ds[1:])
        if h0 is None:
            ds[0] = 0.0
        else:
            torch.mul(lam[0], h0, out=ds[0])
        ds.neg_().addcmul_(lam, g)
        d_proj = s.new_empty(*s.shape[:-1], (2 if ctx.kind == "gru" else 3) * hidden)
        if ctx.kind == "gru":
            torch.ops.aten.sigmoid_backward.grad_input(ds, s, grad_input=d_proj[..., :hidden])  # dk_z
        else:
            dd = torch.ops.aten.sigmoid_backward.grad_input(ds, s, grad_input=ds)
            k_f, k_i, _ = proj.chunk(3, dim=-1)
            torch.mul(dd, torch.sigmoid(-k_f), out=d_proj[..., :hidden]).neg_()
            torch.mul(dd, torch.sigmoid(-k_i), out=d_proj[..., hidden: 2 * hidden])
        lam.mul_(s)  # dL/dg = l s;  dk_n = l s g'(k_n)
        dk_n = d_proj[..., -hidden:]
        torch.ops.aten.sigmoid_backward.grad_input(lam, t, grad_input=dk_n)
        torch.where(nonneg, lam, dk_n, out=dk_n)
        return d_proj, d_h0, None, None


def gated_scan(proj: Tensor, h0: Tensor | None, kind: str, chunk: int | None = None) -> Tensor:
    """``proj (T, B, G*H)`` (time-major input projection), ``h0 (B, H)`` or None -> ``h (T, B, H)``.

    ``kind`` is ``"gru"`` (G = 2: ``z, n``) or ``"lstm"`` (G = 3: ``f, i, g``).
    """
    return _GatedScan.apply(proj.contiguous(), None if h0 is None else h0.contiguous(), kind, chunk)
