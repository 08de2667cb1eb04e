"""Gate traces from a recorded unroll, and the units whose activations follow features of the text.

Karpathy, Johnson & Fei-Fei (2015, "Visualizing and understanding recurrent networks") found
character-LSTM cells that track simple properties of the text: whether the reader is inside a
quotation, the position in the line, the bracket depth. This module measures that directly:

* :func:`record_language_model` runs a language model over a passage with ``record=True`` and
  returns every gate of one layer as arrays ``name -> (T, H)`` (``i, f, g, o, c, h`` for an LSTM);
* :func:`text_features` computes, for each token of the passage, features of the text read so far:

  ========================  ==========================================================================
  ``inside quotes``         1 while an odd number of ``"`` has been read (since the last blank line)
  ``inside brackets``       1 while more ``( [ {`` than ``) ] }`` have been read (depth > 0)
  ``position in line``      characters read since the last newline (0 at the newline, 1 at the next)
  ``end of word``           1 at the last character of a word (a letter or digit followed by neither)
  ========================  ==========================================================================

  Features are aligned with the state *after* reading token t (the state has seen tokens 0..t);
  ``end of word`` looks one character ahead, so it measures what the unit anticipates.
* :func:`correlations` gives the Pearson correlation r of every unit's activation with every
  feature, and :func:`rank_units` lists the units with the largest |r|.

A feature that is constant on the passage (no quotes in it, say) has no correlation and is left out.
"""
from __future__ import annotations

import numpy as np
import torch

from rnnlab.errors import ConfigError, InputShapeError

OPEN, CLOSE = "([{", ")]}"
FEATURES = ("inside quotes", "inside brackets", "position in line", "end of word")


def gate_traces(record: list, *, layer: int = -1, direction: int = 0, row: int = 0) -> dict[str, np.ndarray]:
    """One sequence's gates from a layer's ``record`` (``record[layer][direction][name]``, batch-first).

    Returns ``name -> (T, H)`` float64 arrays for batch row ``row``.
    """
    if not record:
        raise ConfigError("the record is empty; run the layer with record=True")
    gates = record[layer][direction]
    return {name: value[row].detach().double().cpu().numpy() for name, value in gates.items()}


@torch.no_grad()
def record_language_model(model, ids, *, layer: int = -1) -> dict[str, np.ndarray]:
    """Run ``model`` (a :class:`rnnlab.models.language.LanguageModel`) over ``ids`` from a zero state and
    return layer ``layer``'s gates, ``name -> (T, H)``.

    The layers run in eval mode (no dropout); the chosen layer runs its explicit path so that its
    gates are recorded, the others their fused kernels.
    """
    layers = getattr(model, "layers", None)
    if layers is None or not hasattr(model, "embedding"):
        raise ConfigError(f"gate recording needs a LanguageModel (embedding + recurrent layers); "
                          f"got {type(model).__name__}")
    x = torch.as_tensor(ids, dtype=torch.long).reshape(1, -1)  # (1, T)
    if x.shape[1] == 0:
        raise InputShapeError("the passage is empty; expected at least one token")
    target = range(len(layers))[layer]
    was_training = model.training
    model.eval()
    try:
        h = model.embedding(x)  # (1, T, E)
        for index, recurrent in enumerate(layers):
            if index == target:
                _, _, record = recurrent(h, record=True)
                return gate_traces(record)
            h, _ = recurrent(h)  # (1, T, H_index)
    finally:
        model.train(was_training)
    raise AssertionError("unreachable: target layer is in range")


