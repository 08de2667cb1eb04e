"""Connected-digit recognition with CTC as a trainer task (the protocol of :mod:`rnnlab.train`).

Each epoch draws ``utterances`` fresh connected-digit utterances from the training recordings
(:func:`rnnlab.data.speech.connected_utterance` with seed ``(seed, epoch)``: deterministic, so a
resumed run sees the same data), computes their features, optionally masks them (SpecAugment), and
batches them. Within chunks of 8 batches utterances are sorted by length (less padding) and the
batches of a chunk are shuffled. Loss: ``torch.nn.CTCLoss`` (blank 0, mean over the batch of the
per-utterance loss divided by its target length; ``zero_infinity`` so an utterance too short for its
labels cannot poison a step).

Isolated digits (:class:`IsolatedSpeechTask`) are the sequence classifier's task on stacked features;
with augmentation on, every epoch recomputes each training recording's features from a perturbed copy
(speed, noise, SpecAugment, each drawn from ``(seed, epoch, index)``), so no two epochs hear the same voice.

Evaluation sets are fixed lists of utterances whose features are computed once. Scores
(:func:`score`): digit error rate ``DER = (S + D + I) / N`` over digit tokens (jiwer's word error
rate with each digit a word; CER is the same number here, since every word is one character) and
the utterance error rate (any mistake).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import torch

from rnnlab.config import option
from rnnlab.data.audio import FeatureConfig, features, spec_augment
from rnnlab.data.labelled_sequences import SequenceSet, pad
from rnnlab.data.speech import (
    ConnectedConfig,
    Recording,
    Utterance,
    connected_utterance,
    encode_digits,
    perturbed_recording,
    training_table,
)
from rnnlab.models.ctc import greedy_decode, prefix_beam_search
from rnnlab.tasks.classify import ClassifyTask

__all__ = ["AugmentConfig", "SpeechTask", "IsolatedSpeechTask", "stacked", "score", "digit_confusion", "pad_frames",
           "decode_batch"]

CHUNK = 8  # batches per length-sorted chunk


@dataclass
class AugmentConfig:
    """SpecAugment on training features (Park et al. 2019); speed and noise are in the data options."""

    spec_augment: bool = option(False, "mask random time and frequency bands of training features")
    time_masks: int = option(2, "time masks per utterance", min=0)
    time_width: int = option(10, "widest time mask, frames (at most a fifth of the utterance)", min=0)
    freq_masks: int = option(2, "frequency masks per utterance", min=0)
    freq_width: int = option(8, "widest frequency mask, features", min=0)


def masked(frames: torch.Tensor, a: AugmentConfig, seed: tuple) -> torch.Tensor:
    """``frames`` with SpecAugment's masks when ``a`` turns it on (drawn from ``default_rng(seed)``), else as is."""
    if not a.spec_augment:
        return frames
    return spec_augment(frames, np.random.default_rng(seed), time_masks=a.time_masks, time_width=a.time_width,
                        freq_masks=a.freq_masks, freq_width=a.freq_width)


