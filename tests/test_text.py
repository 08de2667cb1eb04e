"""Text data: reading and its bad inputs, splits, tokenizers, memmapped ids, TBPTT batching."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnlab.data.builtin import pydoc_topics_text
from rnnlab.data.text import check_text_file, load_corpus, write_token_file
from rnnlab.data.token_batches import ContiguousBatches, RandomWindows
from rnnlab.data.tokenizer import BPETokenizer, CharTokenizer, WordTokenizer, fit_tokenizer, tokenizer_from_json
from rnnlab.errors import DataError, RunDirError

TEXT = "the cat sat on the mat\nthe dog sat\né ü → 漢字\n"


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        check_text_file(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match="empty"):
        check_text_file(tmp_path / "empty.txt")
    (tmp_path / "bin.dat").write_bytes(b"PK\x03\x04\x00\x00binary")
    with pytest.raises(DataError, match="binary"):
        check_text_file(tmp_path / "bin.dat")
    bad = "abc é".encode() + b"\xff" + b"tail"
    (tmp_path / "latin.txt").write_bytes(bad)
    with pytest.raises(DataError, match=r"byte 0xff at offset 6"):
        check_text_file(tmp_path / "latin.txt")
    doc = check_text_file(tmp_path / "latin.txt", errors="replace")
    assert "".join(doc.lines()) == "abc é\ufffdtail" and doc.chars == 10
    (tmp_path / "cut.txt").write_bytes("ab€".encode()[:-1])
    with pytest.raises(DataError, match="ends inside a multi-byte character"):
        check_text_file(tmp_path / "cut.txt")


def test_error_offset_across_read_chunks(tmp_path, monkeypatch):
    import rnnlab.data.text as text

    monkeypatch.setattr(text, "CHUNK", 4)
    (tmp_path / "f.txt").write_bytes("aaé".encode() + b"xx\xfe")  # é straddles the first chunk boundary
    with pytest.raises(DataError, match="offset 6"):
        check_text_file(tmp_path / "f.txt")


def test_split_by_character_position_matches_slicing(tmp_path):
    text = "".join(f"line {i} ünïcode\n" for i in range(200))
    (tmp_path / "a.txt").write_text(text)
    corpus = load_corpus(tmp_path / "a.txt", fractions=(0.9, 0.1))
    cut = int(len(text) * 0.9)
    assert "".join(corpus.lines("train")) == text[:cut]
    assert "".join(corpus.lines("valid")) == text[cut:]
    # a directory of files is their concatenation in sorted order
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "2.txt").write_text("second\n")
    (tmp_path / "dir" / "1.txt").write_text("first\n" * 50)
    (tmp_path / "dir" / ".hidden").write_text("skip me\n")
    corpus = load_corpus(tmp_path / "dir")
    joined = "".join("".join(corpus.lines(s)) for s in ("train", "valid", "test"))
    assert joined == "first\n" * 50 + "second\n"


def test_train_valid_test_directory_and_builtin(tmp_path):
    for name in ("train", "valid", "test"):
        (tmp_path / f"{name}.txt").write_text(f"{name} words\n")
    corpus = load_corpus(tmp_path)
    assert "".join(corpus.lines("valid")) == "valid words\n"
    builtin = load_corpus(None)
    assert "".join(builtin.lines("train")) + "".join(builtin.lines("valid")) + "".join(builtin.lines("test")) \
        == pydoc_topics_text()
    assert builtin.chars("train") > 300_000


def test_too_short_for_splits(tmp_path):
    (tmp_path / "tiny.txt").write_text("ab")
    with pytest.raises(DataError, match="too few"):
        load_corpus(tmp_path / "tiny.txt")


def test_char_round_trip_and_unknown_characters():
    tok = CharTokenizer.fit([TEXT])
    assert tok.decode(tok.encode(TEXT)) == TEXT
    assert tok.tokens[-1] == "<unk>" and tok.tokens[:-1] == sorted(set(TEXT))
    with pytest.raises(DataError, match=r"not in the vocabulary: 'Z', 'q'"):
        tok.encode("qZ cat", strict=True)
    ids = np.concatenate(list(tok.encode_lines(["cat Z\n"])))
    assert ids[-2] == tok.unk_id and tok.unknown_count == 1
    again = tokenizer_from_json(tok.to_json())
    assert again.tokens == tok.tokens and again.level == "char"


def test_word_vocabulary_cut_and_unk():
    lines = ["a a a b b c <unk>\n", "a b d\n"]
    tok = WordTokenizer.fit(lines, max_size=4)  # <eos>, <unk>, then the two most frequent
    assert tok.tokens == ["<eos>", "<unk>", "a", "b"]
    ids = np.concatenate(list(tok.encode_lines(lines)))
    assert tok.decode(ids) == "a a a b b <unk> <unk>\na b <unk>\n"
    assert list(ids[:7]) == [2, 2, 2, 3, 3, 1, 1] and ids[7] == 0  # <eos> at the line end
    by_count = WordTokenizer.fit(lines, min_count=2)
    assert by_count.tokens == ["<eos>", "<unk>", "a", "b"]
    ties = WordTokenizer.fit(["z y x\n"])
    assert ties.tokens[2:] == ["x", "y", "z"]  # equal counts: alphabetical, so the vocabulary is deterministic
    assert tokenizer_from_json(tok.to_json()).tokens == tok.tokens


def test_ptb_keeps_its_vocabulary(ptb_path=None):
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "ptb"
    if not (path / "train.txt").exists():
        pytest.skip(f"Penn Treebank not found at {path}")
    tok = fit_tokenizer("word", load_corpus(path).lines("train"))
    assert tok.vocab_size == 10000  # Mikolov's vocabulary: 9999 words incl. <unk>, plus <eos>


def test_bpe_round_trip_and_json():
    text = (TEXT * 20) + "unseen wörds ✓\n"
    tok = BPETokenizer.fit([TEXT] * 20, vocab_size=300)
    assert tok.vocab_size <= 300 and tok.decode(tok.encode(text)) == text
    ids = np.concatenate(list(tok.encode_lines(text.splitlines(keepends=True))))
    assert tok.decode(ids) == text
    again = tokenizer_from_json(tok.to_json())
    assert again.encode(text) == tok.encode(text)


def test_corrupt_tokenizer_json():
    with pytest.raises(RunDirError, match="corrupt"):
        tokenizer_from_json("{oops")
    with pytest.raises(RunDirError, match="format"):
        tokenizer_from_json('{"tokens": []}')


def test_memmap_stream_round_trip(tmp_path):
    chunks = [np.arange(5), np.arange(5, 9)]
    ids = write_token_file(iter(chunks), tmp_path / "x.bin", vocab_size=70000)
    assert isinstance(ids, np.memmap) and ids.dtype == np.uint32 and list(ids) == list(range(9))
    assert write_token_file(iter(chunks), tmp_path / "y.bin", vocab_size=100).dtype == np.uint16


def test_contiguous_batches_keep_each_stream_in_order():
    ids = np.arange(103)
    batches = ContiguousBatches(ids, batch_size=4, bptt=5)
    n = batches.stream_len  # 26 ids per stream, consecutive streams share one id
    xs, ys = zip(*batches)
    x, y = torch.cat(xs, 1), torch.cat(ys, 1)
    assert len(batches) == 5 and x.shape == (4, 25)
    for b in range(4):
        start = b * (n - 1)
        assert x[b].tolist() == list(range(start, start + 25))
        assert y[b].tolist() == list(range(start + 1, start + 26))
    # two processes: each gets half the rows of the same global batches
    halves = [list(ContiguousBatches(ids, 4, 5, rank=r, world=2)) for r in range(2)]
    for i, (gx, gy) in enumerate(batches):
        assert torch.equal(torch.cat([halves[0][i][0], halves[1][i][0]]), gx)


def test_batches_need_enough_tokens():
    with pytest.raises(DataError, match=r"corpus has 50 tokens; one batch of 20 streams x 20 steps needs at least 401"):
        ContiguousBatches(np.arange(50), 20, 20)
    with pytest.raises(DataError, match="window of 60"):
        RandomWindows(np.arange(50), 2, 60, 3)


def test_random_windows_are_reproducible_windows():
    ids = np.arange(1000)
    first = list(RandomWindows(ids, 4, 10, 3, seed=1, epoch=2))
    again = list(RandomWindows(ids, 4, 10, 3, seed=1, epoch=2))
    other = list(RandomWindows(ids, 4, 10, 3, seed=1, epoch=3))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again))
    assert not torch.equal(first[0][0], other[0][0])
    for x, y in first:
        assert torch.equal(x[:, 1:] - x[:, :-1], torch.ones(4, 9, dtype=torch.long))  # contiguous windows
        assert torch.equal(y, x + 1)
