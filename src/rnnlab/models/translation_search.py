"""Greedy and batched beam search over :meth:`Translator.step` (the same step training uses).

Both search every sentence of a batch at once. A sentence's output may be at most
``max_len = ⌊a · source_length + b⌋`` tokens (``a = max_len_a``, ``b = max_len_b``); a hypothesis
that reaches it without ``<eos>`` ends there. ``<pad>`` and ``<bos>`` are never produced.

Beam search (the rule of fairseq's ``SequenceGenerator``) keeps ``K`` open hypotheses per sentence.
Each step scores the ``K · V`` one-token extensions by their summed log-probability, takes the best
``2K``; those among the first ``K`` that end with ``<eos>`` are finished, and the first ``K`` that do
not stay open. A sentence stops when it has ``K`` finished hypotheses (or at ``max_len``, where
all candidates finish). Finished hypotheses are ranked by

    score(y) = log p(y | x) / |y|^α          |y| counts the final <eos>; α = 0: no length normalisation

so with ``K = 1`` beam search *is* greedy search, and with ``K`` at least the number of possible
outputs it is exhaustive (both are tested). ``nbest`` returns the best ``n`` finished hypotheses.

Both searches take any model with ``encode``, ``step`` and ``select_state``: a :class:`Translator` or a
:class:`TranslatorEnsemble`, whose step is the mean of its members' next-word distributions
(Sutskever et al. 2014 decode with an ensemble of LSTMs)::

    p(y_t | y_<t, x) = 1/M · sum_m p_m(y_t | y_<t, x)          returned as log p (a log_softmax leaves it as is)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from rnnlab.data.translation import BOS_ID, EOS_ID, PAD_ID
from rnnlab.errors import ConfigError
from rnnlab.models.translator import Memory, Translator, start_tokens


class EnsembleMemory(NamedTuple):
    """Each member's encoded source; ``values`` is the first member's (for its dtype and device)."""

    members: tuple[Memory, ...]

    @property
    def values(self) -> Tensor:
        return self.members[0].values

    def select(self, index: Tensor) -> "EnsembleMemory":
        return EnsembleMemory(tuple(m.select(index) for m in self.members))


class TranslatorEnsemble(nn.Module):
    """Several translators with the same vocabularies, decoded as one (module docstring)."""

    def __init__(self, members: list[Translator]):
        super().__init__()
        if not members:
            raise ConfigError("an ensemble needs at least one translator")
        sizes = {(m.config.source_vocab, m.config.target_vocab) for m in members}
        if len(sizes) > 1:
            raise ConfigError(f"ensemble members must share their vocabularies; got (source, target) sizes {sorted(sizes)}")
        self.members = nn.ModuleList(members)
        self.config = members[0].config

    def encode(self, source: Tensor, lengths: Tensor) -> tuple[EnsembleMemory, tuple]:
        encoded = [m.encode(source, lengths) for m in self.members]
        return EnsembleMemory(tuple(e[0] for e in encoded)), tuple(e[1] for e in encoded)

    def step(self, previous: Tensor, state: tuple, memory: EnsembleMemory) -> tuple[Tensor, tuple, Tensor | None]:
        """Log of the mean next-word distribution ``(B, V)``, the members' states, mean attention ``(B, S)``."""
        outputs = [m.step(previous, s, mem) for m, s, mem in zip(self.members, state, memory.members)]
        log_probs = torch.stack([torch.log_softmax(o[0], -1) for o in outputs])  # (M, B, V)
        mean = torch.logsumexp(log_probs, 0) - math.log(len(outputs))
        weights = [o[2] for o in outputs if o[2] is not None]
        return mean, tuple(o[1] for o in outputs), torch.stack(weights).mean(0) if weights else None

    def select_state(self, state: tuple, index: Tensor) -> tuple:
        return tuple(m.select_state(s, index) for m, s in zip(self.members, state))


@dataclass
class Hypothesis:
    tokens: list[int]          # target ids, without <eos>
    score: float               # length-normalised log-probability (what the ranking uses)
    log_prob: float            # log p(y | x), <eos> included when it was produced
    attention: Tensor | None   # (len(tokens) + eos?, S) weights of each produced token, or None


def max_lengths(source_lengths: Tensor, a: float, b: int) -> Tensor:
    if a < 0 or b < 0 or (a == 0 and b < 1):
        raise ConfigError(f"maximum output length a·|x| + b needs a >= 0, b >= 0 and a positive result; got a={a}, b={b}")
    return (a * source_lengths.double() + b).floor().long().clamp(min=1)


def _log_probs(logits: Tensor) -> Tensor:
    log_probs = torch.log_softmax(logits, -1)
    log_probs[:, PAD_ID] = float("-inf")
    log_probs[:, BOS_ID] = float("-inf")
    return log_probs