def pad_frames(frames: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``x (B, T_max, F)`` zero-padded and ``lengths (B,)``."""
    lengths = torch.tensor([len(f) for f in frames], dtype=torch.int64)
    x = torch.zeros(len(frames), int(lengths.max()), frames[0].shape[1])
    for i, f in enumerate(frames):
        x[i, :len(f)] = f
    return x, lengths


def score(references: list[list[int]], hypotheses: list[list[int]]) -> dict[str, float]:
    """Digit error rate (jiwer word error rate over digit tokens), its parts and the utterance error rate."""
    import jiwer

    refs = [" ".join(map(str, r)) for r in references]
    hyps = [" ".join(map(str, h)) for h in hypotheses]
    out = jiwer.process_words(refs, hyps)
    n = sum(len(r) for r in references)
    return {"der": out.wer, "substitutions": out.substitutions / n, "deletions": out.deletions / n,
            "insertions": out.insertions / n, "ser": float(np.mean([r != h for r, h in zip(references, hypotheses)])),
            "digits": n, "utterances": len(references)}


def digit_confusion(references: list[list[int]], hypotheses: list[list[int]]) -> np.ndarray:
    """``(11, 11)`` counts from the minimum-edit alignment: rows the spoken digit 0–9 and a last row for
    insertions, columns the recognised digit 0–9 and a last column for deletions."""
    import jiwer

    matrix = np.zeros((11, 11), dtype=np.int64)
    out = jiwer.process_words([" ".join(map(str, r)) or "" for r in references],
                              [" ".join(map(str, h)) for h in hypotheses])
    for ref, hyp, chunks in zip(out.references, out.hypotheses, out.alignments):
        for chunk in chunks:
            if chunk.type in ("equal", "substitute"):
                for i, j in zip(range(chunk.ref_start_idx, chunk.ref_end_idx), range(chunk.hyp_start_idx, chunk.hyp_end_idx)):
                    matrix[int(ref[i]), int(hyp[j])] += 1
            elif chunk.type == "delete":
                for i in range(chunk.ref_start_idx, chunk.ref_end_idx):
                    matrix[int(ref[i]), 10] += 1
            else:  # insert
                for j in range(chunk.hyp_start_idx, chunk.hyp_end_idx):
                    matrix[10, int(hyp[j])] += 1
    return matrix


def decode_batch(model, frames: list[torch.Tensor], *, beam: int = 1, batch_size: int = 32
                 ) -> tuple[list[list[int]], list[np.ndarray]]:
    """Decoded digit lists and per-frame log-posteriors ``(T'_i, n_labels)`` for each utterance."""
    order = np.argsort([len(f) for f in frames], kind="stable")
    hyps: list = [None] * len(frames)
    posteriors: list = [None] * len(frames)
    with torch.no_grad():
        for k in range(0, len(order), batch_size):
            index = order[k:k + batch_size]
            x, lengths = pad_frames([frames[i] for i in index])
            log_probs, out_lengths = model(x, lengths)
            for row, i in enumerate(index):
                lp = log_probs[row, :int(out_lengths[row])].numpy()
                labels = greedy_decode(lp) if beam <= 1 else prefix_beam_search(lp, beam)[0]
                hyps[i] = [label - 1 for label in labels]
                posteriors[i] = lp
    return hyps, posteriors


class SpeechTask:
    """CTC training on connected digits drawn from ``train_pool``; see the module docstring."""

    item_name = "utt"

    def __init__(self, train_pool: list[Recording], eval_sets: dict[str, list[Utterance]], feature_config: FeatureConfig,
                 connected: ConnectedConfig, augment: AugmentConfig, *, utterances: int = 1000, batch_size: int = 32,
                 seed: int = 0):
        self.table = training_table(train_pool)
        self.eval_sets = eval_sets
        self.features, self.connected, self.augment = feature_config, connected, augment
        self.utterances, self.batch_size, self.seed = utterances, batch_size, seed
        self._frames: dict[str, list[torch.Tensor]] = {}
        self.ctc = torch.nn.CTCLoss(blank=0, reduction="mean", zero_infinity=True)

    def eval_frames(self, split: str) -> list[torch.Tensor]:
        if split not in self._frames:
            self._frames[split] = [features(u.samples, self.features) for u in self.eval_sets[split]]
        return self._frames[split]

    def num_batches(self, epoch: int) -> int:
        return -(-self.utterances // self.batch_size)

    def _example(self, index: int, epoch: int) -> tuple[torch.Tensor, list[int]]:
        u = connected_utterance(self.table, index, self.seed * 100_003 + epoch, self.connected, augment=True,
                                rate=self.features.rate)
        frames = masked(features(u.samples, self.features), self.augment, (self.seed, epoch, index, 1))
        return frames, encode_digits(u.digits)

    def train_batches(self, epoch: int):
        rng = np.random.default_rng((self.seed, epoch, 0))
        chunk = self.batch_size * CHUNK
        for start in range(0, self.utterances, chunk):
            examples = [self._example(i, epoch) for i in range(start, min(start + chunk, self.utterances))]
            examples.sort(key=lambda e: len(e[0]))
            groups = [examples[k:k + self.batch_size] for k in range(0, len(examples), self.batch_size)]
            for g in rng.permutation(len(groups)):
                x, lengths = pad_frames([e[0] for e in groups[g]])
                labels = [e[1] for e in groups[g]]
                yield {"x": x, "lengths": lengths, "targets": torch.tensor(sum(labels, []), dtype=torch.int64),
                       "target_lengths": torch.tensor([len(t) for t in labels], dtype=torch.int64)}

    def loss(self, model, batch, state):
        log_probs, out_lengths = model(batch["x"], batch["lengths"])  # (B, T', C)
        loss = self.ctc(log_probs.transpose(0, 1), batch["targets"], out_lengths, batch["target_lengths"])
        return loss, None, len(batch["lengths"])

    def evaluate(self, model, split: str, beam: int = 1) -> dict[str, float]:
        frames = self.eval_frames(split)
        references = [u.digits for u in self.eval_sets[split]]
        hyps, posteriors = decode_batch(model, frames, beam=beam)
        losses = [self.ctc(torch.from_numpy(lp).unsqueeze(1), torch.tensor(encode_digits(r)).unsqueeze(0),
                           torch.tensor([len(lp)]), torch.tensor([len(r)])).item()
                  for lp, r in zip(posteriors, references)]
        return {"loss": float(np.mean(losses)), **{k: v for k, v in score(references, hyps).items()
                                                    if k in ("der", "ser")}}

    def checkpoint_files(self) -> dict[str, str]:
        return {"speech.json": json.dumps({"task": "connected", "features": asdict(self.features), "blank": 0,
                                           "labels": ["<blank>"] + [str(d) for d in range(10)]}, indent=1)}


def stacked(frames: torch.Tensor, k: int) -> np.ndarray:
    """Frames ``(T, F)`` stacked k at a time, ``(ceil(T / k), k F)`` (zero-padded at the end): the isolated
    task's subsampling."""
    x = torch.nn.functional.pad(frames, (0, 0, 0, (-len(frames)) % k))
    return x.reshape(-1, k * frames.shape[1]).numpy()


class IsolatedSpeechTask(ClassifyTask):
    """Isolated digits: :class:`~rnnlab.tasks.classify.ClassifyTask` on stacked features, plus optional
    augmentation of the training recordings (see the module docstring) and the file that tells
    transcription how frames were made. Frames are normalised per utterance, so the classifier's
    standardisation is the identity."""

    def __init__(self, splits: dict[str, SequenceSet], train_pool: list[Recording], feature_config: FeatureConfig,
                 connected: ConnectedConfig, augment: AugmentConfig, *, stack: int, batch_size: int = 32,
                 seed: int = 0):
        n = splits["train"].sequences[0].shape[1]
        super().__init__(splits, np.zeros(n), np.ones(n), batch_size=batch_size, seed=seed)
        self.train_pool, self.feature_config, self.stack = train_pool, feature_config, stack
        self.connected, self.augment = connected, augment

    @property
    def augmenting(self) -> bool:
        return bool(self.connected.speed or self.connected.noise or self.augment.spec_augment)

    def _example(self, index: int, epoch: int) -> np.ndarray:
        r = self.train_pool[index]
        samples = perturbed_recording(r, np.random.default_rng((self.seed, epoch, index, 2)), self.connected,
                                      self.feature_config.rate)
        return stacked(masked(features(samples, self.feature_config), self.augment, (self.seed, epoch, index, 1)),
                       self.stack)

    def train_batches(self, epoch: int):
        if not self.augmenting:
            return super().train_batches(epoch)
        order = np.random.default_rng((self.seed, epoch)).permutation(len(self.train_pool))  # as without augmentation
        labels = self.splits["train"].labels
        return (pad([self._example(int(i), epoch) for i in index], labels[index])
                for index in (order[k:k + self.batch_size] for k in range(0, len(order), self.batch_size)))

    def checkpoint_files(self) -> dict[str, str]:
        return {"speech.json": json.dumps({"task": "isolated", "features": asdict(self.feature_config),
                                           "stack": self.stack, "labels": [str(d) for d in range(10)]}, indent=1)}
