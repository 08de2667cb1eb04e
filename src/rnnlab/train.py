"""One training loop for every task: TBPTT with carried state, clipping, schedules, checkpoints, DDP.

The trainer never looks inside a task. A **task** is any object with these methods::

    train_batches(epoch: int) -> Iterable[batch]
        The training batches of one epoch, in order. Must be deterministic given ``epoch`` (seed your
        own ``numpy.random.default_rng((seed, epoch))``), so a resumed run can skip to its position.
        A batch is any tensor / tuple / list / dict of tensors; the trainer moves it to the device.
    loss(model, batch, state) -> (loss, new_state, n_items)
        Mean loss over the batch (a scalar tensor with grad), the recurrent state to carry into the
        next batch (None for stateless tasks; the trainer detaches it: truncated BPTT), and how many
        items (tokens, windows, sequences) the mean is over (for items/s and weighted averages).
        ``state`` is None at the start of every epoch.
    evaluate(model, split: str) -> dict[str, float]
        Metrics on ``split`` ("valid", "test"); must contain "loss" (lower is better). Called in
        eval mode under ``torch.no_grad()``.

Optional: ``num_batches(epoch) -> int`` (progress bar length), ``state_dict()`` / ``load_state_dict(d)``
(anything else to checkpoint: numbers, strings, tensors, arrays), ``checkpoint_files() -> {name: text}``
(saved beside the weights, e.g. ``tokenizer.json``), ``perplexity = True`` (show exp(loss)) and
``item_name = "tok"``.

Example (a stateless regression task)::

    class Regression:
        def __init__(self, x, y, batch_size, seed=0):
            self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        def train_batches(self, epoch):
            order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(self.seed * 1000 + epoch))
            for i in range(0, len(order), self.batch_size):
                idx = order[i:i + self.batch_size]
                yield self.x[idx], self.y[idx]
        def loss(self, model, batch, state):
            x, y = batch
            return torch.nn.functional.mse_loss(model(x), y), None, len(x)
        def evaluate(self, model, split):
            return {"loss": torch.nn.functional.mse_loss(model(self.x), self.y).item()}

    trainer = Trainer(model, Regression(x, y, 32), TrainConfig(optimizer="adam", lr=1e-3, max_epochs=5),
                      run_dir="runs/reg")       # run_dir: checkpoints + metrics.csv; None = in memory
    summary = trainer.fit()                     # or fit(resume=True) to continue from run_dir

Schedules (epoch ``e`` counted from 1): ``step``: lr_e = lr · factor^max(0, e − lr_start) (Zaremba et
al. 2014: lr 1, factor 0.5, lr_start 4); ``plateau``: lr ← max(lr · factor, min_lr) after ``lr_patience``
+ 1 evaluations in a row without a new best validation loss. Early stopping: stop after ``patience``
evaluations without improvement. With ``restore_best`` the best weights are loaded back at the end.

Exact resume: the checkpoint holds weights, optimizer, schedule, counters, the data position
(epoch, batch index), the carried state and the RNG states of python, numpy and torch, so
``fit(); interrupt; fit(resume=True)`` gives the same parameters as one uninterrupted ``fit()``
(bit for bit on CPU). Under DDP rank 0 writes, with every rank's carried state and RNG states, so a
resume on the same number of processes is exact too; ranks agree on stopping and on time-based
saves through the all-reduce each step already does.
Ctrl-C finishes the current step, writes a checkpoint and raises :class:`TrainingInterrupted` (a
KeyboardInterrupt that says where the checkpoint is). Besides evaluations, the latest state is saved
every ``checkpoint_minutes`` of wall time, so a kill loses at most that much work. Resuming a run
whose stop condition already holds (``max_steps`` reached, ...) trains no further step and rewrites
nothing.
"""
from __future__ import annotations

import math
import signal
import time
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Callable

import torch

from rnnlab import distributed as dist
from rnnlab.checkpoint import has_best, load_checkpoint, save_checkpoint
from rnnlab.errors import ConfigError, NonFiniteLossError
from rnnlab.metrics_log import MetricsLog
from rnnlab.reproducibility import rng_state, seed_everything, set_rng_state
from rnnlab.rundir import METRICS

