"""Image captioner: a small CNN gives a grid of region features; a recurrent decoder attends over them.

Encoder (``encoder="cnn"``): four 3×3 conv stages with ReLU and 2×2 max pooling take
``images (B, C, S, S)`` to ``a (B, L, D)``, L = (S/8)² regions of D features, plus a learned
embedding of each region's grid position (so the decoder can tell *where* a region is). The
``"mlp"`` encoder instead flattens the pixels through a two-layer MLP into one vector (L = 1): the
baseline that sees the whole image once.

Decoder (Xu et al. 2015, "Show, Attend and Tell", soft attention), one step ``t``::

    e_ti = w^T tanh(U a_i + W h_{t-1} + b)          f_att, an MLP           (B, L)
    α_t  = softmax_i(e_t)                                                   (B, L), Σ_i α_ti = 1
    z_t  = β_t Σ_i α_ti a_i,  β_t = σ(w_β^T h_{t-1} + b_β)   (gate optional)  (B, D)
    h_t  = cell([E y_{t-1}; z_t], h_{t-1})           any rnnlab cell
    p(y_t) = softmax(L_o(E y_{t-1} + L_h h_t + L_z z_t))                    (B, V)   deep output

with ``h_0 = tanh(W_h0 mean_i a_i)`` (and ``c_0`` likewise for LSTMs). Without attention
(``attention=False``, Vinyals et al. 2015, "Show and Tell") the image enters only through the initial
state, ``h_0 = tanh(W_h0 vec(a))`` — a linear map of the *whole* grid, so position is not lost —
and the cell reads ``E y_{t-1}`` alone. :meth:`Captioner.step` is that one step; teacher-forced
training (:meth:`forward`), :meth:`greedy` and :meth:`beam_search` all call it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.config import check_config, option
from rnnlab.errors import ConfigError, InputShapeError
from rnnlab.models.registry import register_model
from rnnlab.nn import GRUCell, LayerNormLSTMCell, LSTMCell, MinGRUCell, MinLSTMCell, PeepholeLSTMCell, RNNCell

# Decoder cells by name: every one-step cell of rnnlab.nn.
CELLS = {"lstm": LSTMCell, "gru": GRUCell, "rnn": RNNCell, "peephole": PeepholeLSTMCell,
         "layernorm": LayerNormLSTMCell, "mingru": MinGRUCell, "minlstm": MinLSTMCell}


@dataclass
class CaptionerConfig:
    vocab_size: int = option(32, "number of words, specials included", min=4, cli=False)
    channels: int = option(1, "image channels (1 grey, 3 colour)", choices=(1, 3), cli=False)
    image_size: int = option(64, "side of the square input image in pixels (a multiple of 8)", min=8, cli=False)
    encoder: str = option("cnn", "image encoder: cnn (grid of regions) or mlp (one vector of the whole image)",
                          choices=("cnn", "mlp"))
    attention: bool = option(True, "soft attention over regions (off: Show-and-Tell, image in the initial state)")
    cell: str = option("lstm", "decoder cell", choices=tuple(CELLS))
    embed: int = option(64, "word embedding size", min=1)
    hidden: int = option(256, "decoder state size", min=1)
    features: int = option(128, "features per region (channels of the last conv stage)", min=8)
    attention_size: int = option(128, "hidden size of the attention MLP f_att", min=1)
    gate: bool = option(True, "gating scalar beta on the context (Xu et al. 4.2.1)")
    concepts: bool = option(True, "a word-detection head on the regions, trained from the caption's words (see docs)")
    dropout: float = option(0.1, "dropout before the output layer", min=0.0, max=1.0, max_open=True)
    pad_id: int = option(0, "padding token id", min=0, cli=False)
    bos_id: int = option(1, "start token id", min=0, cli=False)
    eos_id: int = option(2, "end token id", min=0, cli=False)


class ConvEncoder(nn.Module):
    """``(B, C, S, S) -> (B, (S/8)², D)``: 3×3 conv + batch norm + ReLU stages of 16, 32, 64, D channels, three 2×2 poolings."""

    def __init__(self, channels: int, features: int, image_size: int):
        super().__init__()
        widths = (16, 32, 64)

        def conv(c_in: int, c_out: int) -> list[nn.Module]:  # batch norm: the CNN learns in far fewer steps
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.net = nn.Sequential(
            *conv(channels, widths[0]), nn.MaxPool2d(2),
            *conv(widths[0], widths[1]), *conv(widths[1], widths[1]), nn.MaxPool2d(2),
            *conv(widths[1], widths[2]), *conv(widths[2], widths[2]), nn.MaxPool2d(2),
            *conv(widths[2], features))
        self.grid = image_size // 8
        self.position = nn.Parameter(torch.zeros(self.grid * self.grid, features))
        nn.init.normal_(self.position, std=1.0)  # as large as the normalised features: where a region is matters

    def forward(self, images: Tensor) -> Tensor:
        a = self.net(images)                                   # (B, D, G, G)
        return a.flatten(2).transpose(1, 2) + self.position    # (B, L, D)


class MLPEncoder(nn.Module):
    """``(B, C, S, S) -> (B, 1, D)``: the whole image through two layers, seen once."""

    def __init__(self, channels: int, features: int, image_size: int, width: int = 512):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(channels * image_size * image_size, width), nn.ReLU(),
                                 nn.Linear(width, features), nn.ReLU())
        self.grid = 1

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images).unsqueeze(1)


@dataclass
class Memory:
    """What one step needs from the image: regions ``a (B, L, D)``, their attention keys ``U a + b (B, L, A)``."""

    regions: Tensor
    keys: Tensor | None

    def select(self, index: Tensor) -> "Memory":
        return Memory(self.regions[index], None if self.keys is None else self.keys[index])


def select_state(state, index: Tensor):
    """Rows ``index`` of a cell state (tensor or tuple of tensors)."""
    return tuple(s[index] for s in state) if isinstance(state, tuple) else state[index]


@register_model("captioner")
class Captioner(nn.Module):
    """CNN (or MLP) encoder + recurrent decoder with soft attention; see the module docstring."""

    Config = CaptionerConfig

    def __init__(self, config: CaptionerConfig):
        super().__init__()
        check_config(config)
        c = self.config = config
        if c.image_size % 8:
            raise ConfigError(f"image_size must be a multiple of 8; got {c.image_size}")
        if c.encoder == "mlp" and c.attention:
            raise ConfigError("the mlp encoder gives one vector, nothing to attend over; use --no-attention with it")
        encoder = ConvEncoder if c.encoder == "cnn" else MLPEncoder
        self.encoder = encoder(c.channels, c.features, c.image_size)
        regions = self.encoder.grid ** 2
        self.embedding = nn.Embedding(c.vocab_size, c.embed)
        cell_class = CELLS[c.cell]
        self.cell = cell_class(c.embed + (c.features if c.attention else 0), c.hidden)
        init_in = c.features if c.attention else c.features * regions
        self.init_h = nn.Linear(init_in, c.hidden)
        self.init_c = nn.Linear(init_in, c.hidden) if cell_class.has_cell_state else None
        if c.attention:
            self.att_regions = nn.Linear(c.features, c.attention_size)           # U, b
            self.att_hidden = nn.Linear(c.hidden, c.attention_size, bias=False)  # W
            self.att_score = nn.Linear(c.attention_size, 1)                      # w
            self.beta = nn.Linear(c.hidden, 1) if c.gate else None
            self.out_context = nn.Linear(c.features, c.embed, bias=False)        # L_z
        self.out_hidden = nn.Linear(c.hidden, c.embed)                           # L_h
        self.dropout = nn.Dropout(c.dropout)
        self.out = nn.Linear(c.embed, c.vocab_size)                              # L_o
        self.concept = nn.Linear(c.features, c.vocab_size) if c.concepts else None  # per-region word scores

    @classmethod
    def from_config(cls, config: CaptionerConfig) -> "Captioner":
        return cls(config)

    # ------------------------------------------------------------------ one step
    def encode(self, images: Tensor) -> tuple[Memory, object]:
        """Regions and the decoder's initial state for ``images (B, C, S, S)`` (floats in [0, 1])."""
        c = self.config
        if images.dim() != 4 or tuple(images.shape[1:]) != (c.channels, c.image_size, c.image_size):
            raise InputShapeError(f"Captioner expects images of shape (batch, {c.channels}, {c.image_size}, "
                                  f"{c.image_size}); got {tuple(images.shape)}")
        a = self.encoder(images)                                                 # (B, L, D)
        summary = a.mean(1) if c.attention else a.flatten(1)
        h = torch.tanh(self.init_h(summary))
        state = (h, torch.tanh(self.init_c(summary))) if self.init_c is not None else h
        keys = self.att_regions(a) if c.attention else None
        return Memory(a, keys), state

    def step(self, memory: Memory, tokens: Tensor, state) -> tuple[Tensor, object, Tensor | None]:
        """One decoder step: previous words ``tokens (B,)`` -> ``(logits (B, V), new state, α (B, L) or None)``."""
        h_prev = state[0] if isinstance(state, tuple) else state
        e = self.embedding(tokens)                                               # (B, E)
        alpha = None
        if self.config.attention:
            scores = self.att_score(torch.tanh(memory.keys + self.att_hidden(h_prev).unsqueeze(1))).squeeze(2)
            alpha = torch.softmax(scores, dim=1)                                 # (B, L)
            z = torch.bmm(alpha.unsqueeze(1), memory.regions).squeeze(1)         # (B, D)
            if self.beta is not None:
                z = torch.sigmoid(self.beta(h_prev)) * z
            state = self.cell(torch.cat([e, z], dim=1), state)
        else:
            state = self.cell(e, state)
        h = state[0] if isinstance(state, tuple) else state
        deep = e + self.out_hidden(h)
        if self.config.attention:
            deep = deep + self.out_context(z)
        return self.out(self.dropout(deep)), state, alpha

    # ------------------------------------------------------------------ whole sequences
    def concept_logits(self, regions: Tensor) -> Tensor | None:
        """Which words the image shows, ``(B, L, D) -> (B, V)``: each region scores every word and the image
        takes its best region (multiple-instance max pooling), so only the regions that show a word learn it."""
        return None if self.concept is None else self.concept(regions).amax(1)

    def forward(self, images: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Teacher forcing: ``tokens (B, T)`` are the inputs y_0..y_{T-1} (BOS first) -> ``logits (B, T, V)``
        for y_1..y_T, ``α (B, T, L)`` (None without attention) and word-detection logits ``(B, V)`` (or None)."""
        memory, state = self.encode(images)
        logits, alphas = [], []
        for t in range(tokens.shape[1]):
            out, state, alpha = self.step(memory, tokens[:, t], state)
            logits.append(out)
            alphas.append(alpha)
        alphas = torch.stack(alphas, 1) if self.config.attention else None
        return torch.stack(logits, 1), alphas, self.concept_logits(memory.regions)

    @torch.no_grad()
    def greedy(self, images: Tensor, max_len: int) -> tuple[Tensor, Tensor | None]:
        """Most likely word at each step: ``tokens (B, ≤ max_len)`` ending in EOS or cut at ``max_len``,
        PAD after EOS; ``α (B, T, L)`` for the generated steps."""
        memory, state = self.encode(images)
        batch = images.shape[0]
        word = torch.full((batch,), self.config.bos_id, dtype=torch.long, device=images.device)
        done = torch.zeros(batch, dtype=torch.bool, device=images.device)
        words, alphas = [], []
        for _ in range(max_len):
            logits, state, alpha = self.step(memory, word, state)
            word = logits.argmax(1).masked_fill(done, self.config.pad_id)
            words.append(word)
            alphas.append(alpha)
            done = done | (word == self.config.eos_id)
            if bool(done.all()):
                break
        return torch.stack(words, 1), (torch.stack(alphas, 1) if self.config.attention else None)

    @torch.no_grad()
    def beam_search(self, image: Tensor, beam: int, max_len: int) -> tuple[Tensor, Tensor | None, float]:
        """Best caption of one ``image (C, S, S)`` by beam search over summed log-probabilities.

        Returns ``(tokens (T,), α (T, L) or None, log-probability)``; ``tokens`` ends in EOS unless
        cut at ``max_len``. With ``beam=1`` this is exactly :meth:`greedy`.
        """
        if beam < 1:
            raise ConfigError(f"beam must be >= 1; got {beam}")
        c = self.config
        memory, state = self.encode(image.unsqueeze(0))
        device = image.device
        tokens = torch.zeros(1, 0, dtype=torch.long, device=device)               # (K, t)
        alphas: list[Tensor] = []                                               # per step (K, L)
        scores = torch.zeros(1, device=device)
        last = torch.full((1,), c.bos_id, dtype=torch.long, device=device)
        finished: list[tuple[float, Tensor, Tensor | None]] = []
        for t in range(max_len):
            logits, state, alpha = self.step(memory, last, state)
            total = (scores.unsqueeze(1) + F.log_softmax(logits, dim=1)).flatten()  # (K·V,)
            top, flat = total.topk(min(2 * beam, total.numel()))                 # sorted, best first
            rows, words = flat // c.vocab_size, flat % c.vocab_size
            tokens = torch.cat([tokens[rows], words.unsqueeze(1)], 1)
            alphas = [a[rows] for a in alphas] + ([alpha[rows]] if alpha is not None else [])
            ended = words == c.eos_id
            for k in ended[:beam].nonzero().flatten().tolist():   # an ending among the best `beam` is a result
                finished.append((float(top[k]), tokens[k], torch.stack([a[k] for a in alphas]) if alphas else None))
            keep = (~ended).nonzero().flatten()[:beam]             # the beam stays `beam` wide while it can
            best_open = float(top[keep[0]]) if len(keep) else -float("inf")
            # log-probabilities only fall, so once the best finished beats every open beam it is final
            if not len(keep) or (finished and max(f[0] for f in finished) >= best_open):
                break
            tokens, alphas, scores, last = tokens[keep], [a[keep] for a in alphas], top[keep], words[keep]
            rows = rows[keep]
            memory, state = memory.select(rows), select_state(state, rows)
        else:
            finished.append((float(scores[0]), tokens[0], torch.stack([a[0] for a in alphas]) if alphas else None))
        score, best, best_alpha = max(finished, key=lambda f: f[0])
        return best, best_alpha, score
