"""Text corpora: reading (strictly UTF-8), splits, tokenizers, token ids on disk.

Reading. Files are UTF-8. By default an undecodable byte is an error naming the file and the byte
offset (``errors="strict"``); ``errors="replace"`` (CLI ``--encoding-errors replace``) turns each
bad sequence into U+FFFD instead — an explicit choice, never a silent one. A file with a NUL byte
in its first 8 KiB is refused as binary; an empty file is refused. Line endings are kept as they
are (``\\r`` is a character like any other; it is whitespace to the word tokenizer).

Splits. ``load_corpus(path)`` takes a file, a directory of files (read in sorted order, hidden
files skipped) or a directory with ``train.txt``/``valid.txt``[/``test.txt``] (used as given). A single
text is split by character position: the first 90% train, the next 5% valid, the last 5% test by
default (``fractions=(0.9, 0.1)`` gives nanoGPT's Tiny Shakespeare split: no test).

Tokenizers (:mod:`rnnlab.data.tokenizers`) are fitted on the train split only. Token ids go to a
flat binary file read back with ``numpy.memmap``, so a corpus larger than RAM streams from disk.
"""
from __future__ import annotations

import codecs
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from rnnlab.data.builtin import pydoc_topics_text
from rnnlab.errors import ConfigError, DataError
from rnnlab.io import atomic_writer

CHUNK = 1 << 20


@dataclass(frozen=True)
class Document:
    """One text: a file read lazily, or a string in memory. ``chars`` = its length in characters."""

    name: str
    chars: int
    path: Path | None = None
    text: str | None = None
    errors: str = "strict"

    def lines(self, start: int = 0, end: int | None = None) -> Iterator[str]:
        """Lines (with their newline) of characters [start, end); lines crossing a bound are cut."""
        end = self.chars if end is None else end
        handle = (open(self.path, encoding="utf-8", errors=self.errors, newline="") if self.path is not None
                  else _StringLines(self.text))
        position = 0
        with handle:
            for line in handle:
                line_end = position + len(line)
                if line_end > start:
                    yield line[max(start - position, 0):end - position]
                position = line_end
                if position >= end:
                    return


class _StringLines:
    def __init__(self, text: str):
        self.text = text

    def __iter__(self):
        return iter(self.text.splitlines(keepends=True))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def check_text_file(path: str | os.PathLike, errors: str = "strict") -> Document:
    """Validate ``path`` as non-empty, non-binary UTF-8 and count its characters (one streaming pass)."""
    if errors not in ("strict", "replace"):
        raise ConfigError(f"encoding errors must be 'strict' or 'replace', got {errors!r}")
    path = Path(path)
    if not path.exists():
        raise DataError(f"expected a text file at {path}; it does not exist")
    if not path.is_file():
        raise DataError(f"expected a text file at {path}; it is not a regular file")
    decoder = codecs.getincrementaldecoder("utf-8")(errors=errors)
    chars = offset = 0
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            if offset == 0 and b"\x00" in block[:8192]:
                raise DataError(f"{path} looks binary (NUL byte at offset {block.index(0)}); expected UTF-8 text")
            pending = len(decoder.getstate()[0])
            try:
                chars += len(decoder.decode(block))
            except UnicodeDecodeError as error:
                bad = offset - pending + error.start
                raise DataError(f"{path} is not valid UTF-8: byte 0x{error.object[error.start]:02x} at offset {bad} "
                                f"(pass --encoding-errors replace to substitute U+FFFD)") from None
            offset += len(block)
        try:
            chars += len(decoder.decode(b"", final=True))
        except UnicodeDecodeError:
            raise DataError(f"{path} is not valid UTF-8: it ends inside a multi-byte character at offset {offset}") from None
    if chars == 0:
        raise DataError(f"{path} is empty; expected some text")
    return Document(path.name, chars, path=path, errors=errors)


def text_document(name: str, text: str) -> Document:
    if not text:
        raise DataError(f"text {name!r} is empty; expected some text")
    return Document(name, len(text), text=text)


