"""minGRU / minLSTM (parallel scan) against torch.nn.GRU / LSTM: training time over long sequences,
and accuracy on the lab's adding and long-gap tasks beside the LSTM.

Speed: one training step (forward + backward + SGD) on a (B, T, H) float32 batch at equal hidden
size H (input size H too, as in a stacked network), for T = 256, 1024, 4096; contenders alternated
in one process, medians and ratios to torch.nn.LSTM (reuses benchmarks/speed.py's ``measure``).

Accuracy: :func:`rnnlab.lab.run_one` (the lab's Trainer, equal parameter budget, early stop once
solved) for ``lstm``, ``mingru`` and ``minlstm`` on ``adding`` and ``gap``.

    python benchmarks/minimal.py --part speed --threads 1 --clock cpu
    python benchmarks/minimal.py --part accuracy
Writes its own section of benchmarks/results/speed.md (other sections are kept).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import speed  # noqa: E402  (the shared measuring loop and section writer)
from rnnlab.nn import build_recurrent  # noqa: E402

MIN_CONTENDERS = {
    "torch.nn.LSTM": lambda i, h: torch.nn.LSTM(i, h, batch_first=True),
    "torch.nn.GRU": lambda i, h: torch.nn.GRU(i, h, batch_first=True),
    "minGRU": lambda i, h: build_recurrent("mingru", i, h, scan="chunked"),
    "minLSTM": lambda i, h: build_recurrent("minlstm", i, h, scan="chunked"),
    "minGRU log-scan": lambda i, h: build_recurrent("mingru", i, h, scan="log"),
}


def run_speed(args) -> list[str]:
    speed.CONTENDERS.update(MIN_CONTENDERS)
    names = list(MIN_CONTENDERS)
    device = torch.device(args.device)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    rows = []
    started = time.perf_counter()
    for steps in args.lengths:
        config = (args.batch, steps, args.hidden, args.hidden)
        times = speed.measure(config, names, args.repeats, device, clock)
        med = {n: statistics.median(t) for n, t in times.items()}
        rows.append((config, med))
        print(config, ", ".join(f"{n}: {med[n] * 1e3:.0f} ms ({med['torch.nn.LSTM'] / med[n]:.2f}x)" for n in names),
              flush=True)
    wall = time.perf_counter() - started
    lines = [
        f"## minGRU / minLSTM (parallel scan): training time at long T (batch {args.batch}, input = hidden = {args.hidden}, {device.type}, "
        f"{args.clock} clock, {torch.get_num_threads()} thread(s))",
        "",
        f"- command: `python benchmarks/minimal.py {' '.join(sys.argv[1:])}`",
        f"- machine: {speed.machine(device)}; torch {torch.__version__}; date "
        f"{dt.datetime.now().isoformat(timespec='seconds')}; wall {wall:.0f} s; load average at the end "
        f"{os.getloadavg()[0]:.1f} (other agents shared the 2 cores)",
        f"- {args.repeats} timed training steps per contender and length, contenders alternated, medians; "
        "speed-up = time of torch.nn.LSTM / time of the contender (above 1 = faster)",
        "",
        "| T | " + " | ".join(f"{n} ms" for n in names) + " | " + " | ".join(f"{n} speed-up" for n in names[1:]) + " |",
        "|" + "---|" * (2 * len(names)),
    ]
    for config, med in rows:
        lines.append(f"| {config[1]} | " + " | ".join(f"{med[n] * 1e3:.0f}" for n in names) + " | "
                     + " | ".join(f"{med['torch.nn.LSTM'] / med[n]:.2f}" for n in names[1:]) + " |")
    return lines


def run_accuracy(args) -> list[str]:
    from rnnlab.tasks import lab

    # The lab knows its own models; the parallel-scan layers join through the registry by name.
    extra = {"mingru": ("mingru", {}), "minlstm": ("minlstm", {}),  # the paper's init: keep coefficient ~ 1/2
             "mingru_fb3": ("mingru", {"forget_bias": 3.0}), "minlstm_fb3": ("minlstm", {"forget_bias": 3.0})}
    lab.MODELS = tuple(lab.MODELS) + tuple(m for m in extra if m not in lab.MODELS)
    lab.RECURRENT_MODELS.update(extra)
    lines = [
        "## minGRU / minLSTM (parallel scan): accuracy on the lab's tasks (equal parameter budget, the lab's Trainer, early stop when solved)",
        "",
        f"- command: `python benchmarks/minimal.py {' '.join(sys.argv[1:])}`; date "
        f"{dt.datetime.now().isoformat(timespec='seconds')}",
        "- solved = adding MSE < 0.01 (always answering 1 gives ~0.167); gap accuracy >= 0.99 (chance = 1/countries)",
        "",
        "| task | length | model | hidden | params | solved at step | final metric | best | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task, lengths in (("gap", args.gap), ("adding", args.adding)):
        settings = lab.GRID_DEFAULTS[task]["settings"]
        settings.steps = args.steps
        for length in lengths:
            for model in args.models:
                result, _, _ = lab.run_one(task, model, length, args.seed, settings, progress=False)
                solved = result.solved_step if result.solved else "not solved"
                row = (f"| {task} | {length} | {model} | {result.hidden} | {result.params} | {solved} | "
                       f"{result.metric} {result.final:.4f} | {result.best:.4f} | {result.wall_s:.0f} |")
                print(row, flush=True)
                lines.append(row)
                speed.write_section(Path(args.out), lines)  # keep finished runs if the grid is stopped
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["speed", "accuracy", "both"], default="both")
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument("--models", nargs="+", default=["lstm", "mingru", "minlstm", "mingru_fb3", "minlstm_fb3"],
                        help="lab models; mingru_fb3/minlstm_fb3 = forget_bias 3 (keep coefficient starts at 0.95)")
    parser.add_argument("--adding", type=int, nargs="*", default=[50])
    parser.add_argument("--gap", type=int, nargs="*", default=[20])
    parser.add_argument("--steps", type=int, default=2000, help="training steps per lab run (upper bound)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "speed.md"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    parts = ["speed", "accuracy"] if args.part == "both" else [args.part]
    for part in parts:
        lines = run_speed(args) if part == "speed" else run_accuracy(args)
        speed.write_section(Path(args.out), lines)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
