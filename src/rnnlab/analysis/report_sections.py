"""Sections of the HTML report built from the plain files of a run directory.

Each builder takes the run directory (and its parsed ``run.json``) and a :class:`Page`, and adds
nothing when the run lacks what it shows, so a partial run reports what it has. Charts are
specs (``{"series": [{"name", "x", "y", "lo"?, "hi"?, "dash"?}], "xlabel", "ylabel", "logx", "logy",
"hline"?}``) drawn by the page's script; tables and text are escaped HTML.
"""
from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from html import escape
from pathlib import Path

import numpy as np

from rnnlab.rundir import LAB_RUNS_JSON, METRICS
from rnnlab.tasks.forecast import SavedForecaster

# metrics.csv columns that are bookkeeping, not metrics to plot
NOT_METRICS = {"step", "epoch", "split", "loss", "lr", "elapsed_s", "cpu_s", "items_per_s", "tokens", "windows", "model",
               "length", "seed"}
LAB_METRICS = ("accuracy", "mse", "copy_accuracy")
METRIC_LABELS = {"accuracy": "held-out accuracy", "mse": "held-out MSE", "copy_accuracy": "accuracy on copied symbols",
                 "bpc": "bits per character", "ppl": "perplexity", "mae": "MAE", "rmse": "RMSE"}


class Page:
    """Collects sections (HTML) and the data the page's script draws (charts, gate viewers)."""

    def __init__(self) -> None:
        self.sections: list[tuple[str, str, str]] = []  # (id, title, html)
        self.charts: list[dict] = []
        self.gates: list[dict] = []

    def chart(self, spec: dict) -> str:
        self.charts.append(spec)
        return f'<div class="chart" data-chart="{len(self.charts) - 1}"></div>'

    def add(self, section_id: str, title: str, html: str) -> None:
        self.sections.append((section_id, title, html))


def number(value) -> float | None:
    """A finite float from a CSV/JSON cell, else None (empty cells, 'nan', text, a truncated last row)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def read_csv(path: Path) -> list[dict]:
    """Rows of a CSV file; [] if it is missing or unreadable (a run killed mid-write keeps what it has)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return [row for row in csv.DictReader(handle) if row]
    except (OSError, csv.Error, UnicodeDecodeError):
        return []