__all__ = ["TrainConfig", "Trainer", "TrainingInterrupted", "seed_everything", "detach_state", "to_device"]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or :meth:`Trainer.request_stop`) stopped training after a checkpoint was written."""

    def __init__(self, step: int, run_dir: Path | None):
        self.step, self.run_dir = step, run_dir
        where = (f"the latest checkpoint (step {step}) is in {run_dir}; rerun the same command with --resume to "
                 f"continue exactly") if run_dir is not None else "nothing was saved (no run directory)"
        super().__init__(f"interrupted at step {step}: {where}")


@dataclass
class TrainConfig:
    """Everything the loop needs; ``asdict`` goes into run.json."""

    optimizer: str = "adam"          # sgd | adam | adamw
    lr: float = 1e-3
    momentum: float = 0.0            # sgd only
    weight_decay: float = 0.0
    clip: float | None = 5.0         # max global gradient norm; None or 0 disables
    schedule: str = "none"           # none | step | plateau
    lr_factor: float = 0.5
    lr_start: int = 1                # step: decay every epoch after this one (1-based)
    lr_patience: int = 0             # plateau: evaluations without improvement tolerated
    min_lr: float = 0.0
    max_epochs: int | None = 10
    max_steps: int | None = None
    max_time_s: float | None = None  # wall-clock budget (a time limit makes runs non-reproducible)
    max_cpu_s: float | None = None   # CPU-time budget of this process (fair on a shared machine)
    eval_every: int | None = None    # steps between evaluations; None = at the end of each epoch
    checkpoint_minutes: float | None = 5.0  # also save the latest state this often (a kill loses less)
    patience: int | None = None      # early stopping: evaluations without improvement
    restore_best: bool = True
    seed: int = 0
    log_every: int = 50
    progress: bool = True
    tensorboard: bool = False
    device: str = "cpu"

    def __post_init__(self) -> None:
        checks = [
            (self.optimizer in ("sgd", "adam", "adamw"), f"optimizer must be sgd|adam|adamw, got {self.optimizer!r}"),
            (self.schedule in ("none", "step", "plateau"), f"schedule must be none|step|plateau, got {self.schedule!r}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (0 < self.lr_factor <= 1, f"lr_factor must be in (0, 1], got {self.lr_factor}"),
            (any(v is not None for v in (self.max_epochs, self.max_steps, self.max_time_s, self.max_cpu_s)),
             "set at least one of max_epochs, max_steps, max_time_s, max_cpu_s"),
            (self.max_epochs is None or self.max_epochs >= 1, f"max_epochs must be >= 1, got {self.max_epochs}"),
            (self.max_steps is None or self.max_steps >= 1, f"max_steps must be >= 1, got {self.max_steps}"),
            (self.eval_every is None or self.eval_every >= 1, f"eval_every must be >= 1, got {self.eval_every}"),
            (self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}"),
            (self.checkpoint_minutes is None or self.checkpoint_minutes > 0,
             f"checkpoint_minutes must be > 0, got {self.checkpoint_minutes}"),
            (all(v is None or (isinstance(v, (int, float)) and math.isfinite(v) and v > 0)
                 for v in (self.max_time_s, self.max_cpu_s)),
             f"max_time_s and max_cpu_s must be finite and > 0, got {self.max_time_s}, {self.max_cpu_s}"),
            (math.isfinite(self.lr), f"lr must be finite, got {self.lr}"),
            (self.clip is None or self.clip >= 0, f"clip must be >= 0, got {self.clip}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


def detach_state(state: Any) -> Any:
    """Cut the graph behind a carried state (tensor or nested tuple/list/dict of tensors)."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    if isinstance(state, dict):
        return {k: detach_state(v) for k, v in state.items()}
    return state


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


