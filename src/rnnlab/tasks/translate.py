"""Translation as a trainer task: shuffled sentence-pair batches, teacher-forced loss, BLEU on validation.

Batches (``train_batches``): each epoch the training pairs are shuffled with
``numpy.random.default_rng((seed, epoch))``, cut into pools of 32 batches, sorted by source length
inside a pool (less padding) and the batches of a pool shuffled again — deterministic per epoch, so
a resumed run continues at exactly the same batch. A batch is ``(source (B, S), source_lengths (B,),
target_in (B, T), target_out (B, T))`` with ``target_in = <bos> y`` and ``target_out = y <eos>``.

Loss: mean cross-entropy per target token (``<eos>`` included, padding excluded), optionally with
label smoothing. ``evaluate`` returns that loss over every pair of the split, and greedy BLEU and
chrF (sacreBLEU, every distinct source scored once against all its references). With
``select="bleu"`` the ``loss`` the trainer uses for early stopping and best weights is
``100 − BLEU`` and the cross-entropy is reported as ``xent``.

Under DDP (:mod:`rnnlab.distributed`) every rank builds the same batches and trains on rows
``rank, rank + world, ...`` of each (a batch with fewer rows than processes is skipped on all of
them); the loss is scaled by the global token count (one all-reduce of two numbers) so that DDP's
gradient average equals the single-process gradient of the whole batch. Validation runs on every
rank over the whole split (the same weights give the same score).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from rnnlab import distributed as dist
from rnnlab.data.translation import BOS_ID, EOS_ID, PAD_ID, TranslationData
from rnnlab.errors import ConfigError
from rnnlab.models.translation_search import beam_search, greedy_search
from rnnlab.models.translator import sequence_loss

POOL = 32  # batches per length-sorted pool


def pad(rows: list[list[int]], value: int = PAD_ID) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def collate(pairs: list[tuple[list[int], list[int]]]):
    """``(source, source_lengths, target_in, target_out)`` from id pairs (module docstring)."""
    sources = [s for s, _ in pairs]
    return (pad(sources), torch.tensor([len(s) for s in sources]), pad([[BOS_ID] + t for _, t in pairs]),
            pad([t + [EOS_ID] for _, t in pairs]))


def bleu_chrf(hypotheses: list[str], references: list[list[str]]) -> dict:
    """Corpus BLEU and chrF with sacreBLEU; ``references[i]`` are all references of sentence ``i``.

    sacreBLEU takes reference *streams*; sentences with fewer references get ``None`` in the later
    streams, which it skips (its signature then says ``nrefs:var``).
    """
    import sacrebleu

    if len(hypotheses) != len(references) or not hypotheses:
        raise ConfigError(f"BLEU needs one reference list per hypothesis; got {len(hypotheses)} hypotheses and "
                          f"{len(references)} reference lists")
    streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(max(map(len, references)))]
    bleu, chrf = sacrebleu.BLEU(force=True), sacrebleu.CHRF()  # force: our text is tokenised on purpose (module doc)
    b, c = bleu.corpus_score(hypotheses, streams), chrf.corpus_score(hypotheses, streams)
    return {"bleu": b.score, "chrf": c.score, "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature()), "bleu_detail": str(b)}


def decode_split(model, groups, source_vocab, target_vocab, *, beam: int = 1,
                 alpha: float = 1.0, batch_size: int = 64, max_len_a: float = 1.5, max_len_b: int = 5):
    """Translate every source of ``groups`` (``[(source tokens, references)]``); best hypothesis each."""
    device = next(model.parameters()).device
    order = sorted(range(len(groups)), key=lambda i: len(groups[i][0]))  # similar lengths together
    results = [None] * len(groups)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        ids = [source_vocab.encode(groups[i][0]) for i in chunk]
        source, lengths = pad(ids).to(device), torch.tensor([len(s) for s in ids], device=device)
        if beam == 1:
            best = greedy_search(model, source, lengths, max_len_a=max_len_a, max_len_b=max_len_b)
        else:
            best = [h[0] for h in beam_search(model, source, lengths, beam=beam, alpha=alpha, max_len_a=max_len_a,
                                              max_len_b=max_len_b)]
        for i, hypothesis in zip(chunk, best):
            results[i] = hypothesis
    return results


def score_groups(model, groups, source_vocab, target_vocab, **search) -> dict:
    """BLEU/chrF of the best hypotheses against all references, plus the hypotheses themselves."""
    hypotheses = decode_split(model, groups, source_vocab, target_vocab, **search)
    texts = [" ".join(target_vocab.decode(h.tokens)) for h in hypotheses]
    scores = bleu_chrf(texts, [[" ".join(r) for r in refs] for _, refs in groups])
    return {**scores, "hypotheses": hypotheses, "texts": texts}


class TranslationTask:
    """Trainer task over a :class:`TranslationData` (module docstring)."""

    item_name = "tok"

    def __init__(self, data: TranslationData, *, batch_size: int = 64, seed: int = 0, label_smoothing: float = 0.0,
                 select: str = "loss", sampling: float = 0.0, eval_batch_size: int = 128):
        if select not in ("loss", "bleu"):
            raise ConfigError(f"select must be loss or bleu; got {select!r}")
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.label_smoothing, self.select, self.eval_batch_size = label_smoothing, select, eval_batch_size
        self.sampling = sampling
        self.encoded = {split: [(data.source_vocab.encode(s), data.target_vocab.encode(t)) for s, t in pairs]
                        for split, pairs in data.splits.items()}
        self.groups = {split: data.references(split) for split in data.splits}

    def num_batches(self, epoch: int) -> int:
        world = dist.world_size()
        if world == 1:
            return math.ceil(len(self.encoded["train"]) / self.batch_size)
        return sum(1 for _ in self._batches(epoch))

    def _batches(self, epoch: int):
        """Index lists of the global batches of ``epoch``, in training order (module docstring)."""
        pairs, world = self.encoded["train"], dist.world_size()
        rng = np.random.default_rng((self.seed, epoch))
        order = rng.permutation(len(pairs))
        batches = []
        pool = POOL * self.batch_size
        for start in range(0, len(order), pool):
            chunk = sorted(order[start:start + pool], key=lambda i: len(pairs[i][0]))
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        for index in rng.permutation(len(batches)):
            if len(batches[index]) >= world:
                yield batches[index]

    def train_batches(self, epoch: int):
        pairs, rank, world = self.encoded["train"], dist.rank(), dist.world_size()
        for batch in self._batches(epoch):
            yield collate([pairs[i] for i in batch[rank::world]])

    def loss(self, model, batch, state):
        source, lengths, target_in, target_out = batch
        logits, _ = model(source, lengths, target_in, sampling=self.sampling)
        loss, count = sequence_loss(logits, target_out, self.label_smoothing)
        if dist.is_active():  # scale to the global mean: DDP divides the summed gradients by the world size
            world = dist.world_size()
            total = dist.all_reduce_sum([float(count)], source.device)[0]
            return loss * (count * world / total), None, total / world
        return loss, None, count

    def cross_entropy(self, model, split: str) -> float:
        """Mean per-token cross-entropy (no smoothing) over every pair of ``split``."""
        device = next(model.parameters()).device
        pairs, total, count = self.encoded[split], 0.0, 0
        for start in range(0, len(pairs), self.eval_batch_size):
            source, lengths, target_in, target_out = (t.to(device) for t in collate(pairs[start:start + self.eval_batch_size]))
            logits, _ = model(source, lengths, target_in)
            loss, n = sequence_loss(logits, target_out)
            total, count = total + float(loss) * n, count + n
        return total / max(count, 1)

    def evaluate(self, model, split: str) -> dict:
        if split not in self.encoded or not self.encoded[split]:
            raise ConfigError(f"no pairs in split {split!r}; have {sorted(k for k, v in self.encoded.items() if v)}")
        xent = self.cross_entropy(model, split)
        scores = score_groups(model, self.groups[split], self.data.source_vocab, self.data.target_vocab,
                              batch_size=self.eval_batch_size)
        loss = 100.0 - scores["bleu"] if self.select == "bleu" else xent
        return {"loss": loss, "xent": xent, "ppl": math.exp(min(xent, 50.0)), "bleu": scores["bleu"],
                "chrf": scores["chrf"]}

    def checkpoint_files(self) -> dict[str, str]:
        return {"source_vocab.json": self.data.source_vocab.to_json(),
                "target_vocab.json": self.data.target_vocab.to_json()}
