"""Shared fixtures: signing keys and a generated custody log with every kind of event."""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from redactd.custody import CustodyLog, Event
from redactd.custody.keys import init_key, public_path
from redactd.log import configure

POLICY = {"id": "visual-default", "version": 3, "hash": "7" * 64}
MODELS = {"centerface": "c" * 64, "ppocr-det": "d" * 64}


class StepClock:
    """A clock that advances a fixed step per reading, so a log spans several UTC days."""

    def __init__(self, start: datetime, step: timedelta) -> None:
        self.now, self.step = start, step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


def sha(rng: random.Random) -> str:
    return rng.randbytes(32).hex()


def write_events(log: CustodyLog, count: int, rng: random.Random,
                 rotate_to: Ed25519PrivateKey | None = None) -> None:
    """Append about ``count`` entries: whole file lifecycles, holds, policies, checkpoints, one rotation."""
    log.append(Event.POLICY_LOADED, policy=POLICY, actor="redactd")
    job = 0
    while log.size < count:
        job += 1
        raw, job_id = sha(rng), f"job-{job:05d}"
        log.append(Event.INGESTED, job_id=job_id, raw_sha256=raw, original_name=f"clip {job}.mp4",
                   size=rng.randint(10_000, 10**9), inbox="default")
        roll = rng.random()
        if roll < 0.05:
            log.append(Event.DUPLICATE, job_id=job_id, raw_sha256=raw, duplicate_of="job-00001")
            continue
        if roll < 0.1:
            log.append(Event.REJECTED, job_id=job_id, raw_sha256=raw, reason="not a video")
            continue
        log.append(Event.PROCESSING_STARTED, job_id=job_id, raw_sha256=raw, policy=POLICY, attempt=1)
        if roll < 0.2:
            log.append(Event.FAILED, job_id=job_id, raw_sha256=raw, reason="decoder error")
        elif roll < 0.35:
            log.append(Event.SENT_TO_REVIEW, job_id=job_id, raw_sha256=raw, reason="validator found 2 faces")
            verdict = Event.REVIEW_APPROVED if rng.random() < 0.7 else Event.REVIEW_REJECTED
            log.append(verdict, job_id=job_id, raw_sha256=raw, actor="officer:alice")
        else:
            log.append(Event.PUBLISHED, job_id=job_id, raw_sha256=raw, output_sha256=sha(rng),
                       policy=POLICY, models=MODELS, faces=rng.randint(0, 9))
        if rng.random() < 0.1:
            log.append(Event.HOLD_SET, job_id=job_id, raw_sha256=raw, actor="legal:bob", reason="case 42")
            log.append(Event.HOLD_RELEASED, job_id=job_id, raw_sha256=raw, actor="legal:bob")
        if rng.random() < 0.4:
            log.append(Event.PURGE_INTENDED, job_id=job_id, raw_sha256=raw, rule="published-30d")
            log.append(Event.PURGED, job_id=job_id, raw_sha256=raw)
        if job % 40 == 0:
            log.checkpoint()
        if rotate_to is not None and log.size >= count // 2:
            log.rotate_key(rotate_to)
            rotate_to = None


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "custody.key"
    init_key(path)
    return path


@pytest.fixture
def pub_path(key_path: Path) -> Path:
    return public_path(key_path)


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A closed 1,000-entry log over several days and segments, with one key rotation (made once)."""
    base = tmp_path_factory.mktemp("generated")
    key = base / "custody.key"
    init_key(key)
    next_key = Ed25519PrivateKey.generate()
    clock = StepClock(datetime(2026, 3, 1, 8, 0, tzinfo=UTC), timedelta(minutes=7))
    with CustodyLog.open(base / "log", key, segment_max_bytes=200_000, clock=clock) as log:
        write_events(log, 1000, random.Random(5), rotate_to=next_key)
    return {"dir": base / "log", "pub": public_path(key), "key": key}


@pytest.fixture
def log_copy(generated: dict[str, Any], tmp_path: Path) -> Callable[[], Path]:
    """Fresh copies of the generated log for tests that damage it."""
    counter = iter(range(10**6))

    def copy() -> Path:
        target = tmp_path / f"copy{next(counter)}"
        shutil.copytree(generated["dir"], target)
        return target

    return copy


@pytest.fixture(autouse=True, scope="session")
def quiet_logs() -> Iterator[None]:
    """Quiet before the session-scoped log below is built (tests/conftest.py quiets per test only):
    one debug line per entry would swamp the output and slow the 1,000-entry logs down."""
    configure(level="warning", json=True)
    yield
    structlog.reset_defaults()
