"""Tokenizers at three levels, saved as JSON beside the model.

* ``char``: one id per character seen in the training text (sorted), plus ``<unk>`` last.
* ``word``: PTB style (Mikolov): whitespace split, ``<eos>`` at every line end, vocabulary of the most
  frequent words (cut by ``max_size`` and/or ``min_count``; ties broken alphabetically), every other
  word ``<unk>``. A corpus that already writes ``<unk>`` (PTB) keeps it as the same token.
* ``bpe``: byte-level BPE trained with the ``tokenizers`` library (GPT-2 style): every string encodes,
  nothing is unknown.

``encode(text, strict=True)`` raises :class:`DataError` naming the unknown characters (char level),
for prompts; corpus encoding maps them to ``<unk>`` and counts them.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Iterable, Iterator

import numpy as np

from rnnlab.errors import ConfigError, DataError, RunDirError

UNK, EOS = "<unk>", "<eos>"
TOKENIZER_FORMAT, TOKENIZER_VERSION = "rnnlab-tokenizer", 1


class Tokenizer:
    """Shared surface: ``level``, ``vocab_size``, ``encode``, ``decode``, ``encode_lines``, JSON."""

    level = ""

    def __init__(self, tokens: list[str]):
        if len(set(tokens)) != len(tokens):
            raise ConfigError("tokenizer vocabulary has duplicate tokens")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.unk_id = self.index.get(UNK)
        self.unknown_count = 0  # tokens mapped to <unk> by encode_lines

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def split(self, text: str, *, line_end: bool) -> list[str]:
        raise NotImplementedError

    def encode(self, text: str, *, strict: bool = False) -> list[int]:
        pieces = self.split(text, line_end=False)
        unknown = sorted({p for p in pieces if p not in self.index})
        if unknown and (strict or self.unk_id is None):
            raise DataError(f"text has {len(unknown)} {self.level}(s) not in the vocabulary: "
                            f"{', '.join(map(repr, unknown[:10]))}{' ...' if len(unknown) > 10 else ''}")
        return [self.index.get(p, self.unk_id) for p in pieces]

    def encode_lines(self, lines: Iterable[str], chunk: int = 4096) -> Iterator[np.ndarray]:
        """Encode a stream of lines (with their newlines) in chunks of ids; unknowns -> ``<unk>``."""
        out: list[int] = []
        for line in lines:
            for piece in self.split(line, line_end=True):
                i = self.index.get(piece)
                if i is None:
                    self.unknown_count += 1
                    i = self.unk_id
                out.append(i)
            if len(out) >= chunk:
                yield np.asarray(out)
                out = []
        if out:
            yield np.asarray(out)

    def decode(self, ids: Iterable[int]) -> str:
        raise NotImplementedError

    def to_json(self) -> str:
        return json.dumps({"format": TOKENIZER_FORMAT, "version": TOKENIZER_VERSION, "level": self.level,
                           "tokens": self.tokens})


class CharTokenizer(Tokenizer):
    level = "char"

    @classmethod
    def fit(cls, lines: Iterable[str]) -> "CharTokenizer":
        chars: set[str] = set()
        for line in lines:
            chars.update(line)
        return cls(sorted(chars) + [UNK])

    def split(self, text, *, line_end):
        return list(text)

    def decode(self, ids):
        return "".join(self.tokens[i] if self.tokens[i] != UNK else "\ufffd" for i in ids)


class WordTokenizer(Tokenizer):
    level = "word"

    @classmethod
    def fit(cls, lines: Iterable[str], *, max_size: int | None = None, min_count: int = 1) -> "WordTokenizer":
        if max_size is not None and max_size < 3:
            raise ConfigError(f"word vocabulary max_size must be >= 3 (room for {UNK}, {EOS}), got {max_size}")
        counts: Counter[str] = Counter()
        for line in lines:
            counts.update(line.split())
        counts.pop(UNK, None)
        counts.pop(EOS, None)
        ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            ranked = ranked[:max_size - 2]
        return cls([EOS, UNK] + ranked)

    def split(self, text, *, line_end):
        words = text.split()
        if line_end and text.endswith(("\n", "\r")):
            words.append(EOS)
        return words

    def decode(self, ids):
        words = [self.tokens[i] for i in ids]
        return " ".join(words).replace(f" {EOS} ", "\n").replace(f" {EOS}", "\n").replace(EOS, "\n")


class BPETokenizer(Tokenizer):
    """Byte-level BPE from the ``tokenizers`` library; ``tokens`` is its vocabulary in id order."""

    level = "bpe"

    def __init__(self, backend):
        self.backend = backend
        vocab = backend.get_vocab()
        super().__init__(sorted(vocab, key=vocab.get))
        self.unk_id = None

    @classmethod
    def fit(cls, lines: Iterable[str], *, vocab_size: int = 4096) -> "BPETokenizer":
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        if vocab_size < 257:
            raise ConfigError(f"byte-level BPE needs vocab_size >= 257 (256 bytes + merges), got {vocab_size}")
        backend = HFTokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
        backend.train_from_iterator(lines, trainer=trainer)
        return cls(backend)

    def encode(self, text, *, strict=False):
        return self.backend.encode(text).ids

    def encode_lines(self, lines, chunk=4096):
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= chunk:
                yield np.concatenate([np.asarray(e.ids, dtype=np.int64) for e in self.backend.encode_batch(batch)])
                batch = []
        if batch:
            yield np.concatenate([np.asarray(e.ids, dtype=np.int64) for e in self.backend.encode_batch(batch)])

    def decode(self, ids):
        return self.backend.decode(list(ids))

    def to_json(self):
        return json.dumps({"format": TOKENIZER_FORMAT, "version": TOKENIZER_VERSION, "level": self.level,
                           "backend": self.backend.to_str()})


LEVELS = {"char": CharTokenizer, "word": WordTokenizer, "bpe": BPETokenizer}


def fit_tokenizer(level: str, lines: Iterable[str], *, max_size: int | None = None, min_count: int = 1,
                  bpe_vocab: int = 4096) -> Tokenizer:
    """Fit a tokenizer of ``level`` on ``lines`` (the training split)."""
    if level == "char":
        return CharTokenizer.fit(lines)
    if level == "word":
        return WordTokenizer.fit(lines, max_size=max_size, min_count=min_count)
    if level == "bpe":
        return BPETokenizer.fit(lines, vocab_size=bpe_vocab)
    raise ConfigError(f"tokenizer level must be one of {sorted(LEVELS)}, got {level!r}")


def tokenizer_from_json(text: str) -> Tokenizer:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise RunDirError(f"tokenizer JSON is corrupt: {error}") from None
    if not isinstance(data, dict) or data.get("format") != TOKENIZER_FORMAT:
        raise RunDirError(f"expected a tokenizer of format {TOKENIZER_FORMAT!r}; got {str(data)[:80]}")
    if data.get("version") != TOKENIZER_VERSION:
        raise RunDirError(f"tokenizer version {data.get('version')} is not the supported {TOKENIZER_VERSION}")
    level = data.get("level")
    if level == "bpe":
        from tokenizers import Tokenizer as HFTokenizer

        return BPETokenizer(HFTokenizer.from_str(data["backend"]))
    if level not in LEVELS:
        raise RunDirError(f"tokenizer level {level!r} is unknown; expected one of {sorted(LEVELS)}")
    return LEVELS[level](data["tokens"])
