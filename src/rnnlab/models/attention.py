"""Attention over an encoder's memory: Bahdanau (additive) and Luong (dot, general), padding masked exactly.

For a query ``q`` (the decoder state, ``(B, Q)``) and memory ``h_1..h_S`` (``(B, S, M)``, the
encoder outputs) with a validity mask ``m_j`` (``(B, S)``, False at padding)::

    additive (Bahdanau et al. 2015):  e_j = vᵀ tanh(W q + U h_j)          U h_j precomputed once
    dot      (Luong et al. 2015):     e_j = qᵀ h_j                         needs Q = M
    general  (Luong et al. 2015):     e_j = qᵀ W_a h_j                     W_a h_j precomputed once
    a_j = exp(e_j) / Σ_{k: m_k} exp(e_k)  for m_j, and exactly 0 where m_j is False
    c   = Σ_j a_j h_j                                                      (B, M)

The scores at padding are set to −inf before the softmax, so their weights are exactly zero (not
merely small) and padded memory rows never leak into the context.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnlab.errors import ConfigError, InputShapeError

ATTENTION_KINDS = ("none", "bahdanau", "dot", "general")


class Attention(nn.Module):
    """Score, mask, normalise, average: ``forward(query, keys, memory, mask) -> (context, weights)``."""

    def __init__(self, kind: str, query_size: int, memory_size: int, attention_size: int | None = None):
        super().__init__()
        if kind not in ATTENTION_KINDS[1:]:
            raise ConfigError(f"attention must be one of {', '.join(ATTENTION_KINDS[1:])}; got {kind!r}")
        if kind == "dot" and query_size != memory_size:
            raise ConfigError(f"dot attention needs the decoder state and the encoder output to have one size; "
                              f"got {query_size} and {memory_size} (use general or bahdanau)")
        self.kind = kind
        if kind == "bahdanau":
            size = attention_size or query_size
            self.query_proj = nn.Linear(query_size, size, bias=False)   # W
            self.memory_proj = nn.Linear(memory_size, size)             # U (its bias is the score's bias)
            self.v = nn.Linear(size, 1, bias=False)
        elif kind == "general":
            self.memory_proj = nn.Linear(memory_size, query_size, bias=False)  # W_a

    def keys(self, memory: Tensor) -> Tensor:
        """What the scores need from the memory, computed once per source: ``(B, S, M)`` -> ``(B, S, K)``."""
        return memory if self.kind == "dot" else self.memory_proj(memory)

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        """Unnormalised scores ``e``: query ``(B, Q)``, keys ``(B, S, K)`` -> ``(B, S)``."""
        if self.kind == "bahdanau":
            return self.v(torch.tanh(keys + self.query_proj(query).unsqueeze(1))).squeeze(-1)
        return torch.bmm(keys, query.unsqueeze(-1)).squeeze(-1)

    def forward(self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Context ``(B, M)`` and weights ``(B, S)`` (rows sum to 1, exactly 0 at padding)."""
        if mask.shape != memory.shape[:2]:
            raise InputShapeError(f"attention mask must have shape {tuple(memory.shape[:2])} (batch, source length); "
                                  f"got {tuple(mask.shape)}")
        weights = torch.softmax(self.scores(query, keys).masked_fill(~mask, float("-inf")), dim=-1)
        return torch.bmm(weights.unsqueeze(1), memory).squeeze(1), weights

    def attend_all(self, queries: Tensor, keys: Tensor, memory: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """The same for every decoder step at once (Luong without input feeding): queries ``(B, T, Q)``
        -> contexts ``(B, T, M)``, weights ``(B, T, S)``."""
        if self.kind == "bahdanau":
            raise ConfigError("additive attention reads the previous decoder state, so it runs step by step")
        scores = torch.bmm(queries, keys.transpose(1, 2))  # (B, T, S)
        weights = torch.softmax(scores.masked_fill(~mask.unsqueeze(1), float("-inf")), dim=-1)
        return torch.bmm(weights, memory), weights