@torch.no_grad()
def greedy_search(model: Translator, source: Tensor, lengths: Tensor, *, max_len_a: float = 1.5,
                  max_len_b: int = 5) -> list[Hypothesis]:
    """The most probable next token at every step, for every sentence of the batch."""
    batch = source.shape[0]
    limits = max_lengths(lengths, max_len_a, max_len_b).tolist()
    memory, state = model.encode(source, lengths)
    previous = start_tokens(batch, source.device)
    tokens, attention, log_prob = [[] for _ in range(batch)], [[] for _ in range(batch)], [0.0] * batch
    open_ = [True] * batch
    for t in range(max(limits)):
        logits, state, weights = model.step(previous, state, memory)
        log_probs = _log_probs(logits)
        previous = log_probs.argmax(-1)
        for b in range(batch):
            if not open_[b]:
                continue
            token = int(previous[b])
            log_prob[b] += float(log_probs[b, token])
            if weights is not None:
                attention[b].append(weights[b])
            if token == EOS_ID:
                open_[b] = False
            else:
                tokens[b].append(token)
                open_[b] = t + 1 < limits[b]
        if not any(open_):
            break
    return [Hypothesis(tokens[b], log_prob[b], log_prob[b], torch.stack(attention[b]) if attention[b] else None)
            for b in range(batch)]


@torch.no_grad()
def beam_search(model: Translator, source: Tensor, lengths: Tensor, *, beam: int = 5, alpha: float = 1.0,
                nbest: int = 1, max_len_a: float = 1.5, max_len_b: int = 5) -> list[list[Hypothesis]]:
    """The ``nbest`` best hypotheses of each sentence, best first (module docstring for the rule)."""
    if beam < 1 or not 1 <= nbest <= beam:
        raise ConfigError(f"beam search needs beam >= 1 and 1 <= nbest <= beam; got beam={beam}, nbest={nbest}")
    if alpha < 0:
        raise ConfigError(f"length normalisation alpha must be >= 0; got {alpha}")
    batch, k = source.shape[0], beam
    limits = max_lengths(lengths, max_len_a, max_len_b)
    memory, state = model.encode(source, lengths)
    rows = torch.arange(batch, device=source.device).repeat_interleave(k)  # (B·K,) sentence of each beam
    memory, state = memory.select(rows), model.select_state(state, rows)
    scores = torch.full((batch, k), float("-inf"), device=source.device, dtype=memory.values.dtype)
    scores[:, 0] = 0.0  # one open hypothesis per sentence at the start
    history = torch.zeros(batch, k, 0, dtype=torch.long, device=source.device)
    weights_history = None
    previous = start_tokens(batch * k, source.device)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    done = [False] * batch
    for t in range(int(limits.max())):
        logits, state, weights = model.step(previous, state, memory)
        vocab = logits.shape[-1]
        candidates = (scores.unsqueeze(-1) + _log_probs(logits).view(batch, k, vocab)).view(batch, k * vocab)
        top_scores, top_index = candidates.topk(min(2 * k, k * vocab), dim=-1)  # (B, 2K)
        origin, token = top_index // vocab, top_index % vocab
        if weights is not None:
            step_weights = weights.view(batch, k, 1, -1)
            weights_history = step_weights if weights_history is None else torch.cat([weights_history, step_weights], 2)
        keep = torch.zeros(batch, k, dtype=torch.long, device=source.device)  # flat index into (K·V) of open beams
        valid = torch.zeros(batch, k, dtype=torch.bool, device=source.device)
        values, tokens, origins, flat = top_scores.tolist(), token.tolist(), origin.tolist(), top_index.tolist()
        for b in range(batch):
            if done[b]:
                continue
            last = t + 1 >= int(limits[b])
            open_slots = 0
            for rank, value in enumerate(values[b]):
                if value == float("-inf"):
                    break
                is_eos = tokens[b][rank] == EOS_ID
                if (is_eos or last) and rank < k:
                    _finish(finished[b], history[b, origins[b][rank]], tokens[b][rank], value, alpha,
                            None if weights_history is None else weights_history[b, origins[b][rank]])
                elif not is_eos and not last and open_slots < k:
                    keep[b, open_slots], valid[b, open_slots] = flat[b][rank], True
                    open_slots += 1
            if last or len(finished[b]) >= k or open_slots == 0:
                done[b] = True
                valid[b] = False
        if all(done):
            break
        scores = candidates.gather(1, keep).masked_fill(~valid, float("-inf"))
        origin, previous = keep // vocab, keep % vocab
        history = torch.cat([history.gather(1, origin.unsqueeze(-1).expand(-1, -1, history.shape[2])),
                             previous.unsqueeze(-1)], 2)
        if weights_history is not None:
            weights_history = weights_history.gather(
                1, origin.view(batch, k, 1, 1).expand(-1, -1, *weights_history.shape[2:]))
        beams = (torch.arange(batch, device=source.device).unsqueeze(1) * k + origin).view(-1)
        state = model.select_state(state, beams)
        previous = previous.view(-1)
    return [sorted(f, key=lambda h: -h.score)[:nbest] for f in finished]


def _finish(pool: list[Hypothesis], prefix: Tensor, token: int, log_prob: float, alpha: float, weights) -> None:
    tokens = prefix.tolist() + ([] if token == EOS_ID else [token])
    length = len(prefix) + 1
    pool.append(Hypothesis(tokens, log_prob / length ** alpha, log_prob,
                           None if weights is None else weights.clone()))
