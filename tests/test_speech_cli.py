"""``rnnlab train speech`` -> ``transcribe`` -> ``evaluate`` -> ``report`` on a tiny made-up FSDD, and bad input."""
import csv
import json

import numpy as np
import pytest
import soundfile

from cli_checks import fails
from rnnlab.cli import main
from test_speech import make_fsdd

TINY = ["--utterances", "16", "--batch-size", "8", "--valid-utterances", "4", "--test-utterances", "6",
        "--hidden", "8", "--layers", "1", "--n-mels", "12", "--max-digits", "3", "--no-progress"]


@pytest.fixture(scope="module")
def fsdd(tmp_path_factory):
    return make_fsdd(tmp_path_factory.mktemp("fsdd"))


@pytest.fixture(scope="module")
def trained(fsdd, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    assert main(["train", "speech", "--data", str(fsdd), "--out", str(out), "--epochs", "1", *TINY]) == 0
    return out


_one_line_error = fails  # the shared check (tests/cli_checks.py)


def test_train_writes_a_complete_run(trained):
    info = json.loads((trained / "run.json").read_text())
    assert info["kind"] == "speech" and info["config"]["model"]["n_features"] == 12
    results = info["results"]
    assert set(results["per_speaker"]) == {"ann", "bob"} and results["utterances"] == 6
    assert 0 <= results["der"] and len(results["digit_confusion"]) == 11 and "confusion" not in results
    for name in ("confusion.png", "speech_samples.png", "metrics.csv", "checkpoints.json"):
        assert (trained / name).is_file(), name


def test_transcribe_prints_digits_confidence_and_rtf(trained, tmp_path, capsys):
    rate = 16000  # not the model's 8 kHz: resampled, and said so
    t = np.arange(rate // 2) / rate
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([np.sin(2 * np.pi * 600 * t)] * 2, axis=1) * 0.3, rate, subtype="PCM_16")
    capsys.readouterr()
    assert main(["transcribe", str(trained), str(path), "--beam", "4"]) == 0
    captured = capsys.readouterr()
    assert f"{path}:" in captured.out and "real-time factor" in captured.out and "0.50 s audio" in captured.out
    assert "resampled from 16000 Hz to 8000 Hz" in captured.err and "mixed down" in captured.err


def test_evaluate_and_report(trained, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(trained), "--split", "valid", "--beam", "2"]) == 0
    out = capsys.readouterr().out
    assert "valid digit error rate" in out and "ann" in out and "bob" in out
    assert main(["report", str(trained)]) == 0
    html = (trained / "report.html").read_text()
    assert "Speech recognition: test results" in html and "Digit confusion" in html and "speech_samples.png" in html


def test_ensemble_of_runs(trained, fsdd, tmp_path, capsys):
    from rnnlab.runs.speech import evaluate_speech, transcribe

    alone = evaluate_speech(trained)
    # A run decoded with itself: the same candidate wins, so the scores are the run's own.
    same = evaluate_speech(trained, ensemble=[trained])
    assert same["ensemble"] == [str(trained), str(trained)]
    assert {k: same[k] for k in ("der", "ser", "per_speaker")} == {k: alone[k] for k in ("der", "ser", "per_speaker")}
    other = tmp_path / "other"  # another seed: decoded together with the first from the command line
    assert main(["train", "speech", "--data", str(fsdd), "--out", str(other), "--epochs", "1", "--seed", "1", *TINY]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(trained), "--ensemble", str(other)]) == 0
    out = capsys.readouterr().out
    assert "ensemble of 2 runs" in out and "test digit error rate" in out
    isolated = tmp_path / "isolated"
    assert main(["train", "speech", "--task", "isolated", "--data", str(fsdd), "--out", str(isolated), "--epochs", "1",
                 *TINY]) == 0
    assert evaluate_speech(isolated, ensemble=[isolated])["der"] == evaluate_speech(isolated)["der"]
    _one_line_error(capsys, ["evaluate", str(trained), "--ensemble", str(isolated)],
                    "task 'isolated', split 'official'; an ensemble with")
    # transcribe: a run with itself gives its own digits and confidences; the real-time factor counts both
    tone = tmp_path / "tone.wav"
    soundfile.write(tone, 0.3 * np.sin(2 * np.pi * 750 * np.arange(4000) / 8000), 8000, subtype="PCM_16")
    (one,), (two,) = transcribe(trained, [tone]), transcribe(trained, [tone], ensemble=[trained])
    assert two["digits"] == one["digits"] and two["confidences"] == pytest.approx(one["confidences"])
    (one,), (two,) = transcribe(isolated, [tone]), transcribe(isolated, [tone], ensemble=[isolated])
    assert two["digits"] == one["digits"] and two["confidences"] == pytest.approx(one["confidences"])
    assert main(["transcribe", str(trained), str(tone), "--ensemble", str(other)]) == 0
    assert f"{tone}:" in capsys.readouterr().out
    _one_line_error(capsys, ["transcribe", str(trained), str(tone), "--ensemble", str(isolated)],
                    "task 'isolated' at 8000 Hz; an ensemble with")


