"""The explicit cells at fused speed: one autograd node per layer and direction, backward by hand
(LSTM with its variants, GRU and Elman RNN; the LSTM's is described here, the others' at their classes).

Unrolling a cell under autograd records ~10 nodes per step and replays them one by one, and each
step's weight gradient is a separate small product. :class:`_LSTMLoop` runs the same equations
(:class:`rnnlab.nn.cells.LSTMCell`, :class:`rnnlab.nn.variants.PeepholeLSTMCell`, with optional
variational recurrent dropout and zoneout) as one ``autograd.Function``:

* forward: per step one ``addmm`` and ~7 in-place point-wise ops into preallocated ``(T, B, .)``
  buffers, nothing recorded;
* backward: the point-wise derivatives that do not depend on the incoming gradient are computed
  for all steps at once, so a step is ~5 point-wise ops and one ``mm``; then all recurrent
  weight gradients come from ONE product over time, ``dW_hh = dZ^T U`` with ``dZ (T*B, 4H)`` and
  ``U (T*B, H)`` the recurrent inputs, and ``dx_proj = dZ`` goes back through the input projection.

Per step, with ``u = h_{t-1} * m`` (``m`` the recurrent-dropout mask, 1 without it) and zoneout
masks ``d^c_t, d^h_t`` (0 without it; the constant ``p`` in eval mode, Krueger et al. 2017)::

    z = x_proj_t + u W_hh^T                     i, f, o = sigmoid(.), g = tanh(z_g)
    (peephole: z_i += p_i c_{t-1}, z_f += p_f c_{t-1}, z_o += p_o c^_t)
    c^_t = f c_{t-1} + i g,   h^_t = o tanh(c^_t)
    c_t = c^_t + d^c_t (c_{t-1} - c^_t),   h_t = h^_t + d^h_t (h_{t-1} - h^_t)

Lengths: every step runs, outputs at padded steps are zero and ``h_n, c_n`` are read at each
sequence's last valid step; the backward injects their gradients at that step, so padded steps
receive and pass on exactly zero. Equality with ``torch.nn.LSTM`` and with the unrolled cells is
checked in float64 (values and every gradient) in ``tests/test_fastpath.py``.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnnlab.nn.sequence import reverse_padded
from rnnlab.nn.variants import LAYER_NORM_EPS


def _sigmoid_grad(grad: Tensor, y: Tensor, out: Tensor | None = None) -> Tensor:
    """``grad * y * (1 - y)`` in one kernel (y = sigmoid(z))."""
    if out is None:
        return torch.ops.aten.sigmoid_backward(grad, y)
    return torch.ops.aten.sigmoid_backward.grad_input(grad, y, grad_input=out)


def _tanh_grad(grad: Tensor, y: Tensor, out: Tensor | None = None) -> Tensor:
    """``grad * (1 - y^2)`` in one kernel (y = tanh(z))."""
    if out is None:
        return torch.ops.aten.tanh_backward(grad, y)
    return torch.ops.aten.tanh_backward.grad_input(grad, y, grad_input=out)


class _LSTMLoop(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp: Tensor, h0: Tensor, c0: Tensor, weight_hh: Tensor, peephole: Tensor | None,
                drop: Tensor | None, zone_h: Tensor | None, zone_c: Tensor | None, lengths: Tensor | None):
        steps, batch, four_h = xp.shape
        hidden = four_h // 4
        w_t = weight_hh.t().contiguous()  # (H, 4H): a plain product is a little faster than a transposed one
        gates = torch.empty_like(xp)  # (T, B, 4H): activations i, f, g, o
        hs = xp.new_empty(steps + 1, batch, hidden)  # h_0 .. h_T
        cs = xp.new_empty(steps + 1, batch, hidden)  # c_0 .. c_T
        hs[0], cs[0] = h0, c0
        chat = cs[1:] if zone_c is None else xp.new_empty(steps, batch, hidden)  # c^ before zoneout
        hhat = hs[1:] if zone_h is None else xp.new_empty(steps, batch, hidden)
        us = hs[:-1] if drop is None else xp.new_empty(steps, batch, hidden)  # recurrent inputs u_t
        tau = xp.new_empty(steps, batch, hidden)  # tanh(c^_t)
        # Views per step, made once in C++ (indexing in the loop would cost a dispatch each).
        x_l, g_l = xp.unbind(0), gates.unbind(0)
        i_l, f_l, gg_l, o_l = (gates[..., k * hidden:(k + 1) * hidden].unbind(0) for k in range(4))
        if_l = gates[..., : 2 * hidden].unbind(0)
        h_l, c_l, chat_l, hhat_l = hs.unbind(0), cs.unbind(0), chat.unbind(0), hhat.unbind(0)
        u_l, tau_l = us.unbind(0), tau.unbind(0)
        if peephole is not None:
            p_if, p_o = peephole[:2].unsqueeze(0), peephole[2]  # (1, 2, H), (H,)
            if3_l = gates[..., : 2 * hidden].unflatten(-1, (2, hidden)).unbind(0)  # (B, 2, H) each
        for t in range(steps):
            h_prev, c_prev = h_l[t], c_l[t]
            u = h_prev if drop is None else torch.mul(h_prev, drop, out=u_l[t])
            torch.addmm(x_l[t], u, w_t, out=g_l[t])
            if peephole is not None:
                if3_l[t].addcmul_(c_prev.unsqueeze(1), p_if)
            if_l[t].sigmoid_()
            gg_l[t].tanh_()
            torch.mul(f_l[t], c_prev, out=chat_l[t]).addcmul_(i_l[t], gg_l[t])
            if peephole is not None:
                o_l[t].addcmul_(chat_l[t], p_o)
            o_l[t].sigmoid_()
            torch.mul(o_l[t], torch.tanh(chat_l[t], out=tau_l[t]), out=hhat_l[t])
            if zone_c is not None:
                torch.lerp(chat_l[t], c_prev, zone_c[t], out=c_l[t + 1])
            if zone_h is not None:
                torch.lerp(hhat_l[t], h_prev, zone_h[t], out=h_l[t + 1])

        out, h_n, c_n, valid = _finish(hs, cs, lengths)
        ctx.save_for_backward(weight_hh, peephole, drop, zone_h, zone_c)
        ctx.buffers = (gates, cs, chat, tau, us, valid, lengths)
        return out, h_n, c_n

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out: Tensor, g_hn: Tensor, g_cn: Tensor):
        weight_hh, peephole, drop, zone_h, zone_c = ctx.saved_tensors
        gates, cs, chat, tau, us, valid, lengths = ctx.buffers
        steps, batch, four_h = gates.shape
        hidden = four_h // 4
        i, f, g, o = gates.split(hidden, dim=-1)  # (T, B, H) views
        c_prev = cs[:-1]
        # Everything that does not depend on the incoming gradient, for all steps at once:
        # dz_{i,f,g} = dc^ * A_{i,f,g},  dz_o = dh^ * A_o,  dc^ = ... + dh^ * Bm.
        a3 = gates.new_empty(steps, batch, 3, hidden)  # (T, B, 3, H)
        _sigmoid_grad(g, i, out=a3[:, :, 0])  # g * i (1 - i)
        _sigmoid_grad(c_prev, f, out=a3[:, :, 1])  # c_{t-1} * f (1 - f)
        _tanh_grad(i, g, out=a3[:, :, 2])  # i * (1 - g^2)
        a_o = _sigmoid_grad(tau, o)  # tanh(c^) * o (1 - o)
        b_m = _tanh_grad(o, tau)  # o * (1 - tanh(c^)^2)
        if zone_h is not None:  # dh^ = dh * (1 - d^h): fold the factor in once
            keep_h = 1 - zone_h
            a_o, b_m = a_o * keep_h, b_m * keep_h
        keep_c = None if zone_c is None else 1 - zone_c
        g_out, g_hn, g_cn, dh, dc, ends = _start_backward(g_out, g_hn, g_cn, valid, lengths, tau)
        dz = torch.empty_like(gates)  # (T, B, 4H)
        dz3_l = dz[..., : 3 * hidden].unflatten(-1, (3, hidden)).unbind(0)
        dz_l, dzo_l = dz.unbind(0), dz[..., 3 * hidden:].unbind(0)
        dzi_l, dzf_l = dz[..., :hidden].unbind(0), dz[..., hidden: 2 * hidden].unbind(0)
        a3_l, ao_l, bm_l, f_l, go_l = a3.unbind(0), a_o.unbind(0), b_m.unbind(0), f.unbind(0), g_out.unbind(0)
        if peephole is not None:
            p_i, p_f, p_o = peephole
        for t in range(steps - 1, -1, -1):
            if t in ends:
                dh.addcmul_(g_hn, ends[t])
                dc.addcmul_(g_cn, ends[t])
            gh = go_l[t] + dh  # dL/dh_t
            torch.mul(gh, ao_l[t], out=dzo_l[t])
            dchat = torch.addcmul(dc if keep_c is None else dc * keep_c[t], gh, bm_l[t])
            if peephole is not None:
                dchat.addcmul_(dzo_l[t], p_o)
            torch.mul(dchat.unsqueeze(1), a3_l[t], out=dz3_l[t])
            new_dc = dchat * f_l[t]
            if keep_c is not None:
                new_dc.addcmul_(dc, zone_c[t])
            if peephole is not None:
                new_dc.addcmul_(dzi_l[t], p_i).addcmul_(dzf_l[t], p_f)
            du = torch.mm(dz_l[t], weight_hh)  # (B, H)
            new_dh = du if drop is None else du.mul_(drop)
            if zone_h is not None:
                new_dh.addcmul_(gh, zone_h[t])
            dh, dc = new_dh, new_dc

        d_weight = torch.mm(dz.flatten(0, 1).t(), us.flatten(0, 1))  # (4H, H): one product over time
        d_peep = None
        if peephole is not None and ctx.needs_input_grad[4]:
            dzi, dzf, _, dzo = dz.split(hidden, dim=-1)
            d_peep = torch.stack([(dzi * c_prev).sum((0, 1)), (dzf * c_prev).sum((0, 1)), (dzo * chat).sum((0, 1))])
        return dz, dh, dc, d_weight, d_peep, None, None, None, None


class _LayerNormLSTMLoop(torch.autograd.Function):
    """The layer-normalised LSTM (:class:`rnnlab.nn.variants.LayerNormLSTMCell`) as one node.

    Per step ``r = u W_hh^T``, ``z = x_proj_t + gamma_hh * LN(r)``, gates as above,
    ``c^ = f c_{t-1} + i g``, ``h^ = o tanh(gamma_c * LN(c^) + beta_c)``, then zoneout. Each layer
    norm's backward is one ``native_layer_norm_backward`` call per step; the gains' gradients are
    sums over all steps, taken once after the loop.
    """

    @staticmethod
    def forward(ctx, xp, h0, c0, weight_hh, ln_hh, ln_c_w, ln_c_b, eps, drop, zone_h, zone_c, lengths):
        steps, batch, four_h = xp.shape
        hidden = four_h // 4
        w_t = weight_hh.t().contiguous()
        rec = torch.empty_like(xp)  # r_t = u W_hh^T, before its layer norm
        gates = torch.empty_like(xp)
        hs, cs = xp.new_empty(steps + 1, batch, hidden), xp.new_empty(steps + 1, batch, hidden)
        hs[0], cs[0] = h0, c0
        chat = cs[1:] if zone_c is None else xp.new_empty(steps, batch, hidden)
        hhat = hs[1:] if zone_h is None else xp.new_empty(steps, batch, hidden)
        us = hs[:-1] if drop is None else xp.new_empty(steps, batch, hidden)
        tau = xp.new_empty(steps, batch, hidden)  # tanh(gamma_c LN(c^) + beta_c)
        stats_r, stats_c = [], []  # (mean, rstd) of each step's layer norms
        x_l, r_l, g_l = xp.unbind(0), rec.unbind(0), gates.unbind(0)
        i_l, f_l, gg_l, o_l = (gates[..., k * hidden:(k + 1) * hidden].unbind(0) for k in range(4))
        if_l = gates[..., : 2 * hidden].unbind(0)
        h_l, c_l, chat_l, hhat_l = hs.unbind(0), cs.unbind(0), chat.unbind(0), hhat.unbind(0)
        u_l, tau_l = us.unbind(0), tau.unbind(0)
        for t in range(steps):
            h_prev, c_prev = h_l[t], c_l[t]
            u = h_prev if drop is None else torch.mul(h_prev, drop, out=u_l[t])
            torch.mm(u, w_t, out=r_l[t])
            normed, mean, rstd = torch.native_layer_norm(r_l[t], (four_h,), None, None, eps)
            stats_r.append((mean, rstd))
            torch.addcmul(x_l[t], normed, ln_hh, out=g_l[t])
            if_l[t].sigmoid_()
            gg_l[t].tanh_()
            o_l[t].sigmoid_()
            torch.mul(f_l[t], c_prev, out=chat_l[t]).addcmul_(i_l[t], gg_l[t])
            q, mean_c, rstd_c = torch.native_layer_norm(chat_l[t], (hidden,), ln_c_w, ln_c_b, eps)
            stats_c.append((mean_c, rstd_c))
            torch.mul(o_l[t], torch.tanh(q, out=tau_l[t]), out=hhat_l[t])
            if zone_c is not None:
                torch.lerp(chat_l[t], c_prev, zone_c[t], out=c_l[t + 1])
            if zone_h is not None:
                torch.lerp(hhat_l[t], h_prev, zone_h[t], out=h_l[t + 1])
        out, h_n, c_n, valid = _finish(hs, cs, lengths)
        ctx.save_for_backward(weight_hh, ln_hh, ln_c_w, ln_c_b, drop, zone_h, zone_c)
        ctx.buffers = (gates, rec, cs, chat, tau, us, stats_r, stats_c, valid, lengths, eps)
        return out, h_n, c_n

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, g_hn, g_cn):
        weight_hh, ln_hh, ln_c_w, ln_c_b, drop, zone_h, zone_c = ctx.saved_tensors
        gates, rec, cs, chat, tau, us, stats_r, stats_c, valid, lengths, eps = ctx.buffers
        steps, batch, four_h = gates.shape
        hidden = four_h // 4
        i, f, g, o = gates.split(hidden, dim=-1)
        c_prev = cs[:-1]
        a3 = gates.new_empty(steps, batch, 3, hidden)
        _sigmoid_grad(g, i, out=a3[:, :, 0])
        _sigmoid_grad(c_prev, f, out=a3[:, :, 1])
        _tanh_grad(i, g, out=a3[:, :, 2])
        a_o, b_m = _sigmoid_grad(tau, o), _tanh_grad(o, tau)  # dz_o = dh^ a_o; dq = dh^ b_m
        if zone_h is not None:
            keep_h = 1 - zone_h
            a_o, b_m = a_o * keep_h, b_m * keep_h
        keep_c = None if zone_c is None else 1 - zone_c
        g_out, g_hn, g_cn, dh, dc, ends = _start_backward(g_out, g_hn, g_cn, valid, lengths, tau)
        dz, drec, dq = torch.empty_like(gates), torch.empty_like(gates), torch.empty_like(tau)
        dz3_l = dz[..., : 3 * hidden].unflatten(-1, (3, hidden)).unbind(0)
        dz_l, dzo_l, dr_l, dq_l = dz.unbind(0), dz[..., 3 * hidden:].unbind(0), drec.unbind(0), dq.unbind(0)
        a3_l, ao_l, bm_l, f_l, go_l = a3.unbind(0), a_o.unbind(0), b_m.unbind(0), f.unbind(0), g_out.unbind(0)
        chat_l, rec_l = chat.unbind(0), rec.unbind(0)
        mask_in = [True, False, False]
        for t in range(steps - 1, -1, -1):
            if t in ends:
                dh.addcmul_(g_hn, ends[t])
                dc.addcmul_(g_cn, ends[t])
            gh = go_l[t] + dh
            torch.mul(gh, ao_l[t], out=dzo_l[t])
            torch.mul(gh, bm_l[t], out=dq_l[t])
            mean_c, rstd_c = stats_c[t]
            dchat = torch.ops.aten.native_layer_norm_backward(dq_l[t], chat_l[t], (hidden,), mean_c, rstd_c, ln_c_w,
                                                              ln_c_b, mask_in)[0]
            dchat.add_(dc if keep_c is None else dc * keep_c[t])
            torch.mul(dchat.unsqueeze(1), a3_l[t], out=dz3_l[t])
            new_dc = dchat * f_l[t]
            if keep_c is not None:
                new_dc.addcmul_(dc, zone_c[t])
            mean, rstd = stats_r[t]
            dr_l[t].copy_(torch.ops.aten.native_layer_norm_backward(dz_l[t], rec_l[t], (four_h,), mean, rstd, ln_hh,
                                                                    None, mask_in)[0])
            du = torch.mm(dr_l[t], weight_hh)
            new_dh = du if drop is None else du.mul_(drop)
            if zone_h is not None:
                new_dh.addcmul_(gh, zone_h[t])
            dh, dc = new_dh, new_dc

        d_weight = torch.mm(drec.flatten(0, 1).t(), us.flatten(0, 1))
        mean_r = torch.stack([m for m, _ in stats_r])  # (T, B, 1)
        rstd_r = torch.stack([r for _, r in stats_r])
        d_ln_hh = (dz * (rec - mean_r) * rstd_r).sum((0, 1))
        mean_c = torch.stack([m for m, _ in stats_c])
        rstd_c = torch.stack([r for _, r in stats_c])
        d_ln_c_w = (dq * (chat - mean_c) * rstd_c).sum((0, 1))
        d_ln_c_b = dq.sum((0, 1))
        return dz, dh, dc, d_weight, d_ln_hh, d_ln_c_w, d_ln_c_b, None, None, None, None, None


class _GRULoop(torch.autograd.Function):
    """The GRU of :class:`rnnlab.nn.cells.GRUCell` over time, one node, backward by hand::

        p_t = h_{t-1} W_hh^T + b_hh                     (B, 3H): the recurrent product, blocks r, z, n
        r = sigmoid(x_r + p_r),  z = sigmoid(x_z + p_z),  n = tanh(x_n + r * p_n)
        h_t = n + z * (h_{t-1} - n)                     (= (1 - z) n + z h_{t-1})

    Backward, with ``gh = dL/dh_t``: ``dn~ = gh (1 - z)(1 - n^2)``, ``dz~ = gh (h_{t-1} - n) z (1 - z)``,
    ``dr~ = dn~ p_n r (1 - r)``; ``dx = [dr~, dz~, dn~]``, ``dp = [dr~, dz~, dn~ r]``, and
    ``dL/dh_{t-1} = gh z + dp W_hh``; ``dW_hh = dP^T H_prev`` and ``db_hh = sum dp`` over all steps at once.
    """

    @staticmethod
    def forward(ctx, xp: Tensor, h0: Tensor, weight_hh: Tensor, bias_hh: Tensor | None, lengths: Tensor | None):
        steps, batch, three_h = xp.shape
        hidden = three_h // 3
        w_t = weight_hh.t().contiguous()  # (H, 3H)
        proj = torch.empty_like(xp)  # (T, B, 3H): p_t
        rz = xp.new_empty(steps, batch, 2 * hidden)  # r, z activations
        ns = xp.new_empty(steps, batch, hidden)
        hs = xp.new_empty(steps + 1, batch, hidden)
        hs[0] = h0
        x_rz, x_n = xp[..., : 2 * hidden].unbind(0), xp[..., 2 * hidden:].unbind(0)
        p_l, p_rz, p_n = proj.unbind(0), proj[..., : 2 * hidden].unbind(0), proj[..., 2 * hidden:].unbind(0)
        rz_l, r_l, z_l = rz.unbind(0), rz[..., :hidden].unbind(0), rz[..., hidden:].unbind(0)
        n_l, h_l = ns.unbind(0), hs.unbind(0)
        for t in range(steps):
            h_prev = h_l[t]
            if bias_hh is None:
                torch.mm(h_prev, w_t, out=p_l[t])
            else:
                torch.addmm(bias_hh, h_prev, w_t, out=p_l[t])
            torch.add(x_rz[t], p_rz[t], out=rz_l[t]).sigmoid_()
            torch.addcmul(x_n[t], r_l[t], p_n[t], out=n_l[t]).tanh_()
            torch.sub(h_prev, n_l[t], out=h_l[t + 1]).mul_(z_l[t]).add_(n_l[t])
        out, h_n, _, valid = _finish(hs, hs, lengths)
        ctx.save_for_backward(weight_hh)
        ctx.buffers = (proj, rz, ns, hs, valid, lengths, bias_hh is not None)
        return out, h_n

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out: Tensor, g_hn: Tensor):
        (weight_hh,) = ctx.saved_tensors
        proj, rz, ns, hs, valid, lengths, has_bias = ctx.buffers
        steps, batch, three_h = proj.shape
        hidden = three_h // 3
        r, z, h_prev, p_n = rz[..., :hidden], rz[..., hidden:], hs[:-1], proj[..., 2 * hidden:]
        # What does not depend on the incoming gradient, for all steps at once:
        a_n = _tanh_grad(1 - z, ns)  # (1 - z)(1 - n^2)
        a_z = _sigmoid_grad(h_prev - ns, z)  # (h_{t-1} - n) z (1 - z)
        a_r = _sigmoid_grad(p_n, r)  # p_n r (1 - r)
        g_out, g_hn, _, dh, _, ends = _start_backward(g_out, g_hn, None, valid, lengths, ns)
        dx = torch.empty_like(proj)  # (T, B, 3H)
        dp = torch.empty_like(proj)
        dx_l, dp_l = dx.unbind(0), dp.unbind(0)
        dxr_l, dxz_l, dxn_l = (dx[..., k * hidden:(k + 1) * hidden].unbind(0) for k in range(3))
        dpn_l = dp[..., 2 * hidden:].unbind(0)
        an_l, az_l, ar_l, r_l, z_l, go_l = (v.unbind(0) for v in (a_n, a_z, a_r, r, z, g_out))
        for t in range(steps - 1, -1, -1):
            if t in ends:
                dh.addcmul_(g_hn, ends[t])
            gh = go_l[t] + dh  # dL/dh_t
            torch.mul(gh, an_l[t], out=dxn_l[t])
            torch.mul(gh, az_l[t], out=dxz_l[t])
            torch.mul(dxn_l[t], ar_l[t], out=dxr_l[t])
            dp_l[t].copy_(dx_l[t])
            dpn_l[t].mul_(r_l[t])
            dh = torch.addmm(gh * z_l[t], dp_l[t], weight_hh)  # (B, H)
        d_weight = torch.mm(dp.flatten(0, 1).t(), h_prev.flatten(0, 1))  # (3H, H): one product over time
        d_bias = dp.sum((0, 1)) if has_bias and ctx.needs_input_grad[3] else None
        return dx, dh, d_weight, d_bias, None


class _RNNLoop(torch.autograd.Function):
    """The Elman cell of :class:`rnnlab.nn.cells.RNNCell` over time: ``h_t = act(x_t + h_{t-1} W_hh^T)``
    (both biases folded into ``x``); backward ``dz_t = gh act'``, ``dL/dh_{t-1} = dz_t W_hh``,
    ``dW_hh = dZ^T H_prev`` in one product."""

    @staticmethod
    def forward(ctx, xp: Tensor, h0: Tensor, weight_hh: Tensor, relu: bool, lengths: Tensor | None):
        steps, batch, hidden = xp.shape
        w_t = weight_hh.t().contiguous()
        hs = xp.new_empty(steps + 1, batch, hidden)
        hs[0] = h0
        x_l, h_l = xp.unbind(0), hs.unbind(0)
        for t in range(steps):
            z = torch.addmm(x_l[t], h_l[t], w_t, out=h_l[t + 1])
            z.relu_() if relu else z.tanh_()
        out, h_n, _, valid = _finish(hs, hs, lengths)
        ctx.save_for_backward(weight_hh)
        ctx.buffers = (hs, valid, lengths, relu)
        return out, h_n

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out: Tensor, g_hn: Tensor):
        (weight_hh,) = ctx.saved_tensors
        hs, valid, lengths, relu = ctx.buffers
        h = hs[1:]
        slope = (h > 0).to(h.dtype) if relu else _tanh_grad(torch.ones_like(h), h)  # act'(z_t), all steps at once
        g_out, g_hn, _, dh, _, ends = _start_backward(g_out, g_hn, None, valid, lengths, h)
        dz = torch.empty_like(h)
        dz_l, s_l, go_l = dz.unbind(0), slope.unbind(0), g_out.unbind(0)
        for t in range(h.shape[0] - 1, -1, -1):
            if t in ends:
                dh.addcmul_(g_hn, ends[t])
            torch.mul(go_l[t] + dh, s_l[t], out=dz_l[t])
            dh = torch.mm(dz_l[t], weight_hh)
        d_weight = torch.mm(dz.flatten(0, 1).t(), hs[:-1].flatten(0, 1))
        return dz, dh, d_weight, None, None


def _finish(hs: Tensor, cs: Tensor, lengths: Tensor | None):
    """Outputs (zero at padding), ``h_n``, ``c_n`` at each last valid step, and the valid mask."""
    steps, batch = hs.shape[0] - 1, hs.shape[1]
    if lengths is None:
        return hs[1:].clone(), hs[steps].clone(), cs[steps].clone(), None
    rows, last = torch.arange(batch, device=hs.device), lengths.to(hs.device) - 1
    valid = (torch.arange(steps, device=hs.device).unsqueeze(1) < lengths.to(hs.device)).unsqueeze(-1)
    return hs[1:].masked_fill(~valid, 0.0), hs[1:][last, rows], cs[1:][last, rows], valid


def _start_backward(g_out, g_hn, g_cn, valid, lengths, like):
    """Dense gradients ``(g_out, g_hn, g_cn)``, the starting ``(dh, dc)``, and the steps (with row masks)
    where each sequence's final-state gradient enters: its last valid step."""
    g_out = torch.zeros_like(like) if g_out is None else (g_out if valid is None else g_out.masked_fill(~valid, 0.0))
    g_hn = torch.zeros_like(like[0]) if g_hn is None else g_hn
    g_cn = torch.zeros_like(like[0]) if g_cn is None else g_cn
    ends = {}
    if lengths is None:
        return g_out, g_hn, g_cn, g_hn.clone(), g_cn.clone(), ends
    for length in torch.unique(lengths).tolist():
        ends[length - 1] = (lengths == length).to(device=like.device, dtype=like.dtype).unsqueeze(1)
    return g_out, g_hn, g_cn, torch.zeros_like(g_hn), torch.zeros_like(g_cn), ends


