"""The speech run's part of the report, and its figure of spectrograms with CTC posteriors.

:func:`posteriors_figure` draws, for each utterance, its (normalised) log-mel frames above the
acoustic model's per-frame posteriors ``y[t, k]`` (one line per digit, the blank dashed), with the
reference and the decoded digits in the title. :func:`speech_sections` (``KIND_SECTIONS["speech"]``)
adds the test results of ``run.json``: overall and per-speaker digit error rate (or accuracy for
isolated digits), the digit confusion (rows spoken, columns recognised, with insertions and
deletions) and the figures the run wrote.
"""
from __future__ import annotations

import base64
from html import escape
from pathlib import Path

import numpy as np

from rnnlab.analysis.plots import plt
from rnnlab.analysis.report_sections import Page, number, table

__all__ = ["posteriors_figure", "speech_sections"]

FIGURES = ("speech_samples.png", "confusion.png")


def posteriors_figure(frames: list, posteriors: list, references: list, hypotheses: list, hop_s: float, stack: int):
    """One column per utterance: features ``(T, F)`` on top, posteriors ``exp(log y) (T', C)`` below."""
    n = len(frames)
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 5.0), squeeze=False, sharex="col")
    colours = plt.get_cmap("tab10")
    for j in range(n):
        f = np.asarray(frames[j])
        duration = len(f) * hop_s
        axes[0, j].imshow(f.T, origin="lower", aspect="auto", extent=(0, duration, 0, f.shape[1]), cmap="magma")
        axes[0, j].set_title(f"said {' '.join(map(str, references[j]))}\nheard {' '.join(map(str, hypotheses[j]))}",
                             fontsize=9)
        axes[0, j].set_ylabel("mel band" if j == 0 else "")
        y = np.exp(np.asarray(posteriors[j]))
        t = (np.arange(len(y)) + 0.5) * hop_s * stack
        axes[1, j].plot(t, y[:, 0], color="0.6", linestyle="--", linewidth=0.8, label="blank")
        for k in range(1, y.shape[1]):
            if y[:, k].max() > 0.05:
                axes[1, j].plot(t, y[:, k], color=colours((k - 1) % 10), linewidth=1.2, label=str(k - 1))
        axes[1, j].set_ylim(0, 1.02)
        axes[1, j].set_xlabel("seconds")
        axes[1, j].set_ylabel("posterior" if j == 0 else "")
        axes[1, j].legend(fontsize=7, ncol=4, loc="upper right")
    fig.tight_layout()
    return fig


def _image(path: Path) -> str:
    data = path.read_bytes()
    return (f'<figure><img alt="{escape(path.name)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'
            f"<figcaption>{escape(path.name)}</figcaption></figure>")


def speech_sections(page: Page, run_dir: Path, info: dict, prefix: str = "") -> None:
    """Test scores, per-speaker errors, digit confusion and the run's figures (nothing if absent)."""
    results = info.get("results") if isinstance(info.get("results"), dict) else {}
    if not results:
        return
    isolated = results.get("task") == "isolated"
    metric = "accuracy" if isolated else "digit error rate"

    def value(m: dict) -> str:
        x = number(m.get("der"))
        if x is None:
            return "?"
        return f"{1 - x:.2%}" if isolated else f"{x:.2%}"

    rows = [["all", value(results), f"{number(results.get('ser')) or 0:.2%}", results.get("digits", "")]]
    per_speaker = results.get("per_speaker") if isinstance(results.get("per_speaker"), dict) else {}
    rows += [[s, value(m), f"{number(m.get('ser')) or 0:.2%}", m.get("digits", "")] for s, m in per_speaker.items()
             if isinstance(m, dict)]
    note = (f'<p class="note">{escape(str(results.get("split", "test")))} set of split '
            f'{escape(str(results.get("data_split", "?")))}, task {escape(str(results.get("task", "?")))}. '
            + ("" if isolated else "Digit error rate = (substitutions + deletions + insertions) / spoken digits; "
               "utterance error = share of utterances with any mistake.") + "</p>")
    html = note + table(["speaker", metric, "utterance error", "digits"], rows)
    matrix = results.get("digit_confusion")
    if isinstance(matrix, list) and len(matrix) == 11:
        names = [str(d) for d in range(10)] + ["ins" if not isolated else "-"]
        head = "".join(f"<th>{escape(n)}</th>" for n in names[:10]) + "<th>del</th>"
        body = []
        for name, row in zip(names, matrix):
            total = sum(row) or 1
            cells = "".join(f'<td style="background:rgba(76,114,176,{v / total:.3f})">{v}</td>' for v in row)
            body.append(f"<tr><th>{escape(name)}</th>{cells}</tr>")
        html += ("<h3>Digit confusion</h3><p class=\"note\">Rows: spoken digit (last row: inserted digits); "
                 "columns: recognised digit (last column: deleted), from the minimum-edit alignment.</p>"
                 f"<table><tr><th>spoken \\ heard</th>{head}</tr>{''.join(body)}</table>")
    figures = [_image(run_dir / name) for name in FIGURES if (run_dir / name).is_file()]
    if figures:
        html += ("<h3>Spectrograms and CTC posteriors</h3><p class=\"note\">Log-mel frames of test utterances and "
                 "the per-frame posterior of each digit (blank dashed): CTC fires one narrow spike per digit.</p>"
                 f'<div class="grid">{"".join(figures)}</div>')
    page.add(f"{prefix}speech", "Speech recognition: test results", html)
