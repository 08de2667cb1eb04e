"""``rnnlab train translate`` / ``translate`` / ``evaluate`` / ``report`` end to end on a tiny fra.txt, exact
resume, and bad input through the command line (exit 2, one line, nothing overwritten or left behind)."""
from __future__ import annotations

import json

import pytest
import torch

from cli_checks import fails
from rnnlab.checkpoint import load_checkpoint
from rnnlab.cli import main
from rnnlab.data.translation import TranslationDataConfig
from rnnlab.models.translator import TranslatorConfig
from rnnlab.runs.translate import TranslateTrainConfig, train_translation

SUBJECTS = [("I am", "Je suis"), ("He is", "Il est"), ("She is", "Elle est"), ("We are", "Nous sommes"),
            ("You are", "Vous êtes"), ("They are", "Ils sont")]
WORDS = [("happy", "heureux"), ("tired", "fatigué"), ("ready", "prêt"), ("here", "ici"), ("late", "en retard"),
         ("sad", "triste"), ("hungry", "affamé")]
TINY = ["--min-count", "1", "--embed", "8", "--hidden", "16", "--batch-size", "8", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def fra(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "fra.txt"
    lines = []
    for i, (en, fr) in enumerate(SUBJECTS):
        for j, (a, b) in enumerate(WORDS):
            lines.append(f"{en} {a}.\t{fr} {b}." + ("\tCC-BY 2.0 (France) Attribution" if (i + j) % 3 == 0 else ""))
            if j % 2 == 0:
                lines.append(f"{en} {a}.\t{fr} très {b} !")  # a second reference for the same source
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run(fra, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "enfr"
    assert main(["train", "translate", "--data", str(fra), "--out", str(out), "--max-steps", "30", *TINY]) == 0
    return out


_fails = fails  # the shared check (tests/cli_checks.py)


def test_train_writes_a_translation_run(run):
    info = json.loads((run / "run.json").read_text())
    assert info["kind"] == "translate" and info["config"]["data"]["preset"] == "tutorial"
    assert info["data_stats"]["test_sources"] >= 1 and info["summary"]["steps"] == 30
    result = json.loads((run / "translations-test.json").read_text())
    assert set(result["scores"]) == {"greedy", "beam5"}
    assert "nrefs" in result["scores"]["greedy"]["bleu_signature"]
    sample = result["samples"][0]
    assert len(sample["attention"]) == len(sample["target"]) and len(sample["attention"][0]) == len(sample["source"])


def test_translate_prints_nbest_and_reports_unknown_words(run, capsys):
    assert main(["translate", str(run), "I am happy.", "I am zorglub.", "--beam", "3", "--nbest", "2"]) == 0
    out, err = capsys.readouterr()
    assert "zorglub" in err and "<unk>" in err
    assert out.count("> ") == 2 and len(out.strip().splitlines()) == 6


def test_evaluate_prints_bleu_chrf_and_signature(run, capsys):
    assert main(["evaluate", str(run), "--split", "test", "--beam", "2"]) == 0
    out = capsys.readouterr().out
    assert "greedy: BLEU" in out and "beam2: BLEU" in out and "BLEU signature: nrefs:" in out and "chrF" in out


def test_evaluate_and_translate_with_an_ensemble(fra, run, tmp_path, capsys):
    other = tmp_path / "seed1"
    assert main(["train", "translate", "--data", str(fra), "--out", str(other), "--max-steps", "10", "--seed", "1",
                 *TINY]) == 0
    single = (run / "translations-test.json").read_bytes()
    capsys.readouterr()
    assert main(["evaluate", str(run), "--ensemble", str(other), "--beam", "2"]) == 0
    out = capsys.readouterr().out
    assert "ensemble of 2 runs" in out and "beam2: BLEU" in out
    result = json.loads((run / "translations-test-ensemble2.json").read_text())
    assert result["ensemble"] == [str(run), str(other)]
    assert (run / "translations-test.json").read_bytes() == single  # the run's own scores stay
    assert main(["translate", str(run), "I am happy.", "--ensemble", str(other)]) == 0
    assert capsys.readouterr().out.count("\n") == 1  # one translation (a briefly trained pair may say little)
    different = tmp_path / "mincount"
    assert main(["train", "translate", "--data", str(fra), "--out", str(different), "--max-steps", "2",
                 *TINY, "--min-count", "50"]) == 0  # a smaller vocabulary
    _fails(capsys, ["evaluate", str(run), "--ensemble", str(different)], "other vocabularies")


def test_report_has_the_translation_sections(run):
    assert main(["report", str(run)]) == 0
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "Attention" in html and "BLEU by source length" in html and "title=" in html


def test_bpe_run_trains_translates_evaluates_and_reports_in_words(fra, tmp_path, capsys):
    out = tmp_path / "bpe"
    assert main(["train", "translate", "--data", str(fra), "--out", str(out), "--max-steps", "12", "--tokens", "bpe",
                 "--bpe-vocab", "64", *TINY]) == 0
    assert json.loads((out / "source_vocab.json").read_text())["format"] == "rnnlab-subword-vocabulary"
    assert "rnnlab-subword-vocabulary" in load_checkpoint(out).files["target_vocab.json"]
    capsys.readouterr()
    assert main(["translate", str(out), "I am happy.", "I am zorglub."]) == 0
    out_text, err = capsys.readouterr()
    assert "zorglub" in err and "</w>" not in out_text and "@@" not in out_text
    assert main(["evaluate", str(out), "--split", "test", "--beam", "2"]) == 0
    result = json.loads((out / "translations-test.json").read_text())
    assert all("\u2581" not in t for t in result["samples"][0]["beam"].split())
    sample = result["samples"][0]
    assert len(sample["attention"]) == len(sample["target"]) and len(sample["attention"][0]) == len(sample["source"])
    assert main(["report", str(out)]) == 0


@pytest.mark.parametrize("tokens", ["word", "bpe"])
def test_resume_equals_an_uninterrupted_run(fra, tmp_path, tokens):
    data = TranslationDataConfig(data=str(fra), min_count=1, tokens=tokens, bpe_vocab=64)
    model = TranslatorConfig(5, 5, embed=8, hidden=16, dropout=0.1)
    train = TranslateTrainConfig(batch_size=8, max_cpu_minutes=None, eval_every=4, select="loss", sampling=0.25)
    whole, part = tmp_path / "whole", tmp_path / "part"
    train_translation(data, model, TranslateTrainConfig(**{**train.__dict__, "max_steps": 10}), whole, progress=False)
    train_translation(data, model, TranslateTrainConfig(**{**train.__dict__, "max_steps": 6}), part, progress=False)
    train_translation(None, None, None, part, resume=True, max_steps=10, progress=False)
    a = load_checkpoint(whole, which="latest").model.state_dict()
    b = load_checkpoint(part, which="latest").model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- bad input
def test_bad_file_gives_the_line_and_leaves_no_run(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("I am happy.\tJe suis heureux.\nI am sad.\tJe suis triste.\nI am here.\n", encoding="utf-8")
    out = tmp_path / "run"
    _fails(capsys, ["train", "translate", "--data", str(bad), "--out", str(out), *TINY], "line 3", "2 or 3")
    assert not out.exists()


def test_undecodable_bytes_stop_unless_replaced(fra, tmp_path, capsys):
    bad = tmp_path / "bytes.txt"
    bad.write_bytes(fra.read_bytes().replace("fatigué".encode(), b"fatigu\xe9", 1))
    out = tmp_path / "run"
    _fails(capsys, ["train", "translate", "--data", str(bad), "--out", str(out), *TINY], "not UTF-8",
           "--encoding-errors replace")
    assert not out.exists()
    assert main(["train", "translate", "--data", str(bad), "--out", str(out), "--max-steps", "2",
                 "--encoding-errors", "replace", *TINY]) == 0


def test_existing_directory_is_not_overwritten(fra, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    _fails(capsys, ["train", "translate", "--data", str(fra), "--out", str(out), *TINY], "already holds")
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("flags, phrase", [
    (["--source", "eng", "--target", "eng"], "must differ"),
    (["--hidden", "15"], "--hidden must be even"),
    (["--cell", "transformer"], "--cell must be one of"),
    (["--dropout", "1.0"], "--dropout must be < 1"),
    (["--preset", "all", "--max-tokens", "1"], "pair(s) left after the filters"),
])
def test_bad_options_fail_before_any_directory(fra, tmp_path, capsys, flags, phrase):
    out = tmp_path / "run"
    _fails(capsys, ["train", "translate", "--data", str(fra), "--out", str(out), *TINY, *flags], phrase)
    assert not out.exists()


def test_resume_refuses_changed_options_and_continues(run, capsys):
    _fails(capsys, ["train", "translate", "--out", str(run), "--resume", "--hidden", "32"], "--hidden")
    assert main(["train", "translate", "--out", str(run), "--resume", "--max-steps", "34", "--no-progress"]) == 0
    assert json.loads((run / "run.json").read_text())["summary"]["steps"] == 34


def test_translate_bad_inputs(run, tmp_path, capsys):
    _fails(capsys, ["translate", str(tmp_path), "I am happy."], "run.json")
    _fails(capsys, ["translate", str(run), "I am happy.", "--beam", "2", "--nbest", "3"], "--nbest")
    _fails(capsys, ["translate", str(run), "   "], "nothing to translate")
    _fails(capsys, ["translate", str(run), "I am happy.", "--beam", "0"], "--beam must be >= 1")
