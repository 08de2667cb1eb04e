"""Report sections for a language-model run: the gate viewer and next-token predictions.

Both load the run's best checkpoint (weights + tokenizer). The text shown is held-out text of the
run's own corpus (its validation split), so the page shows what the model does on text it did
not train on; the unit ranking is computed on a longer stretch of the same split.
"""
from __future__ import annotations

import base64
import re
from html import escape
from pathlib import Path

import numpy as np

from rnnlab.analysis.gates import (
    FEATURES,
    best_per_feature,
    rank_units,
    record_language_model,
    text_features,
)
from rnnlab.analysis.next_token import next_tokens, next_words
from rnnlab.analysis.report_sections import Page
from rnnlab.checkpoint import load_checkpoint
from rnnlab.data.text import load_corpus
from rnnlab.errors import RnnlabError
from rnnlab.rundir import TOKENIZER, has_checkpoint
from rnnlab.tasks.lm import load_language_model as load

# Signals put on the page (and shown on hover, in this order) where the cell has them; the LSTM's candidate g
# is left out to keep the page light (c and the gates tell its story).
HOVER = ("i", "f", "o", "c", "r", "z", "n", "h")
DIVERGING = {"c", "h", "g", "n"}  # signed signals; gates (i, f, o, r, z) live in [0, 1]
WORD_START = re.compile(r"[a-z,] ([a-z]{2,})\b(?![(_.\[])")  # a space then a plain word (not a call or attribute)


def load_language_model(run_dir: Path):
    """(model, tokenizer) from the best checkpoint, or None when the run has none (or not an LM)."""

    if not has_checkpoint(run_dir):
        return None
    checkpoint = load_checkpoint(run_dir, which="best")
    if TOKENIZER not in checkpoint.files or not hasattr(checkpoint.model, "next_distribution"):
        return None
    model, tokenizer, _ = load(checkpoint.directory)  # checks that tokenizer and model belong together
    return model, tokenizer


def heldout_text(info: dict, max_chars: int = 60_000) -> tuple[str, str]:
    """(text, where it came from): the start of the run's validation split, read as training read it."""

    config = info.get("config") or {}
    path = next((config[k] for k in ("data", "data_path", "corpus", "path") if isinstance(config.get(k), str)), None)
    fractions = tuple(config.get("split") or (0.9, 0.05, 0.05))  # the split training used (rnnlab train lm --split)
    corpus = load_corpus(path, fractions=fractions, errors=config.get("encoding_errors", "strict"))
    split = "valid" if "valid" in corpus.splits else next(iter(corpus.splits))
    text, size = [], 0
    for line in corpus.lines(split):
        text.append(line)
        size += len(line)
        if size >= max_chars:
            break
    return "".join(text)[:max_chars], f"{corpus.source}, {split} split"


