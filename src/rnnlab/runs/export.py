"""Deployment: a trained run as an ONNX graph checked in onnxruntime, and int8 dynamic quantisation.

    rnnlab export RUN_DIR --format onnx            # -> RUN_DIR/model.onnx + RUN_DIR/export.json

What each kind of run exports (batch and sequence length are dynamic axes):

=============  ==============================================  =============================================
run kind       inputs                                          outputs
=============  ==============================================  =============================================
``lm``         ``tokens (B, T)`` int64, then each layer's      ``logits (B, T, V)``, then each layer's new
               state ``h_k (1, B, H)`` (and ``c_k``)           state: feed them back for one-token streaming
``forecast``   ``x (B, L, C+P+K)``, ``future (B, H, K)``       ``params (B, H, C, Q)`` (normalised scale)
=============  ==============================================  =============================================

The graph comes from PyTorch's TorchScript ONNX exporter: standard LSTM/GRU/RNN cells become ONNX's
own recurrent operators, so the time axis stays dynamic. Other cells (peephole, layer norm, minGRU,
...) export their steps unrolled: a language model is then exported as a one-token step graph
(``T = 1``, the streaming form); a forecaster's look-back is fixed anyway. Sequence classifiers are not
exported yet: their variable lengths go through PyTorch's packed sequences, which the exporter
cannot translate (an error says so). After writing, the graph is run in onnxruntime on random inputs of several lengths
and compared with PyTorch (max |difference| <= 1e-4, recorded in ``export.json``); a larger
difference is an error and the files are removed.

int8 inference is :func:`rnnlab.models.quantize.quantize_int8` (``rnnlab generate/evaluate --int8``).
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rnnlab.checkpoint import load_checkpoint
from rnnlab.errors import ConfigError, RunDirError
from rnnlab.io import atomic_write_bytes, atomic_write_json, check_new_file
from rnnlab.models.forecaster import Forecaster
from rnnlab.models.language import LanguageModel
from rnnlab.rundir import read_run, run_dir_of

__all__ = ["export_run", "TOLERANCE"]

TOLERANCE = 1e-4
CHECK_LENGTHS = (1, 7, 23)


class _LanguageModelGraph(nn.Module):
    """``(tokens, *states) -> (logits, *new_states)`` with every layer's state a separate tensor."""

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


def _lm_spec(model: LanguageModel, batch: int, steps: int):
    tokens = torch.randint(0, model.config.vocab_size, (batch, steps))
    names, states, axes = ["tokens"], [], {"tokens": {0: "batch", 1: "time"}, "logits": {0: "batch", 1: "time"}}
    outputs = ["logits"]
    for k, layer in enumerate(model.layers):
        parts = ("h", "c") if isinstance(layer, nn.LSTM) else ("h",)
        zero = layer.init_state(batch) if hasattr(layer, "init_state") else None
        zero = zero if isinstance(zero, tuple) else (zero,)
        for part, tensor in zip(parts, zero):
            names.append(f"{part}{k}")
            outputs.append(f"{part}{k}_out")
            states.append(torch.randn_like(tensor) * 0.1)
            axes[f"{part}{k}"] = {1: "batch"}
            axes[f"{part}{k}_out"] = {1: "batch"}
    return _LanguageModelGraph(model), (tokens, *states), names, outputs, axes


def _spec(kind: str, model: nn.Module, batch: int, steps: int):
    """(module to export, example inputs, input names, output names, dynamic axes)."""
    if kind == "lm" and isinstance(model, LanguageModel):
        return _lm_spec(model, batch, steps)
    if kind == "forecast" and isinstance(model, Forecaster):
        c = model.config
        x = torch.randn(batch, c.lookback, c.n_targets + c.n_past + c.n_calendar)
        future = torch.randn(batch, c.horizon, c.n_calendar)
        return model, (x, future), ["x", "future"], ["params"], {"x": {0: "batch"}, "future": {0: "batch"},
                                                                 "params": {0: "batch"}}
    if kind == "classify":
        raise ConfigError("sequence classifiers cannot be exported to ONNX yet: their variable lengths run through "
                          "packed sequences, which PyTorch's ONNX exporter does not translate")
    raise ConfigError(f"rnnlab export handles language-model, forecast and classify runs; this one is a {kind!r} run "
                      f"of {type(model).__name__}")


def _check_onnxruntime():
    if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None:
        raise ConfigError("ONNX export needs onnx and onnxruntime: pip install -e '.[export]'")
    import onnxruntime

    return onnxruntime


def export_run(run_dir, out=None, *, force: bool = False) -> dict:
    """Export the best checkpoint of ``run_dir`` to ONNX, verify it in onnxruntime, return the record."""
    onnxruntime = _check_onnxruntime()
    run_dir = run_dir_of(run_dir)
    kind = read_run(run_dir)["kind"]
    out = check_new_file(Path(out) if out else run_dir / "model.onnx", "ONNX file", force=force)
    record_path = check_new_file(out.with_name(out.stem + "_export.json") if out.name != "model.onnx"
                                 else run_dir / "export.json", "export record", force=force)
    model = load_checkpoint(run_dir).model.eval()
    fused = all(getattr(m, "path", lambda: "fused")() == "fused" for m in model.modules()
                if hasattr(m, "cell_class"))
    lengths = (CHECK_LENGTHS if fused else (1,)) if kind == "lm" else (None,)
    module, example, inputs, outputs, axes = _spec(kind, model, batch=2, steps=lengths[0] or 1)
    if not fused:  # unrolled steps: the time axis is what was traced
        axes = {k: {a: n for a, n in v.items() if n != "time"} for k, v in axes.items()}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, buffer, dynamo=False, input_names=inputs, output_names=outputs,
                          dynamic_axes=axes, opset_version=17)
    session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    checks = []
    for steps in lengths:
        for batch in (1, 3):
            _, feed, _, _, _ = _spec(kind, model, batch=batch, steps=steps or 1)
            with torch.no_grad():
                want = module(*feed)
            want = want if isinstance(want, tuple) else (want,)
            got = session.run(None, {name: t.numpy() for name, t in zip(inputs, feed)})
            diff = max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want))
            checks.append({"batch": batch, "steps": steps, "max_abs_diff": diff})
    worst = max(c["max_abs_diff"] for c in checks)
    if not worst <= TOLERANCE:
        raise RunDirError(f"the ONNX graph differs from PyTorch by {worst:.2e} (> {TOLERANCE}); nothing was written")
    atomic_write_bytes(out, buffer.getvalue())
    record = {"onnx": out.name, "kind": kind, "time_axis": "dynamic" if fused else "fixed (step graph)", "model": type(model).__name__, "inputs": inputs, "outputs": outputs,
              "dynamic_axes": {k: {str(a): n for a, n in v.items()} for k, v in axes.items()}, "opset": 17,
              "onnxruntime": onnxruntime.__version__, "checks": checks, "max_abs_diff": worst}
    atomic_write_json(record_path, record)
    return {"path": out, "record": record_path, **record}
