"""The ``rnnlab`` command line: parses arguments, calls the library, prints one-line errors.

Each command family lives in its own module exposing ``register(subparsers)`` and, if it trains a
kind of run, ``register_train(kinds)`` for ``rnnlab train KIND``; the module sets ``func`` on its parser.

Every failure is one line on stderr, never a traceback: bad options and bad input (any
:class:`rnnlab.errors.RnnlabError`, a file that cannot be read or written, memory that cannot be had)
exit with status 2; Ctrl-C exits with 130 after saying where the last checkpoint is; anything
unexpected exits with 1 and one line (``RNNLAB_DEBUG=1`` shows the traceback).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from rnnlab.errors import RnnlabError

# Command modules, each with register(subparsers) and/or register_train(kinds). Keep this list the only wiring.
COMMAND_MODULES = [
    "rnnlab.commands.demo",
    "rnnlab.commands.lab",
    "rnnlab.commands.lm",
    "rnnlab.commands.report",
    "rnnlab.commands.forecast",
    "rnnlab.commands.classify",
    "rnnlab.commands.evaluate",
    "rnnlab.commands.export",
    "rnnlab.commands.translate",
    "rnnlab.commands.caption",
    "rnnlab.commands.speech",
]


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what was wrong, and where to read the help)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="rnnlab", description="Recurrent networks, made transparent.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    subparsers.required = True
    train = subparsers.add_parser("train", help="train a model into a run directory (rnnlab train KIND -h)")
    kinds = train.add_subparsers(dest="train_kind", metavar="KIND", parser_class=Parser)
    kinds.required = True
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        if hasattr(module, "register"):
            module.register(subparsers)
        if hasattr(module, "register_train"):
            module.register_train(kinds)
    return parser


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    name = args.command + (f" {args.train_kind}" if getattr(args, "train_kind", None) else "")
    try:
        result = args.func(args)
    except RnnlabError as error:
        print(f"rnnlab {name}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(f"rnnlab {name}: {_one_line(interrupt) or 'interrupted'}", file=sys.stderr)
        return 130
    except (OSError, MemoryError, RuntimeError, ValueError) as error:
        if os.environ.get("RNNLAB_DEBUG"):
            raise
        print(f"rnnlab {name}: error: {_describe(error)}", file=sys.stderr)
        return 2 if isinstance(error, (OSError, MemoryError)) or _is_memory(error) else 1
    except Exception as error:  # a bug: still one line, and how to see more
        if os.environ.get("RNNLAB_DEBUG"):
            raise
        print(f"rnnlab {name}: internal error: {type(error).__name__}: {_one_line(error)} "
              f"(rerun with RNNLAB_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    return int(result or 0)


def _is_memory(error: BaseException) -> bool:
    text = str(error).lower()
    return "can't allocate memory" in text or "out of memory" in text or "not enough memory" in text


def _describe(error: BaseException) -> str:
    """A one-line description of an OS, memory or runtime error, naming the file where there is one."""
    if isinstance(error, MemoryError) or _is_memory(error):
        return ("not enough memory for this model or batch (" + _one_line(error)[:160] + "); "
                "try a smaller --hidden, --layers or --batch-size")
    if isinstance(error, OSError):
        where = f" {error.filename}" if getattr(error, "filename", None) else ""
        reason = error.strerror or _one_line(error)
        return f"cannot access{where}: {reason}"
    return f"{type(error).__name__}: {_one_line(error)}"


if __name__ == "__main__":
    sys.exit(main())
