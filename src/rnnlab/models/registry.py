"""A small registry of model classes by name, so a checkpoint can rebuild a model from JSON.

Every checkpointable model follows one contract (nanoGPT's ``GPTConfig`` beside ``GPT``):

* a config dataclass, reachable as ``Model.Config``;
* ``model.config`` holds the instance it was built from;
* ``Model.from_config(config)`` builds a fresh model from it.

Register the class once, at import of its module::

    from rnnlab.models.registry import register_model

    @register_model("language_model")
    class LanguageModel(torch.nn.Module):
        Config = LanguageModelConfig
        ...

:func:`rnnlab.checkpoint.save_checkpoint` stores the registered name and ``asdict(model.config)``;
loading looks the name up here and calls ``from_config``. No class is ever unpickled.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from rnnlab.errors import ConfigError, RunDirError

MODELS: dict[str, type] = {}

# Modules that register models; imported on demand when a name is not yet known, so that
# loading a checkpoint works without the caller importing the model's module first.
MODEL_MODULES = ["rnnlab.models"]


def register_model(name: str):
    """Class decorator: record ``cls`` under ``name`` (and remember the name on the class)."""

    def decorate(cls: type) -> type:
        if name in MODELS and MODELS[name] is not cls:
            raise ConfigError(f"model name {name!r} is already registered by {MODELS[name].__qualname__}")
        for attribute in ("Config", "from_config"):
            if not hasattr(cls, attribute):
                raise ConfigError(f"a registered model needs a {attribute!r} attribute; {cls.__qualname__} has none")
        cls.registry_name = name
        MODELS[name] = cls
        return cls

    return decorate


def model_name(model: Any) -> str:
    """The registered name of ``model``'s class (raises ConfigError if it was never registered)."""
    name = getattr(type(model), "registry_name", None)
    if name is None or MODELS.get(name) is not type(model):
        raise ConfigError(
            f"expected a model class registered with rnnlab.models.registry.register_model; "
            f"got {type(model).__qualname__}")
    return name


def config_to_dict(config: Any) -> dict:
    """A config dataclass as a JSON-ready dict (tuples become lists)."""
    if not dataclasses.is_dataclass(config):
        raise ConfigError(f"expected a config dataclass, got {type(config).__qualname__}")
    return dataclasses.asdict(config)


def config_from_dict(cls: type, data: dict) -> Any:
    """Build ``cls`` (a dataclass) from ``data``, rejecting unknown keys instead of ignoring them."""
    fields = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise RunDirError(f"model config for {cls.__qualname__} has unknown keys {unknown}; known: {sorted(fields)}")
    return cls(**data)


def rebuild_model(name: str, config: dict) -> Any:
    """Rebuild a registered model from its name and config dict."""
    if name not in MODELS:
        for module in MODEL_MODULES:
            importlib.import_module(module)
    if name not in MODELS:
        raise RunDirError(f"checkpoint names model {name!r}; known models: {sorted(MODELS)}")
    cls = MODELS[name]
    return cls.from_config(config_from_dict(cls.Config, config))
