"""``rnnlab evaluate RUN_DIR``: score a trained run on a split or on new data, whatever its job.

    rnnlab evaluate runs/ptb                       # language model: perplexity on the run's test split
    rnnlab evaluate runs/ptb --data ptb/test.txt   # ... or on another text

The run's kind (``run.json``) picks the evaluator below; each reads the options that apply to it and
rejects the others by name.
"""
from __future__ import annotations

import argparse
import importlib

from rnnlab.errors import ConfigError

# kind -> "module:function(args) -> int". Add a line for a new job.
EVALUATORS = {
    "lm": "rnnlab.commands.lm:run_evaluate",
    "speech": "rnnlab.commands.speech:run_evaluate",
    "caption": "rnnlab.commands.caption:run_evaluate",
    "translate": "rnnlab.commands.translate:run_evaluate",
}


def register(subparsers) -> None:
    ev = subparsers.add_parser("evaluate", help="score a trained run (perplexity, BLEU, WER, ...) on a split or data",
                               description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ev.add_argument("checkpoint", metavar="RUN_DIR", help="run directory (or one of its ckpt-* directories)")
    ev.add_argument("--data", help="data to score instead of the run's own split (a text file or directory for "
                                   "language models)")
    ev.add_argument("--split", default="test", help="split of the run's data to score (default: test)")
    ev.add_argument("--encoding-errors", choices=["strict", "replace"], default="strict",
                    help="undecodable UTF-8 in --data: strict = stop with file and byte offset; replace = U+FFFD")
    ev.add_argument("--batch-size", type=int, default=10, help="sequences scored at once (default: 10)")
    ev.add_argument("--int8", action="store_true", help="score the int8 (dynamically quantised) model")
    ev.add_argument("--beam", type=int, default=None, help="beam size for jobs that decode (default: the job's own)")
    ev.add_argument("--ensemble", nargs="+", metavar="RUN", help="translation or speech: other runs (same data "
                    "and vocabularies; speech: same task and split) decoded together with RUN_DIR")
    ev.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rnnlab.rundir import RUN_JSON, read_run

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    run_dir = Path(args.checkpoint)
    if not (run_dir / RUN_JSON).exists() and (run_dir.parent / RUN_JSON).exists():
        run_dir = run_dir.parent  # a ckpt-* directory inside a run
    kind = read_run(run_dir)["kind"]
    if kind not in EVALUATORS:
        raise ConfigError(f"{run_dir} holds a {kind!r} run; rnnlab evaluate scores {', '.join(sorted(EVALUATORS))} runs")
    if getattr(args, "int8", False) and kind != "lm":
        raise ConfigError(f"--int8 scores language models; {run_dir} holds a {kind!r} run")
    if getattr(args, "ensemble", None) and kind not in ("translate", "speech"):
        raise ConfigError(f"--ensemble decodes translation or speech runs together; {run_dir} holds a {kind!r} run")
    module, function = EVALUATORS[kind].split(":")
    return getattr(importlib.import_module(module), function)(args)
