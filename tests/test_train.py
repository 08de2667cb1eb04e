"""The shared trainer: exact resume, schedules, early stopping, non-finite loss, metrics."""
from __future__ import annotations

import csv
import math
import os
import signal
from dataclasses import dataclass

import pytest
import torch

from rnnlab.checkpoint import load_checkpoint
from rnnlab.errors import ConfigError, NonFiniteLossError
from rnnlab.models.registry import register_model
from rnnlab.train import TrainConfig, Trainer, seed_everything


@dataclass
class TinyConfig:
    vocab: int = 7
    hidden: int = 8
    dropout: float = 0.2


@register_model("test_tiny_gru")
class TinyGRU(torch.nn.Module):
    """Embedding -> GRU -> dropout -> linear; torch.nn only, so these tests do not depend on the core."""

    Config = TinyConfig

    def __init__(self, config: TinyConfig):
        super().__init__()
        self.config = config
        self.embed = torch.nn.Embedding(config.vocab, config.hidden)
        self.rnn = torch.nn.GRU(config.hidden, config.hidden, batch_first=True)
        self.drop = torch.nn.Dropout(config.dropout)
        self.out = torch.nn.Linear(config.hidden, config.vocab)

    @classmethod
    def from_config(cls, config):
        return cls(config)

    def forward(self, x, state=None):
        y, state = self.rnn(self.embed(x), state)
        return self.out(self.drop(y)), state


class StreamTask:
    """Predict the next token of a periodic stream; contiguous batches with carried state."""

    perplexity = True
    item_name = "tok"

    def __init__(self, batch=4, bptt=5, length=204, nan_at=None):
        g = torch.Generator().manual_seed(0)
        base = torch.randint(0, 7, (length,), generator=g)
        base[::3] = 0  # some structure to learn
        n = (length - 1) // batch
        self.streams = torch.stack([base[b * n:(b + 1) * n + 1] for b in range(batch)])
        self.bptt, self.nan_at, self.calls = bptt, nan_at, 0

    def num_batches(self, epoch):
        return (self.streams.shape[1] - 1) // self.bptt

    def train_batches(self, epoch):
        for i in range(self.num_batches(epoch)):
            chunk = self.streams[:, i * self.bptt:(i + 1) * self.bptt + 1]
            yield chunk[:, :-1], chunk[:, 1:]

    def loss(self, model, batch, state):
        x, y = batch
        logits, state = model(x, state)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        self.calls += 1
        if self.nan_at is not None and self.calls >= self.nan_at:
            loss = loss * float("nan")
        return loss, state, y.numel()

    def evaluate(self, model, split):
        total, state = 0.0, None
        for x, y in self.train_batches(0):
            logits, state = model(x, state)
            total += torch.nn.functional.cross_entropy(logits.reshape(-1, 7), y.reshape(-1), reduction="sum").item()
        loss = total / (self.num_batches(0) * self.streams.shape[0] * self.bptt)
        return {"loss": loss, "ppl": math.exp(loss)}


def make(run_dir, **overrides):
    seed_everything(1)
    model = TinyGRU(TinyConfig())
    options = dict(optimizer="adam", lr=0.01, max_epochs=3, eval_every=7, progress=False, log_every=4,
                   restore_best=False, seed=3)
    options.update(overrides)
    return Trainer(model, StreamTask(), TrainConfig(**options), run_dir)


