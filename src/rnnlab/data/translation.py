"""Sentence pairs for translation: Tatoeba's ``fra.txt``, normalised, filtered, split by source sentence.

File format (one pair a line, UTF-8)::

    English<TAB>French[<TAB>attribution]

Normalisation (:func:`normalize`): Unicode NFC (accents kept: "é" stays one character), curly
apostrophes -> ``'``, no-break spaces -> spaces, optional lower-casing, and the punctuation marks
``. , ! ? ; : " « » ( ) ¿ ¡ …`` split off as tokens of their own ("Je suis prêt !" -> ``je suis prêt !``).
Apostrophes and hyphens stay inside words (``i'm``, ``j'ai``, ``peut-être``). Tokens are the
whitespace-separated pieces of the normalised text.

Split (:func:`split_by_source`): the distinct normalised *source* sentences are shuffled with
``numpy.random.default_rng(seed)``; the first ⌊0.05 n⌋ go to test, the next ⌊0.05 n⌋ to valid, the
rest (≈ 90 %) to train, and every pair goes where its source went. No source sentence is in two
splits, so a test sentence is never scored against translations the model saw in training, and
each test source is scored against *all* its references (Tatoeba has up to dozens per sentence).

The ``tutorial`` preset is the subset of the PyTorch seq2seq tutorial: English starting with
"i am / he is / she is / you are / we are / they are" or their contractions ("i'm", "he's", ...),
both sides under 10 words *as the tutorial counts them* (:func:`tutorial_length`: accents stripped,
anything but letters and ``. ! ?`` is a space, so "i'm" is two words and commas do not count).
On the 142,787 lines of fra.txt this keeps 10,922 pairs with 6,786 distinct English sentences.

Units the model reads and writes (``--tokens``): ``word`` (:class:`Vocabulary`: the whitespace tokens
above, words seen fewer than ``--min-count`` times in training become ``<unk>``) or ``bpe``
(:class:`SubwordVocabulary`: byte-pair encoding learnt with the ``tokenizers`` library on each side's
training words, ``--bpe-vocab`` units per side, every word ending in the mark ``▁`` so the words come
back exactly). Either way the splits, the references and the BLEU score stay in words: a subword
model's output is joined back into words before it is scored, so the two are comparable.
"""
from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnlab.config import option
from rnnlab.errors import ConfigError, DataError

LANGUAGES = ("eng", "fra")  # the file's columns, in order
SPLIT_FRACTIONS = {"test": 0.05, "valid": 0.05}  # the rest is train
TUTORIAL_PREFIXES = ("i am ", "i'm ", "he is", "he's ", "she is", "she's ", "you are", "you're ", "we are", "we're ",
                     "they are", "they're ")
TUTORIAL_MAX_WORDS = 9  # the tutorial keeps len(words) < 10
PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)
_PUNCT = re.compile(r'([.!?,;:"«»()¿¡…])')
_NOT_TUTORIAL = re.compile(r"[^a-z.!?]+")
_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2009": " ", "\u2019": "'", "\u2018": "'"})


@dataclass
class TranslationDataConfig:
    """Which pairs to read and how to cut them (recorded in run.json; ``--resume`` rebuilds the same data)."""

    data: str = option("../shared/data/eng-fra/fra.txt", "tab-separated pairs: English<TAB>French[<TAB>attribution]")
    source: str = option("eng", "source language (column)", choices=LANGUAGES)
    target: str = option("fra", "target language (column)", choices=LANGUAGES)
    preset: str = option("tutorial", "subset: tutorial (PyTorch seq2seq tutorial's 'i am / he is ...' pairs, "
                                     "< 10 tokens) or all", choices=("tutorial", "all"))
    max_tokens: int | None = option(None, "keep pairs whose both sides have at most this many tokens", min=1)
    lowercase: bool = option(True, "lower-case both sides")
    min_count: int = option(1, "word vocabulary: words seen fewer times in training become <unk>", min=1)
    tokens: str = option("word", "units of the model: word (whole words) or bpe (subwords learnt with the "
                                 "tokenizers library; BLEU is still computed on the words)", choices=("word", "bpe"))
    bpe_vocab: int = option(4000, "with --tokens bpe: subword vocabulary size per language", min=64)
    split_seed: int = option(0, "seed of the 90/5/5 split by source sentence")
    encoding_errors: str = option("strict", "undecodable UTF-8: strict = stop with the line number; "
                                            "replace = U+FFFD", choices=("strict", "replace"))

    def __post_init__(self) -> None:
        if self.source == self.target:
            raise ConfigError(f"--source and --target must differ; got {self.source!r} for both")


