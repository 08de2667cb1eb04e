"""Checkpoints: safetensors + JSON, atomic, never unpickled.

Inside a run directory (:mod:`rnnlab.rundir` owns its layout)::

    RUN/
      run.json            {"format": "rnnlab-run", "version": 1, "kind": ..., "config": {...}, ...}
      metrics.csv         appended by the trainer
      checkpoints.json    {"latest": "ckpt-00001200", "best": "ckpt-00001000"}   (the only pointer)
      ckpt-00001200/
        model.safetensors weights (every tensor cloned, so tied weights are stored twice, loaded once)
        model.json        {"format": "rnnlab-checkpoint", "version": 1, "model": NAME, "config": {...}}
        trainer.safetensors + trainer.json   optimizer, schedule, step, epoch, batch, RNG states, carried state
        tokenizer.json    ... and any other file the task hands over
        manifest.json     sha256 of every file above, written last

Atomicity: a checkpoint is written into a hidden temporary directory, flushed, renamed to
``ckpt-<step>``, and only then does ``checkpoints.json`` (replaced with ``os.replace``) point at it.
A crash or kill at any moment leaves ``checkpoints.json`` naming a complete directory; the manifest
catches a file damaged later (truncated, edited, swapped tokenizer).

Training state is nested Python data (optimizer ``state_dict``, RNG states, ...). :func:`encode_state`
splits it into JSON plus a flat dict of tensors for safetensors; :func:`decode_state` reverses it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from rnnlab.errors import RunDirError, StateDictError
from rnnlab.io import atomic_write_json, fsync_dir, read_json, umask_mode
from rnnlab.models.registry import config_to_dict, model_name, rebuild_model
from rnnlab.rundir import POINTER, clean_temporary

CKPT_NAME = re.compile(r"ckpt-\d{8}")

CHECKPOINT_FORMAT, CHECKPOINT_VERSION = "rnnlab-checkpoint", 1


# ----------------------------------------------------------------------------- nested state <-> JSON + tensors
def encode_state(obj: Any, tensors: dict[str, torch.Tensor], path: str = "s") -> Any:
    """JSON-ready copy of ``obj``; tensors (and numpy arrays) are moved into ``tensors`` by path.

    Supported: dict (any str/int keys), list, tuple, tensor, ndarray, str, int, float, bool, None.
    Tuples and int-keyed dicts are tagged so they come back as they went in.
    """
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": path}
    if isinstance(obj, np.ndarray):
        tensors[path] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"__ndarray__": path}
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {"__tuple__": [encode_state(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode_state(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        keys = list(obj)
        if all(isinstance(k, str) and not k.startswith("__") for k in keys):
            return {k: encode_state(v, tensors, f"{path}.{k}") for k, v in obj.items()}
        if all(isinstance(k, int) for k in keys):
            return {"__int_keys__": {str(k): encode_state(v, tensors, f"{path}.{k}") for k, v in obj.items()}}
    raise StateDictError(f"cannot store training state of type {type(obj).__qualname__} at {path}; "
                         f"expected tensors, arrays, numbers, strings and dict/list/tuple of them")


def decode_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`encode_state`."""
    if isinstance(obj, list):
        return [decode_state(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy()
        if "__tuple__" in obj:
            return tuple(decode_state(v, tensors) for v in obj["__tuple__"])
        if "__int_keys__" in obj:
            return {int(k): decode_state(v, tensors) for k, v in obj["__int_keys__"].items()}
        return {k: decode_state(v, tensors) for k, v in obj.items()}
    return obj


# ----------------------------------------------------------------------------- checkpoints
@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns."""

    directory: Path
    model: torch.nn.Module
    model_name: str
    config: dict
    step: int
    training_state: dict | None = None
    files: dict[str, str] = field(default_factory=dict)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(run_dir: str | os.PathLike, model: torch.nn.Module, *, step: int,
                    training_state: dict | None = None, files: dict[str, str] | None = None,
                    best: bool = False) -> Path:
    """Write a checkpoint of ``model`` (+ optional training state and text files) into ``run_dir``.

    The new checkpoint becomes ``latest`` (and ``best`` if ``best``); directories no longer named by
    the pointer are removed afterwards. Returns the checkpoint directory.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    name = f"ckpt-{step:08d}"
    final = run_dir / name
    pointer = _read_pointer(run_dir) if (run_dir / POINTER).exists() else {}
    if not final.exists():
        tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=f".{name}."))
        os.chmod(tmp, umask_mode(0o777))  # mkdtemp makes 0700; a shared run must stay readable
        try:
            _write_checkpoint_files(tmp, model, step, training_state, files or {})
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(run_dir)
    # "best" names only an evaluated checkpoint that improved; until there is one, it is absent.
    pointer = {"latest": name, **({"best": name} if best else {k: v for k, v in pointer.items() if k == "best"})}
    atomic_write_json(run_dir / POINTER, pointer)
    keep = set(pointer.values())
    for old in run_dir.glob("ckpt-*"):
        if old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)
    clean_temporary(run_dir)  # what an earlier, killed write left behind
    return final


