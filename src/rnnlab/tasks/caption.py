"""Captioning as a trainer task, and the scores of generated captions against known scenes.

Loss of a batch (teacher forcing; targets are the caption's words and EOS, padding ignored)::

    L = −(1/N) Σ_b Σ_t log p(y_bt | y_b,<t, image_b)  +  λ (1/B) Σ_b Σ_i (1 − Σ_t α_bti)²

the second term being Xu et al.'s doubly-stochastic regulariser (``penalty`` = λ), summed over each
caption's own steps. Evaluation reports the cross-entropy per word as ``loss`` (what early stopping
watches) and, from greedy captions, exact-caption accuracy.

:func:`score_captions` compares generated captions with the truth of their scenes:

* BLEU-1..4 from sacreBLEU (one reference per image: the grammar's caption; tokenize 13a);
* ``exact``: the caption is word for word the reference; ``grammatical``: it parses;
* per attribute (``count``, ``label``, ``size``, ``colour``, ``relation``): the share of true
  objects whose attribute the caption states right, objects aligned by their place in reading
  order (an unparsable caption gets every attribute wrong);
* ``localisation``: for each generated word naming an object (a digit or shape) — the k-th such
  word speaks of the k-th object — whether the peak of the attention α_t that produced it falls in
  that object's box (the peak region's centre, in pixels). Only for decoders with attention.
  ``phrase_localisation`` asks the same of the attention summed over the object's whole phrase
  ("a large 3", "a small red circle"): a decoder may look at the object while saying its size and
  carry what it saw in its state to the label word.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from rnnlab.data.images import to_tensor
from rnnlab.data.scenes import (
    EOS,
    LABEL_WORDS,
    MAX_WORDS,
    PAD,
    SPECIALS,
    SceneSet,
    decode_tokens,
    encode_caption,
    parse_caption,
    scene_facts,
)
from rnnlab.errors import DataError

ATTRIBUTES = ("label", "size", "colour", "relation")

__all__ = ["CaptionTask", "caption_loss", "generate", "score_captions", "ATTRIBUTES"]


def caption_loss(model, images: torch.Tensor, tokens: torch.Tensor, penalty: float, concepts: float = 0.0
                 ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(loss, cross-entropy per word, words)`` for ``tokens (B, T+1)`` = BOS, words, EOS, PAD..."""
    logits, alphas, detected = model(images, tokens[:, :-1])       # (B, T, V), (B, T, L), (B, V)
    targets = tokens[:, 1:]
    words = int((targets != PAD).sum())
    ce = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD, reduction="sum") / words
    loss = ce
    if penalty and alphas is not None:
        mask = (targets != PAD).to(alphas.dtype).unsqueeze(2)        # (B, T, 1)
        loss = loss + penalty * ((1.0 - (alphas * mask).sum(1)) ** 2).sum(1).mean()
    if concepts and detected is not None:
        present = torch.zeros_like(detected).scatter_(1, targets, 1.0)[:, len(SPECIALS):]  # (B, V - specials)
        bce = F.binary_cross_entropy_with_logits(detected[:, len(SPECIALS):], present, reduction="sum")
        loss = loss + concepts * bce / len(tokens)
    return loss, ce, words


def generate(model, images: np.ndarray, *, beam: int = 1, batch_size: int = 100, max_len: int = MAX_WORDS + 1
             ) -> tuple[list[str], list[np.ndarray | None]]:
    """Captions of ``uint8 (N, S, S, C)`` images and, per caption, ``α (T, L)`` of its words (or None)."""
    captions, attention = [], []
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = to_tensor(images[start:start + batch_size]).to(device)
            if beam == 1:
                tokens, alphas = model.greedy(x, max_len)
                rows = [(tokens[b], None if alphas is None else alphas[b]) for b in range(len(x))]
            else:
                rows = [model.beam_search(x[b], beam, max_len)[:2] for b in range(len(x))]
            for ids, alpha in rows:
                ids = ids.tolist()
                n = ids.index(EOS) if EOS in ids else len(ids)
                captions.append(decode_tokens(ids))
                attention.append(None if alpha is None else alpha[:n].cpu().numpy())
    return captions, attention


def _peak_in_box(alpha: np.ndarray, box, grid: int, size: int) -> bool:
    r, c = divmod(int(alpha.argmax()), grid)
    y, x = (r + 0.5) * size / grid, (c + 0.5) * size / grid
    top, left, bottom, right = box
    return top <= y < bottom and left <= x < right


