"""The long-term dependency lab: model x length x seed grids on the synthetic tasks.

Every run trains a fresh model through the shared :class:`rnnlab.train.Trainer` on fresh seeded
batches, at an equal parameter budget (hidden sizes chosen per model to come as close to
``budget`` as possible without exceeding it) and an equal step budget. A run stops early once it
has **solved** its task, judged on a fixed held-out set of ``eval_size`` sequences every
``eval_every`` steps:

* classification (cue task, temporal order): accuracy >= 0.99;
* adding problem: mean squared error < 0.01 (the baseline of always answering 1 is 1/6 ~ 0.167);
* copy memory: accuracy >= 0.99 on the copied symbols (the last ``copy_length`` steps).

Models (``MODELS``): ``mlp`` (fixed window W, default 10), ``rnn`` (tanh), ``gru``, ``lstm``
(forget-gate bias 1), ``lstm_chrono`` (chrono init with T_max = the task's longest sequence),
``peephole`` and ``layernorm`` LSTMs (forget-gate bias 1), ``mingru`` and ``minlstm`` (Feng et al. 2024).
Each grid writes ``runs.csv`` / ``runs.json`` (one row per run, rewritten after every run so a
killed grid keeps what it finished), ``metrics.csv`` (every evaluation of every run),
``run.json``, ``summary.md`` and PNG plots; see :func:`run_grid`. The gradient-flow study is in
:mod:`rnnlab.runs.gradflow`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from rnnlab.config import option
from rnnlab.data.synthetic import TASKS, SyntheticTask
from rnnlab.errors import ConfigError
from rnnlab.models.sequence_model import SequenceModel
from rnnlab.models.window_mlp import WindowMLP
from rnnlab.nn.sequence import last_valid
from rnnlab.train import TrainConfig, Trainer

MODELS = ("mlp", "rnn", "gru", "lstm", "lstm_chrono", "peephole", "layernorm", "mingru", "minlstm")
RECURRENT_MODELS = {"rnn": ("rnn", {}), "gru": ("gru", {}), "lstm": ("lstm", {"forget_bias": 1.0}),
                    "lstm_chrono": ("lstm", {}),  # chrono_tmax is set from the task
                    "peephole": ("peephole", {"forget_bias": 1.0}), "layernorm": ("layernorm", {"forget_bias": 1.0}),
                    "mingru": ("mingru", {}), "minlstm": ("minlstm", {})}
DEFAULT_MODELS = ("mlp", "rnn", "gru", "lstm", "lstm_chrono")  # the default grids: the classic comparison
SOLVED = {"class": ("accuracy", ">=", 0.99), "value": ("mse", "<", 0.01), "sequence": ("copy_accuracy", ">=", 0.99)}


@dataclass
class LabSettings:
    """Everything that is equal across the runs of a grid (goes into run.json)."""

    budget: int = option(30_000, "parameters per model (hidden size chosen to fit)", min=1)
    embedding: int = option(32, "embedding size for token tasks (features per step otherwise)", min=1)
    window: int = option(10, "the MLP's window W", min=1)
    steps: int = option(2000, "training steps per run, at most (a solved run stops early)", min=1)
    batch_size: int = option(32, "sequences per batch", min=1)
    lr: float = option(3e-3, "Adam learning rate", min=0.0, min_open=True)
    clip: float = option(1.0, "gradient-norm clip (0 = off)", min=0.0)
    eval_every: int = option(100, "steps between held-out evaluations (and the solved check)", min=1)
    eval_size: int = option(512, "held-out sequences", min=1)
    curriculum: bool = option(False, "train on growing lengths: start at 10, double whenever the held-out set at "
                                     "the current length is solved, up to the target")
    task_options: dict = option(default_factory=dict, help="e.g. {'num_countries': 20, 'distractors': 0}", cli=False)

    def __post_init__(self) -> None:
        for key in ("budget", "embedding", "window", "steps", "batch_size", "eval_every", "eval_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key} must be a positive integer, got {value!r}")
        if not self.lr > 0 or not self.clip >= 0:
            raise ConfigError(f"lr must be > 0 and clip >= 0, got lr={self.lr} clip={self.clip}")


def _defaults(models, lengths, seeds, **settings) -> dict:
    return {"models": list(models), "lengths": list(lengths), "seeds": list(seeds), "settings": LabSettings(**settings)}


# The default grids (``rnnlab lab <task>`` with no options; benchmarks/results/lab.md ran these).
GRID_DEFAULTS = {
    "gap": _defaults(DEFAULT_MODELS, [5, 20, 50, 100], [0, 1, 2], budget=30_000, embedding=32, steps=2000, lr=1e-3),
    "adding": _defaults(DEFAULT_MODELS, [50, 100, 200], [0], budget=10_000, steps=2000, lr=1e-3),
    "copy": _defaults(["lstm", "lstm_chrono"], [100, 500], [0], budget=12_000, embedding=16, steps=2000, lr=1e-3),
    "order": _defaults(DEFAULT_MODELS, [50, 100], [0], budget=10_000, embedding=16, steps=2000, lr=1e-3),
    "gradflow": _defaults(["rnn", "gru", "lstm", "lstm_chrono"], [100], [0, 1], budget=30_000, embedding=32,
                          steps=2000, lr=1e-3),
}
GRID_DEFAULTS["gradflow"]["gap"] = 100


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_lab_model(name: str, task: SyntheticTask, hidden_size: int, settings: LabSettings) -> torch.nn.Module:
    """The lab model ``name`` for ``task``: (B, T[, F]) -> (B, T, task.output_size)."""
    if name not in MODELS:
        raise ConfigError(f"unknown lab model {name!r}; expected one of {list(MODELS)}")
    tokens = task.num_embeddings is not None
    size = settings.embedding if tokens else task.input_size
    if name == "mlp":
        return WindowMLP(size, hidden_size, task.output_size, window=settings.window, num_embeddings=task.num_embeddings)
    cell, options = RECURRENT_MODELS[name]
    if name == "lstm_chrono":
        options = {"chrono_tmax": float(task.max_length)}
    return SequenceModel(cell, size, hidden_size, task.output_size, num_embeddings=task.num_embeddings, **options)


def hidden_for_budget(name: str, task: SyntheticTask, settings: LabSettings) -> tuple[int, int]:
    """Largest hidden size whose model has at most ``settings.budget`` parameters -> (hidden, params)."""
    low, high = 1, 4096  # parameter count grows with the hidden size: bisect
    if count_parameters(build_lab_model(name, task, low, settings)) > settings.budget:
        raise ConfigError(f"a parameter budget of {settings.budget} is too small for model {name!r} on this task "
                          f"(hidden size 1 already has {count_parameters(build_lab_model(name, task, 1, settings))})")
    while low < high:
        mid = (low + high + 1) // 2
        if count_parameters(build_lab_model(name, task, mid, settings)) <= settings.budget:
            low = mid
        else:
            high = mid - 1
    return low, count_parameters(build_lab_model(name, task, low, settings))


def make_task(task_name: str, length: int, seed: int, options: dict | None = None) -> SyntheticTask:
    """Build a synthetic task; ``length`` is the gap for "gap" and the sequence length otherwise."""
    if task_name not in TASKS:
        raise ConfigError(f"unknown lab task {task_name!r}; expected one of {sorted(TASKS)}")
    return TASKS[task_name](length, seed=seed, **(options or {}))


def curriculum_lengths(target: int, start: int = 10) -> list[int]:
    """Lengths of a doubling curriculum ending at ``target``: ``start`` (10 steps), doubled up to ``target``.

    A fixed short start, not a fraction of the target: a standard LSTM left at gap 37 (300 / 8) for
    6,000 steps never solved it, while from gap 12 it climbed to 100 in about 1,000 steps."""
    length = min(start, target)
    stages = []
    while length < target:
        stages.append(length)
        length *= 2
    return stages + [target]


class LabTask:
    """A synthetic task in the :mod:`rnnlab.train` task protocol: fresh batches, a fixed eval set.

    With ``stages`` (easier versions of the task, e.g. shorter gaps) training starts on the first
    and moves to the next whenever an evaluation finds the current one solved; the reported
    metrics are always those of the target task, plus ``curriculum_length``.
    """

    def __init__(self, task: SyntheticTask, batch_size: int, eval_size: int, seed: int,
                 stages: list[tuple[int, SyntheticTask]] | None = None, length: int | None = None) -> None:
        self.task, self.batch_size, self.seed = task, batch_size, seed
        # The held-out set comes from its own stream, never from the training stream.
        self.eval_batch = task.sample(eval_size, generator=torch.Generator().manual_seed(10_007 * seed + 1_000_003))
        self.stages = [t for _, t in stages or []] + [task]
        self.stage_lengths = [n for n, _ in stages or []] + [length]
        self.stage_evals = [s.sample(min(eval_size, 256), generator=torch.Generator().manual_seed(10_007 * seed + k))
                            for k, s in enumerate(self.stages[:-1])]
        self.stage = 0
        self.item_name = "seq"

    def state_dict(self) -> dict:
        return {"stage": self.stage}

    def load_state_dict(self, state: dict) -> None:
        self.stage = int(state.get("stage", 0))

    def train_batches(self, epoch: int):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)  # endless, deterministic per epoch
        while True:
            b = self.stages[self.stage].sample(self.batch_size, generator=generator)  # the current stage
            yield b.inputs, b.targets, b.lengths

    def outputs(self, model, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Model outputs at the readout: (B, out) at the last valid step, or (B, T, out) at every step."""
        full = bool((lengths == inputs.shape[1]).all())
        out = model(inputs, None if full else lengths)  # (B, T, out); no lengths = the faster fused path
        if self.task.readout == "all":
            return out
        return out[:, -1] if full else last_valid(out, lengths)

    def _loss(self, out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.task.target == "value":
            return F.mse_loss(out[:, 0], targets)
        if self.task.target == "sequence":
            return F.cross_entropy(out.reshape(-1, out.shape[-1]), targets.reshape(-1))  # nats per step
        return F.cross_entropy(out, targets)

    def loss(self, model, batch, state):
        inputs, targets, lengths = batch
        return self._loss(self.outputs(model, inputs, lengths), targets), None, inputs.shape[0]

    def evaluate(self, model, split: str) -> dict:
        metrics = self._metrics(model, self.eval_batch)
        if len(self.stages) > 1:
            if self.stage < len(self.stages) - 1 and is_solved(self.task.target,
                                                               self._metrics(model, self.stage_evals[self.stage])):
                self.stage += 1  # solved at this length: train on the next
            metrics["curriculum_length"] = float(self.stage_lengths[self.stage] or self.stage)
        return metrics

    def _metrics(self, model, b) -> dict:
        out = self.outputs(model, b.inputs, b.lengths)
        metrics = {"loss": float(self._loss(out, b.targets))}
        if self.task.target == "class":
            metrics["accuracy"] = float((out.argmax(-1) == b.targets).float().mean())
        elif self.task.target == "value":
            metrics["mse"] = metrics["loss"]
        else:
            n = self.task.copy_length
            metrics["copy_accuracy"] = float((out[:, -n:].argmax(-1) == b.targets[:, -n:]).float().mean())
        return metrics


def is_solved(target: str, metrics: dict) -> bool:
    name, op, threshold = SOLVED[target]
    value = metrics[name]
    return value >= threshold if op == ">=" else value < threshold


def check_grid(task_name: str, models, lengths, seeds, settings: LabSettings) -> None:
    """Reject a grid before any run starts, naming what was given."""
    if task_name not in TASKS:
        raise ConfigError(f"unknown lab task {task_name!r}; expected one of {sorted(TASKS)}")
    for name in models:
        if name not in MODELS:
            raise ConfigError(f"unknown lab model {name!r}; expected one of {list(MODELS)}")
    if not models or not lengths or not seeds:
        raise ConfigError("a lab grid needs at least one model, one length and one seed")
    for length in lengths:
        if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
            word = "gap" if task_name == "gap" else "length"
            raise ConfigError(f"every {word} must be a positive integer, got {length!r}")
    if "mlp" in models:
        for length in lengths:
            shortest = make_task(task_name, length, 0, settings.task_options).min_steps
            if settings.window > shortest:
                raise ConfigError(f"the MLP window ({settings.window}) is larger than the sequence "
                                  f"({shortest} steps at {task_name} length {length}); use a smaller --window")


@dataclass
class RunResult:
    task: str
    model: str
    length: int
    seed: int
    hidden: int
    params: int
    steps: int
    solved: bool
    solved_step: int | None
    wall_s: float
    metric: str
    final: float
    best: float
    chance: float
    curve: list = field(default_factory=list)  # [(step, metric value), ...] at every evaluation
    final_loss: float = float("nan")  # held-out loss at the last evaluation (copy: nats per step)


def run_one(task_name: str, model_name: str, length: int, seed: int, settings: LabSettings,
            *, progress: bool = True, on_eval=None) -> tuple[RunResult, torch.nn.Module, SyntheticTask]:
    """Train one model on one task length with one seed; stop early once solved."""

    task = make_task(task_name, length, seed, settings.task_options)
    hidden, params = hidden_for_budget(model_name, task, settings)
    torch.manual_seed(seed)  # the same seed gives the same initial weights
    model = build_lab_model(model_name, task, hidden, settings)
    stages = ([(n, make_task(task_name, n, seed, settings.task_options)) for n in curriculum_lengths(length)[:-1]]
              if settings.curriculum else None)
    lab_task = LabTask(task, settings.batch_size, settings.eval_size, seed, stages=stages, length=length)
    metric = SOLVED[task.target][0]
    state = {"solved_step": None, "curve": [], "loss": float("nan")}

    def watch(trainer, event, info):
        if event != "eval":
            return
        state["curve"].append((trainer.step, info[metric]))
        state["loss"] = info["loss"]
        if on_eval is not None:
            on_eval(trainer.step, info)
        if state["solved_step"] is None and is_solved(task.target, info):
            state["solved_step"] = trainer.step
            # Stop after this step: the trainer ends a run when step >= max_steps (see report).
            trainer.config.max_steps = trainer.step

    config = TrainConfig(optimizer="adam", lr=settings.lr, clip=settings.clip, max_epochs=None,
                         max_steps=settings.steps, eval_every=settings.eval_every, restore_best=False,
                         seed=seed, log_every=settings.eval_every, progress=progress)
    started = time.perf_counter()
    summary = Trainer(model, lab_task, config, callbacks=[watch]).fit()
    wall = time.perf_counter() - started
    values = [v for _, v in state["curve"]]
    best = (max(values) if SOLVED[task.target][1] == ">=" else min(values)) if values else float("nan")
    result = RunResult(task_name, model_name, length, seed, hidden, params, summary["steps"],
                       state["solved_step"] is not None, state["solved_step"], round(wall, 2), metric,
                       values[-1] if values else float("nan"), best, task.chance, state["curve"], state["loss"])
    return result, model, task
