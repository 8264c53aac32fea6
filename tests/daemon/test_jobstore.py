"""The SQLite job store: transitions, atomic claims across connections, recovery queries, the sink."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from redactd.jobflow.jobstore import JobState, JobStore, JobStoreError, display_name


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    return tmp_path / "jobs.sqlite3"


def admitted(store: JobStore, job_id: str, sha: str) -> None:
    store.begin_receiving(job_id, "box", job_id.encode() + b".mp4", 10, "p", 1, Path(f"/raw/{job_id}.mp4"))
    store.finish_receiving(job_id, sha)


class TestJobStore:
    def test_opens_in_wal_mode_with_a_busy_timeout(self, db):
        store = JobStore.open(db)
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30000

    def test_records_each_transition_in_the_history_and_tells_the_sink(self, db):
        seen: list[tuple[str, dict]] = []
        store = JobStore.open(db, sink=lambda event, **f: seen.append((event, f)))
        admitted(store, "j1", "a" * 64)
        job = store.claim_next()
        assert job is not None and job.state is JobState.PROCESSING
        store.plan_output("j1", "out.mp4", "b" * 64)
        store.mark_published("j1", Path("/clean/out.mp4"))
        assert [t.to_state for t in store.history("j1")] == [
            JobState.RECEIVING, JobState.ADMITTED, JobState.PROCESSING, JobState.PUBLISHED]
        assert [e for e, _ in seen] == ["ingested", "processing_started", "published"]
        assert seen[0][1]["original_name"] == "j1.mp4" and seen[2][1]["output_sha256"] == "b" * 64

    def test_transition_fields_fit_the_custody_log_no_floats_and_the_policy_as_one_reference(self, db):
        seen: list[tuple[str, dict]] = []
        store = JobStore.open(db, sink=lambda event, **f: seen.append((event, f)))
        store.begin_receiving("j1", "box", b"a.mp4", 10, "p", 3, Path("/raw/j1.mp4"), "c" * 64)
        store.finish_receiving("j1", "a" * 64)
        store.claim_next()
        store.requeue("j1", "worker died", 0, count_attempt=True)
        store.claim_next()
        store.plan_output("j1", "out.mp4", "b" * 64)
        store.mark_published("j1", Path("/clean/out.mp4"))
        assert [e for e, _ in seen] == ["ingested", "processing_started", "requeued", "processing_started",
                                        "published"]
        assert seen[0][1]["policy"] == seen[-1][1]["policy"] == {"id": "p", "version": 3, "hash": "c" * 64}
        assert all(f["job_id"] == "j1" and f["raw_sha256"] == "a" * 64 for _, f in seen)
        assert not [(e, k) for e, f in seen for k, v in f.items() if isinstance(v, float)]
        assert [e for e, f in seen if "original_name" in f] == ["ingested"]

    def test_refuses_a_transition_from_the_wrong_state(self, db):
        store = JobStore.open(db)
        admitted(store, "j1", "a" * 64)
        with pytest.raises(JobStoreError, match="is admitted; cannot move it to published"):
            store.mark_published("j1", Path("/x"))

    def test_hands_each_job_to_exactly_one_of_many_concurrent_claimers(self, db):
        store = JobStore.open(db)
        for i in range(40):
            admitted(store, f"j{i:02d}", f"{i:064x}")
        claimed: list[str] = []
        lock = threading.Lock()

        def claimer() -> None:
            own = JobStore.open(db)
            while (job := own.claim_next()) is not None:
                with lock:
                    claimed.append(job.id)
            own.close()

        threads = [threading.Thread(target=claimer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(claimed) == [f"j{i:02d}" for i in range(40)]

    def test_requeue_delays_a_job_and_counts_the_attempt_only_when_asked(self, db):
        store = JobStore.open(db)
        admitted(store, "j1", "a" * 64)
        store.claim_next(now=100)
        job = store.requeue("j1", "worker crashed", not_before=200, count_attempt=True)
        assert job.attempts == 1 and job.state is JobState.ADMITTED and job.last_error == "worker crashed"
        assert store.claim_next(now=150) is None
        assert store.claim_next(now=200) is not None
        assert store.requeue("j1", "daemon restarted", 0, count_attempt=False).attempts == 1

    def test_finds_a_job_by_an_unambiguous_prefix(self, db):
        store = JobStore.open(db)
        admitted(store, "abcd1111", "a" * 64)
        admitted(store, "abcd2222", "b" * 64)
        assert store.get("abcd1").id == "abcd1111"
        with pytest.raises(JobStoreError, match="ambiguous"):
            store.get("abcd")
        with pytest.raises(JobStoreError, match="no job"):
            store.get("zzzz")

    def test_retry_runs_its_file_move_inside_the_transaction(self, db):
        store = JobStore.open(db)
        admitted(store, "j1", "a" * 64)
        store.claim_next()
        store.mark_failed("j1", "broken", Path("/failed/j1/raw.mp4"), count_attempt=True)

        def refuse() -> None:
            raise OSError("cannot move")

        with pytest.raises(OSError):
            store.retry("j1", Path("/raw/j1.mp4"), refuse)
        assert store.get("j1").state is JobState.FAILED
        job = store.retry("j1", Path("/raw/j1.mp4"))
        assert job.state is JobState.ADMITTED and job.attempts == 0 and job.raw_path == Path("/raw/j1.mp4")

    def test_keeps_original_names_that_are_not_utf8_byte_for_byte(self, db):
        store = JobStore.open(db)
        store.record_rejection("j1", "box", b"bad\xff\nname.mp4", 3, "p", "bad name", None)
        job = store.get("j1")
        assert job.original_name == b"bad\xff\nname.mp4" and job.name == "bad\\xff\\nname.mp4"
        assert display_name("café.mp4".encode()) == "café.mp4"

    def test_counts_jobs_by_state_and_reads_while_another_connection_writes(self, db):
        writer = JobStore.open(db)
        admitted(writer, "j1", "a" * 64)
        reader = JobStore.open(db, readonly=True)
        writer._conn.execute("BEGIN IMMEDIATE")  # a write in progress must not block readers
        assert reader.counts()[JobState.ADMITTED] == 1
        writer._conn.execute("ROLLBACK")

    def test_readonly_open_of_a_missing_store_says_so(self, tmp_path):
        with pytest.raises(JobStoreError, match="no job store here"):
            JobStore.open(tmp_path / "missing.sqlite3", readonly=True)
