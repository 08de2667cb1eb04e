"""Tables and plots of a lab grid: ``RunResult`` rows in, markdown text and PNG files out."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from rnnlab.analysis.plots import learning_curves, metric_by_length, save_png, steps_to_solve
from rnnlab.errors import RunDirError
from rnnlab.rundir import LAB_RUNS_JSON, METRICS
from rnnlab.tasks.lab import RunResult, make_task

LABELS = {"accuracy": "held-out accuracy", "mse": "held-out MSE", "copy_accuracy": "accuracy on copied symbols"}
LENGTH_WORD = {"gap": "gap", "adding": "T", "copy": "T", "order": "T"}


def _grid(results):
    models = list(dict.fromkeys(r.model for r in results))
    lengths = sorted({r.length for r in results})
    seeds = sorted({r.seed for r in results})
    return models, lengths, seeds


def metric_chance(result) -> float:
    """Chance level of the reported metric: ``result.chance`` is the task's (for copy memory the
    cross-entropy baseline), so the copy accuracy's chance, 1 / num_symbols, comes from the task."""
    if result.metric != "copy_accuracy":
        return result.chance

    return 1.0 / make_task(result.task, result.length, 0).num_symbols


def metric_table(results, attribute: str = "final"):
    """model -> (L, S) array of ``attribute`` (NaN where a run is missing)."""
    models, lengths, seeds = _grid(results)
    table = {m: np.full((len(lengths), len(seeds)), np.nan) for m in models}
    for r in results:
        table[r.model][lengths.index(r.length), seeds.index(r.seed)] = getattr(r, attribute)
    return lengths, table


def summary_markdown(results) -> str:
    """A markdown table: per model and length, the metric over seeds, solved runs and steps taken."""
    if not results:
        return "no runs\n"
    models, lengths, seeds = _grid(results)
    task, metric, chance = results[0].task, results[0].metric, metric_chance(results[0])
    word = LENGTH_WORD.get(task, "length")
    lines = [f"Task `{task}`, metric: {LABELS.get(metric, metric)} at the end of each run "
             f"(chance/baseline {chance:.4g}); {len(seeds)} seed(s): {', '.join(map(str, seeds))}.", "",
             "| model | params | hidden | " + " | ".join(f"{word}={n}" for n in lengths) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in lengths) + " |"]
    for model in models:
        runs = [r for r in results if r.model == model]
        cells = []
        for n in lengths:
            here = [r for r in runs if r.length == n]
            if not here:
                cells.append("–")
                continue
            values = np.array([r.final for r in here])
            solved = [r for r in here if r.solved]
            text = f"{values.mean():.3f}" + (f" [{values.min():.3f}–{values.max():.3f}]" if len(here) > 1 else "")
            if metric == "copy_accuracy":  # the cross-entropy per step against the baseline 10 ln 8 / (T + 20)
                text += f", CE {np.mean([r.final_loss for r in here]):.4f} (baseline {here[0].chance:.4f})"
            text += f", {len(solved)}/{len(here)} solved"
            if solved:
                text += f" @ {int(np.median([r.solved_step for r in solved]))} steps"
            cells.append(text)
        hidden = sorted({r.hidden for r in runs})
        params = sorted({r.params for r in runs})
        lines.append(f"| {model} | {'/'.join(map(str, params))} | {'/'.join(map(str, hidden))} | "
                     + " | ".join(cells) + " |")
    wall = sum(r.wall_s for r in results)
    solved = ", ".join(f"{m} {largest_solved(results, m) or '–'}" for m in models)
    lines += ["", "Cells: mean [min–max over seeds], runs solved / runs, median steps to solve.",
              f"Largest {word} solved by every seed: {solved}.",
              f"Total training wall time {wall:.0f} s over {len(results)} runs.", ""]
    return "\n".join(lines)


