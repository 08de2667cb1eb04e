"""The ``rnnlab`` command line: parses arguments, calls the library, prints one-line errors.

Each command family lives in its own module exposing ``register(subparsers)`` and, if it trains a
kind of run, ``register_train(kinds)`` for ``rnnlab train KIND``; the module sets ``func`` on its parser. Library errors (:class:`rnnlab.errors.RnnlabError`) become one line on
stderr and exit status 2 — never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from rnnlab.errors import RnnlabError

# Command modules, each with register(subparsers). Keep this list the only wiring.
COMMAND_MODULES = [
    "rnnlab.commands.demo",
    "rnnlab.commands.lab",
    "rnnlab.commands.lm",
    "rnnlab.commands.report",
    "rnnlab.commands.forecast",
    "rnnlab.commands.classify",
    "rnnlab.commands.evaluate",
    "rnnlab.commands.translate",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnlab", description="Recurrent networks, made transparent.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    train = subparsers.add_parser("train", help="train a model into a run directory (rnnlab train KIND -h)")
    kinds = train.add_subparsers(dest="train_kind", metavar="KIND")
    kinds.required = True
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        if hasattr(module, "register"):
            module.register(subparsers)
        if hasattr(module, "register_train"):
            module.register_train(kinds)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except RnnlabError as error:
        print(f"rnnlab {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rnnlab {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
