"""Ed25519 signing keys for the custody log: create, load, fingerprint."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from redactd.errors import ConfigError
from redactd.fsutil import fsync_dir


def fingerprint(public: Ed25519PublicKey) -> str:
    """``sha256:<hex>`` of the raw 32-byte public key: what entries, CLI and officers quote."""
    return "sha256:" + hashlib.sha256(public_raw(public)).hexdigest()


def public_raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_from_hex(value: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(value))


def public_path(private_path: Path) -> Path:
    """Where the public key of ``private_path`` lives: ``custody.key`` -> ``custody.pub``."""
    return private_path.with_suffix(".pub")


def private_pem(key: Ed25519PrivateKey, passphrase: bytes | None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_new(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``path`` complete or not at all; raise FileExistsError if it already exists.

    Unlike an atomic replace, os.link() refuses an existing target: a key is never overwritten,
    not even by a racing second ``keys init``, and nobody ever sees a half-written key file.
    """
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)  # a PEM key is far below any short-write size
        os.fsync(fd)
        os.close(fd)
        os.link(name, path)
    finally:
        Path(name).unlink(missing_ok=True)
    fsync_dir(path.parent)


def init_key(path: Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """Create a new key pair at ``path`` (mode 0600) and ``public_path(path)``; never overwrite."""
    pub = public_path(path)
    for existing in (path, pub):
        if existing.exists():
            raise ConfigError(f"{existing}: already exists; refusing to overwrite a custody key")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    try:
        write_new(path, private_pem(key, passphrase), 0o600)
        write_new(pub, public_pem(key.public_key()), 0o644)
    except FileExistsError as exc:
        raise ConfigError(f"{exc.filename}: appeared while writing; refusing to overwrite") from None
    return key


def read_passphrase(path: Path | None) -> bytes | None:
    """A passphrase file's content without its trailing newline; None when no file is given."""
    if path is None:
        return None
    try:
        data = path.read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read passphrase file: {exc.strerror}") from None
    if not data:
        raise ConfigError(f"{path}: passphrase file is empty")
    return data


def load_private_key(path: Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read custody signing key: {exc.strerror} "
                          "(create one with `redactd keys init`)") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path}: signing key is readable by others (mode {stat.S_IMODE(mode):o}); "
                          f"run: chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError:
        hint = "it is encrypted: give its passphrase file" if passphrase is None else "it is not encrypted"
        raise ConfigError(f"{path}: cannot load signing key: {hint}") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{path}: cannot load signing key: wrong passphrase or not a PEM key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: signing key is {type(key).__name__}, expected Ed25519")
    return key


def check_custody_config(signing_key: Path, passphrase_file: Path | None, witnesses: list[Path]) -> str:
    """Fail closed: the fingerprint of a usable signing key, else a ConfigError saying what is wrong
    (missing, unreadable, readable by others, wrong passphrase), or that a witness is no directory."""
    if not signing_key.exists():
        raise ConfigError(f"{signing_key}: no custody signing key (key 'custody.signing_key'); redactd never "
                          "runs without a custody log: create one with `redactd keys init`")
    key = load_private_key(signing_key, read_passphrase(passphrase_file))
    for witness in witnesses:
        if not witness.is_dir():
            raise ConfigError(f"{witness}: custody witness is not a directory (key 'custody.witnesses'); "
                              "is its share mounted?")
    return fingerprint(key.public_key())


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read public key: {exc.strerror}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{path}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path}: public key is {type(key).__name__}, expected Ed25519")
    return key
