"""Checkpoints and run directories: safetensors + JSON, atomic, never unpickled.

A run directory looks like::

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
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from rnnlab.errors import RunDirError, StateDictError
from rnnlab.models.registry import build_model, config_to_dict, model_name

CHECKPOINT_FORMAT, CHECKPOINT_VERSION = "rnnlab-checkpoint", 1
RUN_FORMAT, RUN_VERSION = "rnnlab-run", 1
POINTER = "checkpoints.json"


# ----------------------------------------------------------------------------- atomic files
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def read_json(path: str | os.PathLike, what: str) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"expected {what} at {path}; the file does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunDirError(f"expected {what} at {path} to be JSON; it is corrupt ({error})") from None


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
    pointer = read_json(run_dir / POINTER, "checkpoint pointer") if (run_dir / POINTER).exists() else {}
    if not final.exists():
        tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=f".{name}."))
        try:
            _write_checkpoint_files(tmp, model, step, training_state, files or {})
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(run_dir)
    pointer = {"latest": name, "best": name if best or "best" not in pointer else pointer["best"]}
    atomic_write_json(run_dir / POINTER, pointer)
    keep = set(pointer.values())
    for old in run_dir.glob("ckpt-*"):
        if old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)
    return final


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
    for p in directory.iterdir():
        with open(p, "rb") as handle:
            os.fsync(handle.fileno())
    _fsync_dir(directory)


def resolve_checkpoint(path: str | os.PathLike, which: str = "best") -> Path:
    """The checkpoint directory for ``path``: a run directory (via its pointer) or a ``ckpt-*`` dir."""
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"expected a run directory or checkpoint at {path}; nothing is there")
    if (path / "manifest.json").exists() or (path / "model.json").exists():
        return path
    if not (path / POINTER).exists():
        raise RunDirError(f"expected a run directory with a checkpoint ({POINTER}) at {path}; found none")
    pointer = read_json(path / POINTER, "checkpoint pointer")
    if which not in ("best", "latest") or not isinstance(pointer, dict) or which not in pointer:
        raise RunDirError(f"checkpoint pointer {path / POINTER} has no {which!r} entry; it holds {pointer}")
    return path / pointer[which]


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
        model = build_model(meta["model"], meta["config"])
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


# ----------------------------------------------------------------------------- run directories
def prepare_run_dir(run_dir: str | os.PathLike, *, kind: str, config: dict, command: str = "",
                    resume: bool = False, **extra: Any) -> Path:
    """Create ``run_dir`` with ``run.json``, or check it for ``resume``; never overwrite another run.

    Without ``resume``, ``run_dir`` must be absent or empty. With ``resume`` it must hold a run of
    the same ``kind``; its stored config is kept (the caller should compare if it cares).
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"expected a directory for the run at {run_dir}; it is a file")
    if resume:
        info = read_json(run_dir / "run.json", "run description (run.json) to resume")
        if info.get("kind") != kind:
            raise RunDirError(f"cannot resume {run_dir}: it holds a {info.get('kind')!r} run, expected {kind!r}")
        return run_dir
    check_run_dir_free(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    info = {"format": RUN_FORMAT, "version": RUN_VERSION, "kind": kind,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command,
            "config": config, **extra}
    atomic_write_json(run_dir / "run.json", info)
    return run_dir


def check_run_dir_free(run_dir: str | os.PathLike) -> None:
    """Raise RunDirError unless ``run_dir`` is absent or an empty directory (call before slow work)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"expected a directory for the run at {run_dir}; it is a file")
    if run_dir.exists() and any(run_dir.iterdir()):
        what = "a run" if (run_dir / "run.json").exists() else "other files"
        raise RunDirError(f"output directory {run_dir} already holds {what}; choose a new --out or pass --resume "
                          f"(nothing was overwritten)")


def update_run_json(run_dir: str | os.PathLike, **fields: Any) -> None:
    """Merge ``fields`` into ``run.json`` (e.g. final metrics), atomically."""
    path = Path(run_dir) / "run.json"
    info = read_json(path, "run description (run.json)")
    info.update(fields)
    atomic_write_json(path, info)
