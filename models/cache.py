"""Exact fingerprints of computations' inputs and a bounded memo table for them.

Used to compute once what a run asks for several times with identical inputs (the equilibria
and FL updates that several schemes of ``metatrading compare`` share; :mod:`drl.compare.cache`,
:class:`fl.round.UpdateCache`). A cache of this kind must never change a result, so its keys
are exact: :func:`digest` hashes the raw bytes of arrays and tensors (dtype and shape included)
and floats by their hexadecimal form; two inputs share a key only when they are bitwise equal.
"""
from __future__ import annotations

import enum
import hashlib
from collections import OrderedDict
from typing import Any, Callable, Hashable

import numpy as np

__all__ = ["digest", "BoundedCache"]


def _feed(h: Any, obj: Any) -> None:
    if obj is None:
        h.update(b"N;")
    elif isinstance(obj, bool):
        h.update(b"b1;" if obj else b"b0;")
    elif isinstance(obj, enum.Enum):
        h.update(b"e" + type(obj).__name__.encode() + b":")
        _feed(h, obj.value)
    elif isinstance(obj, (int, np.integer)):
        h.update(b"i" + str(int(obj)).encode() + b";")
    elif isinstance(obj, (float, np.floating)):
        h.update(b"f" + float(obj).hex().encode() + b";")
    elif isinstance(obj, str):
        b = obj.encode()
        h.update(b"s" + str(len(b)).encode() + b":" + b)
    elif isinstance(obj, bytes):
        h.update(b"y" + str(len(obj)).encode() + b":" + obj)
    elif isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        h.update(b"a" + a.dtype.str.encode() + repr(a.shape).encode() + b":")
        h.update(a.view(np.uint8).reshape(-1) if a.dtype != object else repr(a.tolist()).encode())
    elif hasattr(obj, "detach") and hasattr(obj, "dtype") and hasattr(obj, "shape"):  # a torch tensor
        t = obj.detach().cpu().contiguous()
        h.update(b"t" + str(t.dtype).encode() + repr(tuple(t.shape)).encode() + b":")
        h.update(t.reshape(-1).view(__import__("torch").uint8).numpy())
    elif isinstance(obj, dict):
        h.update(b"d" + str(len(obj)).encode() + b"{")
        for k in sorted(obj, key=repr):
            _feed(h, k)
            _feed(h, obj[k])
        h.update(b"}")
    elif isinstance(obj, list) and obj and all(type(v) is float for v in obj):  # a row of a to_dict (fast path)
        h.update(b"F" + str(len(obj)).encode() + b":")
        h.update(np.array(obj, dtype=np.float64).view(np.uint8))
    elif isinstance(obj, (list, tuple)):
        h.update((b"l" if isinstance(obj, list) else b"u") + str(len(obj)).encode() + b"[")
        for v in obj:
            _feed(h, v)
        h.update(b"]")
    elif hasattr(obj, "to_dict"):  # a Scenario: every resolved parameter
        h.update(b"o" + type(obj).__name__.encode() + b":")
        _feed(h, obj.to_dict())
    else:
        raise TypeError(f"digest: cannot fingerprint a {type(obj).__name__} exactly")


def digest(*parts: Any) -> str:
    """SHA-256 (hex) of ``parts``: equal only for bitwise-equal inputs (arrays and tensors by
    dtype, shape and bytes; floats exactly; dicts in key order; objects with ``to_dict`` by it).
    A type it cannot fingerprint exactly is an error, never a guess."""
    h = hashlib.sha256()
    _feed(h, parts)
    return h.hexdigest()


class BoundedCache:
    """A least-recently-used memo table bounded in entries and in (estimated) bytes.

    ``get_or_compute(key, compute, size)`` returns the stored value for ``key`` or stores
    ``compute()``; ``size(value)`` estimates its bytes (default 0). ``hits`` and ``misses`` count
    the look-ups. ``enabled = False`` computes every time and stores nothing.
    """

    def __init__(self, max_entries: int = 1024, max_bytes: int = 256 << 20, enabled: bool = True) -> None:
        if max_entries < 1 or max_bytes < 0:
            raise ValueError("BoundedCache: max_entries must be >= 1 and max_bytes >= 0")
        self.max_entries, self.max_bytes, self.enabled = int(max_entries), int(max_bytes), bool(enabled)
        self._data: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._data

    def get(self, key: Hashable, default: Any = None) -> Any:
        if self.enabled and key in self._data:
            self._data.move_to_end(key)
            self.hits += 1
            return self._data[key][0]
        self.misses += 1
        return default

    def put(self, key: Hashable, value: Any, size: int = 0) -> None:
        if not self.enabled or size > self.max_bytes:
            return
        if key in self._data:
            self.bytes -= self._data.pop(key)[1]
        self._data[key] = (value, int(size))
        self.bytes += int(size)
        while len(self._data) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, s) = self._data.popitem(last=False)
            self.bytes -= s

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any],
                       size: Callable[[Any], int] | None = None) -> Any:
        if self.enabled and key in self._data:
            self._data.move_to_end(key)
            self.hits += 1
            return self._data[key][0]
        self.misses += 1
        value = compute()
        if self.enabled:
            self.put(key, value, 0 if size is None else int(size(value)))
        return value

    def clear(self) -> None:
        self._data.clear()
        self.bytes = 0

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "entries": len(self._data), "bytes": self.bytes}
