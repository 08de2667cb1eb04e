"""An RNN encoder–decoder for translation: any rnnlab cell, attention none / Bahdanau / Luong, one step function.

Encoder (``x`` source ids ``(B, S)``, lengths ``(B,)``)::

    h_1..h_S = BiRNN(E_src[x])        (B, S, H): each direction has H/D units, the two are concatenated
    s_0 = [h_n^fwd ; h_n^bwd]         per layer, (L, B, H): the decoder starts from the encoder's end

Decoder step ``t`` (:meth:`Translator.step`, the only place a decoder step is written; teacher-forced
training, greedy search and beam search all call it)::

    Bahdanau:  c_t = attend(s_{t−1}, h)               context from the previous state
    input:     u_t = [E_tgt[y_{t−1}] ; c_t (Bahdanau) ; h̃_{t−1} (input feeding)]
    state:     s_t = RNN(u_t, s_{t−1})                top layer's output s_t (B, H)
    Luong:     c_t = attend(s_t, h)                   context from the new state (dot or general)
    readout:   h̃_t = tanh(W_c [s_t ; c_t])            (B, R), R = E when tied, else H
    output:    p(y_t | y_<t, x) = softmax(W_o h̃_t + b)   W_o = E_tgt when tied (Press & Wolf 2017)

``attention="none"`` is Sutskever et al. (2014): no context, h̃_t = tanh(W_c s_t), and the source is
read reversed (``reverse_source=None`` means exactly this). The memory is always kept in source
order, so attention weights line up with the source words whatever the reading direction.

Without input feeding, ``none``/``dot``/``general`` need no previous output, so :meth:`forward` runs the
decoder RNN over all target steps at once and attends for all steps in one batched product; the
test suite checks in float64 that this equals stepping with :meth:`step`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.config import option
from rnnlab.data.translation import BOS_ID, PAD_ID
from rnnlab.errors import ConfigError, InputShapeError
from rnnlab.models.attention import ATTENTION_KINDS, Attention
from rnnlab.models.registry import register_model
from rnnlab.nn import RECURRENT, build_recurrent
from rnnlab.nn.sequence import check_lengths, lengths_to_mask, reverse_padded


@dataclass
class TranslatorConfig:
    source_vocab: int = option(help="source vocabulary size", min=5, cli=False)
    target_vocab: int = option(help="target vocabulary size", min=5, cli=False)
    cell: str = option("gru", "recurrent cell of encoder and decoder: any name in rnnlab.nn.RECURRENT")
    embed: int = option(256, "word embedding size", min=1)
    hidden: int = option(256, "decoder units; the encoder gives each direction hidden / directions", min=2)
    layers: int = option(1, "recurrent layers of encoder and of decoder", min=1)
    bidirectional: bool = option(True, "bidirectional encoder")
    attention: str = option("bahdanau", "attention: none (Sutskever), bahdanau (additive), dot or general (Luong)",
                            choices=ATTENTION_KINDS)
    input_feed: bool = option(True, "feed the previous attentional vector into the next decoder step (Luong)")
    dropout: float = option(0.3, "dropout on embeddings, between layers and before the output", min=0.0, max=1.0,
                            max_open=True)
    word_dropout: float = option(0.0, "training only: each source word's embedding is zeroed with this probability "
                                      "(Sennrich & Zhang 2019)", min=0.0, max=1.0, max_open=True)
    tie: bool = option(False, "tie the decoder's embedding and output matrix (readout size = embed)")
    reverse_source: bool | None = option(None, "read the source reversed (default: only without attention)")

    def __post_init__(self) -> None:
        if self.cell not in RECURRENT:
            raise ConfigError(f"--cell must be one of {', '.join(sorted(RECURRENT))}; got {self.cell!r}")
        if self.bidirectional and self.hidden % 2:
            raise ConfigError(f"--hidden must be even with a bidirectional encoder (half per direction); "
                              f"got {self.hidden}")


class Memory(NamedTuple):
    """The encoded source, batch first: outputs ``(B, S, H)``, attention keys ``(B, S, K)``, mask ``(B, S)``."""

    values: Tensor
    keys: Tensor | None
    mask: Tensor

    def select(self, index: Tensor) -> "Memory":
        return Memory(*(None if t is None else t.index_select(0, index) for t in self))


def select_state(state, index: Tensor):
    """Rows ``index`` of a decoder state ``(rnn_state, feed)``; RNN tensors are (L, B, H), feed (B, R)."""
    rnn, feed = state
    rnn = tuple(s.index_select(1, index) for s in rnn) if isinstance(rnn, tuple) else rnn.index_select(1, index)
    return rnn, None if feed is None else feed.index_select(0, index)


@register_model("translator")
class Translator(nn.Module):
    """Encoder–decoder (see the module docstring for the equations)."""

    Config = TranslatorConfig

    def __init__(self, config: TranslatorConfig):
        super().__init__()
        self.config = c = config
        directions = 2 if c.bidirectional else 1
        self.reverse_source = c.attention == "none" if c.reverse_source is None else c.reverse_source
        between = c.dropout if c.layers > 1 else 0.0
        self.source_embedding = nn.Embedding(c.source_vocab, c.embed, padding_idx=PAD_ID)
        self.encoder = build_recurrent(c.cell, c.embed, c.hidden // directions, num_layers=c.layers,
                                       bidirectional=c.bidirectional, dropout=between)
        self.target_embedding = nn.Embedding(c.target_vocab, c.embed, padding_idx=PAD_ID)
        readout = c.embed if c.tie else c.hidden
        decoder_input = c.embed + (c.hidden if c.attention == "bahdanau" else 0) + (readout if c.input_feed else 0)
        self.decoder = build_recurrent(c.cell, decoder_input, c.hidden, num_layers=c.layers, dropout=between)
        self.attention = Attention(c.attention, c.hidden, c.hidden) if c.attention != "none" else None
        self.readout = nn.Linear(c.hidden * (2 if self.attention is not None else 1), readout)
        self.output = nn.Linear(readout, c.target_vocab)
        if c.tie:
            self.output.weight = self.target_embedding.weight
        self.drop = nn.Dropout(c.dropout)

    @classmethod
    def from_config(cls, config: TranslatorConfig) -> "Translator":
        return cls(config)

    # ------------------------------------------------------------------ encoder
    def encode(self, source: Tensor, lengths: Tensor) -> tuple[Memory, tuple]:
        """Source ids ``(B, S)`` -> memory and the decoder's initial state ``(rnn_state, feed)``."""
        if source.dim() != 2 or source.dtype != torch.long:
            raise InputShapeError(f"source must be int64 ids of shape (B, S); got {tuple(source.shape)} {source.dtype}")
        lengths = check_lengths(lengths, source.shape[0], source.shape[1])
        x = reverse_padded(source, lengths) if self.reverse_source else source
        embedded = self.source_embedding(x)  # (B, S, E)
        if self.training and self.config.word_dropout > 0:
            embedded = embedded * (torch.rand(x.shape, device=x.device) >= self.config.word_dropout).unsqueeze(-1)
        outputs, final = self.encoder(self.drop(embedded), lengths=lengths)  # (B, S, H)
        if self.reverse_source:
            outputs = reverse_padded(outputs, lengths)  # memory in source order
        mask = lengths_to_mask(lengths, source.shape[1]).to(source.device)
        keys = self.attention.keys(outputs) if self.attention is not None else None
        feed = None
        if self.config.input_feed:
            feed = outputs.new_zeros(source.shape[0], self.readout.out_features)
        return Memory(outputs, keys, mask), (self._bridge(final), feed)

    def _bridge(self, final):
        """Encoder ``h_n`` (L·D, B, H/D) -> decoder ``s_0`` (L, B, H): concatenate the directions per layer."""
        if isinstance(final, tuple):
            return tuple(self._bridge(f) for f in final)
        if not self.config.bidirectional:
            return final
        layers, batch = self.config.layers, final.shape[1]
        return final.view(layers, 2, batch, -1).transpose(1, 2).reshape(layers, batch, -1).contiguous()

    # ------------------------------------------------------------------ decoder
    def step(self, previous: Tensor, state: tuple, memory: Memory) -> tuple[Tensor, tuple, Tensor | None]:
        """One decoder step: previous target ids ``(B,)`` -> logits ``(B, V)``, new state, weights ``(B, S)``."""
        rnn_state, feed = state
        parts = [self.drop(self.target_embedding(previous))]
        weights = None
        if self.config.attention == "bahdanau":
            context, weights = self.attention(_top(rnn_state), memory.keys, memory.values, memory.mask)
            parts.append(context)
        if feed is not None:
            parts.append(feed)
        output, rnn_state = self.decoder(torch.cat(parts, -1).unsqueeze(1), rnn_state)
        top = output[:, 0]  # (B, H)
        if self.config.attention in ("dot", "general"):
            context, weights = self.attention(top, memory.keys, memory.values, memory.mask)
        attentional = self._attentional(top, context if weights is not None else None)
        logits = self.output(self.drop(attentional))
        return logits, (rnn_state, attentional if feed is not None else None), weights

    @staticmethod
    def select_state(state: tuple, index: Tensor) -> tuple:
        """Rows ``index`` of a decoder state (what beam search calls to follow its beams)."""
        return select_state(state, index)

    def _attentional(self, top: Tensor, context: Tensor | None) -> Tensor:
        """h̃ = tanh(W_c [s ; c]) for any leading shape."""
        return torch.tanh(self.readout(top if context is None else torch.cat([top, context], -1)))

    def forward(self, source: Tensor, source_lengths: Tensor, target_in: Tensor, *, stepwise: bool = False,
                sampling: float = 0.0) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: ``target_in`` ``(B, T)`` starts with ``<bos>`` -> logits ``(B, T, V)``, weights
        ``(B, T, S)`` (None without attention). Steps one at a time only when the model needs it (or asked).

        ``sampling`` (scheduled sampling, Bengio et al. 2015): each previous token is replaced, with this
        probability, by the model's own most probable token of the step before (drawn from torch's RNG).
        """
        memory, state = self.encode(source, source_lengths)
        if stepwise or sampling > 0 or self.config.input_feed or self.config.attention == "bahdanau":
            logits, weights = [], []
            for t in range(target_in.shape[1]):
                previous = target_in[:, t]
                if sampling > 0 and t > 0:
                    own = torch.rand(previous.shape, device=previous.device) < sampling
                    previous = torch.where(own, _best_word(logits[-1].detach()), previous)
                step_logits, state, step_weights = self.step(previous, state, memory)
                logits.append(step_logits)
                weights.append(step_weights)
            return torch.stack(logits, 1), None if weights[0] is None else torch.stack(weights, 1)
        outputs, _ = self.decoder(self.drop(self.target_embedding(target_in)), state[0])  # (B, T, H)
        context = weights = None
        if self.attention is not None:
            context, weights = self.attention.attend_all(outputs, memory.keys, memory.values, memory.mask)
        return self.output(self.drop(self._attentional(outputs, context))), weights


def _top(rnn_state) -> Tensor:
    """The top layer's hidden state ``(B, H)`` of a decoder state ``(L, B, H)`` (or its LSTM ``(h, c)``)."""
    return (rnn_state[0] if isinstance(rnn_state, tuple) else rnn_state)[-1]


def _best_word(logits: Tensor) -> Tensor:
    """The most probable token that search may produce (never ``<pad>`` or ``<bos>``): ``(B, V)`` -> ``(B,)``."""
    return logits.index_fill(-1, torch.tensor([PAD_ID, BOS_ID], device=logits.device), float("-inf")).argmax(-1)


def start_tokens(batch: int, device) -> Tensor:
    return torch.full((batch,), BOS_ID, dtype=torch.long, device=device)


def sequence_loss(logits: Tensor, target_out: Tensor, label_smoothing: float = 0.0) -> tuple[Tensor, int]:
    """Mean cross-entropy over non-padding target tokens, and how many there are."""
    count = int((target_out != PAD_ID).sum())
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target_out.reshape(-1), ignore_index=PAD_ID,
                           label_smoothing=label_smoothing)
    return loss, count
