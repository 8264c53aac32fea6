"""Shared fixtures: a temporary work directory per test and the repository root."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from redactd import log
from redactd.config import CACHE_ENV

REPO = Path(__file__).resolve().parent.parent
#: The tests' own copies of the example policies: an operator editing the checkout's policies/ (the
#: ones `make run` uses) must not change what the tests test. tests/test_config.py checks the
#: shipped examples themselves.
TEST_POLICIES = Path(__file__).resolve().parent / "policies"


@pytest.fixture(autouse=True, scope="session")
def _model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Models made at load (int8 and graph-edited) cached for this run only: never in ~/.cache,
    and made once instead of once per job (the daemons and CLIs the tests start inherit it)."""
    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("model-cache"))
    yield
    if before is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = before


@pytest.fixture(autouse=True)
def _quiet_logs() -> None:
    log.configure(level="warning", json=True)


@pytest.fixture()
def repo() -> Path:
    return REPO


@contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``where`` for the block (``size=64k``, ``ro``...); the test is skipped
    where mounting needs a root this run does not have (CI runs as root)."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                                           check=False, capture_output=True, timeout=10).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True, timeout=10)
