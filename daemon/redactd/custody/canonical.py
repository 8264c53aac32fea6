"""Canonical JSON bytes for custody entries: one value, one byte string (RFC 8785 in spirit).

Sorted keys, no insignificant whitespace, UTF-8, strings escaped exactly as ECMAScript's
JSON.stringify does (which is what Python's ``json`` does with ``ensure_ascii=False``).
Two restrictions make Python's output byte-identical to RFC 8785 without a custom encoder:

* object keys are ASCII (so code-point order equals RFC 8785's UTF-16 order);
* numbers are integers within ±2**53 (floats are refused: their textual form differs
  between languages, and a custody entry has no need for them — record "12.5" as a string).
"""

from __future__ import annotations

import json
from typing import Any

MAX_SAFE_INTEGER = 2**53 - 1


class NotCanonical(ValueError):
    """The value cannot be written as canonical JSON; the message names the offending path."""


def check(value: Any, path: str = "$") -> None:
    """Raise NotCanonical if ``value`` holds anything canonical JSON here does not allow."""
    if value is None or isinstance(value, (bool, str)):
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise NotCanonical(f"{path}: string is not valid Unicode (lone surrogate)") from None
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise NotCanonical(f"{path}: integer {value} is outside ±2**53; record it as a string")
        return
    if isinstance(value, float):
        raise NotCanonical(f"{path}: floats are not allowed ({value!r}); record it as an integer or string")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise NotCanonical(f"{path}: object key {key!r} must be an ASCII string")
            check(item, f"{path}.{key}")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check(item, f"{path}[{i}]")
        return
    raise NotCanonical(f"{path}: {type(value).__name__} is not a JSON value")


def dumps(value: Any) -> bytes:
    """The canonical UTF-8 bytes of an already-checked value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")
