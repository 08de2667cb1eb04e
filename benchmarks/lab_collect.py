"""Copy a lab benchmark run's summaries, runs.csv and plots into benchmarks/results/lab/.

    python benchmarks/lab_collect.py RUN_DIR [--results benchmarks/results/lab]

RUN_DIR holds one output directory per grid (gap/, adding/, ..., as benchmarks/lab.sh writes). Each
grid's summary and plots are rebuilt from its runs.json, so a grid cut short is reported too.
``--combine NAME`` also pools the grids of each task into one table and plot set, ``NAME_<task>_*``
(benchmarks/sample_complexity.sh runs the long gaps as separate grids).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from rnnlab.analysis.lab import load_results, plot_grid, summary_markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results" / "lab")
    parser.add_argument("--combine", metavar="NAME", help="also pool every task's grids into NAME_<task>_*")
    args = parser.parse_args()
    args.results.mkdir(parents=True, exist_ok=True)
    for grid in sorted(p for p in args.run_dir.iterdir() if (p / "runs.json").exists()):
        name = grid.name
        if name == "gradflow":
            for path in [*grid.glob("*.png"), grid / "summary.md"]:
                shutil.copy(path, args.results / (path.name if path.name.startswith(name) else f"{name}_{path.name}"))
        else:  # rebuilt from runs.json, so a grid cut short gets its table and plots too
            results = load_results(grid)
            note = "" if (grid / "summary.md").exists() else "(grid cut short; these are the runs it finished)\n\n"
            (args.results / f"{name}_summary.md").write_text(note + summary_markdown(results))
            with tempfile.TemporaryDirectory() as tmp:  # plots are named by task: keep grids apart
                for plot in plot_grid(results, tmp):
                    shutil.move(plot, args.results / f"{name}_{plot.name.split('_', 1)[1]}")
        for path in [grid / "runs.csv", grid / "gradflow_factors.csv"]:
            if path.exists():
                shutil.copy(path, args.results / (path.name if path.name.startswith(name) else f"{name}_{path.name}"))
        print(f"collected {grid}")
    if args.combine:
        pooled: dict[str, list] = {}
        for grid in sorted(p for p in args.run_dir.iterdir() if (p / "runs.json").exists() and p.name != "gradflow"):
            for result in load_results(grid):
                pooled.setdefault(result.task, []).append(result)
        for task, results in pooled.items():
            (args.results / f"{args.combine}_{task}_summary.md").write_text(summary_markdown(results))
            with tempfile.TemporaryDirectory() as tmp:
                for plot in plot_grid(results, tmp):
                    shutil.move(plot, args.results / f"{args.combine}_{plot.name}")
            print(f"combined {len(results)} {task} runs")
    for path in [*args.run_dir.glob("*.log"), *args.run_dir.glob("*.txt"), *args.run_dir.glob("*.md")]:
        shutil.copy(path, args.results / path.name)  # per-run log lines, commands, wall times, extra tables


if __name__ == "__main__":
    main()
