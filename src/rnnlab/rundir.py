"""The run directory: its layout, ``run.json``, kinds and format version. Nothing else names these files.

Every command that trains or measures writes one directory (``--out``)::

    RUN/
      run.json            {"format": "rnnlab-run", "version": 1, "kind": KIND, "created": ..., "command": ...,
                           "config": {...}, later "results", "summary", ...}
      metrics.csv         appended by the trainer
      checkpoints.json    {"latest": "ckpt-00001200", "best": "ckpt-00001000"}  (owned by rnnlab.checkpoint)
      ckpt-00001200/      one checkpoint (rnnlab.checkpoint)
      data/               token caches and other files a job keeps
      *.png, report.html  plots and the report

A job adds files of its own under names it documents; the names every job shares are the constants
below. ``run.json`` is written atomically (:mod:`rnnlab.io`) and read back through :func:`read_run`,
which checks format, version and kind.
"""
from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rnnlab.errors import RunDirError
from rnnlab.io import TMP_SUFFIX, atomic_write_json, read_json

__all__ = ["RUN_FORMAT", "RUN_VERSION", "KINDS", "RUN_JSON", "POINTER", "METRICS", "TOKENIZER", "DATA_DIR",
           "REPORT", "LAB_RUNS_JSON", "LAB_RUNS_CSV", "CLASSIFY_SPEC", "FORECAST_SPEC", "run_dir_of", "prepare_run_dir", "check_run_dir_free", "update_run_json", "read_run",
           "has_checkpoint", "clean_temporary", "is_dead_run", "clear_dead_run", "discard_unstarted", "EARLY_ENTRIES"]

RUN_FORMAT, RUN_VERSION = "rnnlab-run", 1
# Every kind of run this version can read, and the job that writes it.
KINDS = ("lm", "lab", "forecast", "classify", "demo", "translate", "speech", "caption")

