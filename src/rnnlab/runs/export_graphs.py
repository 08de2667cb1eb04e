"""ONNX graphs of language models, forecasters, classifiers and speech models; what every export plan is.

An :class:`ExportPlan` is one or more :class:`Graph` (a module to trace, input/output names, dynamic
axes, a sampler of random inputs for the onnxruntime check) plus what ``export.json`` says beside
them (preprocessing, labels) and files written next to the graphs (vocabularies). Encoder-decoder
models (translators, captioners) are in :mod:`rnnlab.runs.export_decoders`;
:mod:`rnnlab.runs.export` picks the plan for a run, traces, checks and writes.

Variable lengths: a padded batch ``(B, T, ...)`` with ``lengths (B,)`` goes through the layer's
PyTorch kernel as a packed sequence; the TorchScript exporter turns pack -> LSTM/GRU/RNN -> unpack
into the ONNX operator with its ``sequence_lens`` input, whose semantics are the packed ones:
outputs past a length are zero, the final state is each sequence's own last step, and a backward
direction starts at each sequence's own last step. Only the standard cells (``lstm``, ``gru``,
``rnn``, ``rnn_relu``: the fused path) translate that way; the others run an unrolled Python loop
whose length is fixed when traced, so runs that need lengths refuse them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.errors import ConfigError, RunDirError
from rnnlab.models.acoustic import AcousticModel
from rnnlab.models.classifier import SequenceClassifier
from rnnlab.models.forecaster import Forecaster
from rnnlab.models.language import LanguageModel
from rnnlab.nn.sequence import lengths_to_mask
from rnnlab.rundir import CLASSIFY_SPEC

__all__ = ["Graph", "ExportPlan", "is_fused", "require_fused", "random_lengths", "run_file", "lm_plan", "forecast_plan",
           "classify_plan", "speech_plan", "CHECK_STEPS"]

CHECK_STEPS = (1, 7, 23)  # sequence lengths the onnxruntime check runs (batches 1 and 3 each)


@dataclass
class Graph:
    """One ONNX graph: ``sample(batch, steps)`` draws random inputs in the order of ``inputs``."""

    name: str
    module: nn.Module
    inputs: list[str]
    outputs: list[str]
    axes: dict[str, dict[int, str]]
    sample: Callable[[int, int], tuple]
    steps: tuple = CHECK_STEPS
    time_axis: str = "dynamic"


@dataclass
class ExportPlan:
    graphs: list[Graph]
    notes: dict = field(default_factory=dict)       # extra export.json fields
    files: dict[str, str] = field(default_factory=dict)  # sidecar file suffix -> text


def is_fused(model: nn.Module) -> bool:
    """Whether every recurrent layer runs PyTorch's own kernel (and so exports with dynamic lengths)."""
    return all(m.path() == "fused" for m in model.modules() if hasattr(m, "cell_class"))


def _cell_names(model: nn.Module) -> str:
    return ", ".join(sorted({m.cell_class.__name__ for m in model.modules() if hasattr(m, "cell_class")}))


def require_fused(model: nn.Module, what: str) -> None:
    if not is_fused(model):
        raise ConfigError(f"{what} with {_cell_names(model)} cannot be exported with variable lengths: only the "
                          f"lstm, gru and rnn cells map to ONNX's recurrent operators (the others are traced "
                          f"as a loop of fixed length)")


def run_file(files: dict, name: str, kind: str) -> str:
    """The checkpoint's text file ``name`` (RunDirError, one line, when it is missing)."""
    if name not in files:
        raise RunDirError(f"the checkpoint holds no {name}, which a {kind} run's export needs; is it a {kind} run?")
    return files[name]


def random_lengths(batch: int, steps: int) -> Tensor:
    """Random lengths in ``[1, steps]`` (the first one full), int64 ``(B,)``."""
    lengths = torch.randint(1, steps + 1, (batch,))
    lengths[0] = steps
    return lengths


# ----------------------------------------------------------------------------- language models
class _LanguageModelGraph(nn.Module):
    """``(tokens (B, T), *states) -> (logits (B, T, V), *new_states)``; each layer's state a separate
    tensor ``(1, B, H)`` (h, and c for LSTMs), so a runtime can stream one token at a time."""

    def __init__(self, model: LanguageModel):
        super().__init__()
        self.model = model
        self.lstm = [isinstance(layer, nn.LSTM) for layer in model.layers]

    def forward(self, tokens, *flat):
        state, k = [], 0
        for is_lstm in self.lstm:
            state.append((flat[k], flat[k + 1]) if is_lstm else flat[k])
            k += 2 if is_lstm else 1
        logits, new_state = self.model(tokens, state)
        out = [logits]
        for s in new_state:
            out.extend(s if isinstance(s, tuple) else (s,))
        return tuple(out)


def lm_plan(model: LanguageModel) -> ExportPlan:
    names, outputs = ["tokens"], ["logits"]
    axes = {"tokens": {0: "batch", 1: "time"}, "logits": {0: "batch", 1: "time"}}
    shapes = []
    for k, layer in enumerate(model.layers):
        zero = layer.init_state(1) if hasattr(layer, "init_state") else None
        for part, tensor in zip(("h", "c"), zero if isinstance(zero, tuple) else (zero,)):
            names.append(f"{part}{k}")
            outputs.append(f"{part}{k}_out")
            shapes.append(tuple(tensor.shape))
            axes[f"{part}{k}"] = axes[f"{part}{k}_out"] = {1: "batch"}

    def sample(batch, steps):
        states = [torch.randn(s[0], batch, *s[2:]) * 0.1 for s in shapes]
        return (torch.randint(0, model.config.vocab_size, (batch, steps)), *states)

    fused = is_fused(model)
    if not fused:  # unrolled steps: the time axis is what was traced, so export the streaming step
        axes = {k: {a: n for a, n in v.items() if n != "time"} for k, v in axes.items()}
    return ExportPlan([Graph("model", _LanguageModelGraph(model), names, outputs, axes, sample,
                             CHECK_STEPS if fused else (1,), "dynamic" if fused else "fixed (step graph)")])


