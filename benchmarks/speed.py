"""Training throughput of recurrent layers: torch.nn.LSTM vs rnnlab's fused and explicit paths.

One training step = forward + backward + SGD step on a (batch, time, input) float32 batch, loss =
mean of the squared outputs. Contenders are alternated inside one process (round-robin over
repeats) so that machine noise hits all of them alike; we report medians and ratios to
``torch.nn.LSTM``. Picks CUDA by itself when a GPU is present (``--device`` overrides).

    python benchmarks/speed.py                      # all configurations, writes benchmarks/results/speed.md
    python benchmarks/speed.py --repeats 3 --quick  # a fast look
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

import rnnlab
from rnnlab.nn import compiled

CONFIGS = [(32, 100, 64, 256), (64, 100, 512, 512), (1, 1000, 32, 128), (128, 50, 128, 128)]

# name -> factory(input_size, hidden_size) building a batch-first layer. Append new contenders here.
CONTENDERS = {
    "torch.nn.LSTM": lambda i, h: torch.nn.LSTM(i, h, batch_first=True),
    "rnnlab fused": lambda i, h: rnnlab.LSTM(i, h, batch_first=True, backend="fused"),
    "rnnlab explicit": lambda i, h: rnnlab.LSTM(i, h, batch_first=True, backend="explicit"),
    # Issue 7 (run with --contenders ... --section ...; see benchmarks/results/speed.md):
    "explicit unrolled": lambda i, h: _unrolled(rnnlab.LSTM(i, h, batch_first=True, backend="explicit")),
    "peephole": lambda i, h: rnnlab.LSTM(i, h, batch_first=True, cell="peephole"),
    "layernorm": lambda i, h: rnnlab.LSTM(i, h, batch_first=True, cell="layernorm"),
    "zoneout+rdrop": lambda i, h: rnnlab.LSTM(i, h, batch_first=True, zoneout=0.1, recurrent_dropout=0.25),
    # Issue 15: "rnnlab explicit" and "peephole" take the compiled loop when it is built (see the status line);
    # these run the Python loop of rnnlab.nn.fastpath in the same process, for comparison.
    "explicit python loop": lambda i, h: _PythonLoop(rnnlab.LSTM(i, h, batch_first=True, backend="explicit")),
    "peephole python loop": lambda i, h: _PythonLoop(rnnlab.LSTM(i, h, batch_first=True, cell="peephole")),
    "minGRU": lambda i, h: rnnlab.nn.build_recurrent("mingru", i, h),
    "minLSTM": lambda i, h: rnnlab.nn.build_recurrent("minlstm", i, h),
}
DEFAULT_CONTENDERS = ["torch.nn.LSTM", "rnnlab fused", "rnnlab explicit"]
DEFAULT_SECTION = "rnnlab core: fused and explicit paths"


def _unrolled(layer):
    """The explicit path as it was before the fast loop: the cell unrolled under autograd."""
    layer.use_fastpath = False
    return layer


class _PythonLoop(torch.nn.Module):
    """A layer run with ``RNNLAB_COMPILED=0`` (read at each call): the Python loop instead of the compiled one."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        before = os.environ.get("RNNLAB_COMPILED")
        os.environ["RNNLAB_COMPILED"] = "0"
        try:
            return self.layer(x)
        finally:
            if before is None:
                del os.environ["RNNLAB_COMPILED"]
            else:
                os.environ["RNNLAB_COMPILED"] = before


BASELINE = "torch.nn.LSTM"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    output = model(x)[0]
    output.pow(2).mean().backward()
    optimizer.step()


