"""Parallel solutions of the first-order linear recurrence ``h_t = a_t * h_{t-1} + b_t``.

minGRU and minLSTM (Feng et al. 2024) compute their gates from the input alone, so their hidden
state obeys this *linear* recurrence and a whole sequence can be solved without a Python loop over
time. Everything here is time-major: ``a, b (T, ...)``, ``h0 (...)`` -> ``h (T, ...)``, with
``h_t`` the state *after* step ``t`` (so ``h[0] = a[0] * h0 + b[0]``).

Two solvers, equal up to rounding (``tests/test_minimal.py`` checks both against the loop in
float64, values and gradients):

* :func:`log_scan` — Heinsen's log-space scan (Heinsen 2023, the form of Feng et al.)::

      a*_t = sum_{k<=t} log a_k                            (cumsum)
      h_t  = exp(a*_t + logcumsumexp_{s<=t}(log b_s - a*_s)) + exp(a*_t) * h0

  It needs ``b > 0`` (given as ``log b``); the paper's ``g`` keeps the candidate positive for this.
  ``h0`` may have any sign: its term is added outside the logarithm. It is the natural choice on a
  GPU; on CPU ``torch.logcumsumexp`` is a slow sequential kernel (about 25 ns per element forward
  and 4x that backward here, slower than the whole ``torch.nn.LSTM`` at T = 4096).
* :func:`chunked_scan` — the same recurrence in linear space, cut into ``N`` chunks of ``C ~ sqrt(T)``
  steps: all chunks are scanned at once (a loop of ``C`` element-wise steps over ``(N, ...)`` slabs),
  the ``N`` chunk carries are chained, and one fused multiply-add spreads each carry over its chunk.
  About ``2 sqrt(T)`` small operations instead of ``T``; products of ``a`` in ``[0, 1]`` can only
  underflow towards their true (negligible) value, so it is as stable as the loop itself. Its
  backward is written by hand: the adjoint ``l_t = g_t + a_{t+1} l_{t+1}`` is the same scan run
  backwards, then ``dL/db_t = l_t``, ``dL/da_t = l_t h_{t-1}``, ``dL/dh0 = a_0 l_0``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def sequential_scan(a: Tensor, b: Tensor, h0: Tensor | None = None) -> Tensor:
    """The reference: one Python step per time step. ``a, b (T, ...)``, ``h0 (...)`` -> ``(T, ...)``."""
    h = torch.zeros_like(b[0]) if h0 is None else h0
    out = []
    for t in range(a.shape[0]):
        h = a[t] * h + b[t]
        out.append(h)
    return torch.stack(out)


def log_scan(log_a: Tensor, log_b: Tensor, h0: Tensor | None = None) -> Tensor:
    """Heinsen's log-space scan: ``log_a, log_b (T, ...)`` (log of ``a > 0``, ``b > 0``) -> ``h (T, ...)``."""
    a_star = torch.cumsum(log_a, dim=0)  # (T, ...) log of prod_{k<=t} a_k
    h = torch.exp(a_star + torch.logcumsumexp(log_b - a_star, dim=0))
    if h0 is not None:
        h = h + torch.exp(a_star) * h0  # the initial state decays by the same product; any sign
    return h


