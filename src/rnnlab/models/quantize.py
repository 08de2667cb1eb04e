"""int8 dynamic quantisation for CPU inference: ``torch.ao.quantization.quantize_dynamic`` on a model's
recurrent and linear layers (weights stored as int8, activations quantised on the fly per batch).

rnnlab's LSTM/GRU/RNN are ``torch.nn`` subclasses, which PyTorch's quantiser does not match by type,
so they are swapped for their ``torch.nn`` twins (same weights) first; that needs the standard cells on
the fused path (variants, minGRU/minLSTM and regularised layers are refused with a clear error).
"""
from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.nn.layers import GRU, LSTM, RNN

__all__ = ["quantize_int8"]


def _plain(layer: nn.Module) -> nn.Module:
    """The ``torch.nn`` twin of an rnnlab layer with a fused cell (what quantize_dynamic knows)."""
    base = {LSTM: nn.LSTM, GRU: nn.GRU, RNN: nn.RNN}[type(layer)]
    kwargs = dict(num_layers=layer.num_layers, bias=layer.bias, batch_first=layer.batch_first,
                  dropout=layer.dropout, bidirectional=layer.bidirectional)
    if base is nn.RNN:
        kwargs["nonlinearity"] = layer.nonlinearity
    if base is nn.LSTM:
        kwargs["proj_size"] = layer.proj_size
    twin = base(layer.input_size, layer.hidden_size, **kwargs)
    twin.load_state_dict({k: v for k, v in layer.state_dict().items() if k in twin.state_dict()})
    return twin


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` for CPU inference with int8 weights in its recurrent and linear layers.

    Recurrent layers must run on the fused path (standard LSTM/GRU/RNN cells); they are swapped for
    their ``torch.nn`` twins (same weights) so that PyTorch's dynamic quantisation applies.
    """
    # PyTorch's own quantised RNN warns (on every use) about its planned removal; the numbers are right.
    warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*deprecated.*")
    model = copy.deepcopy(model).eval()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) in (LSTM, GRU, RNN):
                if child.path() != "fused":
                    raise ConfigError(f"int8 needs standard LSTM/GRU/RNN cells on the fused path; {name} runs "
                                      f"{child.cell_class.__name__} on the {child.path()!r} path")
                setattr(parent, name, _plain(child))
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao; it still works here
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.ao.quantization.quantize_dynamic(model, {nn.LSTM, nn.GRU, nn.Linear}, dtype=torch.qint8)
