"""Captioning benchmark: attention vs Show-and-Tell vs an MLP that sees the whole image once.

    python benchmarks/caption.py                       # digit scenes, the three decoders, default budget
    python benchmarks/caption.py --models attention --scenes shapes --cpu-minutes 10
    python benchmarks/caption.py --models show_tell,mlp --existing attention=runs/scenes   # score a CLI run
    python benchmarks/caption.py --out /tmp/caption-bench   # where the run directories go

Each model trains through ``rnnlab.runs.caption.train_caption`` (the same path as ``rnnlab train
caption``: early stopping on validation loss, best weights restored) within a CPU-time budget, one
torch thread, one model after another. Then its test (unseen drawings, seen combinations) and
compositional (combinations never seen) scenes are scored greedily and, for the attention model,
with beam 3. Writes ``benchmarks/results/caption.md`` (appending a section per invocation) and a
JSON line per model to ``benchmarks/results/caption_runs.jsonl``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from rnnlab.rundir import read_run
from rnnlab.runs.caption import CaptionRunConfig, evaluate_caption, model_config_for, train_caption

RESULTS = Path(__file__).parent / "results"
MODELS = {
    "attention": dict(encoder="cnn", attention=True),
    "show_tell": dict(encoder="cnn", attention=False),
    "mlp": dict(encoder="mlp", attention=False),
}
COLUMNS = ("exact", "bleu1", "bleu2", "bleu3", "bleu4", "label", "size", "colour", "relation", "count", "localisation",
           "phrase_localisation")


def fmt(metrics: dict, key: str) -> str:
    value = metrics.get(key)
    if value is None:
        return "–"
    return f"{value:.1f}" if key.startswith("bleu") else f"{100 * value:.1f}%"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="attention,show_tell,mlp", help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--scenes", default="digits", choices=("digits", "shapes"))
    parser.add_argument("--cpu-minutes", type=float, default=15.0, help="CPU-time training budget per model")
    parser.add_argument("--epochs", type=int, default=12, help="as rnnlab train caption's default")
    parser.add_argument("--existing", nargs="*", default=[], metavar="MODEL=RUN_DIR",
                        help="score runs already trained (e.g. by rnnlab train caption) instead of training them")
    parser.add_argument("--train-scenes", type=int, default=10000)
    parser.add_argument("--out", default="/tmp/rnnlab-caption-bench", help="run directories (replaced)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    rows, lines = [], []
    existing = dict(item.split("=", 1) for item in args.existing)
    for name in [m for m in args.models.split(",") if m not in existing] + list(existing):
        load_before = os.getloadavg()
        wall, cpu = time.perf_counter(), time.process_time()
        if name in existing:  # trained elsewhere: its own summary says how long training took
            run_dir = Path(existing[name])
            info = read_run(run_dir, kind="caption")
            result = {"parameters": info["parameters"], "summary": info["summary"],
                      "results": {s: evaluate_caption(run_dir, s) for s in ("test", "compositional")}}
            note = f"trained by `{info['command']}`: {info['summary']['wall_s']:.0f} s wall / " \
                   f"{info['summary']['cpu_s']:.0f} s CPU; scoring"
        else:
            run_dir = out / f"{args.scenes}-{name}"
            shutil.rmtree(run_dir, ignore_errors=True)
            run = CaptionRunConfig(scenes=args.scenes, train_scenes=args.train_scenes, epochs=args.epochs,
                                   max_cpu_minutes=args.cpu_minutes, seed=args.seed, progress=False)
            model = model_config_for(run, **MODELS[name])
            result = train_caption(run, model, run_dir, command=" ".join(sys.argv))
            note = "training + scoring"
        scores = {f"{split} greedy": m for split, m in result["results"].items()}
        if MODELS[name]["attention"]:
            for split in ("test", "compositional"):
                scores[f"{split} beam 3"] = evaluate_caption(run_dir, split, beam=3)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        record = {"model": name, "scenes": args.scenes, "parameters": result["parameters"],
                  "summary": result["summary"], "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                  "load_before": load_before, "load_after": os.getloadavg(), "scores": scores,
                  "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        with open(RESULTS / "caption_runs.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        s = result["summary"]
        lines.append(f"- `{name}`: {result['parameters']:,} parameters, {s['steps']} steps ({s['epochs']} epochs, "
                     f"stopped: {s['stopped']}, best at step {s['best_step']}), {note} {wall:.0f} s wall / "
                     f"{cpu:.0f} s CPU, load average {load_before[0]:.1f} before and {os.getloadavg()[0]:.1f} after")
        for label, m in scores.items():
            rows.append(f"| {name} | {label} | " + " | ".join(fmt(m, k) for k in COLUMNS) + " |")
        print(f"{name}: done in {wall:.0f} s", flush=True)
    header = "| model | split, decoding | " + " | ".join(COLUMNS) + " |"
    section = [f"## {args.scenes} scenes, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", "",
               f"Command: `python benchmarks/caption.py {' '.join(sys.argv[1:])}`; machine: {platform.processor() or platform.machine()}, "
               f"{os.cpu_count()} cores shared with other jobs, one torch thread, torch {torch.__version__}.", "",
               *lines, "", header, "|" + "---|" * (len(COLUMNS) + 2), *rows, ""]
    path = RESULTS / "caption.md"
    previous = path.read_text(encoding="utf-8") if path.exists() else "# Captioning benchmark\n\n"
    path.write_text(previous + "\n".join(section) + "\n", encoding="utf-8")
    print("\n".join(section))
    return 0


if __name__ == "__main__":
    sys.exit(main())
