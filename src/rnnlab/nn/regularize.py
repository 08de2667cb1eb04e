"""Recurrent dropout and zoneout for the explicit LSTM path: the masks, and a cell wrapper.

* Variational recurrent dropout (Gal & Ghahramani 2016), on ``h`` as it enters the recurrent
  product: ``z_t = W_ih x_t + W_hh (m * h_{t-1}) + b`` with ONE mask ``m ~ Bernoulli(1-p) / (1-p)``
  per sequence and unit, the same at every step (a fresh mask each step would destroy memory).
  Identity in eval mode.
* Zoneout (Krueger et al. 2017): each unit keeps its previous value with probability ``p``::

      c_t = d^c_t * c_{t-1} + (1 - d^c_t) * c^_t,   h_t = d^h_t * h_{t-1} + (1 - d^h_t) * h^_t

  with ``c^_t, h^_t`` the plain LSTM update and ``d ~ Bernoulli(p)`` drawn per step and unit in
  training; in eval mode ``d`` is the constant ``p`` (the expectation, as in the paper).

:func:`draw_masks` makes the masks for one layer and direction; the fast loop
(:mod:`rnnlab.nn.fastpath`) takes them directly, and :class:`RegularizedCell` applies the same
masks inside :func:`rnnlab.nn.unroll.unroll` (for gate recording, layer norm, projections), so
both paths compute the same thing from the same masks.
"""
from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.errors import ConfigError


def check_regularizers(recurrent_dropout, zoneout) -> tuple[float, tuple[float, float]]:
    """Validate the options; ``zoneout`` is one probability or ``(p_cell, p_hidden)``."""
    if not isinstance(recurrent_dropout, (int, float)) or not 0.0 <= recurrent_dropout < 1.0:
        raise ConfigError(f"recurrent_dropout must be a probability in [0, 1); got {recurrent_dropout!r}")
    pair = tuple(zoneout) if isinstance(zoneout, (tuple, list)) else (zoneout, zoneout)
    if len(pair) != 2 or not all(isinstance(p, (int, float)) and 0.0 <= p <= 1.0 for p in pair):
        raise ConfigError(f"zoneout must be a probability in [0, 1] or a pair (p_cell, p_hidden); got {zoneout!r}")
    return float(recurrent_dropout), (float(pair[0]), float(pair[1]))


def draw_masks(recurrent_dropout: float, zoneout: tuple[float, float], training: bool, steps: int, batch: int,
               hidden: int, like: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """``(drop (B, H) | None, zone_h (T, B, H) | None, zone_c (T, B, H) | None)`` for one layer and direction."""
    drop = zone_h = zone_c = None
    kw = dict(device=like.device, dtype=like.dtype)
    if recurrent_dropout and training:
        keep = 1.0 - recurrent_dropout
        drop = torch.bernoulli(torch.full((batch, hidden), keep, **kw)) / keep
    p_c, p_h = zoneout
    for p, name in ((p_c, "c"), (p_h, "h")):
        if not p:
            continue
        mask = torch.bernoulli(torch.full((steps, batch, hidden), p, **kw)) if training else \
            torch.full((steps, batch, hidden), p, **kw)
        if name == "c":
            zone_c = mask
        else:
            zone_h = mask
    return drop, zone_h, zone_c


class RegularizedCell(torch.nn.Module):
    """An LSTM-family cell with fixed masks, for :func:`unroll`: the zoneout masks ride along the
    projected input (so ``unroll`` keeps them aligned with time, reversal and lengths).
    """

    def __init__(self, cell, drop: Tensor | None, zone_h: Tensor | None, zone_c: Tensor | None) -> None:
        super().__init__()
        self.cell, self.drop, self.zone_h, self.zone_c = cell, drop, zone_h, zone_c

    def init_state(self, *args, **kwargs):
        return self.cell.init_state(*args, **kwargs)

    def input_projection(self, x: Tensor) -> Tensor:
        parts = [self.cell.input_projection(x)]  # (T, B, 4H)
        parts += [m for m in (self.zone_h, self.zone_c) if m is not None]
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]

    def recurrence(self, x_proj: Tensor, state, record: bool = False):
        hidden = self.cell.hidden_size
        x_proj, extra = x_proj[:, : 4 * hidden], x_proj[:, 4 * hidden:]
        zone_h = zone_c = None
        if self.zone_h is not None:
            zone_h, extra = extra[:, :hidden], extra[:, hidden:]
        if self.zone_c is not None:
            zone_c = extra[:, :hidden]
        h_prev, c_prev = state
        u = h_prev if self.drop is None else h_prev * self.drop
        h, (_, c), gates = self.cell.recurrence(x_proj, (u, c_prev), record)
        if zone_c is not None:
            c = torch.lerp(c, c_prev, zone_c)
        if zone_h is not None:
            h = torch.lerp(h, h_prev, zone_h)
        if gates is not None:
            gates = {**gates, "c": c, "h": h}
        return h, (h, c), gates
