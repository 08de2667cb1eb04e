"""Validation loss against time for a language-model run: ``benchmarks/results/lm_<name>.png``.

    python benchmarks/lm_plot.py shakespeare            # reads benchmarks/runs/shakespeare/metrics.csv

Plots validation loss (nats per token) against both CPU seconds of the training process and wall
seconds, so a run on a shared machine can be read either way.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "shakespeare"
    rows = [r for r in csv.DictReader(open(ROOT / "runs" / name / "metrics.csv")) if r["split"] == "valid"]
    if not rows:
        raise SystemExit(f"no validation rows in benchmarks/runs/{name}/metrics.csv yet")
    loss = [float(r["loss"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for key, label, style in (("cpu_s", "CPU seconds (1 thread)", "o-"), ("elapsed_s", "wall seconds", "s--")):
        if rows[0].get(key):
            ax.plot([float(r[key]) for r in rows], loss, style, label=label, markersize=3)
    ax.set_xlabel("seconds of training")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title(f"{name}: best {min(loss):.4f}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = ROOT / "results" / f"lm_{name}.png"
    fig.savefig(out, dpi=120)
    print(out)


if __name__ == "__main__":
    main()
