"""Report sections of a translation run, read from ``translations-<split>.json`` (written by ``rnnlab evaluate``).

* **Translation scores**: BLEU and chrF of greedy and beam search, with sacreBLEU's signatures.
* **BLEU by source length**: a chart and a table per length bucket (attention-free models fall off
  with length; attention holds up).
* **Attention**: one matrix per sample sentence, target words down, source words across, each cell
  shaded by its weight; hovering a cell shows "source → target: weight" (plain ``title`` tooltips, so
  it works offline in any browser). Beside it the references, the greedy and the beam output.

Nothing is drawn when the file is missing (a run still training reports its curves only).
"""
from __future__ import annotations

from html import escape
from pathlib import Path

from rnnlab.analysis.report_sections import Page, number, read_json_file, table

SPLITS = ("test", "valid", "train")


def _load(run_dir: Path) -> dict | None:
    for split in SPLITS:
        data = read_json_file(run_dir / f"translations-{split}.json")
        if isinstance(data, dict) and isinstance(data.get("scores"), dict):
            return data
    return None


def attention_matrix(source: list[str], target: list[str], weights: list[list[float]]) -> str:
    """An HTML table: rows = produced target words, columns = source words, cells shaded by weight."""
    head = "".join(f'<th class="src">{escape(w)}</th>' for w in source)
    rows = []
    for word, row in zip(target, weights):
        cells = []
        for src, weight in zip(source, row):
            w = number(weight) or 0.0
            colour = f"rgba(76,114,176,{min(max(w, 0.0), 1.0):.3f})"
            tip = escape(f"{src} → {word}: {w:.3f}", quote=True)
            cells.append(f'<td title="{tip}" style="background:{colour};width:1.6em;height:1.4em"></td>')
        rows.append(f"<tr><th>{escape(word)}</th>{''.join(cells)}</tr>")
    return (f'<table class="attention"><tr><th></th>{head}</tr>{"".join(rows)}</table>')


def _scores(page: Page, data: dict, prefix: str) -> None:
    rows, signatures = [], set()
    for name, s in data["scores"].items():
        rows.append([name, f"{number(s.get('bleu')) or 0:.2f}", f"{number(s.get('chrf')) or 0:.2f}",
                     f"{number(s.get('cpu_s')) or 0:.1f}"])
        signatures.add(f"BLEU {s.get('bleu_signature', '?')}; chrF {s.get('chrf_signature', '?')}")
    note = (f'<p class="note">{escape(str(data.get("split")))} split: {data.get("sources")} distinct source sentences '
            f'scored against all their {data.get("references")} references (split by source sentence: no test source '
            f"was seen in training). Text is normalised as in training (lower-cased, punctuation split).</p>")
    sig = "".join(f'<p class="note"><code>{escape(s)}</code></p>' for s in sorted(signatures))
    page.add(f"{prefix}translation-scores", "Translation scores",
             note + table(["search", "BLEU", "chrF", "decoding CPU-s"], rows) + sig)


def _buckets(page: Page, data: dict, prefix: str) -> None:
    buckets = data.get("buckets")
    if not isinstance(buckets, dict) or not buckets:
        return
    series, rows = [], {}
    for name, items in buckets.items():
        xs, ys = [], []
        for b in items:
            label = f"{b['low']}–{b['high']}" if b["high"] < 10_000 else f"{b['low']}+"
            rows.setdefault(label, {"sentences": b["sentences"]})[name] = b["bleu"]
            xs.append((b["low"] + min(b["high"], b["low"] + 9)) / 2)
            ys.append(b["bleu"])
        series.append({"name": name, "x": xs, "y": ys})
    names = list(buckets)
    chart = page.chart({"series": series, "xlabel": "source length (tokens, bucket middle)", "ylabel": "BLEU"})
    body = [[label, r["sentences"], *(f"{r[n]:.1f}" if n in r else "–" for n in names)] for label, r in rows.items()]
    page.add(f"{prefix}translation-length", "BLEU by source length",
             chart + table(["source tokens", "sentences", *(f"BLEU {n}" for n in names)], body))


def _samples(page: Page, data: dict, prefix: str) -> None:
    samples = [s for s in data.get("samples") or [] if isinstance(s, dict)]
    if not samples:
        return
    parts = []
    for s in samples:
        refs = "".join(f"<li>{escape(r)}</li>" for r in s.get("references", []))
        text = (f'<p><b>{escape(" ".join(s.get("source", [])))}</b><br>beam: {escape(s.get("beam", ""))}<br>'
                f'greedy: {escape(s.get("greedy", ""))}</p><ul class="note">{refs}</ul>')
        if s.get("attention"):
            text += attention_matrix(s["source"], s["target"], s["attention"])
        parts.append(f'<div class="sample">{text}</div>')
    note = ('<p class="note">Sample test sentences: the beam output, the greedy output and the references; the '
            "matrix shows where the decoder attended for each word it produced (hover a cell for the weight).</p>")
    title = "Attention" if any(s.get("attention") for s in samples) else "Sample translations"
    page.add(f"{prefix}translation-samples", title, note + '<div class="grid">' + "".join(parts) + "</div>")


def translate_sections(page: Page, run_dir: Path, info: dict, prefix: str = "") -> None:
    """Scores, BLEU by source length, samples with attention (module docstring)."""
    data = _load(Path(run_dir))
    if data is None:
        return
    _scores(page, data, prefix)
    _buckets(page, data, prefix)
    _samples(page, data, prefix)
