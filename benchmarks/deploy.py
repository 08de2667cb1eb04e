"""Deployment speed and quality: ONNX Runtime and int8 against PyTorch float32 for a character LSTM.

    python benchmarks/deploy.py --threads 1            # trains a small char LSTM on the built-in corpus first
    python benchmarks/deploy.py --run runs/pydoc       # or measure an existing language-model run

Writes benchmarks/results/deploy.md: per-token latency of one-step generation (batch 1, state fed
back) for PyTorch float32, PyTorch int8 (dynamic quantisation) and ONNX Runtime (the graph of
``rnnlab export``), and bits per character of float32 vs int8 on the validation split.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from rnnlab.cli import main as cli
from rnnlab.data.text import load_corpus
from rnnlab.models.quantize import quantize_int8
from rnnlab.rundir import read_run
from rnnlab.runs.export import export_run
from rnnlab.tasks.lm import evaluate_stream, load_language_model


def per_token_ms(step, tokens: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(tokens)
        times.append((time.perf_counter() - start) / tokens * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=None, help="an existing language-model run (default: train one)")
    parser.add_argument("--steps", type=int, default=300, help="training steps when no --run is given")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=300, help="tokens generated per timing")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "deploy.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
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
        "# Deployment: ONNX Runtime and int8 against PyTorch (issue 15, parts 3 and 5)", "",
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
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