def score_captions(scenes: SceneSet, captions: list[str], attention: list | None = None, *, grid: int = 8,
                   size: int = 64) -> dict[str, float]:
    """Scores of ``captions`` against the truth of ``scenes`` (see the module docstring); 0–1, BLEU 0–100."""
    if len(captions) != len(scenes):
        raise DataError(f"expected one caption per scene ({len(scenes)}); got {len(captions)}")
    from sacrebleu.metrics import BLEU

    metrics: dict[str, float] = {}
    for n in range(1, 5):
        metrics[f"bleu{n}"] = BLEU(max_ngram_order=n).corpus_score(captions, [scenes.captions]).score
    metrics["exact"] = float(np.mean([h == r for h, r in zip(captions, scenes.captions)]))
    right = {a: 0 for a in ("count",) + ATTRIBUTES}
    total = {a: 0 for a in ("count",) + ATTRIBUTES}
    hits = phrase_hits = words = parsed = 0
    for i, (caption, objects) in enumerate(zip(captions, scenes.objects)):
        truth = scene_facts(objects)
        try:
            facts = parse_caption(caption)
            parsed += 1
        except DataError:
            facts = []
        right["count"] += len(facts) == len(truth)
        total["count"] += 1
        for k, fact in enumerate(truth):
            for a, attribute in enumerate(ATTRIBUTES):
                if fact[a] is None:  # no colour in digit scenes, no relation for the first object
                    continue
                total[attribute] += 1
                right[attribute] += k < len(facts) and facts[k][a] == fact[a]
        alpha = attention[i] if attention is not None else None
        if alpha is not None:
            k = start = 0
            for t, word in enumerate(caption.split()[:len(alpha)]):
                start = t if word == "a" else start
                if word in LABEL_WORDS:
                    words += 1
                    if k < len(objects):
                        hits += _peak_in_box(alpha[t], objects[k].box, grid, size)
                        phrase_hits += _peak_in_box(alpha[start:t + 1].sum(0), objects[k].box, grid, size)
                    k += 1
    metrics["grammatical"] = parsed / len(scenes)
    for attribute in right:
        if total[attribute]:
            metrics[attribute] = right[attribute] / total[attribute]
    if words:
        metrics["localisation"] = hits / words
        metrics["phrase_localisation"] = phrase_hits / words
    return metrics


class CaptionTask:
    """The trainer protocol (``rnnlab.train``) over :class:`SceneSet` splits."""

    item_name = "word"

    def __init__(self, splits: dict[str, SceneSet], *, batch_size: int = 64, seed: int = 0, penalty: float = 0.0,
                 concepts: float = 1.0, decode_valid: bool = True):
        self.splits, self.batch_size, self.seed, self.penalty = splits, batch_size, seed, penalty
        self.concepts = concepts
        self.decode_valid = decode_valid
        self.tokens = {name: torch.from_numpy(np.stack([encode_caption(c, MAX_WORDS) for c in s.captions]))
                       for name, s in splits.items()}

    def num_batches(self, epoch: int) -> int:
        return math.ceil(len(self.splits["train"]) / self.batch_size)

    def train_batches(self, epoch: int):
        order = np.random.default_rng((self.seed, epoch)).permutation(len(self.splits["train"]))
        images = self.splits["train"].images
        for start in range(0, len(order), self.batch_size):
            index = np.sort(order[start:start + self.batch_size])
            yield to_tensor(images[index]), self.tokens["train"][index]

    def loss(self, model, batch, state):
        images, tokens = batch
        loss, _, words = caption_loss(model, images, tokens, self.penalty, self.concepts)
        return loss, None, words

    def evaluate(self, model, split: str) -> dict[str, float]:
        scenes, tokens = self.splits[split], self.tokens[split]
        device = next(model.parameters()).device
        total = words = 0.0
        for start in range(0, len(scenes), 200):
            x = to_tensor(scenes.images[start:start + 200]).to(device)
            _, ce, n = caption_loss(model, x, tokens[start:start + 200].to(device), 0.0)
            total, words = total + float(ce.detach()) * n, words + n
        metrics = {"loss": total / words}
        if self.decode_valid:
            captions, _ = generate(model, scenes.images)
            metrics["exact"] = float(np.mean([h == r for h, r in zip(captions, scenes.captions)]))
        return metrics