def test_resume_continues_to_the_same_parameters(fsdd, tmp_path):
    from safetensors.torch import load_file

    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert main(["train", "speech", "--data", str(fsdd), "--out", str(straight), "--epochs", "2", *TINY]) == 0
    assert main(["train", "speech", "--data", str(fsdd), "--out", str(stopped), "--epochs", "1", *TINY]) == 0
    assert main(["train", "speech", "--data", str(fsdd), "--out", str(stopped), "--epochs", "2", "--resume", *TINY]) == 0

    def latest(run):
        name = json.loads((run / "checkpoints.json").read_text())["latest"]
        return load_file(str(run / name / "model.safetensors"))

    a, b = latest(straight), latest(stopped)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert json.loads((stopped / "run.json").read_text())["config"]["run"]["epochs"] == 2


def test_conv_front_end_and_step_schedule_end_to_end(fsdd, tmp_path, capsys):
    out = tmp_path / "conv"
    assert main(["train", "speech", "--data", str(fsdd), "--out", str(out), "--epochs", "2", "--frontend", "conv",
                 "--conv-channels", "6", "--stack", "4", "--schedule", "step", "--lr-start", "0", "--lr-factor", "0.5",
                 *TINY]) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["model"]["frontend"] == "conv" and info["config"]["run"]["schedule"] == "step"
    with open(out / "metrics.csv") as handle:
        rates = [float(row["lr"]) for row in csv.DictReader(handle) if row["split"] == "valid"]
    assert rates == pytest.approx([1e-3, 5e-4])  # 2e-3 · 0.5^(epoch - 0)
    wav = sorted((fsdd / "recordings").glob("3_ann_*.wav"))[0]
    capsys.readouterr()
    assert main(["transcribe", str(out), str(wav)]) == 0
    assert "confidence" in capsys.readouterr().out


def test_isolated_task_end_to_end(fsdd, tmp_path, capsys):
    out = tmp_path / "isolated"
    assert main(["train", "speech", "--task", "isolated", "--data", str(fsdd), "--out", str(out), "--epochs", "2",
                 "--speed", "--spec-augment", *TINY]) == 0  # augmentation applies to isolated digits too
    assert "test accuracy" in capsys.readouterr().out
    config = json.loads((out / "run.json").read_text())["config"]
    assert config["connected"]["speed"] and config["augment"]["spec_augment"]
    wav = sorted((fsdd / "recordings").glob("3_ann_*.wav"))[0]
    assert main(["transcribe", str(out), str(wav)]) == 0
    assert "confidence" in capsys.readouterr().out


def test_bad_input_is_one_line_and_leaves_nothing(fsdd, trained, tmp_path, capsys):
    base = ["train", "speech", "--data", str(fsdd), *TINY]
    for argv, words in [
        (["--split", "speaker:carol"], ["carol", "speakers: ann, bob"]),
        (["--data", str(tmp_path / "nowhere")], ["does not exist"]),
        (["--min-digits", "4", "--max-digits", "2"], ["--max-digits must be >= --min-digits"]),
        (["--hidden", "0"], ["--hidden must be >= 1, got 0"]),
        (["--cell", "nosuch"], ["unknown recurrent kind 'nosuch'"]),
        (["--features", "mfcc", "--n-mfcc", "20"], ["--n-mfcc must be <= --n-mels (12); got 20"]),
        (["--task", "isolated", "--frontend", "conv"], ["--frontend conv applies to --task connected only"]),
        (["--stack", "400"], ["--stack 400 leaves 1 output frames", "lower --stack"]),
    ]:
        out = tmp_path / "never"
        _one_line_error(capsys, base + argv + ["--out", str(out)], *words)
        assert not out.exists()
    before = (trained / "run.json").read_bytes()
    _one_line_error(capsys, base + ["--out", str(trained)], "already holds a run")
    assert (trained / "run.json").read_bytes() == before
    _one_line_error(capsys, base + ["--out", str(trained), "--resume", "--hidden", "9"], "cannot resume",
                    "model.hidden")
    (tmp_path / "notes.wav").write_text("hello")
    _one_line_error(capsys, ["transcribe", str(trained), str(tmp_path / "notes.wav")], "notes.wav", "cannot read")
    _one_line_error(capsys, ["transcribe", str(trained), str(tmp_path / "missing.wav")], "missing.wav", "does not exist")
    _one_line_error(capsys, ["transcribe", str(tmp_path), str(tmp_path / "notes.wav")], "checkpoint")
    _one_line_error(capsys, ["evaluate", str(trained), "--split", "train"], "--split must be valid or test")