def measure(config, names, repeats: int, device: torch.device, clock=time.perf_counter) -> dict[str, list[float]]:
    """Seconds per training step for each contender, alternating contenders on every repeat.

    ``clock`` is wall time by default; ``time.process_time`` (CPU seconds of this process) is far
    less disturbed when other programs share the cores, and equals wall time on an idle machine
    with one thread.
    """
    batch, steps, inputs, hidden = config
    torch.manual_seed(0)
    x = torch.randn(batch, steps, inputs, device=device)
    models = {name: CONTENDERS[name](inputs, hidden).to(device) for name in names}
    optimizers = {name: torch.optim.SGD(m.parameters(), lr=1e-3) for name, m in models.items()}
    for name in names:  # warm-up: allocator, oneDNN primitive caches, cuDNN plans
        train_step(models[name], optimizers[name], x)
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            sync(device)
            start = clock()
            train_step(models[name], optimizers[name], x)
            sync(device)
            times[name].append(clock() - start)
    return times


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()})"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--contenders", nargs="+", default=DEFAULT_CONTENDERS, choices=list(CONTENDERS))
    parser.add_argument("--section", default=DEFAULT_SECTION,
                        help="title of the section of the results file to write (other sections are kept)")
    parser.add_argument("--quick", action="store_true", help="only the first configuration")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "speed.md"))
    parser.add_argument("--extra-config", action="append", default=[], metavar="B,T,I,H",
                        help="add a configuration, e.g. 64,1000,512,512 (the GPU set)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall: elapsed time; cpu: CPU seconds of this process (robust on a shared machine; "
                             "use with --threads 1)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and device.type == "cuda":
        parser.error("--clock cpu measures CPU work only; use --clock wall on a GPU")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    configs = CONFIGS[:1] if args.quick else CONFIGS + [tuple(int(v) for v in c.split(",")) for c in args.extra_config]
    names = [BASELINE] + [n for n in args.contenders if n != BASELINE]
    loop = compiled.status()  # builds the compiled LSTM loop now if it can, outside the timings
    print(f"compiled LSTM loop: {loop}", flush=True)
    load_before = os.getloadavg()

    started = time.perf_counter()
    rows = []
    for config in configs:
        times = measure(config, names, args.repeats, device, clock)
        medians = {name: statistics.median(ts) for name, ts in times.items()}
        tokens = config[0] * config[1]
        rows.append((config, medians, tokens))
        line = ", ".join(f"{n}: {tokens / medians[n]:,.0f} tok/s ({medians[BASELINE] / medians[n]:.2f}x)" for n in names)
        print(f"{config}: {line}", flush=True)
    wall = time.perf_counter() - started

    header = "| (batch, time, input, hidden) | " + " | ".join(f"{n} tok/s" for n in names) + " | " + \
        " | ".join(f"{n} / {BASELINE}" for n in names[1:]) + " |"
    lines = [
        f"## {args.section} against {BASELINE} ({device.type}, {args.clock} clock, "
        f"{torch.get_num_threads()} thread{'s' if torch.get_num_threads() > 1 else ''})",
        "",
        f"- command: `python {shlex.join(['benchmarks/speed.py', *(sys.argv[1:] if argv is None else argv)])}`",
        f"- machine: {machine(device)}; torch {torch.__version__}",
        f"- date: {dt.datetime.now().isoformat(timespec='seconds')}; wall time {wall:.0f} s; {args.repeats} timed "
        "training steps per contender and configuration, contenders alternated, medians",
        f"- clock: {'CPU seconds of the process (time.process_time)' if args.clock == 'cpu' else 'wall time'}; "
        f"load average (1, 5, 15 min) before {_load(load_before)}, after {_load(os.getloadavg())} (other programs "
        "were sharing the cores when it is above the thread count)",
        f"- compiled LSTM loop (rnnlab.nn.compiled, taken by rnnlab explicit and peephole): {loop}",
        "- ratio = throughput relative to torch.nn.LSTM (1.00 = as fast; below 1 = slower)",
        "",
        header,
        "|" + "---|" * (1 + 2 * len(names) - 1),
    ]
    for config, medians, tokens in rows:
        cells = [f"{tokens / medians[n]:,.0f}" for n in names] + [f"{medians[BASELINE] / medians[n]:.2f}" for n in names[1:]]
        lines.append(f"| {config} | " + " | ".join(cells) + " |")
    write_section(Path(args.out), lines)
    print(f"wrote {args.out}")
    return 0


def _load(averages) -> str:
    return ", ".join(f"{v:.1f}" for v in averages)


def write_section(out: Path, lines: list[str]) -> None:
    """Write ``lines`` (a section starting with its ``## `` title) into ``out``, replacing only that section."""
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = out.read_text() if out.exists() else ""
    marker = lines[0]
    kept = previous.split(marker)[0].rstrip() if marker in previous else previous.rstrip()
    # Keep other sections (written by other benchmarks) and replace only this one.
    rest = ""
    if marker in previous:
        after = previous.split(marker, 1)[1]
        nxt = after.find("\n## ")
        rest = after[nxt:] if nxt >= 0 else ""
    out.write_text((kept + "\n\n" if kept else "# Speed\n\n") + "\n".join(lines) + "\n" + rest)


if __name__ == "__main__":
    sys.exit(main())