def normalize(text: str, lowercase: bool = True) -> str:
    """NFC, plain apostrophes and spaces, optional lower case, punctuation split off (see module doc)."""
    text = unicodedata.normalize("NFC", text).translate(_SPACES)
    if lowercase:
        text = text.lower()
    return " ".join(_PUNCT.sub(r" \1 ", text).split())


def read_pairs(path: str | Path, errors: str = "strict") -> list[tuple[str, str]]:
    """Raw (English, French) pairs of ``path``; a bad line stops with its number and what was wrong."""
    path = Path(path)
    if errors not in ("strict", "replace"):
        raise ConfigError(f"--encoding-errors must be strict or replace, got {errors!r}")
    if not path.is_file():
        raise DataError(f"expected a tab-separated pair file (English<TAB>French) at {path}; "
                        f"{'it is not a file' if path.exists() else 'it does not exist'}")
    pairs = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8", errors=errors)
            except UnicodeDecodeError as error:
                raise DataError(f"{path} line {number}: byte 0x{raw[error.start]:02x} at column {error.start + 1} "
                                f"is not UTF-8 (pass --encoding-errors replace to substitute U+FFFD)") from None
            line = line.rstrip("\r\n")
            columns = line.split("\t")
            if not line.strip():
                raise DataError(f"{path} line {number}: empty line; expected English<TAB>French[<TAB>attribution]")
            if len(columns) not in (2, 3):
                raise DataError(f"{path} line {number}: expected 2 or 3 tab-separated columns "
                                f"(English, French[, attribution]); got {len(columns)}")
            if not columns[0].strip() or not columns[1].strip():
                raise DataError(f"{path} line {number}: empty {'English' if not columns[0].strip() else 'French'} "
                                f"sentence; expected text in both of the first two columns")
            pairs.append((columns[0], columns[1]))
    if not pairs:
        raise DataError(f"{path} is empty; expected lines English<TAB>French[<TAB>attribution]")
    return pairs


def tutorial_length(text: str) -> int:
    """Words of ``text`` as the PyTorch tutorial counts them (accents stripped, only a-z . ! ? kept)."""
    text = "".join(c for c in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(c) != "Mn")
    return len(_NOT_TUTORIAL.sub(" ", re.sub(r"([.!?])", r" \1", text)).split())


def is_tutorial_pair(english: list[str], french: list[str]) -> bool:
    """The PyTorch tutorial's filter, on normalised tokens (module doc)."""
    text = " ".join(english).lower()
    return (text.startswith(TUTORIAL_PREFIXES) and tutorial_length(text) <= TUTORIAL_MAX_WORDS
            and tutorial_length(" ".join(french)) <= TUTORIAL_MAX_WORDS)


Pair = tuple[list[str], list[str]]  # (source tokens, target tokens)


def split_by_source(pairs: list[Pair], seed: int = 0) -> dict[str, list[Pair]]:
    """Train / valid / test pairs, no source sentence in two splits (module doc)."""
    order: dict[tuple, int] = {}
    for src, _ in pairs:
        order.setdefault(tuple(src), len(order))
    n = len(order)
    permutation = np.random.default_rng(seed).permutation(n)
    n_test, n_valid = int(n * SPLIT_FRACTIONS["test"]), int(n * SPLIT_FRACTIONS["valid"])
    where = np.empty(n, dtype=np.int8)  # 0 train, 1 valid, 2 test
    where[permutation[:n_test]] = 2
    where[permutation[n_test:n_test + n_valid]] = 1
    where[permutation[n_test + n_valid:]] = 0
    splits: dict[str, list[Pair]] = {"train": [], "valid": [], "test": []}
    names = ("train", "valid", "test")
    for src, tgt in pairs:
        splits[names[where[order[tuple(src)]]]].append((src, tgt))
    return splits


def group_references(pairs: list[Pair]) -> list[tuple[list[str], list[list[str]]]]:
    """Distinct sources in first-seen order, each with all its distinct references."""
    groups: dict[tuple, list[list[str]]] = {}
    for src, tgt in pairs:
        refs = groups.setdefault(tuple(src), [])
        if tgt not in refs:
            refs.append(tgt)
    return [(list(src), refs) for src, refs in groups.items()]


