"""Atomic file writes and JSON reads: the one place rnnlab writes a file that must never be half there.

A file is written to a hidden temporary name in the same directory, flushed to disk, then renamed
over the target with ``os.replace`` (atomic on POSIX and Windows), and the directory entry is
flushed too. A crash or kill at any moment leaves either the old file or the new one, never a mix.
Temporary files get the permissions an ordinary ``open`` would give (``0o666 & ~umask``), so a
teammate can read a shared run.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from rnnlab.errors import RunDirError

__all__ = ["fsync_dir", "atomic_writer", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "read_json",
           "umask_mode", "TMP_SUFFIX", "check_new_file"]

TMP_SUFFIX = ".tmp"  # every temporary entry rnnlab creates starts with "." and ends with this


def umask_mode(base: int = 0o666) -> int:
    """``base`` with the process umask applied (``os.umask`` can only be read by setting it)."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a directory entry (a rename) to disk; a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """``with atomic_writer(path) as handle: handle.write(...)``: the file appears whole at ``path`` when
    the block ends, or not at all if it raises (via a temporary file in the same directory)."""
    path = Path(path)
    if path.is_dir():
        raise RunDirError(f"expected a file path to write at {path}; it is a directory")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, umask_mode())  # mkstemp makes 0600; a shared run must stay readable
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """UTF-8 text, atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Indented, key-sorted JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def check_new_file(path: str | os.PathLike, what: str = "output file", *, force: bool = False) -> Path:
    """Check that ``path`` can be written without losing anything: its folder is (or can be) a
    directory, and the file does not exist yet (unless ``force``). Returns it as a Path."""
    path = Path(path)
    if path.is_dir():
        raise RunDirError(f"expected a file path for the {what}; {path} is a directory")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise RunDirError(f"cannot write the {what} {path}: {parent} is a file, not a directory")
            break
    if path.exists() and not force:
        raise RunDirError(f"{path} already exists; pass --force to replace it or choose another --out "
                          f"(nothing was overwritten)")
    return path


def read_json(path: str | os.PathLike, what: str) -> Any:
    """Parse the JSON file at ``path``; a missing, unreadable or corrupt file is a :class:`RunDirError`
    whose message says ``what`` was expected there."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"expected {what} at {path}; the file does not exist") from None
    except IsADirectoryError:
        raise RunDirError(f"expected {what} at {path}; it is a directory") from None
    except PermissionError:
        raise RunDirError(f"cannot read {what} at {path}: permission denied") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunDirError(f"expected {what} at {path} to be JSON; it is corrupt, not valid JSON ({error})") from None
