"""Every failure is one line and loses nothing (issue 17), driven through the real command line.

Each case asserts: exit status 2, exactly one line on stderr, no traceback, the named problem in the
message, and the file system unchanged (same hashes of every pre-existing file, no new entry).
The fault-injection tests kill or interrupt training and check that the same command recovers.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file

from rnnlab.cli import main

TEXT = "".join(f"the clouds are in the sky number {i % 7}.\n" for i in range(80))
SMALL = ["--level", "char", "--embed", "8", "--hidden", "16", "--batch-size", "4", "--bptt", "16", "--no-progress",
         "--threads", "1", "--no-windows"]


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root`` with a hash of each file (directories as "dir")."""
    out = {}
    for path in sorted(root.rglob("*")):
        out[str(path.relative_to(root))] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A corpus, CSVs and one finished run of each kind the cases need."""
    root = tmp_path_factory.mktemp("bad")
    (root / "corpus.txt").write_text(TEXT)
    assert main(["train", "lm", "--data", str(root / "corpus.txt"), "--out", str(root / "lm"), "--max-steps", "12",
                 "--eval-every", "6", *SMALL]) == 0
    rows = [{"id": s, "label": "ab"[s % 2], "t": t, "x": float(np.sin(s * (1 + s % 2) + t))}
            for s in range(16) for t in range(6)]
    pd.DataFrame(rows).to_csv(root / "seq.csv", index=False)
    n = 120
    pd.DataFrame({"date": pd.date_range("2020-01-01", periods=n, freq="D"),
                  "y": np.sin(np.arange(n) * 2 * np.pi / 7) + 0.01 * np.arange(n)}).to_csv(root / "series.csv",
                                                                                         index=False)
    assert main(["forecast", "train", "--csv", str(root / "series.csv"), "--epochs", "1", "--hidden", "8",
                 "--no-progress", "--out", str(root / "fc")]) == 0
    (root / "empty.csv").write_bytes(b"")
    (root / "binary.csv").write_bytes(bytes(range(256)) * 4)
    (root / "afile").write_text("not a directory")
    (root / "notes.txt").write_text("keep me")
    (root / "full").mkdir()
    (root / "full" / "mine.txt").write_text("a user's file")
    return root


def cases(w: Path) -> dict[str, tuple[list[str], str]]:
    lm, fc, text = str(w / "lm"), str(w / "fc"), str(w / "corpus.txt")
    train = ["train", "lm", "--data", text, *SMALL, "--out", str(w / "new")]
    return {
        # 1. what used to escape as a traceback
        "empty classification CSV": (["classify", "train", "--csv", str(w / "empty.csv"), "--out", str(w / "c1")],
                                     "is empty"),
        "binary classification CSV": (["classify", "train", "--csv", str(w / "binary.csv"), "--out", str(w / "c1")],
                                      "is a binary file"),
        "forecast batch size 0": (["forecast", "train", "--batch-size", "0", "--out", str(w / "f1")],
                                  "--batch-size must be >= 1"),
        "classify batch size 0": (["classify", "train", "--csv", str(w / "seq.csv"), "--batch-size", "0", "--out",
                                   str(w / "c1")], "--batch-size must be >= 1"),
        "threads -1": (train + ["--threads", "-1"], "--threads must be >= 1"),
        "temperature nan": (["generate", lm, "--temperature", "nan"], "temperature must be >= 0 and finite"),
        "forecast dropout 2": (["forecast", "train", "--dropout", "2", "--out", str(w / "f1")], "--dropout must be < 1"),
        "hidden too large": (train + ["--hidden", "1000000000"], "not enough memory"),
        "predict out inside a file": (["forecast", "predict", fc, "--out", str(w / "afile" / "f.csv")],
                                      "is a file, not a directory"),
        "corpus too small": (["train", "lm", "--data", str(w / "full"), "--out", str(w / "new")], "tokens"),
        # 2. validation before any directory exists
        "hidden 0": (train + ["--hidden", "0"], "--hidden must be >= 1, got 0"),
        "unknown cell": (train + ["--model", "transformer"], "--model must be mlp or one of"),
        # 3. nothing overwritten
        "lab into a non-empty directory": (["lab", "adding", "--out", str(w / "full"), "--steps", "1"],
                                           "already holds other files"),
        "report over an existing file": (["report", lm, "--out", str(w / "notes.txt")], "already exists"),
        "train into a run": (["train", "lm", "--data", text, "--out", lm], "already holds a run"),
        # 4. what used to be accepted silently
        "window 0": (train + ["--window", "0"], "--window must be >= 1"),
        "max minutes -1": (train + ["--max-minutes", "-1"], "--max-minutes must be > 0"),
        "threads 0": (train + ["--threads", "0"], "--threads must be >= 1"),
        "evaluate batch 0": (["evaluate", lm, "--batch-size", "0"], "--batch-size must be >= 1"),
        "level 1.5": (["forecast", "predict", fc, "--level", "1.5", "--out", str(w / "p.csv")],
                      "--level must be a probability"),
        "period 0": (["forecast", "train", "--period", "0", "--out", str(w / "f1")], "--period must be >= 1"),
        "split not numbers": (train + ["--split", "0.9,x"], "--split takes numbers"),
        # 7. messages that point the right way
        "forecast does not suggest --resume": (["forecast", "train", "--csv", str(w / "series.csv"), "--out", fc],
                                               "choose a new --out (nothing"),
        "beam for a language model": (["evaluate", lm, "--beam", "3"], "--beam applies to jobs that decode"),
        "usage error is one line": (["train", "lm", "--level", "bytes", "--out", str(w / "x")], "invalid choice"),
    }


def test_bad_inputs_are_one_line_and_change_nothing(world, capsys):
    failures = []
    for name, (argv, message) in cases(world).items():
        before = snapshot(world)
        capsys.readouterr()
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse usage errors
            code = exit_.code
        err = capsys.readouterr().err.strip()
        after = snapshot(world)
        problems = []
        if code != 2:
            problems.append(f"exit {code}")
        if "\n" in err or "Traceback" in err:
            problems.append("more than one line")
        if message not in err:
            problems.append(f"message lacks {message!r}")
        if before != after:
            problems.append(f"file system changed: {sorted(set(after.items()) ^ set(before.items()))[:3]}")
        if problems:
            failures.append(f"{name}: {', '.join(problems)}: {err}")
    assert not failures, "\n".join(failures)
    assert len(cases(world)) >= 25


def test_a_damaged_run_directory_on_resume_is_one_line(world, capsys):
    damages = {
        "truncated trainer state": (lambda c: (c / "trainer.safetensors").write_bytes(
            (c / "trainer.safetensors").read_bytes()[:40]), "corrupt"),
        "pointer is a directory": (lambda c: (os.remove(c.parent / "checkpoints.json"),
                                              (c.parent / "checkpoints.json").mkdir()), "is a directory"),
        "pointer leaves the run": (lambda c: (c.parent / "checkpoints.json").write_text(
            json.dumps({"latest": "../../../etc", "best": c.name})), "inside the run"),
        "run.json config damaged": (lambda c: (c.parent / "run.json").write_text(json.dumps(
            {**json.loads((c.parent / "run.json").read_text()), "config": {"hidden": "many"}})), "--hidden must be"),
    }
    for name, (damage, message) in damages.items():
        copy = world / f"damaged-{len(name)}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(world / "lm", copy)
        pointer = json.loads((copy / "checkpoints.json").read_text())
        damage(copy / pointer["latest"])
        capsys.readouterr()
        code = main(["train", "lm", "--out", str(copy), "--resume", "--max-steps", "14", "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "\n" not in err and message in err, (name, err)


def test_resuming_a_finished_run_trains_no_extra_step(world, capsys):
    copy = world / "finished"
    shutil.copytree(world / "lm", copy)
    before = snapshot(copy)
    assert main(["train", "lm", "--out", str(copy), "--resume", "--no-progress"]) == 0
    after = snapshot(copy)
    changed = {k for k in before if before[k] != after.get(k)}
    assert changed <= {"run.json"}, changed  # no checkpoint rewritten, no step taken
    assert json.loads((copy / "run.json").read_text())["summary"]["steps"] == 12


def test_resume_refuses_changed_training_text_unless_forced(world, capsys):
    data = world / "changing.txt"
    data.write_text(TEXT)
    out = world / "changing"
    assert main(["train", "lm", "--data", str(data), "--out", str(out), "--max-steps", "6", "--eval-every", "3",
                 *SMALL]) == 0
    data.write_text(TEXT.replace("sky", "sea"))
    capsys.readouterr()
    assert main(["train", "lm", "--out", str(out), "--resume", "--max-steps", "8", "--no-progress"]) == 2
    assert "changed since the run started" in capsys.readouterr().err
    assert main(["train", "lm", "--out", str(out), "--resume", "--max-steps", "8", "--no-progress", "--force"]) == 0


def test_files_follow_the_umask(world):
    for path in (world / "lm").rglob("*"):
        mode = path.stat().st_mode & 0o777
        assert mode & 0o044 == 0o044, (path, oct(mode))  # group and others can read (umask 022)


def test_classify_predict_scores_a_label_column_and_keeps_ids(world, capsys):
    out = world / "cls"
    assert main(["classify", "train", "--csv", str(world / "seq.csv"), "--epochs", "2", "--hidden", "8",
                 "--no-progress", "--out", str(out)]) == 0
    assert "left out 't'" in capsys.readouterr().out  # the time index is not a feature, and it says so
    shuffled = pd.read_csv(world / "seq.csv")
    shuffled["id"] = shuffled["id"] + 100
    shuffled.to_csv(world / "seq2.csv", index=False)
    assert main(["classify", "predict", str(out), "--csv", str(world / "seq2.csv")]) == 0
    assert "accuracy" in capsys.readouterr().out
    table = pd.read_csv(out / "predictions.csv")
    assert list(table["sequence"]) == list(range(100, 116))


def _lm_command(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rnnlab.cli", "train", "lm", "--data", str(data), "--out", str(out), *SMALL,
            *extra]


def test_kill_during_the_first_epoch_then_the_same_command_starts_cleanly(tmp_path):
    data = tmp_path / "corpus.txt"
    data.write_text(TEXT * 20)
    out = tmp_path / "run"
    command = _lm_command(data, out, "--epochs", "1")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not (out / "run.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (out / "run.json").exists() and not (out / "checkpoints.json").exists()  # died before its first save
    done = subprocess.run(command[:-2] + ["--max-steps", "4"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "run.json").read_text())["summary"]["steps"] == 4


def test_ctrl_c_saves_and_says_how_to_resume_then_resume_is_exact(tmp_path):
    data = tmp_path / "corpus.txt"
    data.write_text(TEXT * 20)
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    steps = ["--max-steps", "60", "--eval-every", "20"]
    subprocess.run(_lm_command(data, reference, *steps), check=True, capture_output=True, timeout=300)
    process = subprocess.Popen(_lm_command(data, interrupted, *steps), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (interrupted / "checkpoints.json").exists() and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    err = process.communicate(timeout=120)[1].strip().splitlines()
    if process.returncode == 0:
        pytest.skip("training finished before the interrupt arrived (fast machine)")
    assert process.returncode == 130 and "--resume" in err[-1] and "interrupted at step" in err[-1], err
    resumed = subprocess.run(_lm_command(data, interrupted, *steps, "--resume"), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr

    def weights(run):
        return load_file(str(run / json.loads((run / "checkpoints.json").read_text())["latest"] / "model.safetensors"))

    a, b = weights(reference), weights(interrupted)
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)
