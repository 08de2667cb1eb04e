"""Options shared by every command, and ``--flags`` generated from config dataclasses.

``add_config_options(parser, Config)`` adds one flag per field of ``Config`` (see :mod:`rnnlab.config`)
with its one-line help and its default shown; ``config_from_args(Config, args)`` builds the
dataclass back from the parsed namespace and validates it before any work starts. ``--threads``,
``--seed`` and ``--no-progress`` are added once here, the same way for every command.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from rnnlab.config import check_config, field_type, flag_name
from rnnlab.errors import ConfigError

__all__ = ["add_config_options", "config_from_args", "add_run_options", "apply_threads", "command_line"]


def _describe_default(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return " ".join(map(str, value)) if value else "none"
    return "none" if value is None else str(value)


def _default_of(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return None


def add_config_options(parser: argparse.ArgumentParser, cls: type, *, exclude: tuple[str, ...] = (),
                       defaults: dict | None = None, group: str | None = None) -> None:
    """One flag per field of dataclass ``cls`` (fields with ``cli=False`` or in ``exclude`` are skipped).

    ``defaults`` overrides a field's default for this command only (shown in the help). A field
    without a default becomes a required flag. Values are parsed as given; ranges are checked by
    :func:`config_from_args` so that the library and the CLI share one rule.
    """
    target = parser.add_argument_group(group) if group else parser
    defaults = defaults or {}
    for field in dataclasses.fields(cls):
        if field.name in exclude or not field.metadata.get("cli", True):
            continue
        base, optional, sequence = field_type(cls, field)
        default = defaults.get(field.name, _default_of(field))
        required = field.name not in defaults and field.default is dataclasses.MISSING \
            and field.default_factory is dataclasses.MISSING  # type: ignore[misc]
        text = field.metadata.get("help") or field.name.replace("_", " ")
        choices = field.metadata.get("choices")
        kwargs: dict[str, Any] = {"dest": field.name, "default": argparse.SUPPRESS}
        if base is bool and not sequence:
            kwargs["action"] = argparse.BooleanOptionalAction
            text += f" (default: {field.metadata.get('default_text') or _describe_default(default)})"
        else:
            kwargs["type"] = base if base in (int, float) and not sequence else str
            if sequence:  # "--split 0.9 0.05 0.05" or "--split 0.9,0.05,0.05"
                kwargs["nargs"] = "+"
            if choices is not None:
                kwargs["choices"] = choices
            kwargs["metavar"] = None if choices is not None else field.name.upper()
            shown = field.metadata.get("default_text") or _describe_default(default)
            text += " (required)" if required else f" (default: {shown})"
            kwargs["required"] = required
        target.add_argument(flag_name(field), help=text, **kwargs)
    parser.set_defaults(**{f"_defaults_{cls.__name__}": defaults})


def config_from_args(cls: type, args: argparse.Namespace, **fixed: Any):
    """The ``cls`` instance the command line asked for (defaults where a flag was not given), checked."""
    overrides = getattr(args, f"_defaults_{cls.__name__}", {}) or {}
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name in fixed:
            values[field.name] = fixed[field.name]
        elif hasattr(args, field.name):
            value = getattr(args, field.name)
            base, _, sequence = field_type(cls, field)
            values[field.name] = _sequence(field, base, value) if sequence and isinstance(value, list) else value
        elif field.name in overrides:
            values[field.name] = overrides[field.name]
    try:
        config = cls(**values)
    except TypeError as error:
        raise ConfigError(f"incomplete options for {cls.__name__}: {error}") from None
    return check_config(config)


def _sequence(field: dataclasses.Field, base: type, tokens: list[str]) -> tuple:
    """``["0.9,0.05", "0.05"]`` -> ``(0.9, 0.05, 0.05)`` for a ``tuple[float, ...]`` field."""
    items = [item for token in tokens for item in str(token).split(",") if item.strip()]
    try:
        return tuple(base(item) for item in items) if base in (int, float) else tuple(items)
    except ValueError:
        kind = "integers" if base is int else "numbers"
        raise ConfigError(f"{flag_name(field)} takes {kind} (space- or comma-separated); got {' '.join(tokens)!r}") \
            from None


def given(args: argparse.Namespace, cls: type) -> dict:
    """The fields of ``cls`` set explicitly on the command line (e.g. to override a resumed run's config)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}


def add_run_options(parser: argparse.ArgumentParser, *, out: bool = True, resume: bool = False,
                    threads: int | None = 1, seed: bool = True, progress: bool = True) -> None:
    """``--out``, ``--resume``, ``--threads``, ``--seed``, ``--no-progress``: the same for every command."""
    if out:
        parser.add_argument("--out", required=True, help="run directory to create (must be new or empty"
                                                         + (" unless --resume)" if resume else ")"))
    if resume:
        parser.add_argument("--resume", action="store_true", help="continue the run in --out from its latest "
                                                                  "checkpoint (exactly where it stopped)")
    shown = "torch's own choice" if threads is None else threads
    parser.add_argument("--threads", type=int, default=threads,
                        help=f"torch CPU threads (default: {shown}; 1 is fastest for small models)")
    if seed:
        parser.add_argument("--seed", type=int, default=0, help="random seed of data order and initialisation "
                                                                "(default: 0)")
    if progress:
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def apply_threads(args: argparse.Namespace) -> None:
    """Check and apply ``--threads`` (before any work)."""
    threads = getattr(args, "threads", None)
    if threads is None:
        return
    if isinstance(threads, bool) or threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def command_line(argv: list[str] | None = None) -> str:
    """The command as the user typed it, for run.json."""
    import shlex
    import sys

    return " ".join(shlex.quote(a) for a in ["rnnlab"] + list(sys.argv[1:] if argv is None else argv))