def text_features(tokens: list[str]) -> dict[str, np.ndarray]:
    """Features of the text read up to and including each token: ``name -> (T,)`` float arrays.

    ``tokens`` are the decoded tokens (characters for a character model); a multi-character token
    takes the feature value at its last character.
    """
    text = "".join(tokens)
    quote, depth, column = np.zeros(len(text)), np.zeros(len(text)), np.zeros(len(text))
    inside, level, col = False, 0, 0
    for k, ch in enumerate(text):
        if ch == "\n":
            col = 0
            if k > 0 and text[k - 1] == "\n":
                inside = False  # a blank line ends a paragraph; an unmatched quote ends with it
        else:
            col += 1
        if ch == '"':
            inside = not inside
        elif ch in OPEN:
            level += 1
        elif ch in CLOSE:
            level = max(level - 1, 0)
        quote[k], depth[k], column[k] = inside, level > 0, col
    word = np.array([ch.isalnum() for ch in text] + [False])
    end_of_word = (word[:-1] & ~word[1:]).astype(float)
    ends = np.cumsum([len(t) for t in tokens]) - 1  # index of each token's last character
    valid = ends >= 0
    ends = np.where(valid, ends, 0)
    out = {"inside quotes": quote, "inside brackets": depth, "position in line": column, "end of word": end_of_word}
    return {name: np.where(valid, values[ends] if len(text) else 0.0, 0.0) for name, values in out.items()}


def correlations(activations: np.ndarray, features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Pearson r of each unit with each feature: ``activations`` (T, H) -> ``name -> (H,)``.

    r_j = Σ_t (a_tj − ā_j)(x_t − x̄) / sqrt(Σ_t (a_tj − ā_j)² Σ_t (x_t − x̄)²); a unit that never
    moves gets r = 0. Features constant over the passage are dropped (r is undefined).
    """
    a = np.asarray(activations, dtype=np.float64)
    if a.ndim != 2:
        raise InputShapeError(f"activations must be (T, H); got shape {a.shape}")
    a = a - a.mean(axis=0)
    a_norm = np.sqrt((a * a).sum(axis=0))  # (H,)
    out = {}
    for name, values in features.items():
        x = np.asarray(values, dtype=np.float64)
        if x.shape != (a.shape[0],):
            raise InputShapeError(f"feature {name!r} has shape {x.shape}; expected ({a.shape[0]},) like the activations")
        x = x - x.mean()
        x_norm = np.sqrt((x * x).sum())
        if x_norm < 1e-12:
            continue
        r = (a * x[:, None]).sum(axis=0) / np.where(a_norm > 1e-12, a_norm * x_norm, np.inf)
        out[name] = r
    return out


def rank_units(traces: dict[str, np.ndarray], features: dict[str, np.ndarray], *, signals=("c", "h"),
               top: int = 12) -> list[dict]:
    """The (unit, signal, feature) triples with the largest |r|, best first, each unit listed once.

    Returns dicts ``{"unit", "signal", "feature", "r"}``; ``signals`` picks which traces to search
    (the cell state ``c`` and output ``h`` by default, as in Karpathy et al.).
    """
    candidates = []
    for signal in signals:
        if signal not in traces:
            continue
        for feature, r in correlations(traces[signal], features).items():
            for unit in range(len(r)):
                candidates.append((abs(float(r[unit])), unit, signal, feature, float(r[unit])))
    candidates.sort(key=lambda c: (-c[0], c[1], c[2], c[3]))
    ranked, seen = [], set()
    for _, unit, signal, feature, r in candidates:
        if unit in seen:
            continue
        seen.add(unit)
        ranked.append({"unit": unit, "signal": signal, "feature": feature, "r": r})
        if len(ranked) == top:
            break
    return ranked


def best_per_feature(traces: dict[str, np.ndarray], features: dict[str, np.ndarray], *,
                     signals=("c", "h")) -> dict[str, dict]:
    """For each feature, the single unit (and signal) with the largest |r|: ``feature -> {unit, signal, r}``."""
    best: dict[str, dict] = {}
    for signal in signals:
        if signal not in traces:
            continue
        for feature, r in correlations(traces[signal], features).items():
            unit = int(np.argmax(np.abs(r)))
            if feature not in best or abs(r[unit]) > abs(best[feature]["r"]):
                best[feature] = {"unit": unit, "signal": signal, "r": float(r[unit])}
    return best
