"""Models made at load from the shipped ones (graph edits, int8 quantisation), kept between jobs.

Each job runs in a process of its own, so each used to import onnx (~1 s) and redo the same edits,
and quantise CenterFace again (~2 s of CPU). A made model is kept in `redactd.config.cache_dir`
under ``NAME-KEY-SHA256.onnx``:

- KEY hashes everything the model is made from: the shipped model's pinned SHA-256, the source of
  the modules that make it, any data file they read (the int8 ranges), and the installed onnx and
  onnxruntime versions (read from the packages' metadata, so a hit imports neither);
- SHA256 is the file's own content hash, checked on every load like the shipped models: a file
  that fails the check is removed (``model_cache_rejected`` in the log) and the model made again.

Files are written atomically, mode 0600, in a 0700 directory. Where the directory cannot be
written the model is made in memory on every load (``model_cache_unwritable``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
from collections.abc import Callable, Iterable
from pathlib import Path

from redactd import log
from redactd.config import cache_dir
from redactd.fsutil import atomic_write

#: Made models already read or made in this process, by name and key.
_loaded: dict[tuple[str, str], bytes] = {}


def source(*names: str) -> str:
    """SHA-256 of files of the ``redactd.visual`` package (the code or data a model is made with)."""
    h = hashlib.sha256()
    for name in names:
        h.update(importlib.resources.files("redactd.visual").joinpath(name).read_bytes())
    return h.hexdigest()


def key(recipe: Iterable[str]) -> str:
    """The cache key of a model made from ``recipe`` (hashes and settings) with the installed tools."""
    h = hashlib.sha256()
    for part in (*recipe, *(f"{p}=={_version(p)}" for p in ("onnx", "onnxruntime"))):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:32]


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def made_model(name: str, recipe: Iterable[str], make: Callable[[], bytes]) -> bytes:
    """The model ``make()`` makes, from this process's memory, else from the cache (checked),
    else made and put in both."""
    k = key(recipe)
    if (name, k) in _loaded:
        return _loaded[name, k]
    directory = cache_dir()
    found = None
    if directory is not None:
        try:
            found = _read(directory, name, k)
        except OSError as exc:
            log.get_logger().warning("model_cache_unreadable", model=name, path=str(directory), error=str(exc))
    if found is None:
        found = make()
        if directory is not None:
            try:
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                atomic_write(directory / f"{name}-{k}-{hashlib.sha256(found).hexdigest()}.onnx", found, 0o600)
            except OSError as exc:  # read-only, full: the next job makes it again
                log.get_logger().warning("model_cache_unwritable", model=name, path=str(directory), error=str(exc),
                                         cost="each job makes the model again (up to ~3 s)")
    _loaded[name, k] = found
    return found


def _read(directory: Path, name: str, k: str) -> bytes | None:
    """The cached model ``name`` made under key ``k``, if one is there whose bytes hash to its name."""
    for path in sorted(directory.glob(f"{name}-{k}-*.onnx")):
        data = path.read_bytes()
        if path.stem.rsplit("-", 1)[1] == hashlib.sha256(data).hexdigest():
            return data
        log.get_logger().warning("model_cache_rejected", model=name, path=str(path),
                                 reason="its SHA-256 does not match its name")
        path.unlink(missing_ok=True)
    return None


def forget() -> None:
    """Drop what this process holds in memory (tests: the next load reads the directory again)."""
    _loaded.clear()
