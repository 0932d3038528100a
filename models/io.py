"""Atomic file output: a reader never sees a half-written result.

Every result file of the toolkit is written to a temporary file in the same
folder, flushed and fsync-ed, then moved over the target with ``os.replace``
(atomic on POSIX). A crash leaves either the old file or the new one.

While a command runs into its output folder (:func:`record_into`), every file written here is
first claimed in that folder's manifest, ``.metatrading-manifest.json``: the list of what the
toolkit wrote there, rewritten atomically whenever it grows, so that even a run killed with
SIGKILL leaves a folder whose every file is accounted for. ``--force`` deletes only what a
manifest lists (:func:`foreign_entry`).
"""
from __future__ import annotations

import enum
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import InputError

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_save", "to_jsonable",
           "MANIFEST", "read_manifest", "record_into", "stop_recording", "claim", "write_manifest", "foreign_entry",
           "load_torch_file"]

#: the list of what the toolkit wrote in an output folder (relative paths, folders included)
MANIFEST = ".metatrading-manifest.json"
_MANIFEST_KIND = "metatrading output manifest"

#: the output folder being recorded (absolute) and the entries claimed in it so far
_recording: dict[str, Any] = {"root": None, "entries": set()}
_lock = threading.Lock()


def read_manifest(folder: str | os.PathLike) -> set[str] | None:
    """The entries listed in ``folder``'s manifest, or None when it has none (or not a readable one)."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("kind") != _MANIFEST_KIND or not isinstance(data.get("entries"), list):
        return None
    return {e for e in data["entries"] if isinstance(e, str)}


def write_manifest(folder: str | os.PathLike, entries: set[str]) -> None:
    """Write ``folder``'s manifest listing ``entries`` (atomically; not itself recorded)."""
    text = json.dumps({"kind": _MANIFEST_KIND, "entries": sorted(entries)}, indent=1) + "\n"
    _atomic(Path(folder) / MANIFEST, lambda tmp: Path(tmp).write_bytes(text.encode("utf-8")))


def record_into(folder: str | os.PathLike, entries: set[str] = frozenset()) -> None:
    """From now on, claim every file written under ``folder`` in its manifest (``entries``: those
    listed already, e.g. by the run a ``--resume`` continues)."""
    _recording["root"] = Path(folder).absolute()
    _recording["entries"] = set(entries)


def stop_recording() -> set[str]:
    """Stop recording; the entries claimed."""
    entries = _recording["entries"]
    _recording["root"], _recording["entries"] = None, set()
    return entries


def claim(path: str | os.PathLike) -> None:
    """List ``path`` (and the folders between it and the recorded output folder) in the manifest
    before it is written, when it lies in that folder."""
    root = _recording["root"]
    if root is None:
        return
    try:
        rel = Path(os.path.abspath(path)).relative_to(root)
    except ValueError:
        return
    if not rel.parts or str(rel) == MANIFEST:
        return
    with _lock:  # writers in several threads (fl-deploy) claim one manifest
        new = {str(Path(*rel.parts[:i])) for i in range(1, len(rel.parts) + 1)} - _recording["entries"]
        if new:
            _recording["entries"] |= new
            root.mkdir(parents=True, exist_ok=True)
            write_manifest(root, _recording["entries"])


def foreign_entry(folder: str | os.PathLike) -> str | None:
    """The first thing in ``folder`` that its manifest does not list (a relative path; with no
    manifest, the first thing there); None when the toolkit wrote everything there. A half-written temporary file of a listed entry counts as listed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    listed = read_manifest(folder)
    odd_folder = None  # named only when no file is foreign: a file is what the user recognises
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in dirnames + sorted(filenames):
            rel = str((Path(dirpath) / name).relative_to(folder))
            if rel == MANIFEST or (name.startswith(f".{MANIFEST}.") and name.endswith(".tmp")):
                continue
            if listed is not None and rel in listed:
                continue
            if listed is not None and name.startswith(".") and name.endswith(".tmp"):
                parent = str(Path(rel).parent)
                if any(name.startswith(f".{Path(e).name}.") and str(Path(e).parent) == parent for e in listed):
                    continue
            if name in dirnames and not os.path.islink(os.path.join(dirpath, name)):
                odd_folder = odd_folder or rel
            else:
                return rel
    return odd_folder


def atomic_save(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then atomically move ``tmp_path`` to ``path``.

    ``write`` receives a path (not a handle) so that libraries that insist on a
    file name (``torch.save``, ``matplotlib.savefig``) can be used.
    """
    claim(path)
    return _atomic(Path(path), write)


def _atomic(path: Path, write: Callable[[str], None]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    def _write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    return atomic_save(path, _write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Numpy arrays/scalars, enums, dataclass-like objects and paths to JSON types."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2) + "\n")


def load_torch_file(path: str | os.PathLike, field: str, map_location: Any = "cpu") -> Any:
    """What ``torch.save`` wrote to ``path``, read without running any code stored in it.

    ``weights_only=True``: only tensors, numbers, strings, lists, tuples and dicts are rebuilt; a
    file that asks for anything else (a pickled object whose loading would run code) is refused.
    Any unreadable file (truncated, empty, not a torch file, a folder) is an
    ``InputError(field)`` naming it.
    """
    import pickle

    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            raise InputError(field, f"refused {path}: it holds Python objects that would run code when read "
                                    "(the toolkit reads only tensors, numbers, strings, lists and dicts); "
                                    "not a file metatrading wrote") from None
        raise InputError(field, f"{path} cannot be read: truncated, empty or not a file metatrading wrote") from None
    except OSError as exc:  # a folder, no permission
        raise InputError(field, f"{path} cannot be read: {exc.strerror or type(exc).__name__}") from None
    except Exception:  # torch's errors for a truncated, empty or foreign file say nothing more useful
        raise InputError(field, f"{path} cannot be read: truncated, empty or not a file metatrading wrote") from None
