"""Checkpoints: exact round trip, atomic writes, corrupt / truncated / foreign files, run directories."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

import rnnlab.checkpoint as ckpt_module
from rnnlab.checkpoint import decode_state, encode_state, load_checkpoint, save_checkpoint
from rnnlab.errors import RunDirError
from rnnlab.rundir import is_dead_run, prepare_run_dir
from test_train import TinyConfig, TinyGRU


def model(seed=0):
    torch.manual_seed(seed)
    return TinyGRU(TinyConfig(vocab=5, hidden=6, dropout=0.1))


def test_round_trip_is_exact_and_state_survives(tmp_path):
    m = model()
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    m(torch.tensor([[1, 2, 3]]))[0].sum().backward()
    opt.step()
    state = {"optimizer": opt.state_dict(), "rng": {"python": random.getstate(), "numpy": np.random.get_state(),
                                                    "torch": torch.get_rng_state()},
             "carried": (torch.randn(1, 2, 6), torch.randn(1, 2, 6)), "best": float("inf"), "name": "x"}
    save_checkpoint(tmp_path, m, step=3, training_state=state, files={"tokenizer.json": '{"a": 1}'})
    loaded = load_checkpoint(tmp_path, which="latest", training_state=True)
    assert loaded.step == 3 and loaded.config == {"vocab": 5, "hidden": 6, "dropout": 0.1}
    for key, value in m.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value)
    s = loaded.training_state
    assert s["best"] == float("inf") and s["name"] == "x"
    assert isinstance(s["carried"], tuple) and torch.equal(s["carried"][1], state["carried"][1])
    assert tuple(s["rng"]["python"][1]) == state["rng"]["python"][1]
    assert np.array_equal(s["rng"]["numpy"][1], state["rng"]["numpy"][1])
    opt2 = torch.optim.Adam(loaded.model.parameters(), lr=0.5)
    opt2.load_state_dict(s["optimizer"])
    assert opt2.param_groups[0]["lr"] == 0.01 and opt2.param_groups[0]["betas"] == (0.9, 0.999)
    for a, b in zip(opt.state.values(), opt2.state.values()):
        assert torch.equal(a["exp_avg_sq"], b["exp_avg_sq"]) and torch.equal(a["step"], b["step"])
    assert loaded.files == {"tokenizer.json": '{"a": 1}'}


def test_encode_state_refuses_objects():
    with pytest.raises(Exception, match="cannot store training state of type object"):
        encode_state({"a": object()}, {})
    tensors = {}
    assert decode_state(encode_state({1: (2, [3.5, None])}, tensors), tensors) == {1: (2, [3.5, None])}


def test_interrupted_checkpoint_write_keeps_previous_loadable(tmp_path, monkeypatch):
    first = model(0)
    save_checkpoint(tmp_path, first, step=1)
    real = ckpt_module.save_file

    def crash_after_weights(tensors, path, *args, **kwargs):
        real(tensors, path, *args, **kwargs)
        if path.endswith("trainer.safetensors"):
            raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(ckpt_module, "save_file", crash_after_weights)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, model(1), step=2, training_state={"x": torch.ones(2)})
    monkeypatch.setattr(ckpt_module, "save_file", real)

    # the pointer rename is atomic too: a crash inside os.replace leaves the old pointer
    def no_replace(*args):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_module.os, "replace", no_replace)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, model(2), step=3)
    monkeypatch.undo()

    loaded = load_checkpoint(tmp_path, which="latest")
    assert loaded.step == 1
    for key, value in first.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value)
    assert not list(tmp_path.glob(".ckpt-*")) and not list(tmp_path.glob(".*.tmp"))


def test_only_latest_and_best_are_kept(tmp_path):
    m = model()
    save_checkpoint(tmp_path, m, step=1, best=True)
    save_checkpoint(tmp_path, m, step=2)
    save_checkpoint(tmp_path, m, step=3)
    assert sorted(p.name for p in tmp_path.glob("ckpt-*")) == ["ckpt-00000001", "ckpt-00000003"]
    assert load_checkpoint(tmp_path).step == 1 and load_checkpoint(tmp_path, which="latest").step == 3


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:100]), "corrupt"),
    (lambda d: (d / "model.safetensors").unlink(), "incomplete"),
    (lambda d: (d / "tokenizer.json").write_text('{"other": 2}'), "tokenizer.json does not match"),
    (lambda d: (d / "manifest.json").write_text("{not json"), "corrupt"),
])
def test_damaged_checkpoint_is_a_clear_error(tmp_path, damage, message):
    directory = save_checkpoint(tmp_path, model(), step=1, files={"tokenizer.json": "{}"})
    damage(directory)
    with pytest.raises(RunDirError, match=message):
        load_checkpoint(tmp_path)


def test_other_version_or_unknown_model_is_refused(tmp_path):
    directory = save_checkpoint(tmp_path, model(), step=1)
    meta = json.loads((directory / "model.json").read_text())
    for change, message in [({"version": 99}, "version 99"), ({"model": "nope"}, "known models")]:
        (directory / "model.json").write_text(json.dumps({**meta, **change}))
        (directory / "manifest.json").unlink(missing_ok=True)
        (directory / "manifest.json").write_text('{"files": {}}')
        with pytest.raises(RunDirError, match=message):
            load_checkpoint(tmp_path)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(RunDirError, match="nothing is there"):
        load_checkpoint(tmp_path / "absent")
    with pytest.raises(RunDirError, match="checkpoints.json"):
        load_checkpoint(tmp_path)


def test_run_dir_is_never_overwritten(tmp_path):
    run = prepare_run_dir(tmp_path / "run", kind="lm", config={"a": 1}, command="rnnlab train lm")
    info = json.loads((run / "run.json").read_text())
    assert info["format"] == "rnnlab-run" and info["kind"] == "lm" and info["config"] == {"a": 1}
    save_checkpoint(run, model(), step=1)  # a run with a checkpoint is never replaced
    with pytest.raises(RunDirError, match="already holds a run"):
        prepare_run_dir(run, kind="lm", config={"a": 2})
    assert json.loads((run / "run.json").read_text()) == info
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="other files"):
        prepare_run_dir(tmp_path / "other", kind="lm", config={})
    with pytest.raises(RunDirError, match="holds a 'lm' run, expected 'forecast'"):
        prepare_run_dir(run, kind="forecast", config={}, resume=True)
    assert prepare_run_dir(run, kind="lm", config={}, resume=True) == run


def test_a_run_that_died_before_its_first_checkpoint_is_reused_by_a_fresh_start(tmp_path):
    run = prepare_run_dir(tmp_path / "run", kind="lm", config={"a": 1})
    (run / "data").mkdir()
    (run / "data" / "train.bin").write_bytes(b"12")
    (run / ".checkpoints.json.abc.tmp").write_text("half")  # a killed atomic write
    assert is_dead_run(run)
    again = prepare_run_dir(run, kind="lm", config={"a": 2})
    assert json.loads((again / "run.json").read_text())["config"] == {"a": 2}
    assert sorted(p.name for p in again.iterdir()) == ["run.json"]
    (run / "notes.txt").write_text("the user's")  # anything not written by rnnlab keeps it from being reused
    assert not is_dead_run(run)
    with pytest.raises(RunDirError, match="already holds a run"):
        prepare_run_dir(run, kind="lm", config={"a": 3})


def test_checkpoint_pointer_cannot_point_outside_the_run(tmp_path):
    run = tmp_path / "run"
    save_checkpoint(run, model(), step=3)
    (run / "checkpoints.json").write_text(json.dumps({"latest": "ckpt-00000003", "best": "../../../etc"}))
    with pytest.raises(RunDirError, match="inside the run"):
        load_checkpoint(run)


def test_best_is_only_an_evaluated_checkpoint_and_temp_entries_are_cleaned(tmp_path):
    run = tmp_path / "run"
    (run / ".ckpt-00000001.x1").mkdir(parents=True)  # left by a write that was killed
    save_checkpoint(run, model(), step=2)
    assert json.loads((run / "checkpoints.json").read_text()) == {"latest": "ckpt-00000002"}
    assert load_checkpoint(run).step == 2  # "best" falls back to the only weights there are
    assert not any(p.name.startswith(".") for p in run.iterdir())
    save_checkpoint(run, model(), step=4, best=True)
    save_checkpoint(run, model(), step=6)
    assert json.loads((run / "checkpoints.json").read_text()) == {"latest": "ckpt-00000006", "best": "ckpt-00000004"}
