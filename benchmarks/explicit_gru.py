"""The explicit GRU and RNN fast kernels (nn/fastpath.py) against the unrolled cells and torch.nn.GRU/RNN.

    python benchmarks/explicit_gru.py --threads 1      # writes benchmarks/results/explicit_gru.md

Training step = forward + MSE on the outputs + backward (no optimizer), CPU clock, contenders alternated,
median of the repeats; ratios are throughput relative to torch.nn.GRU (1.00 = as fast).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import torch

import rnnlab

CONFIGS = [(32, 100, 64, 256), (128, 50, 128, 128), (1, 1000, 32, 128)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "explicit_gru.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    began, rows = time.perf_counter(), []
    for kind, (B, T, I, H) in [(k, c) for k in ("GRU", "RNN") for c in CONFIGS]:
        torch.manual_seed(0)
        reference = getattr(torch.nn, kind)(I, H, batch_first=True)
        explicit = getattr(rnnlab, kind).from_torch(reference, backend="explicit")
        x = torch.randn(B, T, I, requires_grad=True)

        def step(layer, fast=True):
            layer.use_fastpath = fast
            out = layer(x)[0]
            out.square().mean().backward()

        contenders = {"torch.nn": lambda: reference(x)[0].square().mean().backward(),
                      "explicit fast": lambda: step(explicit, True), "explicit unrolled": lambda: step(explicit, False)}
        times = {k: [] for k in contenders}
        for fn in contenders.values():
            fn()
        for _ in range(args.repeats):
            for name, fn in contenders.items():
                start = time.process_time()
                fn()
                times[name].append(time.process_time() - start)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append((kind, (B, T, I, H), med))
        print(kind, (B, T, I, H), {k: f"{v * 1e3:.1f} ms" for k, v in med.items()}, flush=True)
    lines = ["# The explicit GRU and RNN fast kernels (issue 15, part 2)", "",
             f"- command: `python benchmarks/explicit_gru.py {' '.join(sys.argv[1:])}`; date "
             f"{datetime.now().isoformat(timespec='seconds')}; wall {time.perf_counter() - began:.0f} s; "
             f"{args.threads} thread(s), CPU clock; load average {os.getloadavg()[0]:.1f}",
             "- training step = forward + MSE + backward; throughput ratio relative to torch.nn.GRU / RNN", "",
             "| cell | (B, T, I, H) | torch.nn ms | explicit fast ms | explicit unrolled ms | fast / torch | "
             "unrolled / torch |",
             "|---|---|---|---|---|---|---|"]
    for kind, config, med in rows:
        base = med["torch.nn"]
        lines.append(f"| {kind} | {config} | {base * 1e3:.1f} | {med['explicit fast'] * 1e3:.1f} | "
                     f"{med['explicit unrolled'] * 1e3:.1f} | {base / med['explicit fast']:.2f} | "
                     f"{base / med['explicit unrolled']:.2f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
