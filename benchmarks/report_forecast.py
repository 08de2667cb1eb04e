"""Turn benchmarks/results/forecast_runs.jsonl into benchmarks/results/forecast.md.

Called by ``python benchmarks/forecast.py report``. Published numbers are from the papers
(standardised MSE, ETT multivariate protocol); every other number comes from the JSON lines.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

HORIZONS = [96, 192, 336, 720]
PUBLISHED = {  # MSE on ETT, multivariate, look-back 336 (DLinear, PatchTST/64: 512) / 720 (SegRNN)
    "ETTh1": {"DLinear (Zeng et al. 2023)": [.375, .405, .439, .472],
              "PatchTST/64 (Nie et al. 2023)": [.370, .413, .422, .447],
              "SegRNN (Lin et al. 2023)": [.368, .408, .444, .446]},
    "ETTh2": {"DLinear (Zeng et al. 2023)": [.289, .383, .448, .605],
              "PatchTST/64 (Nie et al. 2023)": [.274, .341, .329, .379],
              "SegRNN (Lin et al. 2023)": [.278, .359, .421, .432]},
}
NAMES = {"naive": "naive (last value)", "seasonal_naive": "seasonal naive",
         "linear": "linear, ridge least squares (ours)"}


def _label(entry: dict) -> str:
    if not entry["model"].startswith("segrnn"):
        return NAMES.get(entry["model"], entry["model"])
    c = entry["config"]
    return f"{entry['model']} d={c['hidden']} ≤{c['max_epochs']} ep (ours)"


def ett_section(entries: list[dict]) -> list[str]:
    lines = ["## ETT long-horizon benchmark (multivariate, 12/4/4 months, standardised MSE / MAE)", ""]
    for data in ("ETTh1", "ETTh2"):
        rows: dict[str, dict[int, dict]] = defaultdict(dict)
        for e in entries:
            if e["part"] == "ett" and e["data"] == data and e["model"] != "dlinear":  # dlinear: dropped, = linear
                rows[_label(e)][e["horizon"]] = e  # a later run of the same configuration wins
        if not rows:
            continue
        lines += [f"### {data}", "", "| model | " + " | ".join(f"{h} MSE / MAE" for h in HORIZONS) + " |",
                  "| --- |" + " --- |" * len(HORIZONS)]
        for label, values in PUBLISHED[data].items():
            lines.append(f"| {label} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
        for label, by_h in rows.items():
            cells = [f"{by_h[h]['mse']:.4f} / {by_h[h]['mae']:.4f}" if h in by_h else "not run" for h in HORIZONS]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        dlinear = PUBLISHED[data]["DLinear (Zeng et al. 2023)"]
        segrnn = PUBLISHED[data]["SegRNN (Lin et al. 2023)"]
        for label, by_h in rows.items():
            if "segrnn" not in label:
                continue
            done = [h for h in HORIZONS if h in by_h]
            beat_d = [h for h in done if by_h[h]["mse"] < dlinear[HORIZONS.index(h)]]
            beat_s = [h for h in done if by_h[h]["mse"] <= segrnn[HORIZONS.index(h)]]
            wall = sum(by_h[h]["wall_s"] for h in done)
            lines.append("")
            lines.append(f"- {label}: below DLinear's MSE at horizons {beat_d or 'none'} of {done}; at or below "
                         f"SegRNN's at {beat_s or 'none'}; training + test wall time {wall / 60:.0f} min for "
                         f"{len(done)} horizons; epochs run {[by_h[h]['epochs'] for h in done]}.")
        lines.append("")
    return lines


def series_section(entries: list[dict]) -> list[str]:
    latest = {(e["data"], e["model"]): e for e in entries if e["part"] == "series" and e["model"] != "dlinear"}
    rows = list(latest.values())  # a rerun replaces earlier rows of the same series and model
    if not rows:
        return []
    lines = ["## Built-in single series: rolling-origin backtest", "",
             "One model fitted on the first 70% (10% more for early stopping); a forecast from every origin of "
             "the last 20% (all test windows). MASE uses the in-sample seasonal-naive MAE at the seasonal period "
             "(52 weeks for CO2, 11 years for sunspots) as its scale; sMAPE in percent; both on the original "
             "scale. Coverage: share of actual values inside the 10%-90% quantile band (nominal 0.80).", "",
             "| series | horizon / look-back | model | MASE | sMAPE % | MSE (std.) | coverage | wall s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    rows.sort(key=lambda e: (e["data"], e["model"]))
    for e in rows:
        cover = f"{e['coverage']:.3f}" if "coverage" in e else "-"
        wall = f"{e['wall_s']:.0f}" if e.get("wall_s") else "-"
        lines.append(f"| {e['data']} | {e['horizon']} / {e['lookback']} | {NAMES.get(e['model'], e['model'])} | "
                     f"{e['mase']:.3f} | {e['smape']:.2f} | {e['mse']:.4f} | {cover} | {wall} |")
    return lines + [""]


def classify_section(entries: list[dict]) -> list[str]:
    rows = [e for e in entries if e["part"] == "classify"]
    if not rows:
        return []
    lines = ["## JapaneseVowels (UEA/UCI; 9 speakers, 12 LPC coefficients, lengths 7-29)", "",
             "Train on 230 of the 270 training utterances (40 held out for early stopping), test on all 370.", "",
             "| model | seed | test accuracy | epochs | wall s |", "| --- | --- | --- | --- | --- |"]
    for e in rows:
        lines.append(f"| {e['model']} (hidden 64) | {e['seed']} | {e['accuracy']:.4f} | {e['epochs']} | "
                     f"{e['wall_s']:.0f} |")
    return lines + [""]


def write_report(runs: Path, out: Path) -> None:
    entries = [json.loads(line) for line in open(runs)] if runs.exists() else []
    machines = sorted({e["machine"] for e in entries})
    commands = sorted({e["command"] for e in entries})
    dates = sorted(e["date"] for e in entries)
    lines = ["# Forecasting and sequence classification", "",
             "Generated by `python benchmarks/forecast.py report` from `forecast_runs.jsonl`.", "",
             f"- machine: {'; '.join(machines)} (shared with other jobs: wall times are upper bounds)",
             f"- dates: {dates[0] if dates else '-'} .. {dates[-1] if dates else '-'}",
             "- commands:", *[f"  - `{c}`" for c in commands], ""]
    lines += ett_section(entries) + series_section(entries) + classify_section(entries)
    notes = Path(__file__).with_name("forecast_notes.md")
    if notes.exists():
        lines += [notes.read_text().strip(), ""]
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
