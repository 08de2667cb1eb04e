"""``rnnlab train lm / next / generate / evaluate`` end to end, and every bad input the issue lists."""
from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from cli_checks import fails
from rnnlab.cli import main
from rnnlab.data.tokenizer import CharTokenizer

TEXT = "".join(f"the clouds are in the sky number {i % 7}.\n" for i in range(60))
SMALL = ["--level", "char", "--embed", "8", "--hidden", "16", "--layers", "1", "--batch-size", "4", "--bptt", "16",
         "--no-progress", "--threads", "1", "--no-windows"]




@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    (root / "corpus.txt").write_text(TEXT)
    assert main(["train", "lm", "--data", str(root / "corpus.txt"), "--out", str(root / "run"), "--max-steps", "20",
                 "--eval-every", "10", *SMALL]) == 0
    return root




def test_train_next_generate_evaluate(run, capsys):
    info = json.loads((run / "run" / "run.json").read_text())
    assert info["kind"] == "lm" and info["summary"]["steps"] == 20 and "bpc" in info["results"]["valid"]
    capsys.readouterr()
    assert main(["next", str(run / "run"), "the clouds", "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    probs = [float(line.split()[-1]) for line in lines]
    assert len(lines) == 3 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
    outputs = []
    for _ in range(2):
        assert main(["generate", str(run / "run"), "--prompt", "the ", "--max-tokens", "30", "--seed", "3"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and outputs[0].startswith("the ")
    assert main(["evaluate", str(run / "run"), "--data", str(run / "corpus.txt")]) == 0
    assert "bits per character" in capsys.readouterr().out


def test_resume_extends_a_run(run, capsys):
    copy = run / "resumed"
    shutil.copytree(run / "run", copy)
    assert main(["train", "lm", "--out", str(copy), "--resume", "--max-steps", "30", "--no-progress"]) == 0
    assert json.loads((copy / "run.json").read_text())["summary"]["steps"] == 30


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    (b"", "is empty"),
    (b"\x7fELF\x02\x01\x00\x00binary", "looks binary"),
    ("caf\u00e9 ok\n".encode("latin-1"), "not valid UTF-8: byte 0xe9 at offset 3"),
])
def test_bad_data_files(tmp_path, capsys, content, message):
    path = tmp_path / "data.txt"
    if content is not None:
        path.write_bytes(content)
    fails(capsys, ["train", "lm", "--data", str(path), "--out", str(tmp_path / "out"), *SMALL], message)
    assert not (tmp_path / "out").exists()  # nothing half-made is left behind


def test_corpus_shorter_than_one_batch(tmp_path, capsys):
    (tmp_path / "short.txt").write_text("a few words only\n" * 3)
    fails(capsys, ["train", "lm", "--data", str(tmp_path / "short.txt"), "--out", str(tmp_path / "o"), *SMALL],
          "needs at least")


def test_existing_run_is_not_overwritten(run, capsys):
    before = (run / "run" / "run.json").read_bytes()
    fails(capsys, ["train", "lm", "--data", str(run / "corpus.txt"), "--out", str(run / "run"), *SMALL],
          "already holds a run")
    assert (run / "run" / "run.json").read_bytes() == before


def _ckpt(root):
    copy = root.parent / f"{root.name}-copy-{len(list(root.parent.iterdir()))}"
    shutil.copytree(root, copy)
    pointer = json.loads((copy / "checkpoints.json").read_text())
    return copy, copy / pointer["best"]


def test_corrupt_truncated_or_foreign_checkpoints(run, capsys):
    copy, ckpt = _ckpt(run / "run")
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    fails(capsys, ["next", str(copy), "the"], "corrupt")

    copy, ckpt = _ckpt(run / "run")
    meta = json.loads((ckpt / "model.json").read_text())
    (ckpt / "model.json").write_text(json.dumps({**meta, "version": 7}))
    _refresh_manifest(ckpt)
    fails(capsys, ["generate", str(copy)], "format version 7")

    copy, ckpt = _ckpt(run / "run")
    (ckpt / "tokenizer.json").write_text(CharTokenizer.fit(["abc"]).to_json())
    _refresh_manifest(ckpt)
    fails(capsys, ["next", str(copy), "a"], "do not belong together")

    fails(capsys, ["evaluate", str(run / "nothing-here")], "does not exist")


def _refresh_manifest(ckpt):
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in ckpt.iterdir() if p.name != "manifest.json"}
    (ckpt / "manifest.json").write_text(json.dumps({"files": files}))


def test_bad_prompts_and_sampling_options(run, capsys):
    fails(capsys, ["next", str(run / "run"), "the Zqx"], "3 char(s) not in the vocabulary: 'Z', 'q', 'x'")
    fails(capsys, ["generate", str(run / "run"), "--prompt", "the", "--temperature", "-0.5"],
          "temperature must be >= 0")
    fails(capsys, ["generate", str(run / "run"), "--prompt", "", "--max-tokens", "3"], "has no tokens")


def test_window_mlp_and_gru_models_train_and_predict(run, capsys):
    for model in ("mlp", "gru"):
        out = run / f"run-{model}"
        assert main(["train", "lm", "--data", str(run / "corpus.txt"), "--out", str(out), "--model", model,
                     "--max-steps", "5", *SMALL]) == 0
        capsys.readouterr()
        assert main(["next", str(out), "the", "--top-k", "2"]) == 0
        assert len(capsys.readouterr().out.strip().splitlines()) == 2
    fails(capsys, ["train", "lm", "--data", str(run / "corpus.txt"), "--out", str(run / "bad-model"),
                   "--model", "transformer", *SMALL], "--model must be mlp or one of")
    assert not (run / "bad-model").exists()