def content_ids(ids) -> list[int]:
    """The ids of a decoded sequence that carry text: up to (not including) the first ``<eos>``, without
    ``<pad>``/``<bos>``."""
    out = []
    for i in ids:
        i = int(i)
        if i == EOS_ID:
            break
        if i not in (PAD_ID, BOS_ID):
            out.append(i)
    return out


class Vocabulary:
    """Word <-> id with ``<pad> <unk> <bos> <eos>`` first (ids 0..3); the rest by frequency, then alphabet."""

    def __init__(self, tokens: list[str]):
        if list(tokens[:4]) != list(SPECIALS) or len(set(tokens)) != len(tokens):
            raise DataError(f"a vocabulary must start with {SPECIALS} and hold no duplicates")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def fit(cls, sentences, min_count: int = 1) -> "Vocabulary":
        counts = Counter(token for sentence in sentences for token in sentence)
        kept = sorted((t for t, c in counts.items() if c >= min_count and t not in SPECIALS),
                      key=lambda t: (-counts[t], t))
        return cls(list(SPECIALS) + kept)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: list[str]) -> list[int]:
        return [self.index.get(t, UNK_ID) for t in tokens]

    def unknown(self, tokens: list[str]) -> list[str]:
        return [t for t in tokens if t not in self.index]

    def decode(self, ids) -> list[str]:
        """Tokens of ``ids`` up to (not including) the first ``<eos>``; ``<pad>``/``<bos>`` dropped."""
        return [self.tokens[i] for i in content_ids(ids)]

    def pieces(self, words: list[str]) -> list[str]:
        """The units the model reads for ``words`` (here the words themselves, ``<unk>`` for unknown ones)."""
        return [w if w in self.index else UNK for w in words]

    def id_pieces(self, ids) -> list[str]:
        """The units of ``ids`` as the model wrote them (here: :meth:`decode`)."""
        return self.decode(ids)

    def to_json(self) -> str:
        return json.dumps({"format": "rnnlab-vocabulary", "tokens": self.tokens}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "Vocabulary":
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != "rnnlab-vocabulary":
            raise DataError("expected an rnnlab vocabulary JSON ({'format': 'rnnlab-vocabulary', 'tokens': [...]})")
        return cls(data["tokens"])


END_OF_WORD = "\u2581"  # "▁", appended to every word before BPE (see SubwordVocabulary)


class SubwordVocabulary:
    """BPE units <-> ids through the ``tokenizers`` library, with the interface of :class:`Vocabulary`.

    Ids 0..3 are ``<pad> <unk> <bos> <eos>``; the rest are the BPE units learnt on the training words
    (every word is given the final mark ``▁`` before BPE sees it, so a unit that ends a word ends in
    ``▁``). :meth:`encode` takes words and gives unit ids; :meth:`decode` takes unit ids and gives
    words back, so everything around the model (splits, references, BLEU) stays in words. A character
    never seen in training becomes ``<unk>``.

    The mark is a plain character rather than the library's ``end_of_word_suffix`` on purpose: with
    the suffix, the ids of the suffixed letters depend on hash-map order and two fits on the same
    words give different vocabularies; with a plain character the alphabet is sorted and the fit is
    deterministic (a seeded run is reproducible, and the test suite checks it).
    """

    def __init__(self, backend):
        self.backend = backend
        vocab = backend.get_vocab()
        self.tokens = sorted(vocab, key=vocab.get)
        if self.tokens[:4] != list(SPECIALS) or [vocab[t] for t in self.tokens] != list(range(len(self.tokens))):
            raise DataError(f"a subword vocabulary must give {SPECIALS} the ids 0..3 and number its units 0..n-1")

    @classmethod
    def fit(cls, sentences, vocab_size: int = 4000) -> "SubwordVocabulary":
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers

        backend = Tokenizer(models.BPE(unk_token=UNK))
        backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS), show_progress=False)
        backend.train_from_iterator((" ".join(w + END_OF_WORD for w in s) for s in sentences), trainer=trainer)
        return cls(backend)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, words: list[str]) -> list[int]:
        if not words:
            return []
        return self.backend.encode([w + END_OF_WORD for w in words], is_pretokenized=True, add_special_tokens=False).ids

    def unknown(self, words: list[str]) -> list[str]:
        """Words with a character the units cannot spell (they would be read with an ``<unk>`` inside)."""
        return [w for w in words if UNK_ID in self.encode([w])]

    def pieces(self, words: list[str]) -> list[str]:
        return self.id_pieces(self.encode(words))

    def id_pieces(self, ids) -> list[str]:
        """Units of ``ids`` up to the first ``<eos>``; a unit inside a word is shown with a trailing ``@@``."""
        units = (self.tokens[i] for i in content_ids(ids))
        return [unit[:-len(END_OF_WORD)] if unit.endswith(END_OF_WORD) else unit if unit in SPECIALS else unit + "@@"
                for unit in units]

    def decode(self, ids) -> list[str]:
        """Words of ``ids`` up to the first ``<eos>`` (units joined until one ends a word)."""
        words, current = [], ""
        for i in content_ids(ids):
            unit = self.tokens[i]
            if unit == UNK:
                current += UNK
            elif unit.endswith(END_OF_WORD):
                words.append(current + unit[:-len(END_OF_WORD)])
                current = ""
                continue
            else:
                current += unit
        if current:  # stopped inside a word: keep what was written
            words.append(current)
        return words

    def to_json(self) -> str:
        return json.dumps({"format": "rnnlab-subword-vocabulary", "tokenizer": json.loads(self.backend.to_str())},
                          ensure_ascii=False)


