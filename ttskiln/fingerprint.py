"""Content hashes that make cache keys: checkpoint files and the ttskiln code a stage runs.

Snakemake reruns a job when its params change. Rules put two hashes there:
- the SHA-256 of the checkpoint's files, so a re-written but identical checkpoint reruns
  nothing while changed weights rerun everything downstream;
- the hash of the ttskiln modules a stage runs: the stage's own module and, for stages that
  run family code, the family code of that stage (``Family.code_parts``: the model code, or
  the chain's, or an optional capability's), each followed transitively through its ttskiln
  imports, stopping at the modules the stage never runs (a family's chain, parity and
  command-line modules, which only the family's dispatching methods import). Editing a
  family's model code reruns its exports and nothing of another family; editing its chain code
  reruns its chains; editing a stage module reruns that stage's jobs (families import no stage
  module: see ``ttskiln.LAYERS``).

A module's imports and source are read once per process, and each walk and hash is computed
once (the scheduling process asks for a hash for each of thousands of jobs); ``clear_cache``
forgets them. ``keep_imports`` keeps the parsed imports on disk, by source content, so that a
no-op rerun parses no syntax tree.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
PACKAGE = PACKAGE_ROOT.name


def sha256_file(path: Path, cache: Path | None = None) -> str:
    """SHA-256 of a file; with ``cache``, reuse a hash recorded for the same file state.

    The state is size, mtime, inode and ctime: a copy renamed over the file (new inode) or an
    in-place rewrite that restores size and mtime (new ctime, which no tool can set back) is
    hashed again.
    """
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}|{stat.st_ctime_ns}"
    entries = _read_hash_cache(cache) if cache is not None else {}
    if key in entries:
        return entries[key]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    if cache is not None:
        entries = {k: v for k, v in entries.items() if not k.startswith(f"{path}|")}
        entries[key] = value
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
        tmp.write_text(json.dumps(entries, indent=0, sort_keys=True))
        os.replace(tmp, cache)
        _HASH_CACHES[cache] = (_file_state(cache), entries)
    return value


#: Hash caches read in this process, by path: (the file's state when read, its entries). A
#: planner hashing many checkpoints parses the cache once, not once per file.
_HASH_CACHES: dict[Path, tuple[tuple[int, ...] | None, dict[str, str]]] = {}


def _file_state(path: Path) -> tuple[int, ...] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns)


def _read_hash_cache(cache: Path) -> dict[str, str]:
    state = _file_state(cache)
    if state is None:
        return {}
    known = _HASH_CACHES.get(cache)
    if known is not None and known[0] == state:
        return known[1]
    try:
        entries = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    entries = entries if isinstance(entries, dict) else {}
    _HASH_CACHES[cache] = (state, entries)
    return entries


def sha256_files(paths: Iterable[Path], cache: Path | None = None) -> str:
    """One hash over several files (names and contents)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).name.encode())
        digest.update(sha256_file(path, cache).encode())
    return digest.hexdigest()


def _module_file(module: str) -> Path | None:
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_ROOT.joinpath(*parts[1:])
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


@lru_cache(maxsize=None)
def _source(path: Path) -> bytes:
    return path.read_bytes()


def _statements(body: list[ast.stmt]) -> Iterable[ast.stmt]:
    """Every statement in ``body`` and the statements nested in it (functions, classes,
    branches, loops, ``with``, ``try`` and ``match`` blocks). Imports are statements, so this
    finds all of them without visiting every expression node (``ast.walk``), which dominated
    the planner's hashing of the package's code."""
    todo = list(reversed(body))
    while todo:
        node = todo.pop()
        yield node
        nested: list[ast.stmt] = []
        for field in ("body", "orelse", "finalbody"):
            value = getattr(node, field, None)
            if isinstance(value, list):
                nested.extend(value)
        for block in (*getattr(node, "handlers", ()), *getattr(node, "cases", ())):
            nested.extend(block.body)
        todo.extend(reversed(nested))


#: Imports found per module source, kept across processes by ``keep_imports`` (keyed by the
#: module's name and the SHA-256 of its source, so an edit is parsed again).
_KEPT_IMPORTS: dict[str, list[str]] = {}
_KEPT_FILE: list[Path] = []
_KEPT_DIRTY: list[bool] = [False]
_KEPT_USED: set[str] = set()