def read_json_file(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def markdown_html(text: str) -> str:
    """The little markdown our summary files use: pipe tables, paragraphs, `code`. Everything escaped."""
    out, rows = [], []

    def flush_table():
        if rows:
            # cells are split on " | " so that a cell may hold a norm such as ||g_1|| / ||g_T||
            cells = [[c.strip().strip("`") for c in r.strip()[1:-1].split(" | ")] for r in rows]
            body = [r for r in cells[1:] if not all(set(c) <= set("-: ") for c in r)]
            out.append(table(cells[0], body))
            rows.clear()

    for line in text.splitlines():
        if line.strip().startswith("|"):
            rows.append(line)
            continue
        flush_table()
        if line.strip():
            out.append(f"<p>{escape(line.strip().lstrip('#').strip())}</p>")
    flush_table()
    return "\n".join(out)


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


# ----------------------------------------------------------------------------- training curves
def curves_section(page: Page, run_dir: Path, info: dict, prefix: str = "") -> None:
    rows = read_csv(run_dir / METRICS)
    if not rows:
        return
    if "model" in rows[0]:
        return _lab_curves(page, rows, info, prefix)
    charts = []
    columns = [c for c in rows[0] if c not in NOT_METRICS]
    for metric in ["loss"] + columns[:3]:
        series = []
        for split in dict.fromkeys(r.get("split") or "" for r in rows):
            points = [(number(r.get("step")), number(r.get(metric))) for r in rows if r.get("split") == split]
            points = [(x, y) for x, y in points if x is not None and y is not None]
            if points:
                series.append({"name": f"{split} {metric}", "x": [p[0] for p in points], "y": [p[1] for p in points],
                               "dash": split != "train"})
        if series:
            label = METRIC_LABELS.get(metric, metric if metric != "loss" else "loss (cross-entropy or MSE)")
            charts.append(page.chart({"title": f"{label} during training", "xlabel": "training step",
                                      "ylabel": label, "series": series, "logy": metric == "ppl"}))
    if charts:
        last = rows[-1]
        note = (f'<p class="note">{len(rows)} logged rows; last at step {escape(str(last.get("step")))} '
                f'(epoch {escape(str(last.get("epoch")))}). Solid: training (running mean since the last log); '
                f'dashed: evaluation on the held-out split.</p>')
        page.add(f"{prefix}curves", "Training and validation curves", note + '<div class="grid">' + "".join(charts) + "</div>")


def _lab_curves(page: Page, rows: list[dict], info: dict, prefix: str) -> None:
    metric = next((m for m in LAB_METRICS if m in rows[0]), "loss")
    seeds = sorted({int(number(r.get("seed")) or 0) for r in rows})
    word = "gap" if (info.get("config") or {}).get("task") == "gap" else "T"
    by_length = defaultdict(lambda: defaultdict(list))
    for r in rows:
        step, value, length = number(r.get("step")), number(r.get(metric)), number(r.get("length"))
        if None in (step, value, length) or int(number(r.get("seed")) or 0) != seeds[0]:
            continue
        by_length[int(length)][r.get("model") or "?"].append((step, value))
    charts = []
    for length in sorted(by_length)[:6]:
        series = [{"name": model, "x": [p[0] for p in pts], "y": [p[1] for p in pts], "markers": True}
                  for model, pts in by_length[length].items()]
        charts.append(page.chart({"title": f"{word} = {length}", "xlabel": "training step",
                                  "ylabel": METRIC_LABELS.get(metric, metric), "series": series,
                                  "logy": metric == "mse"}))
    if charts:
        page.add(f"{prefix}curves", "Learning curves", f'<p class="note">{escape(METRIC_LABELS.get(metric, metric))} '
                 f"on the fixed held-out set at every evaluation, seed {seeds[0]}; a run stops once it has solved "
                 f'its task.</p><div class="grid">' + "".join(charts) + "</div>")


# ----------------------------------------------------------------------------- lab grid: metric against gap
def lab_section(page: Page, run_dir: Path, info: dict, prefix: str = "") -> None:
    runs = read_json_file(run_dir / LAB_RUNS_JSON)
    if not isinstance(runs, list) or not runs or not isinstance(runs[0], dict) or "final" not in runs[0]:
        return
    task = runs[0].get("task", "?")
    metric = runs[0].get("metric", "metric")
    word = "gap" if task == "gap" else "sequence length T"
    lengths = sorted({r["length"] for r in runs if number(r.get("length")) is not None})
    series, rows = [], []
    for model in dict.fromkeys(r.get("model") for r in runs):
        mean, lo, hi = [], [], []
        for n in lengths:
            values = [number(r.get("final")) for r in runs if r.get("model") == model and r.get("length") == n]
            values = [v for v in values if v is not None]
            mean.append(_mean(values))
            lo.append(min(values) if values else None)
            hi.append(max(values) if values else None)
            here = [r for r in runs if r.get("model") == model and r.get("length") == n]
            if here:
                solved = sum(bool(r.get("solved")) for r in here)
                rows.append([model, n, here[0].get("params"), f"{_mean(values):.3f}" if values else "–",
                             f"{solved}/{len(here)}", ", ".join(str(r.get("steps")) for r in here)])
        series.append({"name": model, "x": lengths, "y": mean, "lo": lo, "hi": hi, "markers": True})
    chance = number(runs[0].get("chance"))
    spec = {"title": f"{task}: final {metric} against {word}", "xlabel": word, "ylabel": METRIC_LABELS.get(metric, metric),
            "series": series, "logx": True, "xticks": lengths, "logy": metric == "mse"}
    if chance is not None:
        spec["hline"] = {"y": chance, "label": "chance / baseline"}
    html = ('<p class="note">Each point: mean over seeds of the held-out metric at the end of the run (band: seed '
            "min–max), equal parameter and step budgets. A plain RNN loses the cue as the gap grows; an LSTM "
            'keeps it much longer.</p><div class="grid">' + page.chart(spec)
            + "<div>" + table(["model", word, "params", metric, "solved", "steps"], rows) + "</div></div>")
    page.add(f"{prefix}gap", f"{METRIC_LABELS.get(metric, metric).capitalize()} against {word}, per model", html)
    _steps_to_solve_section(page, runs, info, lengths, word, prefix)


def _steps_to_solve_section(page: Page, runs: list, info: dict, lengths: list, word: str, prefix: str) -> None:
    """Sample complexity: median steps until solved against length; a run not solved counts as the budget."""
    settings = ((info.get("config") or {}).get("settings") or {})
    budget = number(settings.get("steps")) or max((number(r.get("steps")) or 0) for r in runs)
    series = []
    for model in dict.fromkeys(r.get("model") for r in runs):
        y = []
        for n in lengths:
            steps = [number(r.get("solved_step")) if r.get("solved") else budget
                     for r in runs if r.get("model") == model and r.get("length") == n]
            steps = sorted(v for v in steps if v is not None)
            y.append(steps[len(steps) // 2] if steps else None)  # the median seed (upper median)
        series.append({"name": model, "x": lengths, "y": y, "markers": True})
    spec = {"title": f"steps until solved against {word}", "xlabel": word, "ylabel": "training steps until solved",
            "series": series, "logx": True, "logy": True, "xticks": lengths,
            "hline": {"y": budget, "label": f"budget {int(budget):,} steps (not solved)"}}
    html = ('<p class="note">How much training each model needs as the gap grows: the median over seeds of the step '
            "at which the held-out set was first solved; a run that never solved counts as the budget, so a point on "
            "the budget line means most seeds did not solve it.</p>" + page.chart(spec))
    page.add(f"{prefix}steps", f"Steps until solved against {word}, per model", html)


# ----------------------------------------------------------------------------- gradient flow
def gradflow_section(page: Page, run_dir: Path, info: dict, prefix: str = "") -> None:
    rows = read_csv(run_dir / "gradflow.csv")
    if not rows:
        return
    charts = []
    for stage in dict.fromkeys(r.get("stage") for r in rows):
        curves: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in rows:
            if r.get("stage") != stage or number(r.get("distance")) is None:
                continue
            d = int(number(r["distance"]))
            for key, suffix in (("norm_h", ""), ("norm_c", " (cell c)")):
                if number(r.get(key)) is not None:
                    curves[f"{r.get('model')}{suffix}"][d].append(number(r[key]))
        series = []
        for name, by_distance in curves.items():
            xs = sorted(by_distance)
            series.append({"name": name, "x": xs, "y": [_mean(by_distance[x]) for x in xs], "dash": "(cell c)" in name})
        charts.append(page.chart({"title": f"||dL/dh_t|| against distance, {stage}", "xlabel": "distance T − t (steps)",
                                  "ylabel": "mean gradient norm", "logy": True, "series": series}))
    factors = read_csv(run_dir / "gradflow_factors.csv")
    rows_html = ""
    if factors:
        def fmt(v):
            x = number(v)
            return "–" if x is None else f"{x:.4g}"
        rows_html = table(["model", "seed", "stage", "per-step factor ρ (h)", "ρ (c)", "accuracy after training"],
                          [[f.get("model"), f.get("seed"), f.get("stage"), fmt(f.get("factor_h")), fmt(f.get("factor_c")),
                            fmt(f.get("accuracy"))] for f in factors])
    gap = (info.get("config") or {}).get("gap")
    html = (f'<p class="note">Norm of the gradient of the loss at the last step with respect to the hidden state '
            f'T − t steps back, on the long-gap cue task{" with gap " + escape(str(gap)) if gap else ""}, mean over '
            "the probe batch and seeds (log scale: a straight line "
            "is geometric decay, ||dL/dh_t|| ~ ρ^(T−t)). The LSTM's cell state c carries the gradient; "
            "the RNN's vanishes.</p>" + '<div class="grid">' + "".join(charts) + "</div>" + rows_html)
    page.add(f"{prefix}gradflow", "Gradient norm against distance, per cell", html)


# ----------------------------------------------------------------------------- forecasts
def _forecast_history(run_dir: Path, keep: int):
    """(times, {target: values}) of the series a forecaster run forecasts from, or None if it cannot be read."""
    try:

        saved = SavedForecaster(run_dir)
        source = str(saved.spec.get("source") or "")
        series = saved.load(None if source.startswith("builtin:") else source)
    except Exception:  # noqa: BLE001 - history is an extra: a moved CSV or an unfinished run leaves it out
        return None
    target = np.asarray(series.target, dtype=float).reshape(len(series.index), -1)[-keep:]
    return list(series.index[-keep:]), {name: target[:, k] for k, name in enumerate(series.target_names)}


def forecast_section(page: Page, run_dir: Path, info: dict, prefix: str = "") -> None:
    """``forecast.csv`` as ``rnnlab forecast predict`` writes it: ``time``, one column per target and, for
    probabilistic models, ``<target>_lower`` / ``<target>_upper``; history from the run's own series.
    Before it, the run's choice of forecast (run.json ``choice``) and every candidate's scores."""
    _forecast_choice(page, info, prefix)
    rows = read_csv(run_dir / "forecast.csv")
    if not rows:
        return
    columns = [c for c in rows[0] if c != "time"]
    targets = [c for c in columns if not c.endswith(("_lower", "_upper"))]
    history = _forecast_history(run_dir, keep=3 * len(rows))
    level = (info.get("config") or {}).get("level")
    charts = []
    for name in targets[:4]:
        series = []
        if history is not None and name in history[1]:
            values = history[1][name]
            series.append({"name": "history", "x": list(range(-len(values) + 1, 1)),
                           "y": [float(v) if np.isfinite(v) else None for v in values]})
        forecast = {"name": "forecast", "x": list(range(1, len(rows) + 1)), "y": [number(r.get(name)) for r in rows]}
        if f"{name}_lower" in rows[0] and f"{name}_upper" in rows[0]:
            forecast["lo"] = [number(r.get(f"{name}_lower")) for r in rows]
            forecast["hi"] = [number(r.get(f"{name}_upper")) for r in rows]
            forecast["name"] += f" (band: {escape(str(level)) if level else ''} prediction interval)"
        series.append(forecast)
        charts.append(page.chart({"title": f"{name}: forecast from {rows[0].get('time', '?')} to "
                                           f"{rows[-1].get('time', '?')}", "xlabel": "steps after the last observation",
                                  "ylabel": name, "series": series}))
    note = ('<p class="note">History (the end of the series the run forecasts from), the point forecast and, for a '
            "probabilistic model, its prediction interval.</p>")
    page.add(f"{prefix}forecast", "Forecast", note + '<div class="grid">' + "".join(charts) + "</div>")


def _forecast_choice(page: Page, info: dict, prefix: str) -> None:
    """run.json ``choice`` (:mod:`rnnlab.runs.model_choice`): the forecast used, why, and the scores."""
    choice = info.get("choice")
    if not isinstance(choice, dict) or not isinstance(choice.get("validation"), dict):
        return
    results = info.get("results") if isinstance(info.get("results"), dict) else {}
    chosen = str(choice.get("chosen"))
    rows = []
    for name, scores in choice["validation"].items():
        test = results.get("model" if name == "recurrent" else name) or {}
        fmt = [number(scores.get("mase")), number(scores.get("smape")), number(test.get("mase")),
               number(test.get("smape"))]
        rows.append([name + (" (chosen)" if name == chosen else "")]
                    + ["-" if v is None else f"{v:.3f}" for v in fmt])
    used = chosen if chosen != "ensemble" else f"ensemble = (recurrent + {choice.get('ensemble_with')}) / 2"
    note = (f'<p class="note"><b>Forecast used: {escape(used)}</b> — {escape(str(choice.get("reason", "")))}, on '
            f'{escape(str(choice.get("windows", "?")))} validation windows. <code>rnnlab forecast predict</code> uses '
            f"it (<code>--use</code> to override). MASE: mean absolute error over the in-sample MAE of the seasonal "
            f"naive forecast on the training rows (below 1: better than that). The test columns were not used for "
            f"the choice.</p>")
    page.add(f"{prefix}choice", "Forecast choice",
             note + table(["candidate", "valid MASE", "valid sMAPE", "test MASE", "test sMAPE"], rows))


# ----------------------------------------------------------------------------- classification
def _classify_recipe(page: Page, info: dict, prefix: str) -> None:
    """run.json ``recipe`` (:mod:`rnnlab.runs.classify_recipe`): the configuration chosen and why, and
    the cross-validation curve when the epoch budget came from it."""
    recipe = info.get("recipe")
    if not isinstance(recipe, dict):
        return
    augment = recipe.get("augment") if isinstance(recipe.get("augment"), dict) else {}
    rows = [["epoch budget", f"{recipe.get('epoch_choice')}: {recipe.get('epoch_choice_why', '')}"],
            ["epochs", str(recipe.get("epochs_why", recipe.get("epochs", "")))],
            ["length", str(recipe.get("downsample_why", ""))],
            ["normalisation", str(recipe.get("normalisation", ""))],
            ["augmentation", ", ".join(f"{k} {v}" for k, v in augment.items()) or "none"]]
    html = table(["what", "chosen, and why"], rows)
    cv = recipe.get("cv")
    if isinstance(cv, dict) and isinstance(cv.get("accuracy"), list):
        epochs = list(range(1, len(cv["accuracy"]) + 1))
        html += page.chart({"title": f"{cv.get('folds')}-fold cross-validation on the training set",
                            "xlabel": "epoch", "ylabel": "held-out accuracy",
                            "series": [{"name": "held-out accuracy (pooled over folds)", "x": epochs,
                                        "y": [number(v) for v in cv["accuracy"]]}]})
    page.add(f"{prefix}recipe", "Classifier recipe", html)


def confusion_section(page: Page, run_dir: Path, info: dict, prefix: str = "") -> None:
    """run.json ``results.confusion`` (rows: true class, columns: predicted) with ``class_names``, as a
    table shaded by each row's share, plus per-class recall. Before it, the recipe (run.json ``recipe``)."""
    _classify_recipe(page, info, prefix)
    results = info.get("results") if isinstance(info.get("results"), dict) else {}
    matrix, names = results.get("confusion"), results.get("class_names")
    if not (isinstance(matrix, list) and matrix and all(isinstance(r, list) and len(r) == len(matrix) for r in matrix)):
        return
    names = [str(n) for n in names] if isinstance(names, list) and len(names) == len(matrix) else \
        [str(k) for k in range(len(matrix))]
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    body = []
    for name, row in zip(names, matrix):
        total = sum(v for v in row if isinstance(v, (int, float))) or 1
        cells = "".join(f'<td style="background:rgba(76,114,176,{(v or 0) / total:.3f})">{escape(str(v))}</td>'
                        for v in row)
        recall = row[names.index(name)] / total if isinstance(row[names.index(name)], (int, float)) else 0.0
        body.append(f"<tr><th>{escape(name)}</th>{cells}<td>{recall:.3f}</td></tr>")
    accuracy = number(results.get("accuracy"))
    note = (f'<p class="note">{escape(str(results.get("split", "test")))} split'
            f'{f", accuracy {accuracy:.3f}" if accuracy is not None else ""}; rows: true class, columns: '
            f"predicted class, shaded by the share of the row.</p>")
    page.add(f"{prefix}confusion", "Confusion matrix",
             note + f"<table><tr><th>true \\ predicted</th>{head}<th>recall</th></tr>{''.join(body)}</table>")