def vocabulary_from_json(text: str) -> "Vocabulary | SubwordVocabulary":
    """A word or subword vocabulary from what its ``to_json`` wrote."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"vocabulary JSON is corrupt: {error}") from None
    if isinstance(data, dict) and data.get("format") == "rnnlab-subword-vocabulary":
        from tokenizers import Tokenizer

        return SubwordVocabulary(Tokenizer.from_str(json.dumps(data["tokenizer"])))
    return Vocabulary.from_json(text)


def fit_vocabularies(config: TranslationDataConfig, train: list[Pair]):
    """Source and target vocabularies fitted on the training pairs, as ``config.tokens`` says."""
    if config.tokens == "bpe":
        return (SubwordVocabulary.fit((s for s, _ in train), config.bpe_vocab),
                SubwordVocabulary.fit((t for _, t in train), config.bpe_vocab))
    return (Vocabulary.fit((s for s, _ in train), config.min_count),
            Vocabulary.fit((t for _, t in train), config.min_count))


@dataclass
class TranslationData:
    """Token pairs per split (``source`` -> ``target``), vocabularies fitted on train, filter counts."""

    config: TranslationDataConfig
    splits: dict[str, list[Pair]]
    source_vocab: "Vocabulary | SubwordVocabulary"
    target_vocab: "Vocabulary | SubwordVocabulary"
    stats: dict = field(default_factory=dict)

    def references(self, split: str) -> list[tuple[list[str], list[list[str]]]]:
        return group_references(self.splits[split])


def load_translation_data(config: TranslationDataConfig, *, vocabularies: tuple | None = None) -> TranslationData:
    """Read, normalise, filter and split ``config.data``; fit vocabularies on train unless given (resume)."""
    raw = read_pairs(config.data, config.encoding_errors)
    columns = {lang: i for i, lang in enumerate(LANGUAGES)}
    pairs: list[Pair] = []
    for english, french in raw:
        sides = (normalize(english, config.lowercase).split(), normalize(french, config.lowercase).split())
        if not sides[0] or not sides[1]:
            continue  # only punctuation-free whitespace would get here; read_pairs rejects empty columns
        if config.preset == "tutorial" and not is_tutorial_pair(*sides):
            continue
        if config.max_tokens is not None and max(len(sides[0]), len(sides[1])) > config.max_tokens:
            continue
        pairs.append((sides[columns[config.source]], sides[columns[config.target]]))
    if len(pairs) < 20:
        raise DataError(f"{config.data}: {len(pairs)} pair(s) left after the filters (preset {config.preset}, "
                        f"max tokens {config.max_tokens}); expected at least 20 to split 90/5/5")
    splits = split_by_source(pairs, config.split_seed)
    if vocabularies is None:
        vocabularies = fit_vocabularies(config, splits["train"])
    stats = {"lines": len(raw), "pairs": len(pairs),
             **{f"{name}_pairs": len(p) for name, p in splits.items()},
             **{f"{name}_sources": len({tuple(s) for s, _ in p}) for name, p in splits.items()},
             "source_vocab": len(vocabularies[0]), "target_vocab": len(vocabularies[1])}
    return TranslationData(config, splits, vocabularies[0], vocabularies[1], stats)
