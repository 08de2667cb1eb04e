"""``rnnlab train lm``, ``rnnlab next``, ``rnnlab generate``, ``rnnlab evaluate``: language models.

    rnnlab train lm --out runs/pydoc                      # built-in corpus, characters, small LSTM
    rnnlab train lm --data ptb/ --level word --out runs/ptb
    rnnlab next runs/ptb "the clouds are in the"
    rnnlab generate runs/pydoc --prompt "def " --max-tokens 200 --temperature 0.8 --seed 1
    rnnlab evaluate runs/ptb --data ptb/test.txt
"""
from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from rnnlab.errors import ConfigError, DataError


def register_train(kinds) -> None:
    lm = kinds.add_parser("lm", help="train a language model", description=__doc__,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    add = lm.add_argument
    add("--out", required=True, help="run directory (must be new or empty unless --resume)")
    add("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    add("--data", help="text file, directory, or directory with train.txt/valid.txt[/test.txt]; "
                       "default: the built-in pydoc_data.topics corpus")
    add("--level", choices=["char", "word", "bpe"], default="char")
    add("--model", default="lstm", help="mlp (Bengio window), or a cell: lstm, gru, rnn, peephole, layernorm, ...")
    add("--split", default="0.9,0.05,0.05", help="train,valid[,test] fractions for a single text")
    add("--encoding-errors", choices=["strict", "replace"], default="strict",
        help="undecodable UTF-8: strict = stop with file and byte offset; replace = U+FFFD")
    add("--vocab-size", type=int, help="word: keep the most frequent; bpe: vocabulary size (default 4096)")
    add("--min-count", type=int, default=1, help="word: drop words seen fewer times")
    for name in ("embed", "hidden", "layers", "window", "batch-size", "bptt", "epochs", "max-steps", "eval-every",
                 "patience"):
        add(f"--{name}", type=int)
    for name in ("dropout", "weight-drop", "init-range", "lr", "clip", "max-minutes"):
        add(f"--{name}", type=float)
    add("--tie", action="store_true", help="tie input and output embeddings")
    add("--windows", action=argparse.BooleanOptionalAction, default=None,
        help="random windows instead of contiguous TBPTT streams")
    add("--optimizer", choices=["sgd", "adam", "adamw"])
    add("--schedule", choices=["none", "step", "plateau"])
    add("--seed", type=int, default=0)
    add("--threads", type=int, help="torch CPU threads")
    add("--no-progress", action="store_true")
    add("--tensorboard", action="store_true")
    lm.set_defaults(func=run_train)


def register(subparsers) -> None:

    nxt = subparsers.add_parser("next", help="top-k next tokens of a trained language model")
    nxt.add_argument("checkpoint", help="run directory (or ckpt-* directory)")
    nxt.add_argument("text")
    nxt.add_argument("--top-k", type=int, default=10)
    nxt.set_defaults(func=run_next)

    gen = subparsers.add_parser("generate", help="sample text from a trained language model")
    gen.add_argument("checkpoint")
    gen.add_argument("--prompt", default="\n")
    gen.add_argument("--max-tokens", type=int, default=200)
    gen.add_argument("--temperature", type=float, default=1.0)
    gen.add_argument("--top-k", type=int)
    gen.add_argument("--top-p", type=float)
    gen.add_argument("--seed", type=int)
    gen.set_defaults(func=run_generate)



def _split(text: str) -> tuple:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--split must be comma-separated fractions like 0.9,0.05,0.05; got {text!r}") from None


def run_train(args: argparse.Namespace) -> int:
    import torch

    from rnnlab.runs.lm import LMRunConfig, train_lm

    if args.threads:
        torch.set_num_threads(args.threads)
    options = dict(data=args.data, level=args.level, model=args.model, split=_split(args.split),
                   encoding_errors=args.encoding_errors, vocab_size=args.vocab_size, min_count=args.min_count,
                   embed=args.embed, hidden=args.hidden, layers=args.layers, window=args.window or 5, tie=args.tie,
                   dropout=args.dropout or 0.0, weight_drop=args.weight_drop or 0.0, init_range=args.init_range,
                   batch_size=args.batch_size, bptt=args.bptt, windows=args.windows, optimizer=args.optimizer,
                   lr=args.lr, clip=args.clip, schedule=args.schedule, epochs=args.epochs, max_steps=args.max_steps,
                   max_minutes=args.max_minutes, eval_every=args.eval_every, patience=args.patience, seed=args.seed,
                   progress=not args.no_progress, tensorboard=args.tensorboard)
    overrides = {k: options[k] for k in ("epochs", "max_steps", "max_minutes")} | {"progress": not args.no_progress}
    result = train_lm(LMRunConfig(**options), args.out, resume=args.resume, command=" ".join(["rnnlab"] + sys.argv[1:]),
                      overrides=overrides)
    from rnnlab import distributed

    if not distributed.is_main():  # under torchrun, rank 0 reports
        return 0
    s = result["summary"]
    print(f"trained {result['parameters']:,} parameters for {s['steps']} steps ({s['epochs']} epochs, "
          f"{s['wall_s']:.0f} s, stopped: {s['stopped']}) on {result['tokens'].get('train', 0):,} training tokens")
    for split, metrics in result["results"].items():
        print(f"{split}: {_describe(metrics, result['level'])}")
    print(f"run directory: {args.out}")
    return 0


def _describe(metrics: dict, level: str) -> str:
    loss = metrics["loss"]
    if level == "char":
        return f"{loss:.4f} nats/char = {loss / math.log(2):.4f} bits per character"
    return f"{loss:.4f} nats/token, perplexity {math.exp(min(loss, 700)):.2f}"


def _encode_prompt(tokenizer, text: str) -> list[int]:
    ids = tokenizer.encode(text, strict=tokenizer.level == "char")
    if tokenizer.level == "word" and tokenizer.unk_id in ids:
        unknown = [w for w in text.split() if w not in tokenizer.index]
        print(f"note: {len(unknown)} word(s) not in the vocabulary read as <unk>: {' '.join(unknown[:10])}",
              file=sys.stderr)
    if not ids:
        raise DataError(f"the prompt {text!r} has no tokens")
    return ids


def run_next(args: argparse.Namespace) -> int:
    from rnnlab.tasks.lm import load_language_model

    if args.top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {args.top_k}")
    model, tokenizer, _ = load_language_model(args.checkpoint)
    probs = model.next_distribution(_encode_prompt(tokenizer, args.text))
    values, ids = probs.topk(min(args.top_k, len(probs)))
    for p, i in zip(values.tolist(), ids.tolist()):
        print(f"{tokenizer.tokens[i]!r:>20}  {p:.4f}" if tokenizer.level != "word" else f"{tokenizer.tokens[i]:>20}  {p:.4f}")
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from rnnlab.tasks.lm import load_language_model

    model, tokenizer, _ = load_language_model(args.checkpoint)
    prompt = _encode_prompt(tokenizer, args.prompt)
    ids = model.generate(prompt, args.max_tokens, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                         seed=args.seed)
    separator = " " if tokenizer.level == "word" and not args.prompt.endswith(("\n", " ")) else ""
    print(args.prompt + separator + tokenizer.decode(ids))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """``rnnlab evaluate`` for a language-model run (dispatched by rnnlab.commands.evaluate)."""
    from pathlib import Path

    from rnnlab.data.text import check_text_file, load_corpus
    from rnnlab.io import read_json
    from rnnlab.tasks.lm import evaluate_stream, load_language_model

    model, tokenizer, ckpt = load_language_model(args.checkpoint)
    if args.data is None:
        info = read_json(ckpt.directory.parent / "run.json", "run description (run.json) with the training data")
        cfg = info["config"]
        corpus = load_corpus(cfg.get("data"), fractions=tuple(cfg.get("split", (0.9, 0.05, 0.05))),
                             errors=cfg.get("encoding_errors", "strict"))
        lines, source = corpus.lines(args.split), f"{corpus.source} [{args.split}]"
    elif Path(args.data).is_dir():
        corpus = load_corpus(args.data, errors=args.encoding_errors)
        lines, source = corpus.lines(args.split), f"{args.data} [{args.split}]"
    else:
        lines, source = check_text_file(args.data, args.encoding_errors).lines(), args.data
    ids = np.concatenate(list(tokenizer.encode_lines(lines)) or [np.zeros(0, dtype=np.int64)])
    if len(ids) < 2:
        raise DataError(f"{source} gives {len(ids)} token(s); evaluation needs at least 2")
    metrics = evaluate_stream(model, ids, batch_size=args.batch_size)
    print(f"{source}: {int(metrics['tokens']):,} predictions, {_describe(metrics, tokenizer.level)}")
    if tokenizer.unknown_count:
        print(f"note: {tokenizer.unknown_count} token(s) were not in the vocabulary and read as <unk>", file=sys.stderr)
    return 0
