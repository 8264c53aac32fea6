"""Fixtures for the systemd tests: a root filesystem to install into, with its own accounts."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from redactd.install import Installer, Options, default_bin
from tests.systemd.sandbox import REPO


def new_root() -> Path:
    """An empty root with a copy of this host's account files.

    Copying them makes useradd in the root allocate ids that no account on this host has, so the
    test's redactd user is a throwaway one that owns nothing outside the root. Not under /tmp:
    the sandbox mounts a private /tmp over it.
    """
    root = Path(tempfile.mkdtemp(prefix="redactd-root-", dir="/var/tmp"))
    root.chmod(0o755)  # the service user must reach its directories inside
    (root / "etc").mkdir()
    for name in ("passwd", "group", "shadow", "gshadow"):
        if Path("/etc", name).exists():
            shutil.copy2(Path("/etc", name), root / "etc" / name)
    return root


def install(root: Path) -> Installer:
    installer = Installer(Options(root=root, source=REPO, bin=default_bin()))
    installer.install()
    return installer


@pytest.fixture()
def root() -> Iterator[Path]:
    path = new_root()
    yield path
    shutil.rmtree(path, ignore_errors=True)
