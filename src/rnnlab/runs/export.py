"""Deployment: a trained run as ONNX graphs checked in onnxruntime, and int8 dynamic quantisation.

    rnnlab export RUN_DIR --format onnx      # -> RUN_DIR/model.onnx (or encoder/decoder_step.onnx) + export.json

What each kind of run exports (batch and lengths are dynamic axes; graphs in :mod:`rnnlab.runs.export_graphs`
and, for encoder-decoder models, :mod:`rnnlab.runs.export_decoders`):

=============  ===========================================  ================================================
run kind       inputs                                       outputs
=============  ===========================================  ================================================
``lm``         ``tokens (B, T)`` int64, then each layer's   ``logits (B, T, V)``, then each layer's new
               state ``h_k (1, B, H)`` (and ``c_k``)        state: feed them back for one-token streaming
``forecast``   ``x (B, L, C+P+K)``, ``future (B, H, K)``    ``params (B, H, C, Q)`` (normalised scale)
``classify``   ``x (B, T, F)`` raw features (padded),       ``logits (B, K)``, ``probabilities (B, K)``;
               ``lengths (B,)`` int64                       standardisation is in the graph
``speech``     ``x (B, T, F)`` normalised frames, lengths   ``log_probs (B, T', V)`` (CTC, blank 0),
                                                            ``out_lengths (B,)``; isolated runs: as classify
``translate``  encoder: ``source (B, S)``, ``lengths``      ``memory``, [``keys``], ``mask``, ``h`` [``c``],
                                                            [``feed``]: the decoder's initial state
               decoder_step: ``previous (B,)``, ``h``       ``log_probs (B, V)``, ``h_out`` [``c_out``],
               [``c``], [``feed``], [memory, keys, mask]    [``feed_out``], [``weights (B, S)``]
``caption``    encoder: ``images (B, C, S, S)`` in [0, 1]   ``memory (B, L, D)``, [``keys``], ``h`` [``c``]
               decoder_step: ``previous (B,)``, ``h``       ``log_probs (B, V)``, ``h_out`` [``c_out``],
               [``c``], ``memory`` [``keys``]               [``weights (B, L)``]
=============  ===========================================  ================================================

The graphs come from PyTorch's TorchScript ONNX exporter: standard LSTM/GRU/RNN layers become ONNX's
recurrent operators (variable lengths through their ``sequence_lens``, exactly the packed-sequence
semantics), so the time axis stays dynamic. Other cells (peephole, layer norm, minGRU, ...) are
traced as a loop of fixed length: a language model is then exported as a one-token step graph (the
streaming form); runs that need lengths refuse them with a one-line error. After tracing, every graph is run in onnxruntime on random inputs of several lengths
and batch sizes and compared with PyTorch (max |difference| <= 1e-4, recorded in ``export.json``); a
larger difference is an error and nothing is written. Preprocessing that is not in a graph (speech
features, tokenisation, image reading, classifier downsampling) is stated in ``export.json``.

int8 inference is :func:`rnnlab.models.quantize.quantize_int8` (``rnnlab generate/evaluate --int8``).
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rnnlab.checkpoint import load_checkpoint
from rnnlab.data.translation import BOS_ID, EOS_ID, PAD_ID
from rnnlab.errors import ConfigError, RunDirError
from rnnlab.io import atomic_write_bytes, atomic_write_json, atomic_write_text, check_new_file
from rnnlab.models.acoustic import AcousticModel
from rnnlab.models.captioner import Captioner
from rnnlab.models.classifier import SequenceClassifier
from rnnlab.models.conv_classifier import ConvSequenceClassifier
from rnnlab.models.forecaster import Forecaster
from rnnlab.models.language import LanguageModel
from rnnlab.models.translator import Translator
from rnnlab.rundir import read_run, run_dir_of
from rnnlab.runs.export_decoders import CAPTION_MAX_LEN, caption_plan, translate_plan
from rnnlab.runs.export_graphs import ExportPlan, Graph, classify_plan, forecast_plan, lm_plan, speech_plan

__all__ = ["export_run", "export_plan", "onnx_greedy_translate", "onnx_greedy_caption", "TOLERANCE", "OPSET"]

TOLERANCE = 1e-4
OPSET = 17


def export_plan(run_dir) -> ExportPlan:
    """What ``run_dir`` exports (ConfigError, one line, for what cannot be exported and why)."""
    kind = read_run(run_dir)["kind"]
    ckpt = load_checkpoint(run_dir)
    model = ckpt.model.eval()
    plan = _plan_of(kind, model, ckpt.files)
    plan.notes = {"model": type(model).__name__, **plan.notes}
    return plan


def _plan_of(kind: str, model: nn.Module, files: dict) -> ExportPlan:
    if kind == "lm" and isinstance(model, LanguageModel):
        return lm_plan(model)
    if kind == "forecast" and isinstance(model, Forecaster):
        return forecast_plan(model)
    if kind == "classify" and isinstance(model, (SequenceClassifier, ConvSequenceClassifier)):
        return classify_plan(model, files)
    if kind == "speech" and isinstance(model, (AcousticModel, SequenceClassifier)):
        return speech_plan(model, files)
    if kind == "translate" and isinstance(model, Translator):
        return translate_plan(model, files)
    if kind == "caption" and isinstance(model, Captioner):
        return caption_plan(model)
    raise ConfigError(f"rnnlab export handles lm, forecast, classify, speech, translate and caption runs; this one is "
                      f"a {kind!r} run of {type(model).__name__}")


def _check_onnxruntime():
    if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None:
        raise ConfigError("ONNX export needs onnx and onnxruntime: pip install -e '.[export]'")
    import onnxruntime

    return onnxruntime


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2: the exporter's C++ shape-inference notes about PackPadded (which
    its own pass then removes) would otherwise follow every export. Exceptions still propagate."""
    try:
        saved = os.dup(2)
    except OSError:  # no real stderr (embedded interpreters): nothing to silence
        yield
        return
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _trace(graph: Graph) -> bytes:
    """The ONNX bytes of ``graph``, traced on random inputs of batch 3 at its longest check length."""
    buffer = io.BytesIO()
    graph.module.eval()  # a wrapper is built in training mode, and the exporter restores the mode it found
    example = graph.sample(3, max(graph.steps))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet_stderr(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's warnings about Python values it fixes are expected
        torch.onnx.export(graph.module, example, buffer, dynamo=False, input_names=graph.inputs,
                          output_names=graph.outputs, dynamic_axes=graph.axes, opset_version=OPSET)
    return buffer.getvalue()


def _verify(graph: Graph, onnx_bytes: bytes, onnxruntime) -> list[dict]:
    """Max |ORT - PyTorch| over every output, for batches 1 and 3 at each of ``graph.steps``."""
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    graph.module.eval()
    checks = []
    with torch.random.fork_rng():  # the same check inputs every time, without touching the caller's RNG
        torch.manual_seed(0)
        for steps in graph.steps:
            for batch in (1, 3):
                feed = graph.sample(batch, steps)
                with torch.no_grad():
                    want = graph.module(*feed)
                want = want if isinstance(want, tuple) else (want,)
                got = session.run(None, {name: t.numpy() for name, t in zip(graph.inputs, feed)})
                diff = max(float(np.abs(g.astype(np.float64) - w.numpy().astype(np.float64)).max())
                           for g, w in zip(got, want))
                checks.append({"batch": batch, "steps": steps, "max_abs_diff": diff})
    return checks


def export_run(run_dir, out=None, *, force: bool = False) -> dict:
    """Export the best checkpoint of ``run_dir`` to ONNX, verify it in onnxruntime, write ``export.json``.

    ``out`` is the .onnx file (default ``RUN_DIR/model.onnx``); runs with several graphs write
    ``<graph>.onnx`` beside it (``<stem>_<graph>.onnx`` for another name). Returns the record, with
    ``paths`` (the graphs) and ``record`` (the export.json path) added.
    """
    onnxruntime = _check_onnxruntime()
    run_dir = run_dir_of(run_dir)
    kind = read_run(run_dir)["kind"]
    out = Path(out) if out else run_dir / "model.onnx"
    if out.suffix != ".onnx":
        raise ConfigError(f"the output file must end in .onnx; got {out.name!r}")
    prefix = "" if out.name == "model.onnx" else out.stem + "_"
    plan = export_plan(run_dir)
    single = len(plan.graphs) == 1
    paths = {g.name: out if single else out.with_name(f"{prefix}{g.name}.onnx") for g in plan.graphs}
    sidecars = {out.with_name(prefix + name): text for name, text in plan.files.items()}
    record_path = run_dir / "export.json" if out.name == "model.onnx" else out.with_name(prefix + "export.json")
    for path in [*paths.values(), *sidecars, record_path]:  # refuse before tracing anything
        check_new_file(path, "export file", force=force)
    graphs, written = {}, {}
    for graph in plan.graphs:
        onnx_bytes = _trace(graph)
        checks = _verify(graph, onnx_bytes, onnxruntime)
        worst = max(c["max_abs_diff"] for c in checks)
        if not worst <= TOLERANCE:
            raise RunDirError(f"the ONNX graph {graph.name!r} differs from PyTorch by {worst:.2e} (> {TOLERANCE}); "
                              f"nothing was written")
        written[paths[graph.name]] = onnx_bytes
        graphs[graph.name] = {"onnx": paths[graph.name].name, "time_axis": graph.time_axis, "inputs": graph.inputs,
                              "outputs": graph.outputs, "dynamic_axes": {k: {str(a): n for a, n in v.items()}
                                                                         for k, v in graph.axes.items()},
                              "checks": checks, "max_abs_diff": worst}
    for path, onnx_bytes in written.items():
        atomic_write_bytes(path, onnx_bytes)
    for path, text in sidecars.items():
        atomic_write_text(path, text)
    record = {"kind": kind, "opset": OPSET, "onnxruntime": onnxruntime.__version__,
              "max_abs_diff": max(g["max_abs_diff"] for g in graphs.values()),
              "files": [p.name for p in [*paths.values(), *sidecars]], **plan.notes,
              **(graphs[plan.graphs[0].name] if single else {"graphs": graphs})}
    atomic_write_json(record_path, record)
    return {**record, "paths": list(paths.values()), "record": record_path}


def onnx_greedy_translate(encoder, decoder_step, source: np.ndarray, lengths: np.ndarray, *,
                          max_len_a: float = 1.5, max_len_b: int = 5) -> list[list[int]]:
    """Greedy decoding driven from onnxruntime sessions of an exported translator (the rule of
    :func:`rnnlab.models.translation_search.greedy_search`): ``source (B, S)`` int64 ids, ``lengths (B,)``
    -> each sentence's target ids without ``<eos>``."""
    source, lengths = np.asarray(source, np.int64), np.asarray(lengths, np.int64)
    if source.ndim != 2 or lengths.shape != (source.shape[0],):
        raise ConfigError(f"source must be (B, S) ids and lengths (B,); got {source.shape} and {lengths.shape}")
    encoded = dict(zip([o.name for o in encoder.get_outputs()],
                       encoder.run(None, {"source": source, "lengths": lengths})))
    names = [i.name for i in decoder_step.get_inputs()]
    feed = {n: encoded[n] for n in names if n != "previous"}
    limits = np.maximum(np.floor(max_len_a * lengths.astype(np.float64) + max_len_b), 1).astype(int)
    previous = np.full(source.shape[0], BOS_ID, np.int64)
    tokens: list[list[int]] = [[] for _ in range(len(lengths))]
    open_ = [True] * len(lengths)
    for t in range(int(limits.max())):
        outputs = dict(zip([o.name for o in decoder_step.get_outputs()],
                           decoder_step.run(None, {"previous": previous, **feed})))
        log_probs = outputs["log_probs"]
        log_probs[:, [PAD_ID, BOS_ID]] = -np.inf
        previous = log_probs.argmax(-1).astype(np.int64)
        feed.update({n: outputs[n + "_out"] for n in feed if n + "_out" in outputs})
        for b, token in enumerate(previous.tolist()):
            if open_[b]:
                if token == EOS_ID:
                    open_[b] = False
                else:
                    tokens[b].append(token)
                    open_[b] = t + 1 < limits[b]
        if not any(open_):
            break
    return tokens


def onnx_greedy_caption(encoder, decoder_step, images: np.ndarray, *, max_len: int = CAPTION_MAX_LEN,
                        bos: int = 1, eos: int = 2, pad: int = 0) -> np.ndarray:
    """Greedy captions driven from onnxruntime sessions of an exported captioner (the rule of
    :meth:`rnnlab.models.captioner.Captioner.greedy`): ``images (B, C, S, S)`` float32 in [0, 1] ->
    word ids ``(B, T <= max_len)``, each ending in ``eos`` (unless cut at ``max_len``), ``pad`` after it."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise ConfigError(f"images must be (B, C, S, S) floats; got shape {images.shape}")
    encoded = dict(zip([o.name for o in encoder.get_outputs()], encoder.run(None, {"images": images})))
    feed = {i.name: encoded[i.name] for i in decoder_step.get_inputs() if i.name != "previous"}
    word = np.full(len(images), bos, np.int64)
    done = np.zeros(len(images), bool)
    words = []
    for _ in range(max_len):
        outputs = dict(zip([o.name for o in decoder_step.get_outputs()],
                           decoder_step.run(None, {"previous": word, **feed})))
        word = np.where(done, pad, outputs["log_probs"].argmax(1)).astype(np.int64)
        feed.update({n: outputs[n + "_out"] for n in feed if n + "_out" in outputs})
        words.append(word)
        done |= word == eos
        if done.all():
            break
    return np.stack(words, 1)
