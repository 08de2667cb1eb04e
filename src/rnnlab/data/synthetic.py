"""Seeded generators for the long-term dependency tasks.

Every task draws fresh batches from its own ``torch.Generator`` (seeded in the constructor), or
from one passed to :meth:`SyntheticTask.sample` (used for fixed evaluation sets). A batch is a
:class:`SyntheticBatch` of right-padded ``inputs``, ``targets`` and ``lengths``:

==============  ====================  =========================  ==================================
task            inputs                targets                    chance level (``task.chance``)
==============  ====================  =========================  ==================================
LongGapCue      (B, T) token ids      (B,) language class        accuracy 1/K
AddingProblem   (B, T, 2) float       (B,) sum of marked values  MSE of predicting 1: 1/6 ~ 0.167
CopyMemory      (B, T+20) token ids   (B, T+20) token ids        cross-entropy 10 ln 8 / (T + 20)
TemporalOrder   (B, T) token ids      (B,) order class (4)       accuracy 1/4
==============  ====================  =========================  ==================================

``task.readout`` says where the answer is read: ``"last"`` (the last valid step of each sequence)
or ``"all"`` (every step, copy memory). ``task.target`` is ``"class"``, ``"value"`` or ``"sequence"``.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from rnnlab.data.synthetic_words import (
    COUNTRIES,
    FILLER_WORDS,
    FRAME_WORDS,
    GRAMMAR,
    SENTENCE_TEMPLATES,
)
from rnnlab.errors import ConfigError


@dataclass
class SyntheticBatch:
    """One batch: ``inputs`` (B, T) long or (B, T, F) float, ``targets``, ``lengths`` (B,) long."""

    inputs: torch.Tensor
    targets: torch.Tensor
    lengths: torch.Tensor

    def to(self, device: torch.device | str) -> "SyntheticBatch":
        return SyntheticBatch(self.inputs.to(device), self.targets.to(device), self.lengths.to(device))


def _positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


class SyntheticTask:
    """Base class: a seeded source of fresh batches.

    Subclasses set ``num_embeddings`` (token vocabulary, or None for float inputs), ``input_size``
    (features per step when ``num_embeddings`` is None), ``output_size``, ``target``, ``readout``,
    ``chance``, ``max_length`` and ``min_steps`` (longest and shortest sequence), and implement
    :meth:`_sample`.
    """

    name = "task"
    num_embeddings: int | None = None
    input_size: int | None = None
    output_size: int = 1
    target = "class"
    readout = "last"
    chance: float = 0.0
    max_length: int = 0  # longest sequence a batch can hold
    min_steps: int = 0  # shortest sequence a batch can hold

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)

    def sample(self, batch_size: int, *, generator: torch.Generator | None = None) -> SyntheticBatch:
        """Draw ``batch_size`` fresh examples (from ``generator`` if given, else the task's own)."""
        _positive_int("batch_size", batch_size)
        return self._sample(batch_size, generator if generator is not None else self.generator)

    def _sample(self, batch_size: int, generator: torch.Generator) -> SyntheticBatch:
        raise NotImplementedError

    def config(self) -> dict:
        """The constructor arguments, JSON-ready (for run.json)."""
        raise NotImplementedError


def _lengths_between(low: int, high: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """(B,) integers uniform in [low, high]."""
    return torch.randint(low, high + 1, (batch_size,), generator=generator)


class LongGapCue(SyntheticTask):
    """"i grew up in <country> <gap filler words> i speak fluent" -> the country's language.

    Sequence (length gap + 8): ``i grew up in C  w_1 ... w_gap  i speak fluent``; the answer is read
    at the last step ("fluent"), ``gap + 3`` steps after the country. K countries, one language each,
    so chance accuracy is 1/K. ``min_gap`` < ``gap`` draws each sequence's gap uniformly from
    [min_gap, gap] (variable length). ``distractors`` replaces that many filler words with other
    countries, which do not count. ``filler="grammar"`` fills with short sentences instead of random
    words ("the old dog sees a red car .").
    """

    name = "gap"
    target = "class"
    readout = "last"

    def __init__(self, gap: int, num_countries: int = 20, *, min_gap: int | None = None,
                 distractors: int = 0, filler: str = "words", seed: int = 0) -> None:
        super().__init__(seed)
        self.gap = _positive_int("gap", gap)
        self.min_gap = self.gap if min_gap is None else _positive_int("min_gap", min_gap)
        if self.min_gap > self.gap:
            raise ConfigError(f"min_gap must be <= gap ({self.gap}), got {self.min_gap}")
        self.num_countries = _positive_int("num_countries", num_countries, 2)
        if self.num_countries > len(COUNTRIES):
            raise ConfigError(f"num_countries must be <= {len(COUNTRIES)} (the built-in list), "
                              f"got {self.num_countries}")
        self.distractors = _positive_int("distractors", distractors, 0)
        if self.distractors > self.min_gap:
            raise ConfigError(f"distractors must be <= the smallest gap ({self.min_gap}), got {self.distractors}")
        if filler not in ("words", "grammar"):
            raise ConfigError(f"filler must be 'words' or 'grammar', got {filler!r}")
        self.filler = filler
        self.countries = [c for c, _ in COUNTRIES[: self.num_countries]]
        self.languages = [lang for _, lang in COUNTRIES[: self.num_countries]]
        # Vocabulary: pad, frame words, countries, filler. Languages are the classes, not inputs.
        self.vocab = ["<pad>", *FRAME_WORDS, *self.countries, *FILLER_WORDS]
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.num_embeddings = len(self.vocab)
        self.output_size = self.num_countries
        self.chance = 1.0 / self.num_countries
        self.max_length, self.min_steps = self.gap + 8, self.min_gap + 8
        self._country0 = self.index[self.countries[0]]
        self._filler0 = self.index[FILLER_WORDS[0]]
        self._head = torch.tensor([self.index[w] for w in ("i", "grew", "up", "in")])
        self._tail = torch.tensor([self.index[w] for w in ("i", "speak", "fluent")])

    def config(self) -> dict:
        return {"task": self.name, "gap": self.gap, "num_countries": self.num_countries, "min_gap": self.min_gap,
                "distractors": self.distractors, "filler": self.filler, "seed": self.seed}

    def _sample(self, batch_size: int, generator: torch.Generator) -> SyntheticBatch:
        gaps = _lengths_between(self.min_gap, self.gap, batch_size, generator)  # (B,)
        lengths = gaps + 8
        targets = torch.randint(0, self.num_countries, (batch_size,), generator=generator)  # (B,)
        inputs = torch.zeros(batch_size, int(lengths.max()), dtype=torch.long)  # (B, T), 0 = <pad>
        inputs[:, :4] = self._head
        inputs[:, 4] = self._country0 + targets
        filler = self._filler_ids(batch_size, self.gap, generator)  # (B, gap)
        if self.distractors:
            # A distractor is any country but the true one: shift by 1..K-1 modulo K.
            shift = torch.randint(1, self.num_countries, (batch_size, self.distractors), generator=generator)
            others = self._country0 + (targets[:, None] + shift) % self.num_countries
        for b in range(batch_size):
            g = int(gaps[b])
            inputs[b, 5 : 5 + g] = filler[b, :g]
            if self.distractors:
                where = torch.randperm(g, generator=generator)[: self.distractors]
                inputs[b, 5 + where] = others[b]
            inputs[b, 5 + g : 8 + g] = self._tail
        return SyntheticBatch(inputs, targets, lengths)

    def _filler_ids(self, batch_size: int, gap: int, generator: torch.Generator) -> torch.Tensor:
        if self.filler == "words":
            return self._filler0 + torch.randint(0, len(FILLER_WORDS), (batch_size, gap), generator=generator)
        rng = random.Random(int(torch.randint(0, 2**62, (1,), generator=generator)))
        rows = []
        for _ in range(batch_size):
            words: list[str] = []
            while len(words) < gap:
                words += [rng.choice(GRAMMAR[part]) for part in rng.choice(SENTENCE_TEMPLATES)] + ["."]
            rows.append([self.index[w] for w in words[:gap]])
        return torch.tensor(rows, dtype=torch.long)

    def decode(self, ids: torch.Tensor) -> str:
        """Token ids (T,) -> text, padding dropped."""
        return " ".join(self.vocab[int(i)] for i in ids if int(i) != 0)


class AddingProblem(SyntheticTask):
    """Adding problem (Le et al. 2015 form): inputs (B, T, 2) = (value ~ U(0,1), marker in {0,1}).

    One marker falls uniformly in the first half of each sequence, one in the second half; the
    target is the sum of the two marked values. Predicting the mean 1 gives MSE Var(u1 + u2) = 1/6.
    ``min_length`` < ``length`` draws each sequence's length uniformly from [min_length, length].
    """

    name = "adding"
    target = "value"
    readout = "last"
    input_size = 2
    output_size = 1
    chance = 1.0 / 6.0

    def __init__(self, length: int, *, min_length: int | None = None, seed: int = 0) -> None:
        super().__init__(seed)
        self.length = _positive_int("length", length, 2)
        self.min_length = self.length if min_length is None else _positive_int("min_length", min_length, 2)
        if self.min_length > self.length:
            raise ConfigError(f"min_length must be <= length ({self.length}), got {self.min_length}")
        self.max_length, self.min_steps = self.length, self.min_length

    def config(self) -> dict:
        return {"task": self.name, "length": self.length, "min_length": self.min_length, "seed": self.seed}

    def _sample(self, batch_size: int, generator: torch.Generator) -> SyntheticBatch:
        lengths = _lengths_between(self.min_length, self.length, batch_size, generator)  # (B,)
        steps = torch.arange(self.length)[None, :]  # (1, T)
        valid = steps < lengths[:, None]  # (B, T)
        values = torch.rand(batch_size, self.length, generator=generator) * valid
        half = lengths // 2
        first = (torch.rand(batch_size, generator=generator) * half).long()  # in [0, L/2)
        second = half + (torch.rand(batch_size, generator=generator) * (lengths - half)).long()  # in [L/2, L)
        markers = torch.zeros(batch_size, self.length)
        rows = torch.arange(batch_size)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        inputs = torch.stack([values, markers], dim=-1)  # (B, T, 2)
        targets = values[rows, first] + values[rows, second]  # (B,)
        return SyntheticBatch(inputs[:, : int(lengths.max())], targets, lengths)


class CopyMemory(SyntheticTask):
    """Copy memory (Arjovsky et al. 2016): remember 10 symbols across T blanks, then replay them.

    Alphabet: 0 blank, 1..8 symbols, 9 delimiter. Input (length T + 20): 10 symbols, T - 1 blanks,
    the delimiter, 10 blanks. Target: T + 10 blanks, then the 10 symbols. Predicting blanks and then
    a uniform guess costs 10 ln 8 / (T + 20) nats per step (``chance``); every step counts.
    """

    name = "copy"
    target = "sequence"
    readout = "all"

    def __init__(self, length: int, *, num_symbols: int = 8, copy_length: int = 10, seed: int = 0) -> None:
        super().__init__(seed)
        self.length = _positive_int("length", length)
        self.num_symbols = _positive_int("num_symbols", num_symbols, 2)
        self.copy_length = _positive_int("copy_length", copy_length)
        self.delimiter = self.num_symbols + 1
        self.num_embeddings = self.num_symbols + 2
        self.output_size = self.num_symbols + 2
        self.max_length = self.min_steps = self.length + 2 * self.copy_length
        self.chance = self.copy_length * math.log(self.num_symbols) / self.max_length

    def config(self) -> dict:
        return {"task": self.name, "length": self.length, "num_symbols": self.num_symbols,
                "copy_length": self.copy_length, "seed": self.seed}

    def _sample(self, batch_size: int, generator: torch.Generator) -> SyntheticBatch:
        n, total = self.copy_length, self.max_length
        symbols = torch.randint(1, self.num_symbols + 1, (batch_size, n), generator=generator)
        inputs = torch.zeros(batch_size, total, dtype=torch.long)
        inputs[:, :n] = symbols
        inputs[:, total - n - 1] = self.delimiter  # after T - 1 blanks
        targets = torch.zeros(batch_size, total, dtype=torch.long)
        targets[:, total - n :] = symbols
        return SyntheticBatch(inputs, targets, torch.full((batch_size,), total, dtype=torch.long))


class TemporalOrder(SyntheticTask):
    """Temporal order (Hochreiter & Schmidhuber 1997, task 6a), scaled to any length.

    Tokens: 0 pad, 1 ``B`` (start), 2 ``E`` (end), 3-6 distractors a b c d, 7 ``X``, 8 ``Y``. Each
    sequence has a length L uniform in [length, max_length] (default length + length // 10, the
    paper's 100..110), starts with B, ends with E, and holds X or Y at one position in
    [0.1 L, 0.2 L] and one in [0.5 L, 0.6 L]; everything else is a distractor. Classes:
    0 = XX, 1 = XY, 2 = YX, 3 = YY (first symbol * 2 + second symbol). Chance 1/4.
    """

    name = "order"
    target = "class"
    readout = "last"
    num_embeddings = 9
    output_size = 4
    chance = 0.25
    symbols = ("<pad>", "B", "E", "a", "b", "c", "d", "X", "Y")

    def __init__(self, length: int, *, max_length: int | None = None, seed: int = 0) -> None:
        super().__init__(seed)
        self.length = _positive_int("length", length, 10)
        self.max_length = self.length + self.length // 10 if max_length is None else int(max_length)
        self.min_steps = self.length
        if self.max_length < self.length:
            raise ConfigError(f"max_length must be >= length ({self.length}), got {max_length!r}")

    def config(self) -> dict:
        return {"task": self.name, "length": self.length, "max_length": self.max_length, "seed": self.seed}

    def _sample(self, batch_size: int, generator: torch.Generator) -> SyntheticBatch:
        lengths = _lengths_between(self.length, self.max_length, batch_size, generator)  # (B,)
        total = int(lengths.max())
        inputs = 3 + torch.randint(0, 4, (batch_size, total), generator=generator)  # distractors
        inputs[torch.arange(total)[None, :] >= lengths[:, None]] = 0
        rows = torch.arange(batch_size)
        inputs[:, 0] = 1
        inputs[rows, lengths - 1] = 2
        first, second = self._position(lengths, 0.1, 0.2, generator), self._position(lengths, 0.5, 0.6, generator)
        which = torch.randint(0, 2, (batch_size, 2), generator=generator)  # 0 = X, 1 = Y
        inputs[rows, first] = 7 + which[:, 0]
        inputs[rows, second] = 7 + which[:, 1]
        return SyntheticBatch(inputs, which[:, 0] * 2 + which[:, 1], lengths)

    @staticmethod
    def _position(lengths: torch.Tensor, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
        """(B,) positions uniform in [ceil(low L), floor(high L)], inside 1 .. L - 2."""
        lo = torch.clamp(torch.ceil(lengths * low), min=1)
        hi = torch.clamp(torch.floor(lengths * high), max=lengths - 2)
        hi = torch.maximum(hi, lo)
        return (lo + torch.floor(torch.rand(lengths.shape, generator=generator) * (hi - lo + 1))).long()


TASKS: dict[str, type[SyntheticTask]] = {
    "gap": LongGapCue, "adding": AddingProblem, "copy": CopyMemory, "order": TemporalOrder,
}
