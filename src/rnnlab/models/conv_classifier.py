"""A convolutional front-end before the recurrent sequence classifier.

``x (B, T, F)`` padded, ``lengths (B,)`` -> logits ``(B, n_classes)``::

    h_0 = x
    h_l = mask * ReLU(LayerNorm(Conv1d_k(h_{l-1})))     l = 1..conv_layers, C channels, "same" padding
    logits = SequenceClassifier(h_L, lengths)           (:mod:`rnnlab.models.classifier`)

with ``mask[b, t] = 1[t < lengths[b]]``. Local shape (a slope, a peak, a short oscillation) is what
distinguishes many univariate series; a width-k convolution sees it at once, where a recurrent cell
would have to assemble it step by step from one scalar at a time. Padding independence is kept:
the zero padding a convolution adds beyond the end equals the zeros of batch padding (masked after
every layer), and LayerNorm acts per step, unlike BatchNorm, whose statistics would include padding.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

from rnnlab.errors import ConfigError
from rnnlab.models.classifier import ClassifierConfig, SequenceClassifier
from rnnlab.models.registry import register_model
from rnnlab.nn.sequence import lengths_to_mask


@dataclass
class ConvClassifierConfig(ClassifierConfig):
    conv_channels: int = 64
    conv_kernel: int = 7
    conv_layers: int = 2

    def __post_init__(self):
        super().__post_init__()
        for name in ("conv_channels", "conv_kernel", "conv_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer; got {value!r}")

    def recurrent_config(self) -> ClassifierConfig:
        """The classifier behind the front-end: it reads ``conv_channels`` features."""
        base = {f.name: getattr(self, f.name) for f in fields(ClassifierConfig)}
        return ClassifierConfig(**{**base, "n_features": self.conv_channels})


@register_model("conv_sequence_classifier")
class ConvSequenceClassifier(nn.Module):
    """See the module docstring."""

    Config = ConvClassifierConfig

    def __init__(self, config: ConvClassifierConfig):
        super().__init__()
        self.config = c = config
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for layer in range(c.conv_layers):
            self.convs.append(nn.Conv1d(c.n_features if layer == 0 else c.conv_channels, c.conv_channels,
                                        c.conv_kernel, padding=c.conv_kernel // 2))
            self.norms.append(nn.LayerNorm(c.conv_channels))
        self.recurrent = SequenceClassifier(c.recurrent_config())

    @classmethod
    def from_config(cls, config: ConvClassifierConfig) -> ConvSequenceClassifier:
        return cls(config)

    def front(self, x: Tensor, lengths: Tensor) -> Tensor:
        """``(B, T, F) -> (B, T, C)``, zero beyond each sequence's length."""
        mask = lengths_to_mask(lengths, x.shape[1]).to(x.device).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        h = x * mask
        for conv, norm in zip(self.convs, self.norms):
            out = conv(h.transpose(1, 2))[..., : x.shape[1]].transpose(1, 2)  # even kernels give T + 1 steps
            h = torch.relu(norm(out)) * mask
        return h

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        return self.recurrent(self.front(x, lengths), lengths)
