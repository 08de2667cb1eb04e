"""Language-model benchmarks on Penn Treebank and Tiny Shakespeare (results: benchmarks/results/lm.md).

    python benchmarks/lm.py zaremba-small      [--data ../shared/data/ptb]  [--threads 1]
    python benchmarks/lm.py tied-variational   [--data ../shared/data/ptb]
    python benchmarks/lm.py awd-small          [--data ../shared/data/ptb]   # AWD-LSTM regularisers, 4.98M params
    python benchmarks/lm.py awd-medium --device cuda                         # 2x650 tied, for a GPU (gpu_lm.sh)
    python benchmarks/lm.py compare --epochs 4 [--data ../shared/data/ptb]   # MLP / RNN / GRU / LSTM, equal params
    python benchmarks/lm.py shakespeare --minutes 10 [--data ../shared/data/tinyshakespeare/input.txt]

Each run writes its run directory under ``benchmarks/runs/<preset>`` (metrics.csv, checkpoints)
and appends one JSON line (preset, test metrics, wall time, machine) to
``benchmarks/results/lm_runs.jsonl``. ``--epochs`` / ``--minutes`` shorten a preset; say so when
reporting.
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

from rnnlab.data.text import load_corpus
from rnnlab.data.tokenizer import fit_tokenizer
from rnnlab.models import LanguageModel, LanguageModelConfig, WindowLanguageModel, WindowLanguageModelConfig
from rnnlab.rundir import prepare_run_dir
from rnnlab.tasks.lm import LanguageModelTask, encode_splits
from rnnlab.train import TrainConfig, Trainer, seed_everything

ROOT = Path(__file__).resolve().parent
SHARED = ROOT.parent.parent / "shared" / "data"


# Zaremba's code (and TensorFlow's ptb_word_lm) minimises the loss SUMMED over the unroll and averaged over
# the batch; our loss is the mean over tokens, so their lr 1 and clip 5 are lr 1*T and clip 5/T here
# (T = 20): the same updates. pytorch/examples' word_language_model uses the same lr 20 / clip 0.25.
def zaremba_small(vocab, epochs=13):
    """Zaremba et al. 2014 'small': 2x200 LSTM, unroll 20, batch 20, SGD lr 1 halved each epoch after 4."""
    model = LanguageModelConfig(vocab, cell="lstm", embed_size=200, hidden_size=200, num_layers=2, init_range=0.1)
    train = TrainConfig(optimizer="sgd", lr=20.0, clip=0.25, schedule="step", lr_factor=0.5, lr_start=4,
                        max_epochs=epochs, restore_best=False)
    return model, train, dict(batch_size=20, bptt=20)


def tied_variational(vocab, epochs=13):
    """Same size, tied embeddings, locked (variational) dropout, weight drop on W_hh."""
    model = LanguageModelConfig(vocab, cell="lstm", embed_size=200, hidden_size=200, num_layers=2, init_range=0.1,
                                tie_weights=True, dropout_input=0.3, dropout_hidden=0.25, dropout_output=0.3,
                                dropout_embed=0.05, weight_drop=0.2)
    train = TrainConfig(optimizer="sgd", lr=20.0, clip=0.25, schedule="plateau", lr_factor=0.25, lr_patience=0,
                        max_epochs=epochs, restore_best=True)
    return model, train, dict(batch_size=20, bptt=35)


def awd_small(vocab, epochs=18):
    """AWD-LSTM's regularisers at <= 5M parameters: 2 layers (400, then 300 to tie with the 300-wide embedding),
    embedding dropout, locked dropout, weight drop on W_hh, AR/TAR, SGD held at lr 20 for 9 epochs then halved
    every epoch (a step schedule instead of NT-ASGD: it fits a fixed CPU budget)."""
    model = LanguageModelConfig(vocab, cell="lstm", embed_size=300, hidden_size=400, num_layers=2, init_range=0.1,
                                tie_weights=True, dropout_embed=0.1, dropout_input=0.35, dropout_hidden=0.25,
                                dropout_output=0.35, weight_drop=0.25, activation_reg=2.0, temporal_reg=1.0)
    train = TrainConfig(optimizer="sgd", lr=20.0, clip=0.25, schedule="step", lr_factor=0.5, lr_start=9,
                        max_epochs=epochs, restore_best=True)
    return model, train, dict(batch_size=20, bptt=35)


def awd_medium(vocab, epochs=40):
    """The medium size (Zaremba's 2x650, tied: 13.3M parameters) with the same regularisers, for a GPU:
    about 40 epochs, lr 20 held for 20 epochs then x0.7 per epoch."""
    model = LanguageModelConfig(vocab, cell="lstm", embed_size=650, hidden_size=650, num_layers=2, init_range=0.05,
                                tie_weights=True, dropout_embed=0.1, dropout_input=0.5, dropout_hidden=0.3,
                                dropout_output=0.5, weight_drop=0.3, activation_reg=2.0, temporal_reg=1.0)
    train = TrainConfig(optimizer="sgd", lr=20.0, clip=0.25, schedule="step", lr_factor=0.7, lr_start=20,
                        max_epochs=epochs, restore_best=True)
    return model, train, dict(batch_size=20, bptt=35)


def compare_configs(vocab, epochs):
    """MLP window, RNN, GRU, LSTM with about the same parameter count (embedding + output dominate)."""
    common = dict(embed_size=200, num_layers=1, init_range=0.1)
    train = TrainConfig(optimizer="adam", lr=2e-3, clip=1.0, schedule="plateau", lr_factor=0.5, lr_patience=0,
                        max_epochs=epochs, restore_best=True)
    # Hidden widths solve "core + output layer = the LSTM's" (the output layer V*H dominates), so all four
    # hold 4.33M parameters within 0.1%: LSTM 200, GRU 207, tanh RNN 222, MLP (window 5) 211.
    return {
        "lstm": LanguageModelConfig(vocab, cell="lstm", hidden_size=200, **common),
        "gru": LanguageModelConfig(vocab, cell="gru", hidden_size=207, **common),
        "rnn": LanguageModelConfig(vocab, cell="rnn", hidden_size=222, **common),
        "mlp": WindowLanguageModelConfig(vocab, embed_size=200, hidden_size=211, window=5),
    }, train


def shakespeare(vocab, minutes):
    model = LanguageModelConfig(vocab, cell="lstm", embed_size=64, hidden_size=256, num_layers=2)
    # Budget in CPU seconds of this process (1 thread): at most `minutes` on one core, so at most that on two.
    train = TrainConfig(optimizer="adam", lr=3e-3, clip=1.0, max_epochs=None, max_cpu_s=minutes * 60,
                        eval_every=300, schedule="plateau", lr_factor=0.5, lr_patience=0, restore_best=True)
    return model, train, dict(batch_size=32, bptt=100, windows=True, windows_per_epoch=300)


def build(config):
    cls = WindowLanguageModel if isinstance(config, WindowLanguageModelConfig) else LanguageModel
    return cls(config)


def run(name, corpus, tokenizer, model_config, train_config, task_options, args):
    run_dir = ROOT / "runs" / name
    if run_dir.exists():
        shutil.rmtree(run_dir)  # benchmark runs are scratch; results live in results/
    prepare_run_dir(run_dir, kind="lm", config={"model": model_config.__dict__, "train": train_config.__dict__},
                    command=" ".join(sys.argv))
    data = encode_splits(corpus, tokenizer, run_dir / "data")
    seed_everything(args.seed)
    model = build(model_config)
    params = sum(p.numel() for p in model.parameters())
    task = LanguageModelTask(data, tokenizer, seed=args.seed, **task_options)
    train_config.progress = not args.no_progress
    train_config.device = args.device
    start = time.perf_counter()
    summary = Trainer(model, task, train_config, run_dir).fit()
    wall = time.perf_counter() - start
    model.eval()
    results = {split: task.evaluate(model, split) for split in ("valid", "test") if split in data}
    record = {"preset": name, "params": params, "device": args.device, "wall_s": round(wall, 1), "summary": summary,
              "results": results, "threads": torch.get_num_threads(), "machine": f"{platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cpus", "torch": torch.__version__,
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": " ".join(sys.argv)}
    with open(ROOT / "results" / "lm_runs.jsonl", "a") as handle:
        handle.write(json.dumps(record) + "\n")
    print(json.dumps(record, indent=1))
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset", choices=["zaremba-small", "tied-variational", "awd-small", "awd-medium", "compare", "shakespeare"])
    parser.add_argument("--data", default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help="compare: comma-separated subset of mlp,rnn,gru,lstm")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the trainer moves model and batches)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    (ROOT / "results").mkdir(exist_ok=True)
    if args.preset == "shakespeare":
        corpus = load_corpus(args.data or SHARED / "tinyshakespeare" / "input.txt", fractions=(0.9, 0.1))
        tokenizer = fit_tokenizer("char", corpus.lines("train"))
        model, train, task = shakespeare(tokenizer.vocab_size, args.minutes)
        run(args.preset, corpus, tokenizer, model, train, task, args)
        return
    corpus = load_corpus(args.data or SHARED / "ptb")
    tokenizer = fit_tokenizer("word", corpus.lines("train"))
    if args.preset == "compare":
        configs, train = compare_configs(tokenizer.vocab_size, args.epochs or 6)
        chosen = args.only.split(",") if args.only else list(configs)
        for name in chosen:
            run(f"compare-{name}", corpus, tokenizer, configs[name], TrainConfig(**train.__dict__),
                dict(batch_size=20, bptt=35), args)
        return
    preset = {"zaremba-small": zaremba_small, "tied-variational": tied_variational, "awd-small": awd_small,
              "awd-medium": awd_medium}[args.preset]
    model, train, task = preset(tokenizer.vocab_size, *([args.epochs] if args.epochs else []))
    run(args.preset, corpus, tokenizer, model, train, task, args)


if __name__ == "__main__":
    main()
