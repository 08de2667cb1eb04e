"""Report section of a caption run: scores, and sample scenes whose words show where the decoder looked.

For a few test and compositional scenes the best checkpoint writes a caption; each word is a
``<span>`` holding its attention weights α_t (one per region, rounded to 3 decimals). Hovering a
word shades the image's regions by α_t / max α_t on a canvas laid over the picture and, for a word
that names an object, outlines that object's true box (green when the attention peak lies inside it,
red when not) — the localisation score counted one word at a time. Everything is inline: the images
are base64 PNGs, the script a few lines below; nothing is fetched.
"""
from __future__ import annotations

import base64
import io
import json
from html import escape
from pathlib import Path

import numpy as np

from rnnlab.analysis.report_sections import Page, table
from rnnlab.checkpoint import load_checkpoint
from rnnlab.data.scenes import LABEL_WORDS, build_scenes
from rnnlab.rundir import has_checkpoint
from rnnlab.tasks.caption import generate

SCALE = 3  # pixels of the page per pixel of the scene
SAMPLES = {"test": 6, "compositional": 3}
COLUMNS = [("exact", "exact caption"), ("bleu1", "BLEU-1"), ("bleu2", "BLEU-2"), ("bleu3", "BLEU-3"),
           ("bleu4", "BLEU-4"), ("label", "label"), ("size", "size"), ("colour", "colour"), ("relation", "relation"),
           ("count", "object count"), ("localisation", "localisation (label word)"),
           ("phrase_localisation", "localisation (phrase)")]

STYLE = """<style>
.capgrid { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 14px; }
.capcard { border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
.capimg { position: relative; width: 192px; height: 192px; }
.capimg img, .capimg canvas { position: absolute; left: 0; top: 0; width: 192px; height: 192px;
                              image-rendering: pixelated; }
.capwords { font: 13.5px ui-monospace, Menlo, Consolas, monospace; margin-top: 6px; }
.capword { cursor: default; padding: 0 1px; }
.capword:hover { background: #fff8c5; outline: 1px solid #000; }
.capword.obj { text-decoration: underline; }
.captruth { font-size: 12.5px; color: var(--muted); }
</style>"""

SCRIPT = """<script>
document.querySelectorAll(".capcard").forEach(card => {
  const canvas = card.querySelector("canvas"), ctx = canvas.getContext("2d"), grid = +card.dataset.grid;
  const cell = canvas.width / grid;
  card.querySelectorAll(".capword[data-map]").forEach(word => {
    word.addEventListener("mouseenter", () => {
      const a = JSON.parse(word.dataset.map), top = Math.max(...a);
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      a.forEach((v, i) => {
        ctx.fillStyle = `rgba(255, 120, 0, ${0.75 * v / top})`;
        ctx.fillRect((i % grid) * cell, Math.floor(i / grid) * cell, cell, cell);
      });
      if (word.dataset.box) {
        const [t, l, b, r] = JSON.parse(word.dataset.box), s = +card.dataset.scale;
        ctx.lineWidth = 2; ctx.strokeStyle = word.dataset.hit === "1" ? "#1a7f37" : "#cf222e";
        ctx.strokeRect(l * s, t * s, (r - l) * s, (b - t) * s);
      }
    });
    word.addEventListener("mouseleave", () => ctx.clearRect(0, 0, canvas.width, canvas.height));
  });
});
</script>"""


def _png(image: np.ndarray) -> str:
    from PIL import Image

    rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
    picture = Image.fromarray(rgb).resize((rgb.shape[1] * SCALE, rgb.shape[0] * SCALE), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _card(image, objects, truth: str, caption: str, alpha, grid: int, size: int, where: str) -> str:
    words, k = [], 0
    for t, word in enumerate(caption.split()):
        attrs = ""
        if alpha is not None and t < len(alpha):
            attrs = f' data-map="{escape(json.dumps([round(float(v), 3) for v in alpha[t]]))}"'
            if word in LABEL_WORDS and k < len(objects):
                box = objects[k].box
                r, c = divmod(int(np.argmax(alpha[t])), grid)
                y, x = (r + 0.5) * size / grid, (c + 0.5) * size / grid
                hit = box[0] <= y < box[2] and box[1] <= x < box[3]
                attrs += f' data-box="{list(box)}" data-hit="{int(hit)}"'
        k += word in LABEL_WORDS
        css = "capword obj" if word in LABEL_WORDS else "capword"
        words.append(f'<span class="{css}"{attrs}>{escape(word)}</span>')
    verdict = "exact" if caption == truth else "differs"
    side = size * SCALE
    return (f'<div class="capcard" data-grid="{grid}" data-scale="{SCALE}"><div class="capimg">'
            f'<img alt="scene" src="data:image/png;base64,{_png(image)}"><canvas width="{side}" height="{side}">'
            f'</canvas></div><div class="capwords">{" ".join(words)}</div>'
            f'<div class="captruth">{escape(where)}, {verdict}; truth: {escape(truth)}</div></div>')


def _scores(info: dict) -> str:
    results = info.get("results") or {}
    rows = []
    order = ("train", "valid", "test", "compositional")
    for split, m in sorted(results.items(), key=lambda item: order.index(item[0]) if item[0] in order else 9):
        if not isinstance(m, dict):
            continue
        cells = [split, m.get("scenes", ""), m.get("beam", "")]
        for key, _ in COLUMNS:
            value = m.get(key)
            cells.append("" if value is None else f"{value:.1f}" if key.startswith("bleu") else f"{100 * value:.1f}%")
        rows.append(cells)
    if not rows:
        return ""
    return ("<p>Scores of the best weights on scenes never trained on (attributes: share of true objects stated right, "
            "aligned by reading order; localisation: share of object words whose attention peak lies in the object's "
            "box, at the label word itself or summed over the object's phrase, e.g. 'a large 3').</p>" + table(["split", "scenes", "beam"] + [label for _, label in COLUMNS], rows))


def caption_section(page: Page, run_dir: Path, info: dict, prefix: str = "") -> None:
    """Scores from run.json and, when the run has a checkpoint, sample captions with per-word attention."""
    html = _scores(info)
    if has_checkpoint(run_dir):
        model = load_checkpoint(run_dir).model.eval()  # the report reads the run; it needs no run module
        stored = (info.get("config") or {}).get("run") or {}
        kind, data_seed = stored.get("scenes", "digits"), stored.get("data_seed", 0)
        grid, size = model.encoder.grid, model.config.image_size
        cards = []
        for split, count in SAMPLES.items():
            scenes = build_scenes(kind, split, count, data_seed)  # the first scenes of the run's split
            captions, attention = generate(model, scenes.images)
            for i in range(count):
                alpha = attention[i] if model.config.attention else None
                cards.append(_card(scenes.images[i], scenes.objects[i], scenes.captions[i], captions[i], alpha,
                                   grid, size, split))
        note = ("Hover a word to see its attention over the image (darker orange: more weight); underlined words "
                "name an object, whose true box is outlined green when the attention peak falls inside it, red when "
                "not." if model.config.attention else
                "This decoder has no attention (the image enters through the initial state only), so there are no maps.")
        html += (f'{STYLE}<h3>Sample captions (greedy)</h3><p class="note">{escape(note)}</p>'
                 f'<div class="capgrid">{"".join(cards)}</div>{SCRIPT}')
    if html:
        page.add(f"{prefix}captions", "Captions and attention", html)