# ----------------------------------------------------------------------------- forecasters
def forecast_plan(model: Forecaster) -> ExportPlan:
    c = model.config

    def sample(batch, steps):
        return (torch.randn(batch, c.lookback, c.n_targets + c.n_past + c.n_calendar),
                torch.randn(batch, c.horizon, c.n_calendar))

    axes = {"x": {0: "batch"}, "future": {0: "batch"}, "params": {0: "batch"}}
    return ExportPlan([Graph("model", model, ["x", "future"], ["params"], axes, sample, (c.lookback,),
                             "fixed (look-back window)")],
                      {"preprocessing": "inputs and outputs are on the run's normalised scale "
                                        "(scalers in the checkpoint's forecast.json)"})


# ----------------------------------------------------------------------------- classifiers
class _ClassifierGraph(nn.Module):
    """``x (B, T, F)`` raw features (padded; padding may hold anything), ``lengths (B,)`` int64 ->
    ``logits (B, K)``, ``probabilities (B, K)``. The run's per-channel standardisation is in the graph."""

    def __init__(self, model: nn.Module, mean, std):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x: Tensor, lengths: Tensor):
        logits = self.model((x - self.mean) / self.std, lengths)
        return logits, torch.softmax(logits, dim=-1)


def _classifier_graph(model: nn.Module, mean, std) -> Graph:
    require_fused(model, "a sequence classifier")
    n_features = model.config.n_features

    def sample(batch, steps):
        return torch.randn(batch, steps, n_features), random_lengths(batch, steps)

    axes = {"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "logits": {0: "batch"},
            "probabilities": {0: "batch"}}
    return Graph("model", _ClassifierGraph(model, mean, std), ["x", "lengths"], ["logits", "probabilities"],
                 axes, sample)


def classify_plan(model: nn.Module, files: dict) -> ExportPlan:
    spec = json.loads(run_file(files, CLASSIFY_SPEC, "classify"))
    stride = spec.get("stride", 1)
    notes = {"class_names": spec["class_names"], "features": spec["features"], "preprocessing": (
        "in the graph: per-channel standardisation (x - mean) / std with the training statistics; "
        + ("none outside it" if stride == 1 else
           f"outside it: block means of every {stride} steps first (rnnlab.data.augment.downsample), as in training"))}
    return ExportPlan([_classifier_graph(model, spec["mean"], spec["std"])], {**notes, "downsample": stride})


# ----------------------------------------------------------------------------- speech
class _AcousticGraph(nn.Module):
    """``x (B, T, F)`` normalised frames, ``lengths (B,)`` -> ``log_probs (B, T', V)`` (label 0 the CTC
    blank), ``out_lengths (B,)`` with ``T' = ceil(T / k)``. The model's forward; its frame stacking is
    written here without Python branches on ``T`` (the trace must hold for every length)."""

    def __init__(self, model: AcousticModel):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, lengths: Tensor):
        m, k = self.model, self.model.config.stack
        out_lengths = torch.div(lengths + k - 1, k, rounding_mode="floor")
        if m.frontend is not None:  # strided convolutions: shapes follow T by themselves
            x, _ = m.frontend(x, lengths)
        elif k > 1:
            x = x * lengths_to_mask(lengths, x.shape[1]).unsqueeze(-1).to(x.dtype)
            x = F.pad(x, (0, 0, 0, k - 1))  # k - 1 zero frames always; ceil(T / k) whole blocks are kept
            x = x[:, : (x.shape[1] // k) * k].reshape(x.shape[0], -1, k * x.shape[2])
        output, _ = m.rnn(x, lengths=out_lengths)
        return F.log_softmax(m.head(m.drop(output)), dim=-1), out_lengths


def speech_plan(model: nn.Module, files: dict) -> ExportPlan:
    spec = json.loads(run_file(files, "speech.json", "speech"))
    notes = {"features": spec["features"], "preprocessing": (
        "outside the graph, in Python: rnnlab.data.audio.features(samples, FeatureConfig(**features)) "
        "(log-mel/MFCC frames, normalised per utterance)")}
    if isinstance(model, SequenceClassifier):  # the isolated-digit baseline
        notes["preprocessing"] += (f"; then frames stacked {spec.get('stack', 1)} at a time, zero-padded at the end "
                                   f"(rnnlab.runs.speech._stacked)")
        return ExportPlan([_classifier_graph(model, 0.0, 1.0)], {**notes, "class_names": spec["labels"]})
    require_fused(model, "an acoustic model")
    n_features = model.config.n_features

    def sample(batch, steps):
        return torch.randn(batch, steps, n_features), random_lengths(batch, steps)

    axes = {"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "log_probs": {0: "batch", 1: "frames"},
            "out_lengths": {0: "batch"}}
    graph = Graph("model", _AcousticGraph(model), ["x", "lengths"], ["log_probs", "out_lengths"], axes, sample)
    return ExportPlan([graph], {**notes, "labels": spec["labels"], "blank": spec["blank"],
                                "decoding": "greedy: argmax per frame below out_lengths, merge repeats, drop blanks "
                                            "(rnnlab.models.ctc.greedy_decode)"})
