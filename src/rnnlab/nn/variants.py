"""LSTM variants as cells of their own: they differ from :class:`LSTMCell` only where they must.

* :class:`PeepholeLSTMCell` (Gers & Schmidhuber 2000): the gates also see the memory cell through
  diagonal ("peephole") weights, so they can time their decisions on the cell's content::

      i = sigmoid(z_i + p_i * c_{t-1})
      f = sigmoid(z_f + p_f * c_{t-1})
      g = tanh(z_g)
      c_t = f * c_{t-1} + i * g
      o = sigmoid(z_o + p_o * c_t)          # the output gate peeks at the *new* cell
      h_t = o * tanh(c_t)

  ``weight_peephole`` is ``(3, H)``: rows p_i, p_f, p_o.

* :class:`LayerNormLSTMCell` (Ba, Kiros & Hinton 2016): the input and recurrent contributions are
  normalised separately (over all 4H pre-activations) before they meet, and so is the cell before
  the output nonlinearity::

      z = LN(W_ih x_t; gamma_ih) + LN(W_hh h_{t-1}; gamma_hh) + b_ih + b_hh
      c_t = f * c_{t-1} + i * g
      h_t = o * tanh(LN(c_t; gamma_c, beta_c))

  Extra tensors: ``ln_ih_weight (4H)``, ``ln_hh_weight (4H)``, ``ln_c_weight (H)``, ``ln_c_bias (H)``
  (gains start at 1, ``ln_c_bias`` at 0; the gate biases play the role of the LN shifts).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnlab.errors import ConfigError
from rnnlab.nn.cells import LSTMCell

LAYER_NORM_EPS = 1e-5


class _VariantLSTMCell(LSTMCell):
    """An LSTM variant: no output projection (the papers define none), explicit path only."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, **kwargs) -> None:
        if kwargs.get("proj_size"):
            raise ConfigError(f"{type(self).__name__} does not support proj_size; got {kwargs['proj_size']}")
        super().__init__(input_size, hidden_size, bias, **kwargs)


class PeepholeLSTMCell(_VariantLSTMCell):
    """LSTM with peephole connections; see the module docstring for the equations."""

    @classmethod
    def extra_shapes(cls, hidden_size: int) -> dict[str, tuple[int, ...]]:
        return {"weight_peephole": (3, hidden_size)}

    def recurrence(self, x_proj: Tensor, state, record: bool = False):
        h_prev, c_prev = state
        z_i, z_f, z_g, z_o = torch.addmm(x_proj, h_prev, self.weight_hh.t()).chunk(4, dim=1)  # each (B, H)
        p_i, p_f, p_o = self.weight_peephole  # each (H,)
        i = torch.sigmoid(z_i + p_i * c_prev)
        f = torch.sigmoid(z_f + p_f * c_prev)
        g = torch.tanh(z_g)
        c = f * c_prev + i * g
        o = torch.sigmoid(z_o + p_o * c)
        h = o * torch.tanh(c)
        gates = {"i": i, "f": f, "g": g, "o": o, "c": c, "h": h} if record else None
        return h, (h, c), gates


class LayerNormLSTMCell(_VariantLSTMCell):
    """Layer-normalised LSTM; see the module docstring for the equations."""

    @classmethod
    def extra_shapes(cls, hidden_size: int) -> dict[str, tuple[int, ...]]:
        return {"ln_ih_weight": (4 * hidden_size,), "ln_hh_weight": (4 * hidden_size,),
                "ln_c_weight": (hidden_size,), "ln_c_bias": (hidden_size,)}

    def apply_init_rules(self) -> None:
        with torch.no_grad():
            for name in ("ln_ih_weight", "ln_hh_weight", "ln_c_weight"):
                getattr(self, name).fill_(1.0)
            self.ln_c_bias.zero_()
        super().apply_init_rules()

    def input_projection(self, x: Tensor) -> Tensor:
        # LN acts on each step's 4H vector on its own, so the whole sequence is still one product.
        x_proj = F.layer_norm(F.linear(x, self.weight_ih), (4 * self.hidden_size,), self.ln_ih_weight, None,
                              LAYER_NORM_EPS)
        return x_proj + (self.bias_ih + self.bias_hh) if self.bias else x_proj  # (..., 4H)

    def recurrence(self, x_proj: Tensor, state, record: bool = False):
        h_prev, c_prev = state
        h_part = F.layer_norm(F.linear(h_prev, self.weight_hh), (4 * self.hidden_size,), self.ln_hh_weight, None,
                              LAYER_NORM_EPS)
        z_i, z_f, z_g, z_o = (x_proj + h_part).chunk(4, dim=1)  # each (B, H)
        i, f, g, o = torch.sigmoid(z_i), torch.sigmoid(z_f), torch.tanh(z_g), torch.sigmoid(z_o)
        c = f * c_prev + i * g
        h = o * torch.tanh(F.layer_norm(c, (self.hidden_size,), self.ln_c_weight, self.ln_c_bias, LAYER_NORM_EPS))
        gates = {"i": i, "f": f, "g": g, "o": o, "c": c, "h": h} if record else None
        return h, (h, c), gates