def pick_passage(text: str, length: int) -> int:
    """Start (a paragraph start) of the ``length``-character window richest in quotes, brackets and lines."""
    starts = [0] + [k + 2 for k in range(len(text) - 2) if text[k:k + 2] == "\n\n"]
    def score(s):
        w = text[s:s + length]
        return min(w.count('"'), 4) + min(w.count("("), 4) + min(w.count("\n"), 8) / 2
    candidates = [s for s in starts if s + length <= len(text)] or [0]
    return max(candidates, key=lambda s: (score(s), -s))


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` as training saw it (line ends kept, unknown characters -> <unk>)."""
    chunks = list(tokenizer.encode_lines(text.splitlines(keepends=True)))
    return [int(i) for chunk in chunks for i in chunk]


def _display(tokenizer, ids) -> list[str]:
    pieces = [tokenizer.decode([int(i)]) for i in ids]
    if tokenizer.level == "word":
        pieces = [p if p.endswith("\n") else p + " " for p in pieces]
    return pieces


def _quantise(values: np.ndarray) -> dict:
    """(T, H) floats -> per-unit lo/hi and base64 uint8 codes (t-major), ~0.4 % of each unit's range."""
    lo, hi = values.min(axis=0), values.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    codes = np.rint((values - lo) / span * 255).astype(np.uint8)
    return {"lo": [round(float(v), 5) for v in lo], "hi": [round(float(v), 5) for v in lo + span],
            "data": base64.b64encode(codes.tobytes()).decode("ascii")}


def gates_section(page: Page, model, tokenizer, text: str, source: str, *, prefix: str = "",
                  passage_chars: int = 600, rank_chars: int = 6000) -> None:
    if not hasattr(model, "layers") or not hasattr(model, "embedding"):
        return
    ids = encode(tokenizer, text[:rank_chars])
    long_traces = record_language_model(model, ids)
    if not long_traces:
        return
    long_features = text_features(_display(tokenizer, ids))
    ranking = rank_units(long_traces, long_features, top=12)
    best = best_per_feature(long_traces, long_features)
    start = pick_passage(text, passage_chars)
    passage_ids = encode(tokenizer, text[start:start + passage_chars])
    traces = record_language_model(model, passage_ids)
    units = next(iter(traces.values())).shape[1]
    signals = {}
    for name in [n for n in HOVER if n in traces]:
        signals[name] = {**_quantise(traces[name]), "diverging": name in DIVERGING}
    first = ranking[0] if ranking else {"unit": 0, "signal": "c" if "c" in traces else "h"}
    spec = {"tokens": _display(tokenizer, passage_ids), "units": units, "signals": signals,
            "hover": [n for n in HOVER if n in traces]}
    page.gates.append(spec)
    ranked_units = [r["unit"] for r in ranking]
    options = [f'<option value="{r["unit"]}">unit {r["unit"]}: {escape(r["feature"])} (r = {r["r"]:+.2f}, '
               f'{r["signal"]})</option>' for r in ranking]
    options += [f'<option value="{u}">unit {u}</option>' for u in range(units) if u not in ranked_units]
    options[0] = options[0].replace("<option ", "<option selected ", 1)
    signal_names = {"c": "cell state c (tanh)", "h": "output h", "i": "input gate i", "f": "forget gate f",
                    "o": "output gate o", "g": "candidate g", "r": "reset gate r", "z": "update gate z", "n": "candidate n"}
    sig_options = "".join(f'<option value="{n}"{" selected" if n == first["signal"] else ""}>{escape(signal_names.get(n, n))}'
                          f"</option>" for n in signals)
    rows = "".join(f'<tr data-unit="{r["unit"]}" data-signal="{r["signal"]}"><td>{r["unit"]}</td><td>{r["signal"]}</td>'
                   f'<td>{escape(r["feature"])}</td><td>{r["r"]:+.3f}</td></tr>' for r in ranking)
    best_rows = "".join(f"<tr><td>{escape(f)}</td><td>{b['unit']}</td><td>{b['signal']}</td><td>{b['r']:+.3f}</td></tr>"
                        for f, b in best.items())
    missing = [f for f in FEATURES if f not in best]
    html = f"""<p class="note">Held-out text ({escape(source)}), coloured character by character by one unit of the
last layer: red positive, blue negative (signed values divided by the unit's largest |value| on this passage),
green for a gate's opening (0 to 1). Hover a
character for the unit's gate values; pick a unit or click a row of the ranking. Ranking: Pearson r between
each unit's c or h and a feature of the text read so far, over the first {len(ids)} tokens of the split
(Karpathy, Johnson &amp; Fei-Fei 2015).{(" Features constant on this text: " + escape(", ".join(missing)) + ".") if missing else ""}</p>
<div class="gates" data-gates="{len(page.gates) - 1}">
<div class="controls"><label>unit <select class="unit">{"".join(options)}</select></label>
<label>colour by <select class="signal">{sig_options}</select></label>
<span><span class="scale" style="background:linear-gradient(90deg,#1f77b4,#fff,#d62728)"></span> −1 … +1</span></div>
<div class="passage"></div><div class="hover">hover a character</div>
<div class="grid"><div><h3>Units that follow a text feature</h3><table class="ranking"><tr><th>unit</th><th>signal</th>
<th>feature</th><th>r</th></tr>{rows}</table></div><div><h3>Best unit per feature</h3><table><tr><th>feature</th>
<th>unit</th><th>signal</th><th>r</th></tr>{best_rows}</table></div></div></div>"""
    page.add(f"{prefix}gates", "Inside the LSTM: gates and cells on real text", html)


def _bars(items: list[tuple[str, float]], truth: str | None) -> str:
    top = max((p for _, p in items), default=1.0) or 1.0
    out = []
    for token, p in items:
        shown = token.replace("\n", "↵").replace(" ", "␣") if token.strip() == "" or len(token) == 1 else token
        mark = " truth" if truth is not None and token == truth else ""
        out.append(f'<div class="barrow{mark}"><span class="label" title="{escape(repr(token))}">{escape(shown)}</span>'
                   f'<span class="track"><span class="bar" style="display:block;width:{100 * p / top:.1f}%"></span></span>'
                   f'<span class="p">{p:.3f}</span></div>')
    return "".join(out)


def prompts_from_text(text: str, count: int = 4, length: int = 400) -> list[tuple[str, str]]:
    """``count`` (prompt, true next word) pairs spread over the held-out text, each cut just before a
    plain lower-case word inside a sentence (so the question "which word comes next?" is a fair one)."""
    out = []
    for k in range(1, count + 1):
        match = WORD_START.search(text, int(len(text) * k / (count + 1)))
        if match is None:
            continue
        cut = match.start() + 1  # just after the space: the prompt ends where a word begins
        out.append((text[max(0, cut - length):cut], match.group(1)))
    return out


def predictions_section(page: Page, model, tokenizer, prompts: list[tuple[str, str | None]], *, prefix: str = "",
                        sample: str | None = None) -> None:
    cards = []
    for prompt, truth in prompts:
        ids = encode(tokenizer, prompt)
        if not ids:
            continue
        shown = prompt[-90:].replace("\n", "↵ ")
        body = f"<div><code>…{escape(shown)}</code></div>"
        if tokenizer.level == "char":
            words = next_words(model, ids, tokenizer, k=6)
            chars = next_tokens(model, ids, tokenizer, k=6)
            true_word = truth.rstrip(".,;:)'\"") if truth else None
            body += "<h3>next word</h3>" + _bars(words, true_word) + "<h3>next character</h3>" + _bars(chars, truth[:1] if truth else None)
        else:
            body += "<h3>next token</h3>" + _bars(next_tokens(model, ids, tokenizer, k=8), truth)
        if truth:
            body += f'<div class="note">actual next word: <code>{escape(truth)}</code> (orange bar when it is listed)</div>'
        cards.append(f'<div class="prompt">{body}</div>')
    if not cards:
        return
    html = ('<p class="note">What the model expects after each prompt. Next words of a character model come from a beam '
            "search over characters: p(word) = Π p(character) · p(a non-letter follows).</p>"
            f'<div class="bars">{"".join(cards)}</div>')
    if sample:
        html += f"<h3>A sample from the model</h3><pre>{escape(sample)}</pre>"
    page.add(f"{prefix}next", "Next-token predictions", html)


def lm_sections(page: Page, run_dir: Path, info: dict, prefix: str = "", *, prompts=None) -> str | None:
    """Gate viewer + predictions for an LM run; returns a note when they cannot be shown (else None)."""

    try:
        loaded = load_language_model(run_dir)
    except RnnlabError as error:  # a damaged checkpoint: report the rest, say why this part is missing
        return f"The checkpoint cannot be used ({error}); the gate viewer and the predictions need it."
    if loaded is None:
        return "No checkpoint yet: the gate viewer and the predictions need a saved model."
    model, tokenizer = loaded
    try:
        text, source = heldout_text(info)
    except (RnnlabError, OSError) as error:  # e.g. a relative --data path read from another directory
        return f"The training text cannot be read ({error}); the gate viewer and the predictions show held-out text."
    if len(encode(tokenizer, text)) < 2:
        return "The held-out text is too short to show the gates or predictions."
    gates_section(page, model, tokenizer, text, source, prefix=prefix)
    pairs = [(p, None) for p in prompts] if prompts else prompts_from_text(text)
    start = encode(tokenizer, pairs[0][0])[-200:] if pairs else encode(tokenizer, text[:50])
    generated = model.generate(start, 200 if tokenizer.level == "char" else 50, temperature=0.8, seed=0)
    sample = tokenizer.decode(start[-60:]) + "▌" + tokenizer.decode(generated)
    predictions_section(page, model, tokenizer, pairs, prefix=prefix, sample=sample)
    return None