class Trainer:
    """Fit ``model`` on ``task`` (see the module docstring for the task protocol)."""

    def __init__(self, model: torch.nn.Module, task: Any, config: TrainConfig, run_dir: str | Path | None = None,
                 *, callbacks: list[Callable[["Trainer", str, dict], None]] = ()):
        self.config, self.task, self.callbacks = config, task, list(callbacks)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.device = torch.device(config.device)
        self.model = model.to(self.device)
        self.net = model  # what the task's loss calls: the DDP wrapper when distributed
        if dist.is_active():
            self.net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.optimizer = self._make_optimizer()
        self.step = self.epoch = self.batch = 0
        self.lr = config.lr
        self.best_loss, self.best_step, self.bad_evals, self.plateau_bad = math.inf, -1, 0, 0
        self.last_eval_step, self.elapsed_s, self.cpu_s = -1, 0.0, 0.0
        self.carried: Any = None
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.main = dist.is_main()
        if self.run_dir is not None and self.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log = MetricsLog(self.run_dir / METRICS) if self.run_dir is not None and self.main else None
        self.writer = self._make_tensorboard() if config.tensorboard and self.main else None
        self._stop_requested = self._stop_agreed = self._save_due = False
        self._last_save = time.perf_counter()

    # ------------------------------------------------------------------ setup
    def _make_optimizer(self) -> torch.optim.Optimizer:
        c, params = self.config, [p for p in self.model.parameters() if p.requires_grad]
        if c.optimizer == "sgd":
            return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
        cls = torch.optim.Adam if c.optimizer == "adam" else torch.optim.AdamW
        return cls(params, lr=c.lr, weight_decay=c.weight_decay)

    def _make_tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("TensorBoard logging was asked for but the tensorboard package is not installed "
                              "(pip install tensorboard)") from None
        if self.run_dir is None:
            raise ConfigError("TensorBoard logging needs a run directory")
        return SummaryWriter(str(self.run_dir / "tensorboard"))

    def _set_lr(self, lr: float) -> None:
        self.lr = lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    # ------------------------------------------------------------------ checkpoint state
    def state_dict(self) -> dict:
        """Everything to continue exactly. Under DDP every rank's carried state and RNG states are
        gathered (a collective: all ranks call this at the same step), so each resumes its own."""
        mine = {"carried": to_device(self.carried, torch.device("cpu")), "rng": rng_state()}
        ranks = dist.all_gather(mine)
        state = {"step": self.step, "epoch": self.epoch, "batch": self.batch, "lr": self.lr,
                 "best_loss": self.best_loss, "best_step": self.best_step, "bad_evals": self.bad_evals,
                 "plateau_bad": self.plateau_bad, "last_eval_step": self.last_eval_step,
                 "elapsed_s": self.elapsed_s, "cpu_s": self.cpu_s, "optimizer": self.optimizer.state_dict(),
                 "carried": ranks[0]["carried"], "rng": ranks[0]["rng"], "config": asdict(self.config)}
        if len(ranks) > 1:
            state["ranks"] = ranks
        if hasattr(self.task, "state_dict"):
            state["task"] = self.task.state_dict()
        return state

    def save(self, best: bool = False) -> None:
        """Write a checkpoint (rank 0 writes; under DDP every rank must call this at the same step)."""
        self._last_save = time.perf_counter()
        if self.run_dir is None:
            return
        state = self.state_dict()  # a collective under DDP
        if not self.main:
            return
        files = self.task.checkpoint_files() if hasattr(self.task, "checkpoint_files") else {}
        save_checkpoint(self.run_dir, self.model, step=self.step, training_state=state, files=files, best=best)

    def _restore(self) -> None:
        if self.run_dir is None:
            raise ConfigError("resume needs a run directory")
        ckpt = load_checkpoint(self.run_dir, which="latest", training_state=True)
        mine = asdict(self.model.config) if hasattr(self.model, "config") else ckpt.config
        if mine != ckpt.config:
            raise ConfigError(f"cannot resume {self.run_dir}: the model config differs from the checkpoint's "
                              f"({ckpt.config} there, {mine} here)")
        self.model.load_state_dict(ckpt.model.state_dict())
        s = ckpt.training_state
        self.optimizer.load_state_dict(s["optimizer"])
        for key in ("step", "epoch", "batch", "best_loss", "best_step", "bad_evals", "plateau_bad",
                    "last_eval_step", "elapsed_s", "cpu_s"):
            setattr(self, key, s[key])
        self._set_lr(s["lr"])
        mine = s
        if dist.world_size() > 1:
            ranks = s.get("ranks")
            if not ranks or len(ranks) != dist.world_size():
                saved = len(ranks) if ranks else 1
                raise ConfigError(f"cannot resume {self.run_dir} exactly on {dist.world_size()} processes: it was "
                                  f"saved by {saved}; resume with the same number of processes")
            mine = ranks[dist.rank()]
        self.carried = to_device(mine["carried"], self.device)
        if "task" in s and hasattr(self.task, "load_state_dict"):
            self.task.load_state_dict(s["task"])
        if has_best(self.run_dir):  # a checkpoint saved before any evaluation is not "best"
            best = load_checkpoint(self.run_dir, which="best")
            self.best_weights = {k: v.clone() for k, v in best.model.state_dict().items()}
        if self.log is not None:
            self.log.truncate_after(self.step)
        set_rng_state(mine["rng"])  # last: nothing after this may draw random numbers

    # ------------------------------------------------------------------ the loop
    def fit(self, resume: bool = False) -> dict:
        """Train until max_epochs / max_steps / max_time_s / early stopping; return a summary."""
        c = self.config
        if resume:
            self._restore()
        else:
            seed_everything(c.seed + dist.rank())
        previous = self._install_sigint()
        reason, started = "max_epochs", time.perf_counter() - self.elapsed_s
        cpu_started = time.process_time() - self.cpu_s
        bar = self._progress_bar()
        window = {"loss": 0.0, "items": 0.0, "steps": 0, "t": time.perf_counter()}
        self._last_save = time.perf_counter()
        try:
            done = self._already_done() if resume else None
            if done is not None:  # a finished run resumed as it was: no extra step, nothing rewritten
                reason = done
            while done is None and (c.max_epochs is None or self.epoch < c.max_epochs):
                if c.schedule == "step":
                    self._set_lr(max(c.lr * c.lr_factor ** max(0, self.epoch + 1 - c.lr_start), c.min_lr))
                for batch in islice(iter(self.task.train_batches(self.epoch)), self.batch, None):
                    loss, items = self._train_step(batch)
                    self.batch += 1
                    self.step += 1
                    self.elapsed_s = time.perf_counter() - started
                    self.cpu_s = time.process_time() - cpu_started
                    window["loss"] += loss * items
                    window["items"] += items
                    window["steps"] += 1
                    if bar is not None:
                        bar.update(1)
                    if window["steps"] >= c.log_every:
                        self._log_train(window, bar)
                    self._emit("step", {"loss": loss, "items": items})
                    if c.eval_every and self.step % c.eval_every == 0:
                        reason = self._evaluate_and_save() or reason
                    if c.max_steps is not None and self.step >= c.max_steps:
                        reason = "max_steps"
                    elif c.max_time_s is not None and self.elapsed_s >= c.max_time_s:
                        reason = "max_time"
                    elif c.max_cpu_s is not None and self.cpu_s >= c.max_cpu_s:
                        reason = "max_cpu"
                    if (self._stop_agreed if dist.is_active() else self._stop_requested):
                        self.save()
                        raise TrainingInterrupted(self.step, self.run_dir)
                    if self._time_to_save():
                        self.save()
                    if reason in ("max_steps", "max_time", "max_cpu", "early_stop"):
                        break
                else:  # the epoch ran out of batches
                    self.epoch, self.batch, self.carried = self.epoch + 1, 0, None
                    if self.last_eval_step != self.step:
                        reason = self._evaluate_and_save() or reason
                    self._emit("epoch", {"epoch": self.epoch})
                    if reason == "early_stop":
                        break
                    continue
                break
            if done is None and self.last_eval_step != self.step:
                self._evaluate_and_save()
        finally:
            if bar is not None:
                bar.close()
            signal_restore(previous)
            if self.writer is not None:
                self.writer.flush()
        if c.restore_best and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
        return {"steps": self.step, "epochs": self.epoch, "stopped": reason, "best_valid_loss": self.best_loss,
                "best_step": self.best_step, "wall_s": self.elapsed_s, "cpu_s": self.cpu_s}

    def _time_to_save(self) -> bool:
        """A time-based checkpoint is due (under DDP, rank 0's clock decides, agreed in the step's all-reduce)."""
        if dist.is_active():
            due, self._save_due = self._save_due, False
            return due
        c = self.config
        return bool(c.checkpoint_minutes and self.run_dir is not None
                    and time.perf_counter() - self._last_save >= 60 * c.checkpoint_minutes)

    def _already_done(self) -> str | None:
        """Why a resumed run has nothing left to do (its stop condition already holds), or None."""
        c = self.config
        if c.max_steps is not None and self.step >= c.max_steps:
            return "max_steps"
        if c.max_epochs is not None and self.epoch >= c.max_epochs:
            return "max_epochs"
        if c.patience is not None and self.bad_evals > c.patience:
            return "early_stop"
        if c.max_time_s is not None and self.elapsed_s >= c.max_time_s:
            return "max_time"
        if c.max_cpu_s is not None and self.cpu_s >= c.max_cpu_s:
            return "max_cpu"
        return None

    def _train_step(self, batch: Any) -> tuple[float, float]:
        c = self.config
        batch = to_device(batch, self.device)
        self.net.train()
        loss, state, items = self.task.loss(self.net, batch, detach_state(self.carried))
        value = loss.detach()
        if dist.is_active():  # every rank must agree on stopping and saving, so reduce before checking
            c_min = self.config.checkpoint_minutes
            save_due = float(bool(self.main and self.run_dir is not None and c_min
                                  and time.perf_counter() - self._last_save >= 60 * c_min))
            total, items, stop, save = dist.all_reduce_sum(
                [float(value) * items, float(items), float(self._stop_requested), save_due], self.device)
            value = torch.tensor(total / max(items, 1.0))
            self._stop_agreed, self._save_due = stop > 0, save > 0
        if not torch.isfinite(value):
            self._non_finite(f"loss is {float(value)}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if c.clip:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.clip)
            if not torch.isfinite(norm):
                self._non_finite(f"gradient norm is {float(norm)}")
        self.optimizer.step()
        self.carried = detach_state(state)
        return float(value), float(items)

    def _non_finite(self, what: str) -> None:
        where = self.run_dir if self.run_dir is not None else "memory (no run directory)"
        raise NonFiniteLossError(
            f"{what} at step {self.step + 1} (epoch {self.epoch + 1}, batch {self.batch + 1}); training stopped, "
            f"the last good checkpoint in {where} (step {max(self.last_eval_step, 0)}) is kept; "
            f"try a lower learning rate (now {self.lr:g}) or gradient clipping (now {self.config.clip})")

    def evaluate(self, split: str = "valid") -> dict:
        self.model.eval()
        try:
            with torch.no_grad():
                metrics = dict(self.task.evaluate(self.model, split))
        finally:
            self.model.train()
        if "loss" not in metrics:
            raise ConfigError(f"task.evaluate must return a 'loss' entry; it returned {sorted(metrics)}")
        return metrics

    def _evaluate_and_save(self) -> str | None:
        c = self.config
        metrics = self.evaluate("valid")
        self.last_eval_step = self.step
        loss = metrics["loss"]
        improved = math.isfinite(loss) and loss < self.best_loss
        if improved:
            self.best_loss, self.best_step, self.bad_evals, self.plateau_bad = loss, self.step, 0, 0
            self.best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self.bad_evals += 1
            self.plateau_bad += 1
            if c.schedule == "plateau" and self.plateau_bad > c.lr_patience:
                self._set_lr(max(self.lr * c.lr_factor, c.min_lr))
                self.plateau_bad = 0
        self._write_metrics("valid", metrics)
        self._emit("eval", metrics)
        stop = c.patience is not None and self.bad_evals > c.patience
        self.save(best=improved)
        return "early_stop" if stop else None

    # ------------------------------------------------------------------ logging
    def _progress_bar(self):
        if not (self.config.progress and self.main):
            return None
        from tqdm.auto import tqdm

        total = None
        if hasattr(self.task, "num_batches") and self.config.max_epochs is not None:
            total = sum(self.task.num_batches(e) for e in range(self.config.max_epochs))
        if self.config.max_steps is not None:
            total = min(total or self.config.max_steps, self.config.max_steps)
        return tqdm(total=total, initial=self.step, unit="step", dynamic_ncols=True, leave=False)

    def _log_train(self, window: dict, bar) -> None:
        now = time.perf_counter()
        loss = window["loss"] / max(window["items"], 1.0)
        rate = window["items"] / max(now - window["t"], 1e-9)
        item = getattr(self.task, "item_name", "item")
        if bar is not None:
            post = {"loss": f"{loss:.3f}", f"{item}/s": f"{rate:,.0f}", "lr": f"{self.lr:.3g}"}
            if getattr(self.task, "perplexity", False):
                post["ppl"] = f"{math.exp(min(loss, 50)):.1f}"
            bar.set_postfix(post, refresh=False)
        self._write_metrics("train", {"loss": loss, "items_per_s": rate})
        window.update(loss=0.0, items=0.0, steps=0, t=now)

    def _write_metrics(self, split: str, metrics: dict) -> None:
        row = {"step": self.step, "epoch": self.epoch, "split": split, **metrics, "lr": self.lr,
               "elapsed_s": round(self.elapsed_s, 3), "cpu_s": round(self.cpu_s, 3)}
        if self.log is not None:
            self.log.append(row)
        if self.writer is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{split}/{key}", value, self.step)

    def _emit(self, event: str, info: dict) -> None:
        for callback in self.callbacks:
            callback(self, event, info)

    def request_stop(self) -> None:
        """Finish the current step, write a checkpoint, then raise KeyboardInterrupt (what Ctrl-C does)."""
        self._stop_requested = True

    def _install_sigint(self):
        """First Ctrl-C: finish the step, checkpoint, raise KeyboardInterrupt. Second: default."""
        def handler(signum, frame):
            self._stop_requested = True
            signal.signal(signal.SIGINT, signal.default_int_handler)

        try:
            return signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread
            return None


def signal_restore(previous) -> None:
    if previous is not None:
        try:
            signal.signal(signal.SIGINT, previous)
        except ValueError:
            pass
