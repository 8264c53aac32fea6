"""A real daemon layout for retention tests: config, policies, signing key, job store, files on disk."""

from __future__ import annotations

import hashlib
import shutil
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from redactd.admit import new_job_id
from redactd.config import DaemonConfig, check_config
from redactd.custody.keys import init_key, load_public_key, public_path
from redactd.daemon import store_path
from redactd.jobflow.jobstore import Job, JobStore
from redactd.jobflow.publish import Queues
from redactd.policy import PolicySet
from tests.conftest import TEST_POLICIES

REPO = Path(__file__).resolve().parents[2]

RETENTION_POLICY = """\
kind: retention
id: test-retention
version: {version}
require_published_before_raw_purge: {require}
max_deletions_per_run: {cap}
dry_run: false
rules:
  - name: dashcams
    match: {{inbox: dashcams}}
    count_from: ingested
    keep_days: {{raw_after_published: 1, raw_after_failed: 2, review_items: 3, failed_items: 4}}
  - name: default
    count_from: published
    keep_days:
      raw_after_published: {raw_days}
      raw_after_failed: 30
      review_items: 30
      failed_items: 30
      clean_outputs: null
"""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FixedClock:
    """The injected clock: returns ``now`` until a test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Layout:
    root: Path
    config: Path

    def load(self) -> tuple[DaemonConfig, PolicySet]:
        return check_config(self.config)

    @property
    def cfg(self) -> DaemonConfig:
        return self.load()[0]

    @property
    def store_file(self) -> Path:
        return store_path(self.cfg)

    @property
    def pubkey(self):  # type: ignore[no-untyped-def]
        return load_public_key(public_path(self.cfg.custody.signing_key))

    def write_policy(self, version: int = 1, require: bool = True, cap: int = 100, raw_days: float = 7) -> None:
        text = RETENTION_POLICY.format(version=version, require=str(require).lower(), cap=cap, raw_days=raw_days)
        (self.root / "policies" / "retention.yaml").write_text(text)

    # ------------------------------------------------------------------ jobs, through the real job store

    def _store(self) -> JobStore:
        return JobStore.open(self.store_file)

    def _admit(self, store: JobStore, content: bytes, inbox: str, name: bytes) -> Job:
        cfg = self.cfg
        job_id = new_job_id()
        raw = cfg.raw_store / f"{job_id}.mp4"
        raw.write_bytes(content)
        store.begin_receiving(job_id, inbox, name, len(content), "metadata-only", 1, raw)
        return store.finish_receiving(job_id, sha256(content))

    def published(self, content: bytes, inbox: str = "default", name: bytes = b"clip.mp4") -> Job:
        cfg = self.cfg
        store = self._store()
        try:
            job = self._admit(store, content, inbox, name)
            claimed = store.claim_next()
            assert claimed is not None and claimed.id == job.id
            output = b"clean:" + content
            out = cfg.clean_dir / f"{sha256(output)}.mp4"
            out.write_bytes(output)
            out.with_name(out.name + ".json").write_text("{}\n")
            store.plan_output(job.id, out.name, sha256(output))
            return store.mark_published(job.id, out)
        finally:
            store.close()

    def duplicate(self, content: bytes, inbox: str = "default") -> Job:
        store = self._store()
        try:
            return self._admit(store, content, inbox, b"again.mp4")
        finally:
            store.close()

    def failed(self, content: bytes, inbox: str = "default") -> Job:
        cfg = self.cfg
        store = self._store()
        queues = Queues(cfg.clean_dir, cfg.review_dir, cfg.failed_dir)
        try:
            job = self._admit(store, content, inbox, b"broken.mp4")
            store.claim_next()
            folder = queues.folder(cfg.failed_dir, job.id)
            kept = folder / "raw.mp4"
            assert job.raw_path is not None
            job.raw_path.rename(kept)
            failed = store.mark_failed(job.id, "decoder error", kept)
            queues.write_reason(folder, failed, "this file could not be processed", "decoder error", "retry")
            return failed
        finally:
            store.close()

    def review(self, content: bytes, inbox: str = "default") -> Job:
        cfg = self.cfg
        store = self._store()
        queues = Queues(cfg.clean_dir, cfg.review_dir, cfg.failed_dir)
        try:
            job = self._admit(store, content, inbox, b"doubt.mp4")
            store.claim_next()
            output = b"review:" + content
            scratch = self.root / f"{job.id}.out"
            scratch.write_bytes(output)
            where = queues.to_review(job, scratch, ".mp4", {}, "validator found a face")
            return store.mark_review(job.id, where, "validator found a face", sha256(output))
        finally:
            store.close()


def make_layout(root: Path) -> Layout:
    for d in ("inbox", "inbox2", "raw", "clean", "review", "failed", "state", "policies"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy(TEST_POLICIES / "metadata-only.yaml", root / "policies")
    config = root / "redactd.yaml"
    config.write_text(textwrap.dedent("""\
        version: 1
        inboxes:
          - {name: default, path: inbox, policy: metadata-only, watch: poll}
          - {name: dashcams, path: inbox2, policy: metadata-only, watch: poll}
        raw_store: raw
        clean_dir: clean
        review_dir: review
        failed_dir: failed
        state_dir: state
        policies_dir: policies
        custody: {directory: state/custody, signing_key: keys/custody.key}
        retention: {policy: test-retention, schedule: "17 * * * *"}
        workers: 1
        limits: {settle_seconds: 0.2, rescan_seconds: 5}
        """))
    layout = Layout(root, config)
    layout.write_policy()
    init_key(root / "keys" / "custody.key")
    Queues(root / "clean", root / "review", root / "failed").ensure()
    return layout


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return make_layout(tmp_path / "site")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(UTC))


def later(job: Job, **delta: float) -> datetime:
    """A moment measured from when the job finished (as the job store recorded it)."""
    assert job.finished_at is not None
    return datetime.fromtimestamp(job.finished_at, UTC) + timedelta(**delta)


JobFactory = Callable[..., Job]
