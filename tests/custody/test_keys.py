"""Custody signing keys: creation, protection, loading."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from redactd.custody.keys import (
    fingerprint,
    init_key,
    load_private_key,
    load_public_key,
    public_path,
    read_passphrase,
)
from redactd.errors import ConfigError


class TestKeys:
    def test_init_writes_an_owner_only_private_key_and_a_public_key_beside_it(self, tmp_path: Path) -> None:
        key = init_key(tmp_path / "k" / "custody.key")
        assert (tmp_path / "k" / "custody.key").stat().st_mode & 0o777 == 0o600
        assert fingerprint(load_public_key(tmp_path / "k" / "custody.pub")) == fingerprint(key.public_key())
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", fingerprint(key.public_key()))

    def test_init_refuses_to_overwrite_a_private_or_public_key(self, tmp_path: Path) -> None:
        path = tmp_path / "custody.key"
        init_key(path)
        before = path.read_bytes()
        with pytest.raises(ConfigError, match="already exists"):
            init_key(path)
        path.unlink()
        with pytest.raises(ConfigError, match=r"custody\.pub: already exists"):
            init_key(path)
        assert not path.exists() and before

    def test_a_passphrase_protected_key_needs_its_passphrase(self, tmp_path: Path) -> None:
        path = tmp_path / "custody.key"
        key = init_key(path, b"correct horse")
        assert b"ENCRYPTED" in path.read_bytes()
        with pytest.raises(ConfigError, match="encrypted: give its passphrase"):
            load_private_key(path)
        with pytest.raises(ConfigError, match="wrong passphrase"):
            load_private_key(path, b"wrong")
        loaded = load_private_key(path, b"correct horse")
        assert fingerprint(loaded.public_key()) == fingerprint(key.public_key())

    def test_a_key_readable_by_others_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "custody.key"
        init_key(path)
        os.chmod(path, 0o640)
        with pytest.raises(ConfigError, match="chmod 600"):
            load_private_key(path)

    def test_missing_and_wrong_files_get_a_clear_message(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="redactd keys init"):
            load_private_key(tmp_path / "none.key")
        (tmp_path / "x.pub").write_text("not a key")
        with pytest.raises(ConfigError, match="not a PEM public key"):
            load_public_key(tmp_path / "x.pub")

    def test_passphrase_files_lose_their_trailing_newline_and_must_not_be_empty(self, tmp_path: Path) -> None:
        (tmp_path / "p").write_bytes(b"s3cret\n")
        assert read_passphrase(tmp_path / "p") == b"s3cret"
        (tmp_path / "e").write_bytes(b"\n")
        with pytest.raises(ConfigError, match="empty"):
            read_passphrase(tmp_path / "e")
        assert read_passphrase(None) is None
        assert public_path(Path("/a/custody.key")) == Path("/a/custody.pub")
