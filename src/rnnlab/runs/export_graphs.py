"""What each kind of run exports to ONNX: graph modules, their inputs and outputs, random check inputs.

:func:`export_plan` turns a run directory into an :class:`ExportPlan` — one or more :class:`Graph`
(a module to trace, input/output names, dynamic axes, a sampler of random inputs for the
onnxruntime check) plus what ``export.json`` says beside them (preprocessing, labels) and files
written next to the graphs (vocabularies). :mod:`rnnlab.runs.export` traces, checks and writes.

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

from rnnlab.checkpoint import load_checkpoint
from rnnlab.data.translation import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from rnnlab.errors import ConfigError
from rnnlab.models.acoustic import AcousticModel
from rnnlab.models.classifier import SequenceClassifier
from rnnlab.models.conv_classifier import ConvSequenceClassifier
from rnnlab.models.forecaster import Forecaster
from rnnlab.models.language import LanguageModel
from rnnlab.models.translator import Memory, Translator
from rnnlab.nn.sequence import lengths_to_mask
from rnnlab.rundir import CLASSIFY_SPEC, read_run

__all__ = ["Graph", "ExportPlan", "export_plan", "is_fused", "CHECK_STEPS"]

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


def _require_fused(model: nn.Module, what: str) -> None:
    if not is_fused(model):
        raise ConfigError(f"{what} with {_cell_names(model)} cannot be exported with variable lengths: only the "
                          f"lstm, gru and rnn cells map to ONNX's recurrent operators (the others are traced "
                          f"as a loop of fixed length)")


def _lengths(batch: int, steps: int) -> Tensor:
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


def _lm_plan(model: LanguageModel) -> ExportPlan:
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
def _forecast_plan(model: Forecaster) -> ExportPlan:
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
    _require_fused(model, "a sequence classifier")
    n_features = model.config.n_features

    def sample(batch, steps):
        return torch.randn(batch, steps, n_features), _lengths(batch, steps)

    axes = {"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "logits": {0: "batch"},
            "probabilities": {0: "batch"}}
    return Graph("model", _ClassifierGraph(model, mean, std), ["x", "lengths"], ["logits", "probabilities"],
                 axes, sample)


def _classify_plan(model: nn.Module, files: dict) -> ExportPlan:
    spec = json.loads(files[CLASSIFY_SPEC])
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


def _speech_plan(model: nn.Module, files: dict) -> ExportPlan:
    spec = json.loads(files["speech.json"])
    notes = {"features": spec["features"], "preprocessing": (
        "outside the graph, in Python: rnnlab.data.audio.features(samples, FeatureConfig(**features)) "
        "(log-mel/MFCC frames, normalised per utterance)")}
    if isinstance(model, SequenceClassifier):  # the isolated-digit baseline
        notes["preprocessing"] += (f"; then frames stacked {spec.get('stack', 1)} at a time, zero-padded at the end "
                                   f"(rnnlab.runs.speech._stacked)")
        return ExportPlan([_classifier_graph(model, 0.0, 1.0)], {**notes, "class_names": spec["labels"]})
    _require_fused(model, "an acoustic model")
    n_features = model.config.n_features

    def sample(batch, steps):
        return torch.randn(batch, steps, n_features), _lengths(batch, steps)

    axes = {"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "log_probs": {0: "batch", 1: "frames"},
            "out_lengths": {0: "batch"}}
    graph = Graph("model", _AcousticGraph(model), ["x", "lengths"], ["log_probs", "out_lengths"], axes, sample)
    return ExportPlan([graph], {**notes, "labels": spec["labels"], "blank": spec["blank"],
                                "decoding": "greedy: argmax per frame below out_lengths, merge repeats, drop blanks "
                                            "(rnnlab.models.ctc.greedy_decode)"})


# ----------------------------------------------------------------------------- translators
class _EncoderGraph(nn.Module):
    """``source (B, S)`` int64, ``lengths (B,)`` -> ``memory (B, S, H)``, [``keys (B, S, K)``], ``mask (B, S)``
    bool, the decoder's initial state ``h (L, B, H)`` [``c``] and [``feed (B, R)``] (zeros)."""

    def __init__(self, model: Translator, parts: dict):
        super().__init__()
        self.model, self.parts = model, parts

    def forward(self, source: Tensor, lengths: Tensor):
        memory, (rnn, feed) = self.model.encode(source, lengths)
        out = [memory.values] + ([memory.keys] if self.parts["keys"] else []) + [memory.mask]
        out += list(rnn) if isinstance(rnn, tuple) else [rnn]
        return tuple(out + ([feed] if feed is not None else []))


class _DecoderStepGraph(nn.Module):
    """One decoder step: ``previous (B,)`` int64, ``h (L, B, H)`` [``c``], [``feed (B, R)``], [``memory``,
    ``keys``, ``mask``] -> ``log_probs (B, V)`` (log-softmax of the logits; greedy/beam search also rule
    out ``<pad>`` and ``<bos>``), ``h_out`` [``c_out``], [``feed_out``], [``weights (B, S)``]."""

    def __init__(self, model: Translator, parts: dict):
        super().__init__()
        self.model, self.parts = model, parts

    def forward(self, previous: Tensor, *flat: Tensor):
        p, flat = self.parts, list(flat)
        rnn = (flat.pop(0), flat.pop(0)) if p["c"] else flat.pop(0)
        feed = flat.pop(0) if p["feed"] else None
        memory = None
        if p["memory"]:
            values = flat.pop(0)
            keys = flat.pop(0) if p["keys"] else values  # dot attention: the keys are the memory itself
            memory = Memory(values, keys, flat.pop(0))
        logits, (rnn, feed), weights = self.model.step(previous, (rnn, feed), memory)
        out = [torch.log_softmax(logits, -1)] + (list(rnn) if isinstance(rnn, tuple) else [rnn])
        return tuple(out + ([feed] if feed is not None else []) + ([weights] if weights is not None else []))


