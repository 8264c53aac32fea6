"""Shared fixtures: a temporary work directory per test and the repository root."""

from __future__ import annotations

from pathlib import Path

import pytest

from redactd import log

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _quiet_logs() -> None:
    log.configure(level="warning", json=True)


@pytest.fixture()
def repo() -> Path:
    return REPO
