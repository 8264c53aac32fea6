"""The key that daemon and workers share: it signs every job and result message (HMAC-SHA256).

A client of the broker without the key can read the queue but cannot inject a job or a result:
the receiving side drops a message whose signature does not match, and logs it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from redactd.errors import ConfigError
from redactd.fsutil import atomic_write

KEY_BYTES = 32


@dataclass(frozen=True)
class Credentials:
    hmac_key: bytes
    redis_password: str | None = None


def make_credentials(path: Path, redis_password: str | None = None) -> Credentials:
    """Write a new credentials file (0600); refuses to replace one."""
    if path.exists():
        raise ConfigError(f"{path} already exists; refusing to replace a shared key that workers may use")
    creds = Credentials(secrets.token_bytes(KEY_BYTES), redis_password)
    doc: dict[str, Any] = {"hmac_key": creds.hmac_key.hex()}
    if redis_password:
        doc["redis_password"] = redis_password
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, yaml.safe_dump(doc).encode(), mode=0o600)
    return creds


def load_credentials(path: Path) -> Credentials:
    """Read the shared key; a missing, malformed or group/world-readable file is a config error."""
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: credentials file not found (make one with `redactd worker credentials "
                          f"{path}` and copy it to every worker)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the credentials file: {exc}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path}: credentials file is readable by others (mode {stat.S_IMODE(st.st_mode):04o}); "
                          f"run `chmod 600 {path}`")
    try:
        doc = yaml.safe_load(text)
        key = bytes.fromhex(doc["hmac_key"])
    except (yaml.YAMLError, TypeError, KeyError, ValueError):
        raise ConfigError(f"{path}: expected a YAML mapping with 'hmac_key' ({KEY_BYTES * 2} hex digits)") from None
    if len(key) < KEY_BYTES:
        raise ConfigError(f"{path}: 'hmac_key' must be at least {KEY_BYTES} bytes ({KEY_BYTES * 2} hex digits)")
    password = doc.get("redis_password")
    return Credentials(key, str(password) if password is not None else None)


def seal(key: bytes, body: dict[str, Any]) -> dict[str, str]:
    """The message kwargs: the body as JSON text and its signature."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return {"body": text, "sig": hmac.new(key, text.encode(), hashlib.sha256).hexdigest()}


class Forged(ValueError):
    """A message whose signature does not match the shared key."""


def unseal(key: bytes, body: Any, sig: Any) -> dict[str, Any]:
    """The body of a message signed with ``key``; raises Forged otherwise."""
    if not isinstance(body, str) or not isinstance(sig, str):
        raise Forged("message without a body or signature")
    expected = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, sig):
        raise Forged("signature does not match the shared key")
    doc = json.loads(body)
    if not isinstance(doc, dict):
        raise Forged("message body is not an object")
    return doc


def worker_name() -> str:
    return f"{os.uname().nodename}:{os.getpid()}"