def run_lstm(cell, inputs: Tensor, state=None, *, lengths: Tensor | None = None, reverse: bool = False,
             drop: Tensor | None = None, zone_h: Tensor | None = None, zone_c: Tensor | None = None):
    """Same contract as :func:`rnnlab.nn.unroll.unroll` without recording, for a plain or peephole LSTM
    cell: ``inputs (T, B, F)`` -> ``(outputs (T, B, H), (h_n, c_n))``. ``drop (B, H)``,
    ``zone_h``/``zone_c (T, B, H)`` are masks (see :mod:`rnnlab.nn.regularize`); ``reverse`` walks each
    sequence from its own last step."""
    peephole = getattr(cell, "weight_peephole", None)

    def loop(x_proj, h0, c0, zone_h, zone_c):
        return _LSTMLoop.apply(x_proj, h0, c0, cell.weight_hh, peephole, drop, zone_h, zone_c, lengths)

    return _run(loop, cell, inputs, state, lengths, reverse, zone_h, zone_c)


def run_layernorm_lstm(cell, inputs: Tensor, state=None, *, lengths: Tensor | None = None, reverse: bool = False,
                       drop: Tensor | None = None, zone_h: Tensor | None = None, zone_c: Tensor | None = None):
    """:func:`run_lstm` for :class:`rnnlab.nn.variants.LayerNormLSTMCell`."""

    def loop(x_proj, h0, c0, zone_h, zone_c):
        return _LayerNormLSTMLoop.apply(x_proj, h0, c0, cell.weight_hh, cell.ln_hh_weight, cell.ln_c_weight,
                                        cell.ln_c_bias, LAYER_NORM_EPS, drop, zone_h, zone_c, lengths)

    return _run(loop, cell, inputs, state, lengths, reverse, zone_h, zone_c)