def plot_grid(results, out_dir: str | Path, budget: int | None = None) -> list[Path]:
    """``<task>_<metric>.png`` (final metric against length, seed spread), ``<task>_curves.png`` and
    ``<task>_steps.png`` (steps until solved against length; ``budget``: the runs' step budget, by default
    the longest run)."""


    if not results:
        return []
    out, task, metric = Path(out_dir), results[0].task, results[0].metric
    lengths, table = metric_table(results)
    word = LENGTH_WORD.get(task, "length")
    fig = metric_by_length(lengths, table, ylabel=LABELS.get(metric, metric), chance=metric_chance(results[0]),
                           xlabel=f"{word} (steps)", title=f"{task}: final {metric} (band: seed min–max)",
                           logy=metric == "mse")
    paths = [out / f"{task}_{metric}.png"]
    save_png(fig, paths[0])
    first = [r for r in results if r.curve and r.seed == min(x.seed for x in results)]
    models = list(dict.fromkeys(r.model for r in results))
    curves, styles = {}, {}
    for r in first:  # colour = model, line style = length
        name = f"{r.model} {word}={r.length}"
        curves[name] = ([s for s, _ in r.curve], [v for _, v in r.curve])
        styles[name] = {"color": f"C{models.index(r.model) % 10}",
                        "linestyle": ("-", "--", ":", "-.")[lengths.index(r.length) % 4]}
    if curves:
        fig = learning_curves(curves, ylabel=LABELS.get(metric, metric), chance=metric_chance(results[0]), styles=styles,
                              title=f"{task}: held-out {metric} during training (first seed)", logy=metric == "mse")
        paths.append(out / f"{task}_curves.png")
        save_png(fig, paths[-1])
    budget = budget or max(r.steps for r in results)
    fig = steps_to_solve(lengths, solved_step_table(results), budget=budget, xlabel=f"{word} (steps)",
                         title=f"{task}: steps until solved (median over seeds; open = not solved)")
    paths.append(out / f"{task}_steps.png")
    save_png(fig, paths[-1])
    return paths


def solved_step_table(results) -> dict:
    """model -> (L, S) array of the step at which each run was solved (inf: not solved; NaN: not run)."""
    lengths, _ = metric_table(results)
    models = list(dict.fromkeys(r.model for r in results))
    seeds = sorted({r.seed for r in results})
    table = {m: np.full((len(lengths), len(seeds)), np.nan) for m in models}
    for r in results:
        solved = r.solved and r.solved_step is not None
        table[r.model][lengths.index(r.length), seeds.index(r.seed)] = r.solved_step if solved else np.inf
    return table


def largest_solved(results, model: str) -> int | None:
    """The largest length at which every seed of ``model`` solved the task (None if none)."""
    lengths = sorted({r.length for r in results if r.model == model})
    best = None
    for n in lengths:
        runs = [r for r in results if r.model == model and r.length == n]
        if runs and all(r.solved for r in runs):
            best = n
    return best


def load_results(path: str | Path) -> list:
    """Read a grid's ``runs.json`` (or its directory) back into ``RunResult`` rows."""


    path = Path(path)
    path = path / LAB_RUNS_JSON if path.is_dir() else path
    if not path.exists():
        raise RunDirError(f"no lab results at {path} (expected the runs.json a lab grid writes)")
    rows = json.loads(path.read_text())
    if rows and "final_loss" not in rows[0] and (path.parent / METRICS).exists():
        # Written before runs.json had final_loss: take each run's last held-out loss from metrics.csv.

        with open(path.parent / METRICS, newline="") as handle:
            last = {(m["model"], int(m["length"]), int(m["seed"])): float(m["loss"]) for m in csv.DictReader(handle)}
        for row in rows:
            row["final_loss"] = last.get((row["model"], row["length"], row["seed"]), float("nan"))
    return [RunResult(**{**row, "curve": [tuple(point) for point in row.get("curve", [])]}) for row in rows]
