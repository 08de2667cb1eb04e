"""The gradient-flow study: ||dL/dh_t|| against distance on the long-gap cue task, per cell.

For each recurrent model of the lab (same parameter budget as the grids) and each seed:

1. build the model (seeded), and on a fixed probe batch of cue sequences with gap G measure
   n_t = mean over the batch of ||dL/dh_t||, L = cross-entropy at the last step ("fluent"),
   in float64 so the vanishing RNN gradient does not underflow early;
2. train it on the cue task with gap G (the lab's runner, early stop when solved);
3. measure again.

The per-step decay factor rho (||dL/dh_t|| ~ C rho^(T - t)) is fitted by
:func:`rnnlab.analysis.gradients.decay_factor`. A factor near 1 means the gradient reaches back
across the whole gap; 0.9 means it shrinks by 0.9^100 ~ 3e-5 over 100 steps.
Writes ``gradflow.csv`` (every norm), ``gradflow_factors.csv``, ``runs.json``, ``summary.md``,
``gradflow_init.png`` and ``gradflow_trained.png`` into the output directory.
"""
from __future__ import annotations

import copy
import csv
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rnnlab.analysis.gradients import decay_factor, gradient_norms, state_gradients
from rnnlab.analysis.plots import gradient_flow, save_png
from rnnlab.data.synthetic import LongGapCue
from rnnlab.errors import ConfigError
from rnnlab.io import atomic_write_text
from rnnlab.rundir import LAB_RUNS_JSON
from rnnlab.runs.lab import prepare_out_dir
from rnnlab.tasks.lab import RECURRENT_MODELS, LabSettings, build_lab_model, hidden_for_budget, run_one


def measure(model, probe) -> dict[str, np.ndarray]:
    """{"h": (T,) norms [, "c": (T,)]} of dL/dh_t for a SequenceModel on a probe batch, in float64."""
    model = copy.deepcopy(model).double()
    features = model.embed(probe.inputs).detach()  # (B, T, E): the gradient is taken w.r.t. states only

    def loss_fn(h_last):  # (B, H) -> summed loss, so each sequence's gradient is its own
        return F.cross_entropy(model.head(h_last), probe.targets, reduction="sum")

    grads = state_gradients(model.layer, features, loss_fn)
    return {name: gradient_norms(g).numpy() for name, g in grads.items()}


def gradient_study(cells, gap: int, seeds, settings: LabSettings, out_dir: str | Path, *, probe_size: int = 64,
                   progress: bool = True, log=print) -> list[dict]:
    """Measure, train, measure again for every cell x seed; write files; return the factor rows."""

    cells, seeds = list(cells), [int(s) for s in seeds]
    for cell in cells:
        if cell not in RECURRENT_MODELS:
            raise ConfigError(f"gradient flow needs a recurrent model; got {cell!r}, expected one of "
                              f"{list(RECURRENT_MODELS)}")
    if not cells or not seeds:
        raise ConfigError("gradient flow needs at least one model and one seed")
    if isinstance(gap, bool) or not isinstance(gap, int) or gap <= 0:
        raise ConfigError(f"gap must be a positive integer, got {gap!r}")
    # The probe has one fixed gap (all sequences the same length), whatever the training gaps are.
    probe = LongGapCue(gap, seed=0, **{**settings.task_options, "min_gap": None}).sample(
        probe_size, generator=torch.Generator().manual_seed(424_242))
    out = prepare_out_dir(out_dir, {"task": "gradflow", "models": cells, "gap": gap, "seeds": seeds,
                                    "probe_size": probe_size, "settings": asdict(settings)})
    norm_rows, factor_rows, curves = [], [], {"init": {}, "trained": {}}
    for cell in cells:
        for seed in seeds:
            task = LongGapCue(gap, seed=seed, **settings.task_options)
            hidden, params = hidden_for_budget(cell, task, settings)
            torch.manual_seed(seed)  # the same initial weights run_one starts from
            stages = {"init": build_lab_model(cell, task, hidden, settings)}
            result, stages["trained"], _ = run_one("gap", cell, gap, seed, settings, progress=progress)
            for stage, model in stages.items():
                norms = measure(model, probe)
                steps = len(norms["h"])
                for t in range(steps):
                    norm_rows.append({"model": cell, "seed": seed, "stage": stage, "step": t,
                                      "distance": steps - 1 - t, **{f"norm_{k}": float(v[t]) for k, v in norms.items()}})
                curves[stage].setdefault(cell, []).append(norms["h"])
                if "c" in norms:
                    curves[stage].setdefault(f"{cell} (cell c)", []).append(norms["c"])
                factor_rows.append({"model": cell, "seed": seed, "stage": stage, "hidden": hidden, "params": params,
                                    "factor_h": decay_factor(norms["h"]),
                                    "factor_c": decay_factor(norms["c"]) if "c" in norms else float("nan"),
                                    "ratio_h": float(norms["h"][0] / norms["h"][-1]),
                                    "train_steps": result.steps, "accuracy": result.final, "solved": result.solved})
            row = factor_rows[-1]
            log(f"gradflow {cell:<11} seed {seed}: factor init {factor_rows[-2]['factor_h']:.4f}, trained "
                f"{row['factor_h']:.4f}; accuracy {result.final:.3f} after {result.steps} steps ({result.wall_s:.1f} s)")
    _write_csv(out / "gradflow.csv", norm_rows)
    _write_csv(out / "gradflow_factors.csv", factor_rows)
    atomic_write_text(out / LAB_RUNS_JSON, json.dumps(factor_rows, indent=1) + "\n")
    atomic_write_text(out / "summary.md", factor_markdown(factor_rows, gap))
    for stage, by_cell in curves.items():
        mean = {name: np.mean(np.stack(runs), axis=0) for name, runs in by_cell.items()}
        fig = gradient_flow(mean, title=f"cue task gap {gap}, {stage}: mean of {len(seeds)} seed(s)")
        save_png(fig, out / f"gradflow_{stage}.png")
    return factor_rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def factor_markdown(rows: list[dict], gap: int) -> str:
    """Table: per model and stage, the fitted per-step factor (mean and range over seeds)."""
    lines = [f"Gradient flow on the cue task, gap {gap} (T = {gap + 8}); loss at the last step.", "",
             "| model | params | stage | factor rho (h) | factor rho (c) | ||g_1|| / ||g_T|| | accuracy after training |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for model in dict.fromkeys(r["model"] for r in rows):
        for stage in ("init", "trained"):
            here = [r for r in rows if r["model"] == model and r["stage"] == stage]
            if not here:
                continue
            def span(key):
                values = np.array([r[key] for r in here], dtype=float)
                if np.all(np.isnan(values)):
                    return "–"
                text = f"{np.nanmean(values):.4g}"
                return text + (f" [{np.nanmin(values):.4g}–{np.nanmax(values):.4g}]" if len(here) > 1 else "")
            acc = ", ".join(f"{r['accuracy']:.3f}" for r in here)
            lines.append(f"| {model} | {here[0]['params']} | {stage} | {span('factor_h')} | {span('factor_c')} | "
                         f"{span('ratio_h')} | {acc} |")
    lines += ["", "rho: least-squares fit of log ||dL/dh_t|| against distance T - t (distance >= 1); "
              "mean [min–max] over seeds. ||g_1|| / ||g_T||: gradient at the first step relative to the last.", ""]
    return "\n".join(lines)