def _translate_plan(model: Translator, files: dict) -> ExportPlan:
    _require_fused(model, "a translator")
    c = model.config
    lstm = isinstance(model.decoder, nn.LSTM)
    parts = {"c": lstm, "feed": c.input_feed, "memory": c.attention != "none",
             "keys": c.attention in ("bahdanau", "general")}
    state = ["h", "c"] if lstm else ["h"]
    feed = ["feed"] if c.input_feed else []
    memory = (["memory"] + (["keys"] if parts["keys"] else []) + ["mask"]) if parts["memory"] else []
    enc_out = ["memory"] + (["keys"] if parts["keys"] else []) + ["mask"] + state + feed
    enc_axes = {"source": {0: "batch", 1: "source"}, "lengths": {0: "batch"}, "memory": {0: "batch", 1: "source"},
                "keys": {0: "batch", 1: "source"}, "mask": {0: "batch", 1: "source"}, "feed": {0: "batch"},
                **{s: {1: "batch"} for s in state}}
    enc_axes = {k: v for k, v in enc_axes.items() if k in ["source", "lengths", *enc_out]}

    def sample_encoder(batch, steps):
        return torch.randint(0, c.source_vocab, (batch, steps)), _lengths(batch, steps)

    dec_in = ["previous", *state, *feed, *memory]
    dec_out = ["log_probs", *(s + "_out" for s in state), *(f + "_out" for f in feed)]
    dec_out += ["weights"] if parts["memory"] else []
    dec_axes = {"previous": {0: "batch"}, "log_probs": {0: "batch"}, "weights": {0: "batch", 1: "source"},
                **{n: axes for n, axes in enc_axes.items() if n in dec_in},
                **{s + "_out": {1: "batch"} for s in state}, "feed_out": {0: "batch"}}
    dec_axes = {k: v for k, v in dec_axes.items() if k in dec_in + dec_out}
    key_size = model.attention.keys(torch.zeros(1, 1, c.hidden)).shape[-1] if parts["keys"] else 0
    readout = model.readout.out_features

    def sample_step(batch, steps):
        inputs = [torch.randint(0, c.target_vocab, (batch,))]
        inputs += [torch.randn(c.layers, batch, c.hidden) * 0.5 for _ in state]
        inputs += [torch.tanh(torch.randn(batch, readout))] if feed else []
        if parts["memory"]:
            inputs.append(torch.randn(batch, steps, c.hidden))
            inputs += [torch.randn(batch, steps, key_size)] if parts["keys"] else []
            inputs.append(lengths_to_mask(_lengths(batch, steps), steps))
        return tuple(inputs)

    vocab = {side: json.loads(files[f"{side}_vocab.json"]) for side in ("source", "target")}
    notes = {"decoding": f"run encoder once; then decoder_step from previous = <bos> (id {BOS_ID}), feeding every "
                         f"*_out back as the input of the same name and the encoder's memory/keys/mask unchanged, "
                         f"until <eos> (id {EOS_ID}) or floor(1.5 * source length + 5) tokens (rnnlab's default "
                         f"limit); <pad>/<bos> (ids {PAD_ID}, {BOS_ID}) are never chosen "
                         f"(rnnlab.runs.export.onnx_greedy_translate does this)",
             "preprocessing": f"outside the graph: the sentence normalised and tokenised as in training, tokens to "
                              f"ids with the source vocabulary (unknown: <unk>, id {UNK_ID}); the source is "
                              f"reversed inside the encoder graph when the model reads it reversed",
             "vocabulary": "vocab.json: {source, target}, each the run's vocabulary file (word list: an id is the "
                           "word's position; or a subword tokenizer)"}
    return ExportPlan([Graph("encoder", _EncoderGraph(model, parts), ["source", "lengths"], enc_out, enc_axes,
                             sample_encoder),
                       Graph("decoder_step", _DecoderStepGraph(model, parts), dec_in, dec_out, dec_axes, sample_step,
                             time_axis="one step; source length dynamic")],
                      notes, {"vocab.json": json.dumps(vocab, ensure_ascii=False, indent=1)})


# ----------------------------------------------------------------------------- dispatch
def export_plan(run_dir) -> ExportPlan:
    """What ``run_dir`` exports (ConfigError, one line, for what cannot be exported and why)."""
    kind = read_run(run_dir)["kind"]
    if kind == "caption":
        raise ConfigError("caption runs cannot be exported to ONNX yet: the CNN encoder and the attention decoder "
                          "step have no export graphs (only lm, forecast, classify, speech and translate runs do)")
    ckpt = load_checkpoint(run_dir)
    model = ckpt.model.eval()
    plan = _plan_of(kind, model, ckpt.files)
    plan.notes = {"model": type(model).__name__, **plan.notes}
    return plan


def _plan_of(kind: str, model: nn.Module, files: dict) -> ExportPlan:
    if kind == "lm" and isinstance(model, LanguageModel):
        return _lm_plan(model)
    if kind == "forecast" and isinstance(model, Forecaster):
        return _forecast_plan(model)
    if kind == "classify" and isinstance(model, (SequenceClassifier, ConvSequenceClassifier)):
        return _classify_plan(model, files)
    if kind == "speech" and isinstance(model, (AcousticModel, SequenceClassifier)):
        return _speech_plan(model, files)
    if kind == "translate" and isinstance(model, Translator):
        return _translate_plan(model, files)
    raise ConfigError(f"rnnlab export handles lm, forecast, classify, speech and translate runs; this one is a "
                      f"{kind!r} run of {type(model).__name__}")
