"""Write files under a temporary name and rename them into place.

A reader (or a later Snakemake job) never sees a half-written artifact: either the old file,
no file, or the complete new one. A job killed mid-write leaves its temporaries behind; every
temporary is named after its output (``.<name>.<random>.tmp<suffix>``, scratch folders
``.<name>.<random>.tmp.d``), so the next job writing that output removes them first
(``clean_stale``). Outputs get the mode the user's umask gives any new file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

#: Temporaries this process is still using: never stale, even when another writer of the same
#: output (a scratch folder's owner writing its final file) cleans up.
_live: set[Path] = set()
_live_lock = threading.Lock()
#: The random part of a tempfile name (8 of a-z, 0-9, _): ``.a.png.<8>.tmp`` is a temporary
#: of ``a.png``, never of ``a.png.old``.
_RANDOM = r"[a-z0-9_]{8}"


def current_umask() -> int:
    """The process umask, read without changing it where the kernel reports it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _live_lock:  # no /proc: set and restore at once
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def output_mode(directory: bool = False) -> int:
    """The mode ``open()`` / ``mkdir()`` would give a new file or folder under the umask."""
    return (0o777 if directory else 0o666) & ~current_umask()


def clean_stale(path: str | os.PathLike[str], patterns: Iterable[str] = ()) -> list[Path]:
    """Remove temporaries a killed writer of ``path`` left beside it; returns what went.

    Only ``path``'s own kinds go: ``.<name>.<random>.tmp*`` files and folders, plus entries
    matching ``patterns`` (globs beside ``path`` that only its writer creates). Temporaries
    this process is still using are kept.
    """
    final = Path(os.path.abspath(path))
    if not final.parent.is_dir():
        return []
    own = re.compile(re.escape(f".{final.name}.") + _RANDOM + r"\.tmp.*", re.DOTALL)
    found = {p for p in final.parent.iterdir() if own.fullmatch(p.name)}
    for pattern in patterns:
        found.update(final.parent.glob(pattern))
    with _live_lock:
        live = set(_live)
    removed = []
    for stale in sorted(found - live):
        try:
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale)
            else:
                stale.unlink()
        except FileNotFoundError:
            continue
        removed.append(stale)
    return removed


@contextlib.contextmanager
def _in_use(path: Path) -> Iterator[None]:
    path = Path(os.path.abspath(path))
    with _live_lock:
        _live.add(path)
    try:
        yield
    finally:
        with _live_lock:
            _live.discard(path)


@contextlib.contextmanager
def scratch_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A fresh folder beside ``path`` for a job's intermediate files, removed on exit.

    Named ``.<name>.<random>.tmp.d``, so ``clean_stale(path)`` recognises it when a killed job
    leaves it behind; the job's own stale ones are removed before it is made.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp.d", dir=final.parent))
    try:
        with _in_use(tmp):
            yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    ``suffix`` keeps an extension some writers insist on (``np.savez`` adds ``.npz``). Stale
    temporaries of ``path`` are removed first; the result has the umask's file mode (the
    temporary file starts at 0600).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(final)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{suffix}", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with _in_use(tmp_path):
            yield tmp_path
            os.chmod(tmp_path, output_mode())
            os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_npz(path: str | os.PathLike[str], arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
