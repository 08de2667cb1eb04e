"""``rnnlab train lm``, ``rnnlab next``, ``rnnlab generate`` (and ``rnnlab evaluate`` of an LM run).

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
from pathlib import Path

import numpy as np

from rnnlab import distributed
from rnnlab.commands.options import (
    add_config_options,
    add_run_options,
    apply_threads,
    command_line,
    config_from_args,
    given,
)
from rnnlab.data.text import check_text_file, load_corpus
from rnnlab.errors import ConfigError, DataError
from rnnlab.rundir import read_run, run_dir_of
from rnnlab.runs.lm import LMRunConfig, train_lm
from rnnlab.tasks.lm import evaluate_stream, load_language_model

MAX_TOKENS_WARN = 100_000  # longer generations are streamed with a note on stderr


def register_train(kinds) -> None:
    lm = kinds.add_parser("lm", help="train a language model (characters, words or BPE)", description=__doc__,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_options(lm, resume=True, threads=None)
    lm.add_argument("--force", action="store_true", help="with --resume: continue even if the training text "
                                                         "changed since the run started")
    add_config_options(lm, LMRunConfig)
    lm.set_defaults(func=run_train)


def register(subparsers) -> None:
    nxt = subparsers.add_parser("next", help="top-k next tokens of a trained language model",
                                description="Print the most likely next tokens after TEXT, with probabilities.")
    nxt.add_argument("checkpoint", metavar="RUN_DIR", help="run directory of rnnlab train lm (or a ckpt-* in it)")
    nxt.add_argument("text", metavar="TEXT", help="the context, e.g. \"the clouds are in the\"")
    nxt.add_argument("--top-k", type=int, default=10, help="how many tokens to list (default: 10)")
    nxt.add_argument("--int8", action="store_true", help="int8 weights (dynamic quantisation) for faster CPU inference")
    nxt.set_defaults(func=run_next)

    gen = subparsers.add_parser("generate", help="sample text from a trained language model",
                                description="Continue --prompt by sampling; tokens are printed as they come.")
    gen.add_argument("checkpoint", metavar="RUN_DIR", help="run directory of rnnlab train lm (or a ckpt-* in it)")
    gen.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    gen.add_argument("--max-tokens", type=int, default=200, help="tokens to generate (default: 200)")
    gen.add_argument("--temperature", type=float, default=1.0,
                     help="sampling temperature; 0 = greedy (always the most likely token) (default: 1.0)")
    gen.add_argument("--top-k", type=int, help="sample only among the k most likely tokens (default: all)")
    gen.add_argument("--top-p", type=float, help="nucleus sampling: the smallest set with this much probability "
                                                 "(default: off)")
    gen.add_argument("--seed", type=int, help="random seed: the same seed gives the same text (default: random)")
    gen.add_argument("--int8", action="store_true", help="int8 weights (dynamic quantisation) for faster CPU inference")
    gen.set_defaults(func=run_generate)


def run_train(args: argparse.Namespace) -> int:
    apply_threads(args)
    config = config_from_args(LMRunConfig, args, seed=args.seed, progress=not args.no_progress)
    # On --resume only a longer budget (and the progress bar) may change; the rest is the stored run.
    overrides = {k: v for k, v in given(args, LMRunConfig).items() if k in ("epochs", "max_steps", "max_minutes")}
    overrides["progress"] = config.progress
    result = train_lm(config, args.out, resume=args.resume, command=command_line(), overrides=overrides,
                      force=args.force, log=lambda m: print(m, file=sys.stderr))
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
    if args.top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {args.top_k}")
    model, tokenizer, _ = load_language_model(args.checkpoint, int8=args.int8)
    probs = model.next_distribution(_encode_prompt(tokenizer, args.text))
    values, ids = probs.topk(min(args.top_k, len(probs)))
    for p, i in zip(values.tolist(), ids.tolist()):
        print(f"{tokenizer.tokens[i]!r:>20}  {p:.4f}" if tokenizer.level != "word" else f"{tokenizer.tokens[i]:>20}  {p:.4f}")
    return 0


def run_generate(args: argparse.Namespace) -> int:
    if args.max_tokens < 0:
        raise ConfigError(f"--max-tokens must be >= 0, got {args.max_tokens}")
    if not math.isfinite(args.temperature) or args.temperature < 0:
        raise ConfigError(f"--temperature must be >= 0 and finite (0 = greedy), got {args.temperature}")
    if args.top_p is not None and not (math.isfinite(args.top_p) and 0 < args.top_p <= 1):
        raise ConfigError(f"--top-p must be in (0, 1], got {args.top_p}")
    model, tokenizer, _ = load_language_model(args.checkpoint, int8=args.int8)
    prompt = _encode_prompt(tokenizer, args.prompt)
    if args.max_tokens > MAX_TOKENS_WARN:
        print(f"note: generating {args.max_tokens:,} tokens; they are printed as they come (Ctrl-C stops)",
              file=sys.stderr)
    separator = " " if tokenizer.level == "word" and not args.prompt.endswith(("\n", " ")) else ""
    sys.stdout.write(args.prompt + separator)
    first = [True]

    def stream(token: int) -> None:  # print each token as it is drawn
        text = tokenizer.decode([token])
        if tokenizer.level == "word" and not first[0]:
            text = " " + text
        first[0] = False
        sys.stdout.write(text)
        sys.stdout.flush()

    model.generate(prompt, args.max_tokens, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                   seed=args.seed, on_token=stream)
    sys.stdout.write("\n")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """``rnnlab evaluate`` for a language-model run (dispatched by rnnlab.commands.evaluate)."""
    if args.beam is not None:
        raise ConfigError("--beam applies to jobs that decode (translate, speech, caption), not to language models")
    model, tokenizer, ckpt = load_language_model(args.checkpoint, int8=getattr(args, "int8", False))
    if args.data is None:
        cfg = read_run(run_dir_of(ckpt.directory))["config"]
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