def scan_forward(a: Tensor, b: Tensor, h0: Tensor | None, chunk: int | None, reverse: bool = False) -> Tensor:
    """Chunked linear-space scan without autograd (see the module docstring).

    ``reverse=True`` solves ``h_t = a_t h_{t+1} + b_t`` from the last step back (``h0`` then is the
    state after the end); the backward pass uses it instead of copying flipped tensors.
    """
    steps = a.shape[0]
    size = chunk or max(1, math.isqrt(steps))
    if size >= steps or steps <= 2:
        return _loop(a, b, h0, reverse)
    n = -(-steps // size)  # number of chunks
    pad = n * size - steps
    if pad:  # a = 1, b = 0 past the end: the valid steps do not see it (and h0 passes unchanged)
        a = torch.cat([a, a.new_ones((pad,) + a.shape[1:])])
        b = torch.cat([b, b.new_zeros((pad,) + b.shape[1:])])
    # (N, C, ...): chunk-major, so the result is already in time order. Position j of every chunk is
    # the strided slab [:, j]; ``h`` holds the chunk-local scans, then (in place) the answer.
    a_c, b_c = a.view(n, size, *a.shape[1:]), b.view(n, size, *b.shape[1:])
    h = torch.empty_like(b_c)
    decay = torch.empty_like(a_c)  # prod of a from the chunk's entry up to each position
    first, last, step = (size - 1, 0, -1) if reverse else (0, size - 1, 1)
    h[:, first], decay[:, first] = b_c[:, first], a_c[:, first]
    for j in range(first + step, last + step, step):
        torch.addcmul(b_c[:, j], a_c[:, j], h[:, j - step], out=h[:, j])
        torch.mul(a_c[:, j], decay[:, j - step], out=decay[:, j])
    # Chain the chunks: carry[k] is the state entering chunk k (from the left, or the right).
    carry = torch.empty_like(h[:, 0])  # (N, ...)
    state = torch.zeros_like(b[0]) if h0 is None else h0
    for k in (range(n - 1, -1, -1) if reverse else range(n)):
        carry[k] = state
        state = torch.addcmul(h[k, last], decay[k, last], state)
    h.addcmul_(decay, carry.unsqueeze(1))
    h = h.view(n * size, *b.shape[1:])
    return h[:steps] if pad else h


def _loop(a: Tensor, b: Tensor, h0: Tensor | None, reverse: bool = False) -> Tensor:
    out = torch.empty_like(b)
    steps = a.shape[0]
    order = list(range(steps - 1, -1, -1)) if reverse else list(range(steps))
    if not order:
        return out
    first = order[0]
    if h0 is None:
        out[first] = b[first]
    else:
        torch.addcmul(b[first], a[first], h0, out=out[first])
    for prev, t in zip(order, order[1:]):
        torch.addcmul(b[t], a[t], out[prev], out=out[t])
    return out


class _ChunkedScan(torch.autograd.Function):
    """``h = scan(a, b, h0)`` with the hand-written adjoint scan as backward."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, h0: Tensor | None, chunk: int | None):
        h = scan_forward(a, b, h0, chunk)
        ctx.chunk = chunk
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    def backward(ctx, grad_h: Tensor):
        a, h, h0 = ctx.saved_tensors
        # l_t = g_t + a_{t+1} l_{t+1}: the same scan run backwards, with a shifted by one step.
        a_next = torch.cat([a[1:], a.new_zeros((1,) + a.shape[1:])])
        lam = scan_forward(a_next, grad_h.contiguous(), None, ctx.chunk, reverse=True)  # (T, ...)
        grad_a = grad_b = grad_h0 = None
        if ctx.needs_input_grad[0]:
            grad_a = torch.empty_like(a)  # l_t * h_{t-1}
            torch.mul(lam[1:], h[:-1], out=grad_a[1:])
            if h0 is None:
                grad_a[0] = 0.0
            else:
                torch.mul(lam[0], h0, out=grad_a[0])
        if ctx.needs_input_grad[1]:
            grad_b = lam
        if h0 is not None and ctx.needs_input_grad[2]:
            grad_h0 = a[0] * lam[0]
        return grad_a, grad_b, grad_h0, None


def chunked_scan(a: Tensor, b: Tensor, h0: Tensor | None = None, *, chunk: int | None = None) -> Tensor:
    """Solve ``h_t = a_t h_{t-1} + b_t`` for ``a, b (T, ...)`` and ``h0 (...)`` (zeros if ``None``).

    ``chunk`` is the chunk length (default ``isqrt(T)``). Differentiable in ``a``, ``b`` and ``h0``.
    """
    a, b = a.contiguous(), b.contiguous()
    return _ChunkedScan.apply(a, b, None if h0 is None else h0.contiguous(), chunk)