def run_gru(cell, inputs: Tensor, state=None, *, lengths: Tensor | None = None, reverse: bool = False,
            drop: Tensor | None = None, zone_h: Tensor | None = None, zone_c: Tensor | None = None):
    """:func:`run_lstm` for :class:`rnnlab.nn.cells.GRUCell` (no recurrent dropout or zoneout: a GRU layer
    takes neither): ``inputs (T, B, F)`` -> ``(outputs (T, B, H), h_n (B, H))``."""
    h0 = cell.init_state(inputs.shape[1], inputs.device, inputs.dtype) if state is None else state
    x_proj = cell.input_projection(inputs)  # (T, B, 3H): all input products at once
    flip = _flipper(lengths) if reverse else None
    if flip is not None:
        x_proj = flip(x_proj)
    out, h_n = _GRULoop.apply(x_proj, h0, cell.weight_hh, cell.bias_hh if cell.bias else None, lengths)
    return (flip(out) if flip is not None else out), h_n


def run_rnn(cell, inputs: Tensor, state=None, *, lengths: Tensor | None = None, reverse: bool = False,
            drop: Tensor | None = None, zone_h: Tensor | None = None, zone_c: Tensor | None = None):
    """:func:`run_lstm` for :class:`rnnlab.nn.cells.RNNCell`: ``inputs (T, B, F)`` -> ``(outputs, h_n)``."""
    h0 = cell.init_state(inputs.shape[1], inputs.device, inputs.dtype) if state is None else state
    x_proj = cell.input_projection(inputs)  # (T, B, H): all input products at once, both biases folded
    flip = _flipper(lengths) if reverse else None
    if flip is not None:
        x_proj = flip(x_proj)
    out, h_n = _RNNLoop.apply(x_proj, h0, cell.weight_hh, cell.nonlinearity == "relu", lengths)
    return (flip(out) if flip is not None else out), h_n


def _run(loop, cell, inputs: Tensor, state, lengths: Tensor | None, reverse: bool, zone_h, zone_c):
    """Project all inputs at once, flip for the reverse direction, run ``loop``, flip back."""
    batch = inputs.shape[1]
    h0, c0 = cell.init_state(batch, inputs.device, inputs.dtype) if state is None else state
    x_proj = cell.input_projection(inputs)  # (T, B, 4H): all input products at once
    if reverse:  # reverse each sequence within its length, run forwards, reverse back
        flip = _flipper(lengths)
        x_proj = flip(x_proj)
        zone_h = None if zone_h is None else flip(zone_h)
        zone_c = None if zone_c is None else flip(zone_c)
    out, h_n, c_n = loop(x_proj, h0, c0, zone_h, zone_c)
    return (flip(out) if reverse else out), (h_n, c_n)


def _flipper(lengths: Tensor | None):
    if lengths is None:
        return lambda v: v.flip(0)
    return lambda v: reverse_padded(v.transpose(0, 1), lengths).transpose(0, 1).contiguous()