RUN_JSON = "run.json"
POINTER = "checkpoints.json"
METRICS = "metrics.csv"
TOKENIZER = "tokenizer.json"
DATA_DIR = "data"
REPORT = "report.html"
LAB_RUNS_JSON = "runs.json"          # lab grids: one row per finished run, with learning curves
LAB_RUNS_CSV = "runs.csv"
# Files a task hands to every checkpoint (beside the weights) so the run can be used without its data:
CLASSIFY_SPEC = "classify.json"      # class names, feature columns and scaling
FORECAST_SPEC = "forecast.json"      # columns, scalers, look-back/horizon, the chosen model


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def has_checkpoint(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir`` holds a checkpoint pointer (i.e. something a resume could continue)."""
    return (Path(run_dir) / POINTER).exists()


# What a run writes before its first checkpoint; a directory holding only these (and no checkpoint)
# is a run that died early, and a fresh start may reuse it.
EARLY_ENTRIES = {RUN_JSON, METRICS, DATA_DIR, TOKENIZER, "tensorboard"}


def is_dead_run(run_dir: str | os.PathLike) -> bool:
    """A run that stopped before its first checkpoint: run.json, no checkpoint, nothing but early files."""
    run_dir = Path(run_dir)
    if not (run_dir / RUN_JSON).is_file() or has_checkpoint(run_dir):
        return False
    return all(e.name in EARLY_ENTRIES or (e.name.startswith(".") and e.name.endswith(TMP_SUFFIX))
               or e.name.startswith(".ckpt-") for e in run_dir.iterdir())


def clear_dead_run(run_dir: str | os.PathLike) -> bool:
    """Remove what a run that died before its first checkpoint left (only if :func:`is_dead_run`)."""
    run_dir = Path(run_dir)
    if not is_dead_run(run_dir):
        return False
    for entry in run_dir.iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    return True


def discard_unstarted(run_dir: str | os.PathLike) -> None:
    """After a failure while setting up a fresh run: remove its directory if it holds nothing but what
    the setup wrote (no checkpoint, no user file), so that the corrected command can start cleanly."""
    run_dir = Path(run_dir)
    if run_dir.is_dir() and is_dead_run(run_dir):
        shutil.rmtree(run_dir, ignore_errors=True)


def check_run_dir_free(run_dir: str | os.PathLike, *, resumable: bool = False) -> None:
    """Raise RunDirError unless ``run_dir`` is absent, empty, or a run that died before its first
    checkpoint (which a fresh start reuses); call before slow work."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"expected a directory for the run at {run_dir}; it is a file")
    if run_dir.exists() and any(run_dir.iterdir()) and not is_dead_run(run_dir):
        what = "a run" if (run_dir / RUN_JSON).exists() else "other files"
        hint = "choose a new --out or pass --resume" if resumable and what == "a run" else "choose a new --out"
        raise RunDirError(f"output directory {run_dir} already holds {what}; {hint} (nothing was overwritten)")


def prepare_run_dir(run_dir: str | os.PathLike, *, kind: str, config: dict, command: str = "",
                    resume: bool = False, **extra: Any) -> Path:
    """Create ``run_dir`` with ``run.json``, or check it for ``resume``; never overwrite another run.

    Without ``resume``, ``run_dir`` must be absent or empty. With ``resume`` it must hold a run of
    the same ``kind``; its stored config is kept (the caller should compare if it cares).
    """
    if kind not in KINDS:
        raise RunDirError(f"unknown run kind {kind!r}; expected one of {', '.join(KINDS)}")
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"expected a directory for the run at {run_dir}; it is a file")
    if resume:
        info = read_json(run_dir / RUN_JSON, "run description (run.json) to resume")
        if not isinstance(info, dict) or info.get("kind") != kind:
            found = info.get("kind") if isinstance(info, dict) else type(info).__name__
            raise RunDirError(f"cannot resume {run_dir}: it holds a {found!r} run, expected {kind!r}")
        return run_dir
    check_run_dir_free(run_dir)
    clear_dead_run(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirError(f"cannot create the run directory {run_dir}: {error.strerror or error}") from None
    info = {"format": RUN_FORMAT, "version": RUN_VERSION, "kind": kind, "created": _now(), "command": command,
            "config": config, **extra}
    atomic_write_json(run_dir / RUN_JSON, info)
    return run_dir


def update_run_json(run_dir: str | os.PathLike, **fields: Any) -> None:
    """Merge ``fields`` into ``run.json`` (e.g. final metrics), atomically."""
    path = Path(run_dir) / RUN_JSON
    info = read_json(path, "run description (run.json)")
    info.update(fields)
    atomic_write_json(path, info)


def read_run(run_dir: str | os.PathLike, *, kind: str | tuple[str, ...] | None = None) -> dict:
    """Check ``run_dir`` is an rnnlab run this version can read and return its ``run.json``.

    Raises :class:`RunDirError` for a missing, non-directory or empty path, a missing or corrupt
    run.json, another format, a newer format version, an unknown kind, or (with ``kind``) a run of
    another kind.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise RunDirError(f"run directory {run_dir} does not exist; expected a directory written with --out")
    if not run_dir.is_dir():
        raise RunDirError(f"expected a run directory at {run_dir}; it is a file")
    if not any(run_dir.iterdir()):
        raise RunDirError(f"run directory {run_dir} is empty; expected run.json and results from an rnnlab command")
    path = run_dir / RUN_JSON
    if not path.is_file():
        raise RunDirError(f"{run_dir} has no run.json; expected a directory written by an rnnlab command with --out")
    info = read_json(path, "the run description")
    if not isinstance(info, dict) or info.get("format") != RUN_FORMAT:
        found = info.get("format") if isinstance(info, dict) else type(info).__name__
        raise RunDirError(f"{path} has format {found!r}; expected {RUN_FORMAT!r}")
    version = info.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RunDirError(f"{path} has format version {version!r}; expected an integer >= 1")
    if version > RUN_VERSION:
        raise RunDirError(f"{path} has format version {version}, newer than this rnnlab reads ({RUN_VERSION}); "
                          f"upgrade rnnlab to read it")
    if info.get("kind") not in KINDS:
        raise RunDirError(f"{path} is of kind {info.get('kind')!r}; expected one of {', '.join(KINDS)}")
    wanted = (kind,) if isinstance(kind, str) else kind
    if wanted and info["kind"] not in wanted:
        raise RunDirError(f"{run_dir} holds a {info['kind']!r} run; expected {' or '.join(map(repr, wanted))}")
    return info


def run_dir_of(path: str | os.PathLike) -> Path:
    """The run directory of ``path``: itself, or the run holding a ``ckpt-*`` directory."""
    path = Path(path)
    if not (path / RUN_JSON).exists() and (path.parent / RUN_JSON).exists():
        return path.parent
    return path


def clean_temporary(directory: str | os.PathLike) -> list[Path]:
    """Remove the hidden temporary entries (``.*.tmp`` files, ``.ckpt-*`` folders) a killed write left."""

    removed = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        if entry.name.startswith(".") and (entry.name.endswith(TMP_SUFFIX) or entry.name.startswith(".ckpt-")):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
