"""Config dataclasses: one description of every option, checked the same way in the library and the CLI.

A job's settings live in a dataclass beside the code they configure (nanoGPT's ``GPTConfig``). Each
field says what it is, once, with :func:`option`::

    @dataclass
    class SpeechConfig:
        hidden: int = option(128, "units per direction of each recurrent layer", min=1)
        dropout: float = option(0.1, "dropout between layers", min=0.0, max=1.0, max_open=True)
        cell: str = option("gru", "recurrent cell: any name in rnnlab.nn.RECURRENT")
        features: str = option("logmel", "input features", choices=("logmel", "mfcc"))

:func:`check_config` validates ranges (inclusive unless ``*_open``), finiteness of floats and
choices, and raises :class:`~rnnlab.errors.ConfigError` naming the option and the value given;
``rnnlab.commands.options.add_config_options`` turns the same fields into ``--flags`` whose help
shows the default. A plain field (no ``option``) also works: its help is then its name.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from rnnlab.errors import ConfigError

__all__ = ["option", "check_config", "flag_name", "field_type"]

_MISSING = dataclasses.MISSING


def option(default: Any = _MISSING, help: str = "", *, choices=None, min=None, max=None, min_open: bool = False,
           max_open: bool = False, flag: str | None = None, cli: bool = True, default_text: str | None = None,
           default_factory=_MISSING):
    """A dataclass field with its one-line help, allowed values and range (used by CLI and checks).

    ``default_text`` replaces the default shown in ``--help`` (e.g. "by --level" for a ``None`` that is
    resolved later); ``cli=False`` keeps the field out of the command line.
    """
    metadata = {"help": help, "choices": tuple(choices) if choices is not None else None, "min": min, "max": max,
                "min_open": min_open, "max_open": max_open, "flag": flag, "cli": cli, "default_text": default_text}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag_name(field: dataclasses.Field) -> str:
    """``--hidden-size`` for ``hidden_size`` (or the field's own ``flag``)."""
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def field_type(cls: type, field: dataclasses.Field) -> tuple[type, bool, bool]:
    """``(base type, optional, sequence)`` of a field: ``int | None`` -> (int, True, False),
    ``tuple[float, ...]`` -> (float, False, True)."""
    hints = typing.get_type_hints(cls)
    hint = hints.get(field.name, str)
    optional = False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0] if args else str
        origin = typing.get_origin(hint)
    if origin in (tuple, list):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return (args[0] if args else str), optional, True
    if hint in (tuple, list):
        return float, optional, True
    return hint, optional, False


def _check_value(field: dataclasses.Field, value: Any, base: type) -> None:
    meta, name = field.metadata, flag_name(field)
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return
    if base in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (base is int and not float(value).is_integer()):
            raise ConfigError(f"{name} must be {'an integer' if base is int else 'a number'}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
        low, high = meta.get("min"), meta.get("max")
        if low is not None and (value < low or (meta.get("min_open") and value == low)):
            raise ConfigError(f"{name} must be {'>' if meta.get('min_open') else '>='} {low}, got {value!r}")
        if high is not None and (value > high or (meta.get("max_open") and value == high)):
            raise ConfigError(f"{name} must be {'<' if meta.get('max_open') else '<='} {high}, got {value!r}")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")


def check_config(config: Any) -> Any:
    """Validate every field of the dataclass instance ``config`` against its :func:`option`; return it."""
    if not dataclasses.is_dataclass(config):
        raise ConfigError(f"expected a config dataclass, got {type(config).__qualname__}")
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        base, optional, sequence = field_type(type(config), field)
        if value is None:
            if optional or field.default is None:
                continue
            raise ConfigError(f"{flag_name(field)} needs a value")
        if sequence:
            if not isinstance(value, (tuple, list)):
                raise ConfigError(f"{flag_name(field)} must be a list of values, got {value!r}")
            for item in value:
                _check_value(field, item, base)
        elif base in (int, float, bool, str):
            _check_value(field, value, base)
    return config
