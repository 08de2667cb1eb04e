"""Acoustic model for CTC: frames in, per-frame label log-probabilities out.

``x (B, T, F)`` padded feature frames with ``lengths (B,)``::

    s_t   = [x_{kt} | x_{kt+1} | ... | x_{kt+k-1}]     frame stacking by k = ``stack`` (subsampling:
                                                       T' = ceil(T / k), zeros past the end)
    o, _  = RNN(s, lengths')                           stacked (bi)directional rnnlab layers, any cell
                                                       in rnnlab.nn.RECURRENT; o (B, T', dirs · H)
    log y = log_softmax(W dropout(o) + b)              (B, T', n_labels); label 0 is the CTC blank

``lengths' = ceil(lengths / k)``; frames past each length are zeroed before stacking, so the
result never depends on what the padding holds. Outputs past each utterance's end are zero before the head and
never read (CTC and the decoders use ``lengths'``). :class:`AcousticModel` is registered as
``"acoustic_ctc"`` so a checkpoint rebuilds it from its config alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.config import check_config, option
from rnnlab.errors import InputShapeError
from rnnlab.models.registry import register_model
from rnnlab.nn import build_recurrent
from rnnlab.nn.sequence import check_lengths, lengths_to_mask

__all__ = ["AcousticConfig", "AcousticModel"]


@dataclass
class AcousticConfig:
    n_features: int = option(40, "feature size per frame (set from the features)", min=1, cli=False)
    n_labels: int = option(11, "output symbols including the blank", min=2, cli=False)
    cell: str = option("gru", "recurrent cell: any name in rnnlab.nn.RECURRENT (gru, lstm, rnn, mingru, ...)")
    hidden: int = option(128, "units per direction of each recurrent layer", min=1)
    layers: int = option(2, "stacked recurrent layers", min=1)
    bidirectional: bool = option(True, "read each utterance in both directions")
    stack: int = option(2, "frames stacked into one recurrent step (subsampling factor)", min=1)
    dropout: float = option(0.1, "dropout between recurrent layers and before the output", min=0.0, max=1.0,
                            max_open=True)

    def __post_init__(self) -> None:
        check_config(self)


@register_model("acoustic_ctc")
class AcousticModel(nn.Module):
    """See the module docstring."""

    Config = AcousticConfig

    def __init__(self, config: AcousticConfig):
        super().__init__()
        self.config = c = config
        self.rnn = build_recurrent(c.cell, c.n_features * c.stack, c.hidden, num_layers=c.layers,
                                   dropout=c.dropout if c.layers > 1 else 0.0, bidirectional=c.bidirectional)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden * (2 if c.bidirectional else 1), c.n_labels)

    @classmethod
    def from_config(cls, config: AcousticConfig) -> AcousticModel:
        return cls(config)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return torch.div(lengths + self.config.stack - 1, self.config.stack, rounding_mode="floor")

    def stack_frames(self, x: Tensor) -> Tensor:
        """``(B, T, F) -> (B, ceil(T / k), k F)``, zero-padded at the end."""
        k = self.config.stack
        if k == 1:
            return x
        B, T, Fdim = x.shape
        pad = (-T) % k
        if pad:
            x = F.pad(x, (0, 0, 0, pad))
        return x.reshape(B, (T + pad) // k, k * Fdim)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Log-probabilities ``(B, T', n_labels)`` and output lengths ``(B,)``."""
        c = self.config
        if x.dim() != 3 or x.shape[2] != c.n_features:
            raise InputShapeError(f"expected frames of shape (B, T, {c.n_features}); got {tuple(x.shape)}")
        lengths = check_lengths(lengths, x.shape[0], x.shape[1])
        out_lengths = self.output_lengths(lengths)
        if c.stack > 1:  # the last stacked step reads past the end: zeros there, whatever the padding holds
            x = x * lengths_to_mask(lengths, x.shape[1]).to(x.device).unsqueeze(-1)
        output, _ = self.rnn(self.stack_frames(x), lengths=out_lengths)  # (B, T', dirs H)
        return F.log_softmax(self.head(self.drop(output)), dim=-1), out_lengths
