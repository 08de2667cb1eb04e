"""Deployment speed and quality: ONNX Runtime and int8 against PyTorch float32.

    python benchmarks/deploy.py --threads 1            # trains a small char LSTM on the built-in corpus first
    python benchmarks/deploy.py --run runs/pydoc       # or measure an existing language-model run
    python benchmarks/deploy.py --part forecast --threads 1   # a 1,000-step forecast instead

Writes its part of benchmarks/results/deploy.md (the other part is kept):

* ``lm``: per-token latency of one-step generation (batch 1, state fed back) for PyTorch float32,
  PyTorch int8 (dynamic quantisation) and ONNX Runtime (the graph of ``rnnlab export``), and bits per
  character of float32 vs int8 on the validation split;
* ``forecast``: wall and CPU time of one 1,000-step forecast (batch 1, look-back 336, GRU 64) in
  PyTorch float32, PyTorch int8 and ONNX Runtime, for the forecaster's default ``direct`` decoder
  (one pass: every horizon step from one linear map of the last state) and, with
  ``--autoregressive``, the ``autoregressive`` decoder (1,000 recurrent steps each feeding back its
  own forecast; the ONNX graph holds them unrolled, and tracing it takes minutes).
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from rnnlab.checkpoint import save_checkpoint
from rnnlab.cli import main as cli
from rnnlab.data.text import load_corpus
from rnnlab.models.forecaster import Forecaster, ForecasterConfig
from rnnlab.models.quantize import quantize_int8
from rnnlab.rundir import prepare_run_dir, read_run
from rnnlab.runs.export import export_run
from rnnlab.tasks.lm import evaluate_stream, load_language_model


def per_token_ms(step, tokens: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(tokens)
        times.append((time.perf_counter() - start) / tokens * 1e3)
    return statistics.median(times)


def write_part(path: Path, part: str, lines: list[str]) -> None:
    """Replace this part's block of ``path`` (between its markers), keeping the other parts."""
    block = f"<!-- part:{part} -->\n" + "\n".join(lines) + f"\n<!-- /part:{part} -->\n"
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(rf"<!-- part:{part} -->\n.*?<!-- /part:{part} -->\n", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text + ("\n" if text else "") + block
    path.write_text(text)


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn()`` over ``repeats`` calls."""
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def forecast_part(args) -> list[str]:
    import onnxruntime

    load_before = os.getloadavg()
    began = time.perf_counter()
    workdir = Path(tempfile.mkdtemp())
    decoders = ["direct"] + (["autoregressive"] if args.autoregressive else [])
    rows, notes = [], []
    for decoder in decoders:
        torch.manual_seed(0)  # untrained weights: the time of a forecast does not depend on their values
        config = ForecasterConfig(n_targets=1, lookback=336, horizon=1000, n_calendar=4, hidden_size=64,
                                  decoder=decoder)
        model = Forecaster(config).eval()
        run = prepare_run_dir(workdir / decoder, kind="forecast", config={})
        save_checkpoint(run, model, step=1, best=True)
        started = time.perf_counter()
        record = export_run(run)
        export_s = time.perf_counter() - started
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = args.threads
        session = onnxruntime.InferenceSession(str(run / "model.onnx"), options, providers=["CPUExecutionProvider"])
        small = quantize_int8(model)
        x, future = torch.randn(1, config.lookback, config.n_inputs), torch.randn(1, config.horizon, config.n_calendar)
        feed = {"x": x.numpy(), "future": future.numpy()}

        def run_torch(m):
            def call():
                with torch.no_grad():
                    return m(x, future)
            return call

        contenders = {"PyTorch float32": run_torch(model), "PyTorch int8": run_torch(small),
                      "ONNX Runtime float32": lambda: session.run(None, feed)}
        for fn in contenders.values():  # warm-up
            fn()
        result = {}
        for _ in range(2):  # alternate contenders; keep the last round's medians
            result = {name: timed(fn, args.repeats) for name, fn in contenders.items()}
        with torch.no_grad():
            full = model(x, future)
            change = float((small(x, future) - full).abs().max() / full.abs().max())
        ort_diff = float(np.abs(session.run(None, feed)[0] - full.numpy()).max())
        base_wall, base_cpu = result["PyTorch float32"]
        for name, (wall, cpu) in result.items():
            rows.append(f"| {decoder} | {name} | {wall * 1e3:.2f} | {cpu * 1e3:.2f} | {base_wall / wall:.2f}x | "
                        f"{base_cpu / cpu:.2f}x |")
        notes.append(f"{decoder}: {sum(p.numel() for p in model.parameters()):,} parameters; export and onnxruntime "
                     f"check {export_s:.0f} s (graph {(run / 'model.onnx').stat().st_size / 1e6:.1f} MB, export "
                     f"check max |diff| {record['max_abs_diff']:.1e}); ONNX Runtime vs PyTorch max |diff| "
                     f"{ort_diff:.1e}; int8 vs float32: largest change {change:.1%} of the largest forecast value")
    load_after = os.getloadavg()
    return [
        "## A 1,000-step forecast: ONNX Runtime and int8 against PyTorch float32", "",
        f"- command: `python benchmarks/deploy.py {' '.join(sys.argv[1:])}`",
        "- model: GRU forecaster, hidden 64, look-back 336, 1 target + 4 calendar features, horizon 1,000, batch 1; "
        "`direct` decoder = one pass (the default, what `rnnlab forecast predict` runs for such a run)"
        + ("; `autoregressive` = 1,000 recurrent decoder steps feeding back their own forecast, unrolled in the "
           "ONNX graph" if args.autoregressive else ""),
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, {args.threads} thread(s) for PyTorch and "
        f"onnxruntime; torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; date "
        f"{datetime.now().isoformat(timespec='seconds')}; wall {time.perf_counter() - began:.0f} s",
        f"- load average (1, 5, 15 min) before {', '.join(f'{v:.2f}' for v in load_before)}, after "
        f"{', '.join(f'{v:.2f}' for v in load_after)}: {args.load_note}",
        f"- time: one whole forecast, median of {args.repeats} after a warm-up, contenders alternated, "
        "side by side in one process; wall clock and this process's CPU time", "",
        "| decoder | runtime | wall ms | CPU ms | wall speed-up | CPU speed-up |", "|---|---|---|---|---|---|",
        *rows, "", *[f"- {note}" for note in notes],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["lm", "forecast"], default="lm", help="what to measure (default: lm)")
    parser.add_argument("--autoregressive", action="store_true",
                        help="forecast part: also the autoregressive decoder (its export takes minutes)")
    parser.add_argument("--load-note", default="other jobs share the machine",
                        help="forecast part: what else ran on the machine (written beside the load average)")
    parser.add_argument("--run", default=None, help="an existing language-model run (default: train one)")
    parser.add_argument("--steps", type=int, default=300, help="training steps when no --run is given")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=300, help="tokens generated per timing")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "deploy.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.part == "forecast":
        lines = forecast_part(args)
        write_part(Path(args.out), "forecast", lines)
        print("\n".join(lines))
        return
    began = time.perf_counter()
    workdir = tempfile.mkdtemp()
    run = Path(args.run) if args.run else Path(workdir) / "lm"
    if args.run is None:
        assert cli(["train", "lm", "--out", str(run), "--max-steps", str(args.steps), "--threads", str(args.threads),
                    "--no-progress"]) == 0
    model, tokenizer, _ = load_language_model(run)
    small = quantize_int8(model)
    onnx_path = Path(workdir) / "lm.onnx"
    export_run(run, onnx_path)
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def torch_steps(m):
        def run_steps(n):
            state, token = None, torch.zeros(1, 1, dtype=torch.long)
            with torch.no_grad():
                for _ in range(n):
                    logits, state = m(token, state)
                    token = logits[:, -1].argmax(-1, keepdim=True)
        return run_steps

    def ort_steps(n):
        feed = {name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
                for name, i in zip(names[1:], session.get_inputs()[1:])}
        token = np.zeros((1, 1), np.int64)
        for _ in range(n):
            outputs = session.run(None, {"tokens": token, **feed})
            feed = dict(zip(names[1:], outputs[1:]))
            token = outputs[0][:, -1].argmax(-1).reshape(1, 1).astype(np.int64)

    latency = {}
    for _ in range(2):  # alternate contenders; keep the last round's medians
        latency = {"PyTorch float32": per_token_ms(torch_steps(model), args.tokens, args.repeats),
                   "PyTorch int8": per_token_ms(torch_steps(small), args.tokens, args.repeats),
                   "ONNX Runtime float32": per_token_ms(ort_steps, args.tokens, args.repeats)}
    cfg = read_run(run)["config"]
    corpus = load_corpus(cfg.get("data"), fractions=tuple(cfg.get("split", (0.9, 0.05, 0.05))))
    ids = np.concatenate(list(tokenizer.encode_lines(corpus.lines("valid"))))[:50_000]
    bpc = {name: evaluate_stream(m, ids)["loss"] / np.log(2) for name, m in (("float32", model), ("int8", small))}
    params = sum(p.numel() for p in model.parameters())
    lines = [
        "## One-token generation: ONNX Runtime and int8 against PyTorch float32", "",
        f"- command: `python benchmarks/deploy.py {' '.join(sys.argv[1:])}`",
        f"- model: {model.config.cell} language model, {params:,} parameters ({cfg.get('level')} level; "
        f"{'trained ' + str(args.steps) + ' steps on the built-in corpus' if args.run is None else args.run})",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, {args.threads} thread(s); torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}; date {datetime.now().isoformat(timespec='seconds')}; wall "
        f"{time.perf_counter() - began:.0f} s; load average {os.getloadavg()[0]:.1f}",
        f"- latency: greedy one-token steps at batch 1 with the state fed back, {args.tokens} tokens per timing, "
        f"median of {args.repeats}, contenders alternated; wall clock", "",
        "| runtime | ms per token | vs PyTorch float32 |", "|---|---|---|",
    ]
    base = latency["PyTorch float32"]
    lines += [f"| {name} | {ms:.3f} | {base / ms:.2f}x faster |" for name, ms in latency.items()]
    lines += ["", f"Validation bits per character ({len(ids):,} characters): float32 {bpc['float32']:.4f}, "
                  f"int8 {bpc['int8']:.4f} (change {bpc['int8'] - bpc['float32']:+.4f})."]
    write_part(Path(args.out), "lm", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
