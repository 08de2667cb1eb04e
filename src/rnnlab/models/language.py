"""Language models: an RNN language model and Bengio's fixed-window MLP, with step and generate.

``LanguageModel`` (any cell in ``rnnlab.nn.RECURRENT``)::

    e_t = E[x_t] ⊙ m_word / (1 − p_e)           embedding dropout: whole word types dropped (AWD-LSTM)
    h⁰_t = e_t ⊙ m_in                             locked dropout: one mask per sequence, all steps
    hˡ_t = layerˡ(hˡ⁻¹_t, hˡ_{t−1}) ⊙ m_l          W_hh of each layer optionally DropConnect-ed (weight drop)
    p(x_{t+1} | x_≤t) = softmax(W_out h^L_t + b)  W_out = E when tied (Press & Wolf 2017; Inan et al. 2016)

Training penalties on the last layer's output (Merity et al. 2017, AWD-LSTM), added to the loss by
the language-model task through :meth:`LanguageModel.activation_penalty`::

    AR  = α · mean((h^L_t ⊙ m_out)²)              activation regularisation (on the dropped output)
    TAR = β · mean((h^L_t − h^L_{t−1})²)          temporal activation regularisation (before dropout)

Shapes: forward(x (B, T) ids, state) -> (logits (B, T, V), state); the state is a list with one
entry per layer, each that layer's ``h_n`` (or ``(h_n, c_n)``) of shape (1, B, H). With tying, the
last layer's width is ``embed_size`` so the output matrix can be the embedding (AWD-LSTM does this).

``WindowLanguageModel`` (Bengio et al. 2003) predicts from the last ``window`` tokens only; its
carried "state" is the previous ``window − 1`` token ids, so TBPTT batches see full windows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from rnnlab.errors import ConfigError, DataError, InputShapeError
from rnnlab.models.registry import register_model
from rnnlab.models.window_mlp import WindowMLP
from rnnlab.nn import build_recurrent  # the core's registry decides which cells exist


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Variational dropout for (B, T, D): one Bernoulli mask per sequence and feature, shared over time."""
    if not training or p == 0:
        return x
    mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p) / (1 - p)
    return x * mask