def params(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_training_lowers_loss_and_logs_metrics(tmp_path):
    trainer = make(tmp_path / "run", max_epochs=4)
    before = trainer.evaluate()["loss"]
    summary = trainer.fit()
    assert summary["best_valid_loss"] < before - 0.2
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert {"step", "epoch", "split", "loss", "ppl", "lr", "items_per_s"} <= set(rows[0]) | set(rows[-1])
    valid = [r for r in rows if r["split"] == "valid"]
    # every 7 steps and at each epoch end (10 batches per epoch), never twice for one step
    assert [int(r["step"]) for r in valid] == sorted(set(range(7, 41, 7)) | {10, 20, 30, 40})


def test_resume_after_ctrl_c_equals_uninterrupted_run(tmp_path):
    reference = make(tmp_path / "a")
    reference.fit()

    def interrupt(trainer, event, info):
        if event == "step" and trainer.step == 11:  # mid-epoch, between evaluations
            os.kill(os.getpid(), signal.SIGINT)

    interrupted = make(tmp_path / "b")
    interrupted.callbacks.append(interrupt)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    assert load_checkpoint(tmp_path / "b", which="latest").step == 11
    resumed = make(tmp_path / "b", seed=99)  # a different seed must not matter: RNG states are restored
    resumed.model.load_state_dict(TinyGRU(TinyConfig()).state_dict())  # and the weights are reloaded
    resumed.fit(resume=True)
    assert resumed.step == reference.step
    assert_same(params(resumed.model), params(reference.model))
    # the log holds each step once
    steps = [int(r["step"]) for r in csv.DictReader(open(tmp_path / "b" / "metrics.csv")) if r["split"] == "valid"]
    assert len(steps) == len(set(steps))


def test_resume_after_hard_kill_continues_from_last_checkpoint(tmp_path):
    reference = make(tmp_path / "a")
    reference.fit()

    def kill(trainer, event, info):
        if event == "step" and trainer.step == 17:
            raise RuntimeError("simulated kill")

    killed = make(tmp_path / "b")
    killed.callbacks.append(kill)
    with pytest.raises(RuntimeError):
        killed.fit()
    assert load_checkpoint(tmp_path / "b", which="latest").step == 14
    resumed = make(tmp_path / "b")
    resumed.fit(resume=True)
    assert_same(params(resumed.model), params(reference.model))


def test_step_schedule_follows_zaremba_formula(tmp_path):
    seen = {}
    trainer = make(None, optimizer="sgd", lr=1.0, schedule="step", lr_factor=0.5, lr_start=2, max_epochs=4)
    trainer.callbacks.append(lambda t, event, info: seen.setdefault(t.epoch, t.lr) if event == "step" else None)
    trainer.fit()
    assert seen == {0: 1.0, 1: 1.0, 2: 0.5, 3: 0.25}


class ScriptedTask(StreamTask):
    def __init__(self, losses):
        super().__init__()
        self.losses = list(losses)

    def evaluate(self, model, split):
        return {"loss": self.losses.pop(0)}


def test_plateau_decay_and_early_stopping():
    seed_everything(0)
    task = ScriptedTask([1.0, 0.9, 0.95, 0.96, 0.97, 0.5])
    config = TrainConfig(optimizer="sgd", lr=0.1, schedule="plateau", lr_factor=0.5, lr_patience=0, patience=2,
                         max_epochs=10, eval_every=2, progress=False)
    lrs = []
    trainer = Trainer(TinyGRU(TinyConfig()), task, config,
                      callbacks=[lambda t, e, i: lrs.append(t.lr) if e == "eval" else None])
    summary = trainer.fit()
    assert summary["stopped"] == "early_stop"
    assert summary["best_valid_loss"] == 0.9 and summary["best_step"] == 4
    assert lrs == [0.1, 0.1, 0.05, 0.025, 0.0125]  # halved after each evaluation without a new best
    assert summary["steps"] == 10


def test_restore_best_loads_best_weights():
    seed_everything(0)
    task = ScriptedTask([1.0, 0.5, 0.9])
    config = TrainConfig(optimizer="adam", lr=0.05, max_steps=6, eval_every=2, progress=False, restore_best=True)
    snapshots = {}
    trainer = Trainer(TinyGRU(TinyConfig()), task, config,
                      callbacks=[lambda t, e, i: snapshots.setdefault(t.step, params(t.model)) if e == "eval" else None])
    trainer.fit()
    assert_same(params(trainer.model), snapshots[4])


def test_non_finite_loss_stops_and_keeps_last_checkpoint(tmp_path):
    trainer = make(tmp_path / "run")
    trainer.task.nan_at = 10
    with pytest.raises(NonFiniteLossError, match="step 10 .*last good checkpoint.*step 7"):
        trainer.fit()
    ckpt = load_checkpoint(tmp_path / "run", which="latest")
    assert ckpt.step == 7 and all(torch.isfinite(v).all() for v in ckpt.model.state_dict().values())


def test_config_is_validated():
    with pytest.raises(ConfigError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ConfigError, match="max_epochs, max_steps"):
        TrainConfig(max_epochs=None)
    with pytest.raises(ConfigError, match="tensorboard"):
        Trainer(TinyGRU(TinyConfig()), StreamTask(), TrainConfig(tensorboard=True, progress=False), None)
