"""A self-contained HTML report of a run directory: one file, opens offline from disk.

:func:`build_report` reads what the run wrote (``run.json``, ``metrics.csv``, ``runs.json``,
``gradflow.csv``, ``forecast.csv``, the best checkpoint, PNG plots) and writes ``report.html`` with
the style sheet, script, data and images inline (PNG as base64 ``data:`` URIs; charts drawn as SVG
by a small script; no framework, nothing fetched). Sections appear only when the run has what they
show, so an interrupted run reports what it has:

=========================  =============================================================
section                    shown when the run has
=========================  =============================================================
overview                   always (kind, command, config, summary.md, final numbers)
training curves            ``metrics.csv``
metric against gap         ``runs.json`` of a lab grid
gradient flow              ``gradflow.csv`` (``rnnlab lab gradflow``)
gate viewer, predictions   a language-model checkpoint with its tokenizer
forecast                   ``forecast.csv``
confusion matrix           ``results.confusion`` in run.json (``rnnlab classify``)
figures                    ``*.png``
=========================  =============================================================

A ``demo`` run holds other runs in sub-directories (``run.json`` ``"parts"``: a list of [name, path]);
each part's sections follow in that order, its run details folded at its end. A run.json ``"table"``
(``{"title", "columns", "rows"}``) is shown at the top of the overview.
"""
from __future__ import annotations

import base64
import importlib
import json
from datetime import datetime, timezone
from html import escape
from pathlib import Path

from rnnlab.analysis import report_sections as sections
from rnnlab.analysis.report_assets import CSS, JS
from rnnlab.analysis.report_lm import lm_sections
from rnnlab.analysis.report_sections import Page
from rnnlab.errors import RunDirError
from rnnlab.io import atomic_write_bytes
from rnnlab.rundir import read_run

MAX_IMAGE_BYTES = 1_500_000  # larger PNGs are skipped, to keep the page light

# Sections of one kind of run: kind -> "module:function", called as function(page, run_dir, info, prefix)
# after the shared sections (lab grid, gradient flow, training curves). Add a line for a new job.
KIND_SECTIONS = {
    "translate": "rnnlab.analysis.report_translate:translate_sections",
    "caption": "rnnlab.analysis.report_caption:caption_section",
    "speech": "rnnlab.analysis.report_speech:speech_sections",
}


def _overview(page: Page, run_dir: Path, info: dict, prefix: str, title: str, *, folded: bool = False) -> None:
    """Kind, command, final numbers, the run's summary table(s) and its configuration."""
    rows = [["kind", info.get("kind")], ["created", info.get("created", "?")], ["command", info.get("command", "")]]
    known = {"format", "version", "kind", "created", "command", "config", "parts", "prompts", "table"}

    def flat(value: dict) -> str:
        return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items()
                         if not isinstance(v, (dict, list)))

    for key, value in info.items():
        if key in known:
            continue
        if not isinstance(value, (dict, list)):
            rows.append([key, value])
        elif isinstance(value, dict):
            if any(not isinstance(v, (dict, list)) for v in value.values()):
                rows.append([key, flat(value)])
            rows += [[f"{key}: {k}", flat(v)] for k, v in value.items() if isinstance(v, dict) and flat(v)]
    html = ""
    grid = info.get("table")  # {"title", "columns": [...], "rows": [[...], ...]}: a summary in the run's own order
    if isinstance(grid, dict) and isinstance(grid.get("columns"), list) and isinstance(grid.get("rows"), list):
        html += f"<h3>{escape(str(grid.get('title', '')))}</h3>" + sections.table(grid["columns"], grid["rows"])
    details = sections.table(["", ""], rows).replace("<tr><th></th><th></th></tr>", "")
    summary = run_dir / "summary.md"
    if summary.is_file():
        details += sections.markdown_html(summary.read_text(encoding="utf-8", errors="replace"))
    if info.get("config"):
        details += (f"<details><summary>configuration</summary><pre>{escape(json.dumps(info['config'], indent=1))}"
                    f"</pre></details>")
    html += f"<details><summary>run details</summary>{details}</details>" if folded else details
    page.add(f"{prefix}overview", title, html)


def _parts(info: dict) -> list[tuple[str, str]]:
    """A demo's parts in order: ``"parts"`` is a list of [name, path] (or a name -> path object)."""
    parts = info.get("parts") or []
    items = parts.items() if isinstance(parts, dict) else parts
    return [(str(p[0]), str(p[1])) for p in items if isinstance(p, (list, tuple)) and len(p) == 2]