def sample_next(logits: torch.Tensor, *, temperature: float, top_k: int | None, top_p: float | None,
                generator: torch.Generator | None) -> torch.Tensor:
    """Pick next tokens from logits (B, V): greedy at temperature 0, else top-k / nucleus sampling."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) >= top_p  # keep the smallest prefix reaching top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


class GenerateMixin:
    """``step``, ``next_distribution`` and ``generate`` for any model with forward(x, state) -> (logits, state)."""

    def step(self, token: torch.Tensor, state=None):
        """One token per sequence: token (B,) -> (logits (B, V), state)."""
        logits, state = self(token.unsqueeze(1), state)
        return logits[:, 0], state

    def _prompt(self, prompt) -> torch.Tensor:
        ids = torch.as_tensor(prompt, dtype=torch.long, device=next(self.parameters()).device).reshape(1, -1)
        if ids.numel() == 0:
            raise DataError("the prompt is empty; give at least one token")
        if ids.min() < 0 or ids.max() >= self.config.vocab_size:
            raise DataError(f"prompt ids must be in [0, {self.config.vocab_size}); got {ids.min()}..{ids.max()}")
        return ids

    @torch.no_grad()
    def next_distribution(self, prompt) -> torch.Tensor:
        """p(next token | prompt) as a (V,) tensor."""
        was_training = self.training
        self.eval()
        try:
            logits, _ = self(self._prompt(prompt))
        finally:
            self.train(was_training)
        return logits[0, -1].softmax(-1)

    @torch.no_grad()
    def generate(self, prompt, max_tokens: int, *, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, seed: int | None = None, stop: int | None = None,
                 on_token=None) -> list[int]:
        """Continue ``prompt`` (list of ids) by up to ``max_tokens`` ids; same seed, same text.

        ``on_token(id)`` is called as each token is drawn (to stream long generations).
        """
        if not math.isfinite(temperature) or temperature < 0:
            raise ConfigError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
        if top_k is not None and top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {top_k}")
        if top_p is not None and not 0 < top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {top_p}")
        if max_tokens < 0:
            raise ConfigError(f"max_tokens must be >= 0, got {max_tokens}")
        ids = self._prompt(prompt)
        generator = torch.Generator(device=ids.device)
        generator.manual_seed(seed if seed is not None else torch.seed())
        was_training = self.training
        self.eval()
        out: list[int] = []
        try:
            logits, state = self(ids)
            logits = logits[:, -1]
            for _ in range(max_tokens):
                token = sample_next(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
                out.append(int(token))
                if on_token is not None:
                    on_token(out[-1])
                if stop is not None and out[-1] == stop:
                    break
                logits, state = self.step(token, state)
        finally:
            self.train(was_training)
        return out


@dataclass
class LanguageModelConfig:
    vocab_size: int
    cell: str = "lstm"               # any name in rnnlab.nn.RECURRENT
    embed_size: int = 200
    hidden_size: int = 200
    num_layers: int = 2
    tie_weights: bool = False
    dropout_embed: float = 0.0       # embedding dropout (drop word types)
    dropout_input: float = 0.0       # locked dropout on the embeddings
    dropout_hidden: float = 0.0      # locked dropout between layers
    dropout_output: float = 0.0      # locked dropout before the output layer
    weight_drop: float = 0.0         # DropConnect on each layer's W_hh (any cell with recurrent weights)
    activation_reg: float = 0.0      # α of AR (AWD-LSTM: 2)
    temporal_reg: float = 0.0        # β of TAR (AWD-LSTM: 1)
    init_range: float | None = None  # uniform(-r, r) for every weight (Zaremba: 0.1); None keeps the layers' init
    layer_options: dict = field(default_factory=dict)  # passed to build_recurrent (forget_bias, backend, ...)


@register_model("language_model")
class LanguageModel(GenerateMixin, nn.Module):
    """Embedding -> stacked rnnlab recurrent layers (one module per layer) -> (tied) linear output."""

    Config = LanguageModelConfig

    def __init__(self, config: LanguageModelConfig):
        super().__init__()

        c = self.config = config
        for name in ("dropout_embed", "dropout_input", "dropout_hidden", "dropout_output", "weight_drop"):
            if not 0 <= getattr(c, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(c, name)}")
        if c.activation_reg < 0 or c.temporal_reg < 0:
            raise ConfigError(f"activation_reg and temporal_reg must be >= 0; got {c.activation_reg}, {c.temporal_reg}")
        if min(c.vocab_size, c.embed_size, c.hidden_size, c.num_layers) < 1:
            raise ConfigError(f"vocab_size, embed_size, hidden_size, num_layers must be >= 1; got {c}")
        self.embedding = nn.Embedding(c.vocab_size, c.embed_size)
        sizes = [c.embed_size] + [c.hidden_size] * (c.num_layers - 1) + [c.embed_size if c.tie_weights else c.hidden_size]
        self.layers = nn.ModuleList(build_recurrent(c.cell, sizes[i], sizes[i + 1], batch_first=True, **c.layer_options)
                                    for i in range(c.num_layers))
        if c.weight_drop and not all(_recurrent_weights(layer) for layer in self.layers):
            raise ConfigError(f"weight_drop drops entries of the recurrent weights W_hh; cell {c.cell!r} has none "
                              f"(minGRU/minLSTM gates see only x_t)")
        self.decoder = nn.Linear(sizes[-1], c.vocab_size)
        if c.tie_weights:
            self.decoder.weight = self.embedding.weight
        if c.init_range is not None:
            for parameter in self.parameters():
                nn.init.uniform_(parameter, -c.init_range, c.init_range)

    @classmethod
    def from_config(cls, config: LanguageModelConfig) -> "LanguageModel":
        return cls(config)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        weight, p = self.embedding.weight, self.config.dropout_embed
        if self.training and p:
            weight = weight * weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p) / (1 - p)
        return F.embedding(x, weight)

    def _run_layer(self, layer: nn.Module, x: torch.Tensor, state):
        p = self.config.weight_drop
        if self.training and p:
            dropped = {name: F.dropout(getattr(layer, name), p, training=True) for name in _recurrent_weights(layer)}
            return torch.func.functional_call(layer, dropped, (x, state))
        return layer(x, state)

    def forward(self, x: torch.Tensor, state=None):
        """x (B, T) token ids, state (list per layer or None) -> (logits (B, T, V), new state)."""
        if x.dim() != 2 or x.dtype not in (torch.long, torch.int32):
            raise InputShapeError(f"LanguageModel expects (B, T) integer token ids; got shape {tuple(x.shape)} "
                                  f"dtype {x.dtype}")
        c = self.config
        if state is not None and len(state) != len(self.layers):
            raise InputShapeError(f"state must have one entry per layer ({len(self.layers)}); got {len(state)}")
        h = locked_dropout(self._embed(x), c.dropout_input, self.training)  # (B, T, E)
        new_state = []
        for i, layer in enumerate(self.layers):
            raw, s = self._run_layer(layer, h, None if state is None else state[i])  # (B, T, H_i)
            new_state.append(s)
            last = i == len(self.layers) - 1
            h = locked_dropout(raw, c.dropout_output if last else c.dropout_hidden, self.training)
        self._penalty = None
        if self.training and (c.activation_reg or c.temporal_reg):
            # Kept for activation_penalty(): the task adds it to this batch's loss.
            self._penalty = c.activation_reg * h.pow(2).mean() + c.temporal_reg * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
        return self.decoder(h), new_state  # (B, T, V)

    def activation_penalty(self) -> torch.Tensor | None:
        """AR + TAR of the last training-mode forward (None when both are off or in eval mode); read once."""
        penalty, self._penalty = getattr(self, "_penalty", None), None
        return penalty


@dataclass
class WindowLanguageModelConfig:
    vocab_size: int
    embed_size: int = 60
    hidden_size: int = 100
    window: int = 5  # the n of Bengio's n-gram MLP: predict from the last `window` tokens


@register_model("window_language_model")
class WindowLanguageModel(GenerateMixin, nn.Module):
    """Bengio et al. 2003 via :class:`rnnlab.models.window_mlp.WindowMLP`; state = the last W − 1 ids (B, W−1)."""

    Config = WindowLanguageModelConfig

    def __init__(self, config: WindowLanguageModelConfig):
        super().__init__()

        self.config = config
        self.mlp = WindowMLP(config.embed_size, config.hidden_size, config.vocab_size, window=config.window,
                             num_embeddings=config.vocab_size)

    @classmethod
    def from_config(cls, config):
        return cls(config)

    def forward(self, x: torch.Tensor, state=None):
        context = x if state is None else torch.cat([state, x], dim=1)  # (B, W-1+T): earlier tokens first
        logits = self.mlp(context)[:, context.shape[1] - x.shape[1]:]  # (B, T, V): outputs for x's steps only
        keep = self.config.window - 1
        return logits, (context[:, context.shape[1] - keep:] if keep else context[:, :0])


def _recurrent_weights(layer: nn.Module) -> list[str]:
    """Names of ``layer``'s recurrent matrices W_hh (one per layer and direction; none for minGRU/minLSTM)."""
    return [name for name, _ in layer.named_parameters() if name.startswith("weight_hh")]