Segment = tuple[Document, int, int]  # a document and a character range in it


@dataclass
class Corpus:
    """Named splits ("train", "valid", optionally "test"), each a list of document segments."""

    splits: dict[str, list[Segment]]
    source: str

    def lines(self, split: str) -> Iterator[str]:
        if split not in self.splits:
            raise DataError(f"corpus {self.source} has no {split!r} split; it has {sorted(self.splits)}")
        for document, start, end in self.splits[split]:
            yield from document.lines(start, end)

    def chars(self, split: str) -> int:
        return sum(end - start for _, start, end in self.splits.get(split, []))

    def fingerprint(self) -> str:
        """SHA-256 of every split's text (with the split names): did the training data change?"""
        digest = hashlib.sha256()
        for split in sorted(self.splits):
            digest.update(f"\0{split}\0".encode())
            for line in self.lines(split):
                digest.update(line.encode("utf-8", "surrogatepass"))
        return digest.hexdigest()


def split_documents(documents: list[Document], fractions: tuple[float, ...], source: str) -> Corpus:
    """Cut the concatenation of ``documents`` at character positions given by ``fractions``."""
    if len(fractions) not in (2, 3) or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(f"split fractions must be 2 or 3 positive numbers summing to 1 (train, valid[, test]); "
                          f"got {fractions}")
    total = sum(d.chars for d in documents)
    bounds, acc = [0], 0.0
    for fraction in fractions[:-1]:
        acc += fraction
        bounds.append(int(total * acc))
    bounds.append(total)
    names = ["train", "valid", "test"][:len(fractions)]
    splits: dict[str, list[Segment]] = {name: [] for name in names}
    offset = 0
    for document in documents:
        for name, lo, hi in zip(names, bounds[:-1], bounds[1:]):
            start, end = max(lo - offset, 0), min(hi - offset, document.chars)
            if start < end:
                splits[name].append((document, start, end))
        offset += document.chars
    for name in names:
        if not splits[name]:
            raise DataError(f"{source} has {total} characters; too few to give the {name!r} split any text")
    return Corpus(splits, source)


def load_corpus(path: str | os.PathLike | None = None, *, fractions: tuple[float, ...] = (0.9, 0.05, 0.05),
                errors: str = "strict") -> Corpus:
    """A corpus from a file, a directory, a train/valid/test directory, or (None) the built-in one."""
    if path is None:

        return split_documents([text_document("pydoc_data.topics", pydoc_topics_text())], fractions,
                               "built-in corpus pydoc_data.topics")
    path = Path(path)
    if path.is_dir():
        named = {name: path / f"{name}.txt" for name in ("train", "valid", "test")}
        if named["train"].is_file() and named["valid"].is_file():
            splits = {name: [(doc, 0, doc.chars)] for name, file in named.items() if file.is_file()
                      for doc in [check_text_file(file, errors)]}
            return Corpus(splits, str(path))
        files = sorted(p for p in path.rglob("*") if p.is_file() and not any(
            part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise DataError(f"directory {path} holds no files; expected text files")
        return split_documents([check_text_file(f, errors) for f in files], fractions, str(path))
    return split_documents([check_text_file(path, errors)], fractions, str(path))


# ----------------------------------------------------------------------------- token ids on disk
def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.uint32)


def write_token_file(chunks: Iterator[list[int] | np.ndarray], path: str | os.PathLike, vocab_size: int) -> np.memmap:
    """Stream token-id chunks to ``path`` (flat binary) and return it memory-mapped read-only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(vocab_size)
    count = 0
    with atomic_writer(path) as handle:
        for chunk in chunks:
            array = np.asarray(chunk, dtype=dtype)
            handle.write(array.tobytes())
            count += array.size
    if count == 0:
        raise DataError(f"no tokens were produced for {path.name}; expected a non-empty text")
    return np.memmap(path, dtype=dtype, mode="r")