def _figures(page: Page, run_dir: Path, prefix: str) -> None:
    figures = []
    for png in sorted(run_dir.glob("*.png")):
        data = png.read_bytes()
        if len(data) > MAX_IMAGE_BYTES or not data.startswith(b"\x89PNG"):
            continue
        figures.append(f'<figure><img alt="{escape(png.name)}" src="data:image/png;base64,'
                       f'{base64.b64encode(data).decode("ascii")}"><figcaption>{escape(png.name)}</figcaption></figure>')
    if figures:
        page.add(f"{prefix}figures", "Figures written by the run",
                 f"<details><summary>{len(figures)} PNG file(s) from the run directory, as the run drew them</summary>"
                 f'<div class="grid">{"".join(figures)}</div></details>')


def _run_sections(page: Page, run_dir: Path, info: dict, prefix: str = "", title: str = "Overview",
                  prompts: list | None = None, part: bool = False) -> None:
    """Every section the run has: results first, then (for a demo's part, folded) its details."""

    if not part:
        _overview(page, run_dir, info, prefix, title)
    before = len(page.sections)
    sections.lab_section(page, run_dir, info, prefix)
    sections.gradflow_section(page, run_dir, info, prefix)
    sections.curves_section(page, run_dir, info, prefix)
    if info.get("kind") == "lm":
        note = lm_sections(page, run_dir, info, prefix, prompts=info.get("prompts") or prompts)
        if note:
            page.add(f"{prefix}pending", "Not yet available", f'<p class="note">{escape(note)}</p>')
    sections.forecast_section(page, run_dir, info, prefix)
    sections.confusion_section(page, run_dir, info, prefix)
    if info.get("kind") in KIND_SECTIONS:
        module, function = KIND_SECTIONS[info["kind"]].split(":")
        getattr(importlib.import_module(module), function)(page, run_dir, info, prefix)
    _figures(page, run_dir, prefix)
    if len(page.sections) == before:
        page.add(f"{prefix}empty", "No results yet",
                 '<p class="note">The run has written its description but no results so far.</p>')
    if part:
        _overview(page, run_dir, info, prefix, title, folded=True)


def collect(run_dir: str | Path) -> tuple[dict, Page]:
    """Read ``run_dir`` and build every section; returns (run.json, page)."""
    run_dir = Path(run_dir)
    info = read_run(run_dir)
    page = Page()
    if info["kind"] != "demo":
        _run_sections(page, run_dir, info)
        return info, page
    _overview(page, run_dir, info, "", "Overview")
    for name, sub in _parts(info):
        part = run_dir / sub
        try:
            part_info = read_run(part)
        except RunDirError as error:  # a part the demo had not reached yet, or that failed
            page.add(f"{name}-missing", f"{name}: not available", f'<p class="note">{escape(str(error))}</p>')
            continue
        _run_sections(page, part, part_info, prefix=f"{name}-", title=f"{name}: run details",
                      prompts=info.get("prompts"), part=True)
    _figures(page, run_dir, "")
    return info, page


def render(info: dict, page: Page, run_dir: Path) -> str:
    nav = "".join(f'<a href="#{escape(sid)}">{escape(title)}</a>' for sid, title, _ in page.sections
                  if not sid.endswith(("overview", "figures")) or sid == "overview")
    body = "\n".join(f'<section id="{escape(sid)}"><h2>{escape(title)}</h2>\n{html}\n</section>'
                     for sid, title, html in page.sections)
    data = json.dumps({"charts": page.charts, "gates": page.gates}, separators=(",", ":"))
    data = data.replace("</", "<\\/").replace("<!--", "<\\u0021--")  # cannot close the script element early
    made = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>rnnlab report: {escape(run_dir.name)}</title><style>{CSS}</style></head>
<body><header><h1>rnnlab report: {escape(run_dir.name)}</h1>
<p>{escape(str(info.get("kind")))} run, created {escape(str(info.get("created", "?")))}; page made {made}.</p>
<nav>{nav}</nav></header>
<main>{body}</main>
<script type="application/json" id="report-data">{data}</script>
<script>{JS}</script></body></html>
"""


def build_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of ``run_dir`` to ``out`` (default ``run_dir/report.html``) and return its path."""
    run_dir = Path(run_dir)
    info, page = collect(run_dir)
    path = Path(out) if out is not None else run_dir / "report.html"
    atomic_write_bytes(path, render(info, page, run_dir).encode("utf-8"))
    return path
