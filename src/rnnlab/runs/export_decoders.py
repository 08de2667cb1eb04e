"""ONNX graphs of encoder-decoder models: an encoder graph and a graph of one decoder step.

Translators (:class:`rnnlab.models.translator.Translator`) and captioners
(:class:`rnnlab.models.captioner.Captioner`) export the same way: the encoder runs once per input and
returns the memory the decoder attends over and the decoder's initial state; ``decoder_step`` maps the
previous token and the state (plus the memory) to log-probabilities, the new state and the attention
weights. Names line up so a runtime can loop generically: an encoder output feeds the decoder input of
the same name, and each ``X_out`` of a step feeds ``X`` of the next (:func:`rnnlab.runs.export.onnx_greedy_translate`,
:func:`rnnlab.runs.export.onnx_greedy_caption`). The state is ``h`` (and ``c`` for LSTM cells).
"""
from __future__ import annotations

import json

import torch
from torch import Tensor, nn

from rnnlab.data.scenes import MAX_WORDS, VOCAB
from rnnlab.data.translation import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from rnnlab.models.captioner import Captioner
from rnnlab.models.captioner import Memory as CaptionMemory
from rnnlab.models.translator import Memory, Translator
from rnnlab.nn.sequence import lengths_to_mask
from rnnlab.runs.export_graphs import ExportPlan, Graph, random_lengths, require_fused, run_file

__all__ = ["translate_plan", "caption_plan", "CAPTION_MAX_LEN"]

CAPTION_MAX_LEN = MAX_WORDS + 1  # what rnnlab.tasks.caption.generate allows a caption


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


def translate_plan(model: Translator, files: dict) -> ExportPlan:
    require_fused(model, "a translator")
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
        return torch.randint(0, c.source_vocab, (batch, steps)), random_lengths(batch, steps)

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
            inputs.append(lengths_to_mask(random_lengths(batch, steps), steps))
        return tuple(inputs)

    vocab = {side: json.loads(run_file(files, f"{side}_vocab.json", "translation")) for side in ("source", "target")}
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


# ----------------------------------------------------------------------------- captioners
class _CaptionEncoderGraph(nn.Module):
    """``images (B, C, S, S)`` floats in [0, 1] -> ``memory (B, L, D)`` regions, [``keys (B, L, A)``], the
    decoder's initial state ``h (B, H)`` [``c``]."""

    def __init__(self, model: Captioner):
        super().__init__()
        self.model = model

    def forward(self, images: Tensor):
        memory, state = self.model.encode(images)
        out = [memory.regions] + ([memory.keys] if memory.keys is not None else [])
        return tuple(out + (list(state) if isinstance(state, tuple) else [state]))


class _CaptionStepGraph(nn.Module):
    """``previous (B,)`` int64, ``h (B, H)`` [``c``], [``memory``, ``keys``] (with attention) ->
    ``log_probs (B, V)``, ``h_out`` [``c_out``], [``weights (B, L)``] (with attention)."""

    def __init__(self, model: Captioner, lstm: bool):
        super().__init__()
        self.model, self.lstm = model, lstm

    def forward(self, previous: Tensor, *flat: Tensor):
        flat = list(flat)
        state = (flat.pop(0), flat.pop(0)) if self.lstm else flat.pop(0)
        # without attention the image is only in the initial state: the step reads no memory
        memory = CaptionMemory(flat.pop(0), flat.pop(0)) if self.model.config.attention else None
        logits, state, alpha = self.model.step(memory, previous, state)
        out = [torch.log_softmax(logits, -1)] + (list(state) if isinstance(state, tuple) else [state])
        return tuple(out + ([alpha] if alpha is not None else []))


def caption_plan(model: Captioner) -> ExportPlan:
    c = model.config
    lstm = model.init_c is not None
    state = ["h", "c"] if lstm else ["h"]
    memory = ["memory"] + (["keys"] if c.attention else [])
    regions = model.encoder.grid ** 2

    def sample_images(batch, steps):
        return (torch.rand(batch, c.channels, c.image_size, c.image_size),)

    def sample_step(batch, steps):
        inputs = [torch.randint(0, c.vocab_size, (batch,))] + [torch.randn(batch, c.hidden) * 0.5 for _ in state]
        if c.attention:
            inputs += [torch.randn(batch, regions, c.features), torch.randn(batch, regions, c.attention_size)]
        return tuple(inputs)

    batch = {0: "batch"}
    enc_axes = {name: batch for name in ["images", *memory, *state]}
    dec_out = ["log_probs", *(s + "_out" for s in state)] + (["weights"] if c.attention else [])
    dec_in = ["previous", *state, *(memory if c.attention else [])]
    dec_axes = {name: batch for name in dec_in + dec_out}
    notes = {"decoding": f"run encoder once; then decoder_step from previous = <bos> (id {c.bos_id}), feeding "
                         f"h_out/c_out back as h/c and the encoder's memory/keys unchanged, taking the most probable "
                         f"word until <eos> (id {c.eos_id}) or {CAPTION_MAX_LEN} words, <pad> (id {c.pad_id}) after "
                         f"it (rnnlab.runs.export.onnx_greedy_caption does this)",
             "preprocessing": f"outside the graph: the image resized to {c.image_size}x{c.image_size}, "
                              f"{c.channels} channel(s), values / 255 as float32 (B, C, S, S) "
                              f"(rnnlab.data.images.read_image and to_tensor)",
             "vocabulary": "vocab.json: the word list; a word's id is its position"}
    return ExportPlan([Graph("encoder", _CaptionEncoderGraph(model), ["images"], memory + state, enc_axes,
                             sample_images, (1,), "none (fixed image size)"),
                       Graph("decoder_step", _CaptionStepGraph(model, lstm), dec_in, dec_out,
                             dec_axes, sample_step, (1,), "one step")],
                      notes, {"vocab.json": json.dumps({"tokens": list(VOCAB)}, indent=1)})