def keep_imports(cache: Path) -> None:
    """Keep the imports parsed from each module's source in ``cache`` (JSON) between processes:
    a no-op rerun then parses no syntax tree. Written when the process exits, if it found
    anything new (then with this process's sources only); an unreadable or unwritable file only costs the parsing."""
    import atexit

    try:
        entries = json.loads(Path(cache).read_text())
    except (OSError, ValueError):
        entries = {}
    if isinstance(entries, dict):
        _KEPT_IMPORTS.update({k: v for k, v in entries.items() if isinstance(v, list)})
    if not _KEPT_FILE:
        atexit.register(_write_kept_imports)
    _KEPT_FILE[:] = [Path(cache)]


def _write_kept_imports() -> None:
    if not (_KEPT_FILE and _KEPT_DIRTY[0]):
        return
    cache = _KEPT_FILE[0]
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
        # Only this process's sources: entries of edited-away versions drop out.
        tmp.write_text(json.dumps({k: _KEPT_IMPORTS[k] for k in _KEPT_USED}, sort_keys=True))
        os.replace(tmp, cache)
    except OSError:
        pass


@lru_cache(maxsize=None)
def _imports(module: str, source: Path) -> frozenset[str]:
    """The ttskiln modules ``module`` imports, those inside functions included."""
    key = f"{module}|{hashlib.sha256(_source(source)).hexdigest()}"
    kept = _KEPT_IMPORTS.get(key)
    _KEPT_USED.add(key)
    if kept is not None:
        return frozenset(kept)
    found = _parse_imports(module, source)
    _KEPT_IMPORTS[key] = sorted(found)
    _KEPT_DIRTY[0] = True
    return found


def _parse_imports(module: str, source: Path) -> frozenset[str]:
    is_package = source.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _statements(ast.parse(_source(source)).body):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    # A submodule import also runs its parent packages' __init__.
    with_parents = set(found)
    for name in found:
        parts = name.split(".")
        with_parents.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return frozenset(name for name in with_parents if name.split(".")[0] == PACKAGE)


@lru_cache(maxsize=None)
def _module_file_cached(module: str) -> Path | None:
    return _module_file(module)


#: One part of a stage's code: the modules it starts from, and the modules its walk stops at
#: (neither hashed nor followed: code the stage never runs, e.g. a family's chain modules that
#: only a function of the family's dispatching ``__init__`` imports).
CodePart = tuple[Iterable[str], Iterable[str]]


def module_closure(modules: Iterable[str], exclude: Iterable[str] = ()) -> list[Path]:
    """The source files of ``modules`` and every ttskiln module they import, transitively,
    stopping at the modules in ``exclude``.

    The package's ``__init__`` and the family registry are left out: they import every family,
    and a change there that matters changes a family module or a stage module too.
    """
    return list(_closure(tuple(sorted(set(modules))), frozenset(exclude)))


@lru_cache(maxsize=None)
def _closure(modules: tuple[str, ...], exclude: frozenset[str]) -> tuple[Path, ...]:
    skip = {PACKAGE, f"{PACKAGE}.families", *exclude}
    seen: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen or name in skip:
            continue
        path = _module_file_cached(name)
        if path is None:
            continue
        seen[name] = path
        todo.extend(_imports(name, path))
    return tuple(sorted(set(seen.values())))


def code_hash(modules: Iterable[str], exclude: Iterable[str] = ()) -> str:
    """A short hash of the source of ``modules`` and their ttskiln imports (``exclude``: see
    ``module_closure``)."""
    return parts_hash([(modules, exclude)])


def parts_hash(parts: Iterable[CodePart]) -> str:
    """A short hash of the source files of several parts (each walked with its own stops)."""
    key = tuple(sorted({(tuple(sorted(set(m))), tuple(sorted(set(e)))) for m, e in parts}))
    return _parts_hash(key)


@lru_cache(maxsize=None)
def _parts_hash(parts: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]) -> str:
    files: set[Path] = set()
    for modules, exclude in parts:
        files.update(_closure(modules, frozenset(exclude)))
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(str(path.relative_to(PACKAGE_ROOT)).encode())
        digest.update(_source(path))
    return digest.hexdigest()[:16]


def clear_cache() -> None:
    """Forget every module's source, imports and hash (after editing code in this process)."""
    for cached in (_source, _imports, _module_file_cached, _closure, _parts_hash):
        cached.cache_clear()
