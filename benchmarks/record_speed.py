"""Gate recording cost: ``record=True`` inference against the fused forward without recording.

    python benchmarks/record_speed.py --clock cpu --threads 1        # writes benchmarks/results/record.md

Contenders, alternated per repeat (medians), in two modes: ``inference`` (no_grad forward) and
``train`` (forward, a loss on the outputs and on the recorded h gates, backward):
  fused           layer(x)                               torch's kernel, no gates
  record          layer(x, record=True)                  what a user gets: the LSTM without gradients records in the
                                                         compiled loop's forward when it is built (nn/compiled.py),
                                                         else as record-rebuild
  record-rebuild  the same with RNNLAB_COMPILED=0        fused outputs + every gate rebuilt at once (nn/rebuild.py)
  record-unroll   the same with the cells unrolled       the reference (use_fastpath=False), what record cost before
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import torch

import rnnlab
from rnnlab.nn import compiled

CONFIGS = [(32, 100, 64, 256), (128, 50, 128, 128), (1, 1000, 32, 128)]


def timed(fn, clock) -> float:
    start = clock()
    fn()
    return clock() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="cpu")
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"])
    parser.add_argument("--modes", nargs="+", default=["inference", "train"], choices=["inference", "train"])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "record.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    began = time.perf_counter()
    rows = []
    for mode in args.modes:
        for cell in args.cells:
            for B, T, I, H in CONFIGS:
                torch.manual_seed(0)
                layer = rnnlab.build_recurrent(cell, I, H)
                x = torch.randn(B, T, I, requires_grad=mode == "train")

                def run(record: bool, unroll: bool = False, compiled_loop: bool = True):
                    layer.use_fastpath = not unroll
                    os.environ["RNNLAB_COMPILED"] = "1" if compiled_loop else "0"
                    result = layer(x, record=record)
                    os.environ["RNNLAB_COMPILED"] = "1"
                    layer.use_fastpath = True
                    if mode == "train":
                        loss = result[0].square().mean()
                        if record:
                            loss = loss + sum(d["h"].mean() for rec in result[2] for d in rec)
                        loss.backward()

                contenders = {"fused": lambda: run(False), "record": lambda: run(True),
                              "record-rebuild": lambda: run(True, compiled_loop=False),
                              "record-unroll": lambda: run(True, unroll=True)}
                times = {name: [] for name in contenders}
                with torch.set_grad_enabled(mode == "train"):
                    for fn in contenders.values():
                        fn()  # warm up
                    for _ in range(args.repeats):
                        for name, fn in contenders.items():
                            times[name].append(timed(fn, clock))
                med = {name: statistics.median(v) for name, v in times.items()}
                rows.append((mode, cell, (B, T, I, H), med))
                print(f"{mode} {cell} {(B, T, I, H)}: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in med.items())
                      + f"; record/fused {med['record'] / med['fused']:.2f}x", flush=True)
    lines = [
        "# Gate recording at fused speed (issue 15, part 1)", "",
        f"- command: `python benchmarks/record_speed.py {' '.join(sys.argv[1:])}`",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPU cores, {args.threads} torch thread(s); torch "
        f"{torch.__version__}; date {datetime.now().isoformat(timespec='seconds')}; wall time "
        f"{time.perf_counter() - began:.0f} s",
        f"- clock: {'CPU seconds of the process' if args.clock == 'cpu' else 'wall'}; load average at the end "
        f"{os.getloadavg()[0]:.1f} (other processes shared the 2 cores when it is above 1); compiled loop: "
        f"{compiled.status()}",
        f"- {args.repeats} repeats per contender, alternated, medians; inference = no_grad forward, train = forward "
        f"+ loss + backward; goal: record within 1.5x of fused at every configuration", "",
        "| mode | cell | (B, T, I, H) | fused ms | record ms | record-rebuild ms | record-unroll ms | record / fused | "
        "rebuild / fused | unroll / fused |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, cell, config, med in rows:
        lines.append(f"| {mode} | {cell} | {config} | {med['fused'] * 1e3:.1f} | {med['record'] * 1e3:.1f} | "
                     f"{med['record-rebuild'] * 1e3:.1f} | {med['record-unroll'] * 1e3:.1f} | "
                     f"{med['record'] / med['fused']:.2f} | {med['record-rebuild'] / med['fused']:.2f} | "
                     f"{med['record-unroll'] / med['fused']:.2f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