def _read_pointer(run_dir: Path) -> dict:
    """``checkpoints.json``, checked: a dict whose entries name ``ckpt-NNNNNNNN`` directories inside the run."""
    pointer = read_json(run_dir / POINTER, "checkpoint pointer")
    if not isinstance(pointer, dict):
        raise RunDirError(f"checkpoint pointer {run_dir / POINTER} must be a JSON object; got {type(pointer).__name__}")
    for key, value in pointer.items():
        if key not in ("latest", "best") or not isinstance(value, str) or not CKPT_NAME.fullmatch(value):
            raise RunDirError(f"checkpoint pointer {run_dir / POINTER} names {key!r}: {value!r}; expected 'latest'/"
                              f"'best' naming a ckpt-NNNNNNNN directory inside the run")
    return pointer


def _write_checkpoint_files(directory: Path, model, step, training_state, files) -> None:
    weights = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(weights, str(directory / "model.safetensors"))
    meta = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": model_name(model),
            "config": config_to_dict(model.config), "step": int(step)}
    (directory / "model.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    if training_state is not None:
        tensors: dict[str, torch.Tensor] = {}
        encoded = encode_state(training_state, tensors)
        save_file(tensors, str(directory / "trainer.safetensors"))
        (directory / "trainer.json").write_text(json.dumps(encoded))
    for fname, text in files.items():
        if "/" in fname or fname.startswith(".") or fname in {"manifest.json", "model.json", "trainer.json"}:
            raise StateDictError(f"expected a plain checkpoint file name, got {fname!r}")
        (directory / fname).write_text(text, encoding="utf-8")
    manifest = {p.name: _sha256(p) for p in sorted(directory.iterdir())}
    (directory / "manifest.json").write_text(json.dumps({"files": manifest}, indent=1, sort_keys=True))
    mode = umask_mode()  # safetensors writes 0600 whatever the umask; a shared run must stay readable
    for p in directory.iterdir():
        os.chmod(p, mode)
        with open(p, "rb") as handle:
            os.fsync(handle.fileno())
    fsync_dir(directory)


def resolve_checkpoint(path: str | os.PathLike, which: str = "best") -> Path:
    """The checkpoint directory for ``path``: a run directory (via its pointer) or a ``ckpt-*`` dir."""
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"expected a run directory or checkpoint at {path}; nothing is there")
    if (path / "manifest.json").exists() or (path / "model.json").exists():
        return path
    if not (path / POINTER).exists():
        raise RunDirError(f"expected a run directory with a checkpoint ({POINTER}) at {path}; found none (the run "
                          f"has not saved one yet)")
    pointer = _read_pointer(path)
    if which == "best" and "best" not in pointer:
        which = "latest"  # nothing evaluated yet: the latest weights are the only ones
    if which not in ("best", "latest") or which not in pointer:
        raise RunDirError(f"checkpoint pointer {path / POINTER} has no {which!r} entry; it holds {pointer}")
    return path / pointer[which]


def has_best(run_dir: str | os.PathLike) -> bool:
    """Whether the run has an evaluated best checkpoint (not only a latest one)."""
    run_dir = Path(run_dir)
    return (run_dir / POINTER).exists() and "best" in _read_pointer(run_dir)


def load_checkpoint(path: str | os.PathLike, *, which: str = "best", training_state: bool = False) -> Checkpoint:
    """Load and verify a checkpoint; rebuild its model from the stored config (nothing unpickled)."""
    directory = resolve_checkpoint(path, which)
    manifest = read_json(directory / "manifest.json", "a checkpoint manifest").get("files", {})
    for fname, digest in manifest.items():
        file = directory / fname
        if not file.exists():
            raise RunDirError(f"checkpoint {directory} is incomplete: {fname} is missing")
        if _sha256(file) != digest:
            raise RunDirError(f"checkpoint {directory} is corrupt: {fname} does not match its manifest checksum "
                              f"(truncated or modified after saving)")
    meta = read_json(directory / "model.json", "checkpoint metadata")
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise RunDirError(f"expected format {CHECKPOINT_FORMAT!r} in {directory / 'model.json'}, got {meta.get('format')!r}")
    if meta.get("version") != CHECKPOINT_VERSION:
        raise RunDirError(f"checkpoint {directory} has format version {meta.get('version')}; this rnnlab reads "
                          f"version {CHECKPOINT_VERSION}")
    with torch.random.fork_rng(devices=[]):  # building the model must not move the caller's RNG
        model = rebuild_model(meta["model"], meta["config"])
    try:
        weights = load_file(str(directory / "model.safetensors"))
    except (SafetensorError, OSError, ValueError) as error:
        raise RunDirError(f"checkpoint weights {directory / 'model.safetensors'} cannot be read: {error}") from None
    result = model.load_state_dict(weights, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise StateDictError(f"checkpoint {directory} does not fit model {meta['model']}: missing "
                             f"{result.missing_keys}, unexpected {result.unexpected_keys}")
    state = None
    if training_state:
        if not (directory / "trainer.json").exists():
            raise RunDirError(f"checkpoint {directory} holds no training state; it cannot be resumed")
        tensors = load_file(str(directory / "trainer.safetensors"))
        state = decode_state(read_json(directory / "trainer.json", "training state"), tensors)
    files = {p.name: p.read_text(encoding="utf-8") for p in directory.iterdir()
             if p.suffix in (".json", ".txt") and p.name not in ("manifest.json", "model.json", "trainer.json")}
    return Checkpoint(directory, model, meta["model"], meta["config"], meta["step"], state, files)
