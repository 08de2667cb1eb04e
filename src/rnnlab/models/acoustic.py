"""Acoustic model for CTC: frames in, per-frame label log-probabilities out.

``x (B, T, F)`` padded feature frames with ``lengths (B,)``; ``k = stack`` is the subsampling factor,
done by one of two front-ends (``frontend``)::

    stack:  s_t = [x_{kt} | x_{kt+1} | ... | x_{kt+k-1}]   k frames side by side (zeros past the end)
    conv:   h = relu(conv_1(x)); s = relu(conv_2(h))        two 1-D convolutions over time, C channels,
                                                            strides s1 · s2 = k (s1 the smallest factor
                                                            of k above 1), odd kernels max(3, s | 1),
                                                            padding (kernel - 1) / 2
    o, _  = RNN(s, lengths')                                stacked (bi)directional rnnlab layers, any cell
                                                            in rnnlab.nn.RECURRENT; o (B, T', dirs · H)
    log y = log_softmax(W dropout(o) + b)                   (B, T', n_labels); label 0 is the CTC blank

Both give ``T' = ceil(T / k)`` and ``lengths' = ceil(lengths / k)``: a convolution with an odd kernel
``K = 2P + 1``, padding ``P`` and stride ``s`` maps ``L`` frames to ``floor((L - 1) / s) + 1 = ceil(L / s)``,
and ``ceil(ceil(L / s1) / s2) = ceil(L / k)``. Frames past each length are zeroed before stacking and
before (and between) the convolutions, so the result never depends on what the padding holds: a padded
utterance gets exactly the outputs it gets alone. Outputs past each utterance's end are never read
(CTC and the decoders use ``lengths'``). :class:`AcousticModel` is registered as ``"acoustic_ctc"`` so a
checkpoint rebuilds it from its config alone.
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

__all__ = ["AcousticConfig", "AcousticModel", "ConvFrontEnd", "conv_strides"]


@dataclass
class AcousticConfig:
    n_features: int = option(40, "feature size per frame (set from the features)", min=1, cli=False)
    n_labels: int = option(11, "output symbols including the blank", min=2, cli=False)
    cell: str = option("gru", "recurrent cell: any name in rnnlab.nn.RECURRENT (gru, lstm, rnn, mingru, ...)")
    hidden: int = option(128, "units per direction of each recurrent layer", min=1)
    layers: int = option(2, "stacked recurrent layers", min=1)
    bidirectional: bool = option(True, "read each utterance in both directions")
    stack: int = option(2, "subsampling factor k: frames per recurrent step", min=1)
    frontend: str = option("stack", "how k frames become one step: stack them side by side, or conv (two strided "
                                    "1-D convolutions over time, ReLU)", choices=("stack", "conv"))
    conv_channels: int = option(128, "channels of each convolution of --frontend conv", min=1)
    dropout: float = option(0.1, "dropout between recurrent layers and before the output", min=0.0, max=1.0,
                            max_open=True)

    def __post_init__(self) -> None:
        check_config(self)


def conv_strides(k: int) -> tuple[int, int]:
    """Strides ``(s1, s2)`` of the two convolutions, ``s1 · s2 = k``: s1 the smallest factor of k above 1."""
    if k < 1:
        raise ValueError(f"subsampling factor must be >= 1, got {k}")
    s1 = next((f for f in range(2, k + 1) if k % f == 0), 1)
    return s1, k // s1


class ConvFrontEnd(nn.Module):
    """Two 1-D convolutions over time with ReLU; ``(B, T, F), lengths -> (B, ceil(T / k), C), ceil(lengths / k)``.

    Frames past each length are zeroed before each convolution, so a padded utterance gets what it gets alone.
    """

    def __init__(self, n_in: int, channels: int, k: int):
        super().__init__()
        self.strides = conv_strides(k)
        kernels = [max(3, 2 * (s // 2) + 1) for s in self.strides]
        self.convs = nn.ModuleList(nn.Conv1d(c_in, channels, kernel, stride=s, padding=kernel // 2)
                                   for c_in, kernel, s in zip((n_in, channels), kernels, self.strides))

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        h = x.transpose(1, 2)  # (B, F, T)
        for conv, s in zip(self.convs, self.strides):
            h = h * lengths_to_mask(lengths, h.shape[2]).to(h.device, h.dtype).unsqueeze(1)
            h = torch.relu(conv(h))
            lengths = torch.div(lengths + s - 1, s, rounding_mode="floor")
        return h.transpose(1, 2), lengths


@register_model("acoustic_ctc")
class AcousticModel(nn.Module):
    """See the module docstring."""

    Config = AcousticConfig

    def __init__(self, config: AcousticConfig):
        super().__init__()
        self.config = c = config
        self.frontend = ConvFrontEnd(c.n_features, c.conv_channels, c.stack) if c.frontend == "conv" else None
        n_in = c.conv_channels if self.frontend is not None else c.n_features * c.stack
        self.rnn = build_recurrent(c.cell, n_in, c.hidden, num_layers=c.layers,
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
        if self.frontend is not None:
            steps, _ = self.frontend(x, lengths)  # its lengths equal out_lengths (module docstring)
        else:
            if c.stack > 1:  # the last stacked step reads past the end: zeros there, whatever the padding holds
                x = x * lengths_to_mask(lengths, x.shape[1]).to(x.device).unsqueeze(-1)
            steps = self.stack_frames(x)
        output, _ = self.rnn(steps, lengths=out_lengths)  # (B, T', dirs H)
        return F.log_softmax(self.head(self.drop(output)), dim=-1), out_lengths
