"""The review desk on a real job store and real queue folders: the refusals and the crash path."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from redactd.config import DaemonConfig
from redactd.custody import CustodyLog
from redactd.custody.keys import init_key
from redactd.daemon import DaemonLock
from redactd.errors import ConfigError
from redactd.jobflow.jobstore import Job, JobState, JobStore, JobStoreError
from redactd.jobflow.outbox import opened, record_pending
from redactd.jobflow.publish import Queues
from redactd.policy import PolicySet, RedactionPolicy
from redactd.review import ReviewDesk


@pytest.fixture()
def desk(tmp_path: Path, faces_policy: RedactionPolicy) -> ReviewDesk:
    var = tmp_path / "var"
    cfg = DaemonConfig.model_validate({
        "version": 1, "inboxes": [{"name": "in", "path": str(tmp_path / "in"), "policy": faces_policy.id}],
        "raw_store": str(var / "raw"), "clean_dir": str(var / "clean"), "review_dir": str(var / "review"),
        "failed_dir": str(var / "failed"), "state_dir": str(var / "state"), "policies_dir": str(tmp_path),
        "custody": {"directory": str(var / "custody"), "signing_key": str(tmp_path / "none.key")},
    })
    for d in (cfg.raw_store, cfg.clean_dir, cfg.review_dir, cfg.failed_dir, cfg.state_dir):
        d.mkdir(parents=True)
    store = JobStore.open(cfg.state_dir / "jobs.sqlite3")
    return ReviewDesk(cfg, PolicySet(redaction={faces_policy.id: faces_policy}), store)


def in_review(desk: ReviewDesk, policy: RedactionPolicy, output: bytes = b"rendered video bytes") -> Job:
    """A job carried to review through the store's own transitions, its output in the review queue."""
    store, cfg = desk.store, desk.cfg
    raw = cfg.raw_store / "job1.mp4"
    raw.write_bytes(b"raw footage")
    store.begin_receiving("job1", "in", b"holiday.mp4", 11, policy.id, policy.version, raw)
    store.finish_receiving("job1", hashlib.sha256(b"raw footage").hexdigest())
    job = store.claim_next()
    assert job is not None
    scratch = cfg.state_dir / "output.mp4"
    scratch.write_bytes(output)
    sha = hashlib.sha256(output).hexdigest()
    where = Queues(cfg.clean_dir, cfg.review_dir, cfg.failed_dir).to_review(
        job, scratch, ".mp4", {"validation": {"leak_score": 0.5}}, "validation: 2 of 4 sampled frames")
    return store.mark_review(job.id, where, "validation: 2 of 4 sampled frames", sha)


class TestReviewDesk:
    def test_approve_refuses_an_output_changed_since_validation(self, desk: ReviewDesk,
                                                               faces_policy: RedactionPolicy) -> None:
        job = in_review(desk, faces_policy)
        assert job.output_path is not None
        job.output_path.write_bytes(b"something else")
        with pytest.raises(JobStoreError, match="changed since it was validated"):
            desk.approve(job.id, "alice")
        assert desk.store.get(job.id).state is JobState.REVIEW
        assert list(desk.cfg.clean_dir.iterdir()) == []

    def test_approve_records_a_publish_that_was_interrupted_before_it_was_recorded(
            self, desk: ReviewDesk, faces_policy: RedactionPolicy) -> None:
        job = in_review(desk, faces_policy)
        assert job.output_path is not None and job.output_sha256 is not None
        published = desk.cfg.clean_dir / f"{job.output_sha256}.mp4"
        job.output_path.rename(published)  # what a crash between the rename and the record leaves
        done = desk.approve(job.id, "alice")
        assert (done.state, done.output_path) == (JobState.PUBLISHED, published)

    def test_requeue_with_an_unknown_policy_is_refused_and_changes_nothing(
            self, desk: ReviewDesk, faces_policy: RedactionPolicy) -> None:
        job = in_review(desk, faces_policy)
        with pytest.raises(ConfigError, match="--requeue-with: unknown redaction policy 'nope'"):
            desk.requeue(job.id, "carol", "nope")
        assert desk.store.get(job.id).state is JobState.REVIEW

    def test_a_job_outside_review_cannot_be_decided(self, desk: ReviewDesk, faces_policy: RedactionPolicy) -> None:
        job = in_review(desk, faces_policy)
        desk.reject(job.id, "bob", "face visible")
        with pytest.raises(JobStoreError, match="is failed, not in review"):
            desk.approve(job.id, "alice")


class TestCustodyOutbox:
    def test_decisions_wait_in_the_outbox_until_the_custody_log_can_be_written(
            self, desk: ReviewDesk, faces_policy: RedactionPolicy) -> None:
        cfg, path = desk.cfg, desk.cfg.state_dir / "jobs.sqlite3"
        job = in_review(desk, faces_policy)
        store = JobStore.open(path)
        ReviewDesk(cfg, desk.policies, store).reject(job.id, "bob", "face visible")
        store.close()
        with opened(path) as box:
            pending = [e for _, e, _ in box.pending()]
        # every transition of the job waits, in order, ending with the decision
        assert pending[0] == "ingested" and pending[-2:] == ["sent_to_review", "review_rejected"]
        assert record_pending(cfg, path).startswith("queued: no custody signing key")
        init_key(cfg.custody.signing_key)
        lock = DaemonLock(cfg.state_dir)
        lock.acquire()
        try:
            with CustodyLog.open(cfg.custody.directory, cfg.custody.signing_key):  # the daemon, say
                assert record_pending(cfg, path).startswith("queued for the running daemon")
        finally:
            lock.release()
        assert record_pending(cfg, path) == f"recorded in the custody log ({len(pending)} entries)"
        with opened(path) as box:
            assert box.pending() == []
        lines = [json.loads(x) for seg in sorted(cfg.custody.directory.glob("custody-*.jsonl"))
                 for x in seg.read_text().splitlines()]
        (entry,) = [e for e in lines if e["event"] == "review_rejected"]
        assert (entry["job_id"], entry["actor"], entry["details"]["reason"]) == (job.id, "bob", "face visible")
