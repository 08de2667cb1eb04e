"""Lab grids into a run directory: every model x length x seed on one synthetic task.

Writes (see :mod:`rnnlab.rundir` for the shared names)::

    OUT/run.json      kind "lab": task, models, lengths, seeds, settings, the solved criterion
    OUT/runs.json     one row per finished run with its learning curve (rewritten after every run)
    OUT/runs.csv      the same rows without curves
    OUT/metrics.csv   every evaluation of every run
    OUT/summary.md    tables of the final metric and the solved step; PNG plots beside it
"""
from __future__ import annotations

import csv
import io as _io
import json
import sys
from dataclasses import asdict
from pathlib import Path

from rnnlab.analysis.lab import plot_grid, summary_markdown
from rnnlab.errors import RunDirError
from rnnlab.io import atomic_write_text
from rnnlab.metrics_log import MetricsLog
from rnnlab.rundir import LAB_RUNS_CSV, LAB_RUNS_JSON, METRICS, RUN_JSON, check_run_dir_free, prepare_run_dir
from rnnlab.tasks.lab import SOLVED, LabSettings, RunResult, check_grid, run_one


def prepare_out_dir(out_dir: str | Path, kind_config: dict, command: str = "") -> Path:
    """Create ``out_dir`` with run.json (kind "lab"); refuse any non-empty directory (nothing is overwritten)."""

    out = Path(out_dir)
    if (out / RUN_JSON).exists() or (out / LAB_RUNS_CSV).exists():
        raise RunDirError(f"{out} already holds lab results; choose a new --out (nothing was overwritten)")
    check_run_dir_free(out)
    command = command or " ".join(["rnnlab", *sys.argv[1:]])
    return prepare_run_dir(out, kind="lab", config=kind_config, command=command)


def write_runs(out: Path, results: list[RunResult]) -> None:
    """runs.json (with learning curves) and runs.csv (one row per run, no curves), each written atomically."""
    rows = [asdict(r) for r in results]
    atomic_write_text(out / LAB_RUNS_JSON, json.dumps(rows, indent=1) + "\n")
    columns = [k for k in rows[0] if k != "curve"] if rows else []
    buffer = _io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / LAB_RUNS_CSV, buffer.getvalue())


def run_grid(task_name: str, models, lengths, seeds, settings: LabSettings, out_dir: str | Path,
             *, progress: bool = True, log=print) -> list[RunResult]:
    """Every model x length x seed; writes runs.csv/json, metrics.csv, summary.md and plots into ``out_dir``."""
    models, lengths, seeds = list(models), [int(x) for x in lengths], [int(s) for s in seeds]
    check_grid(task_name, models, lengths, seeds, settings)
    out = prepare_out_dir(out_dir, {"task": task_name, "models": models, "lengths": lengths, "seeds": seeds,
                                    "settings": asdict(settings), "solved_when": SOLVED})
    metrics_log, results = MetricsLog(out / METRICS), []
    total = len(models) * len(lengths) * len(seeds)
    for length in lengths:
        for model_name in models:
            for seed in seeds:
                def on_eval(step, info, m=model_name, n=length, s=seed):
                    metrics_log.append({"step": step, "epoch": 0, "split": "valid", **info,
                                        "model": m, "length": n, "seed": s})

                result, _, _ = run_one(task_name, model_name, length, seed, settings, progress=progress,
                                       on_eval=on_eval)
                results.append(result)
                write_runs(out, results)
                log(f"[{len(results)}/{total}] {task_name} {model_name:<11} length {length:<5} seed {seed}: "
                    f"{result.metric} {result.final:.4f} after {result.steps} steps "
                    f"({'solved' if result.solved else 'not solved'}, {result.wall_s:.1f} s, {result.params} params)")
    atomic_write_text(out / "summary.md", summary_markdown(results))
    plot_grid(results, out, budget=settings.steps)
    return results
