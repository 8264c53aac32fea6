"""Every job transition of the real daemon lands in the signed custody log, crash or not."""

from __future__ import annotations

from collections import Counter

from redactd.custody import verify_log
from redactd.custody.keys import load_public_key, public_path
from redactd.custody.names import Names, names_path, original_name
from redactd.custody.segments import load_entries
from redactd.jobflow.jobstore import JobState
from tests.daemon.conftest import drop, variant


def entries_by_job(run) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    by_job: dict[str, list[str]] = {}
    for e in load_entries(run.state / "custody"):
        if e.get("job_id"):
            by_job.setdefault(e["job_id"], []).append(e["event"])
    return by_job


class TestCustodyWiring:
    def test_a_published_file_has_its_whole_history_signed_in_order(self, daemon_run, clip_bytes):
        run = daemon_run(naming="sha256")
        run.start()
        drop(run.inbox, "Birthday of Carol.mp4", clip_bytes)
        (job,) = run.wait_finished(1, timeout=60)
        assert job.state is JobState.PUBLISHED, job.last_error
        assert run.stop() == 0
        result = verify_log(run.state / "custody", load_public_key(public_path(run.root / "custody.key")))
        assert result.ok, result.problem
        entries = load_entries(run.state / "custody")
        mine = [e for e in entries if e.get("job_id") == job.id]
        assert [e["event"] for e in mine] == ["ingested", "processing_started", "published"]
        names = Names.load(names_path(run.state / "custody"))  # the one restricted place it lives
        assert original_name(mine[0], names) == "Birthday of Carol.mp4"
        assert all(e["raw_sha256"] == job.raw_sha256 for e in mine)
        assert mine[-1]["output_sha256"] == job.output_sha256
        assert mine[-1]["policy"]["id"] == "metadata-only"
        loaded = {e["policy"]["id"] for e in entries if e["event"] == "policy_loaded"}
        assert {"metadata-only", "metadata-only-by-job"} <= loaded
        assert entries[-1]["event"] == "checkpoint"

    def test_kill_9_loses_no_custody_entry_of_a_committed_transition(self, daemon_run, clip_bytes):
        run = daemon_run()
        run.start()
        count = 6
        for i in range(count):
            (run.inbox / f"clip-{i}.mp4").write_bytes(variant(clip_bytes, i))
        run.wait_for(lambda: run.in_state(JobState.PUBLISHED) and run.in_state(JobState.PROCESSING),
                     timeout=90, what="one published, one processing")
        run.kill9()
        run.start()
        run.wait_for(lambda: len(run.in_state(JobState.PUBLISHED)) == count, timeout=120, what="all published")
        assert run.stop() == 0
        result = verify_log(run.state / "custody", load_public_key(public_path(run.root / "custody.key")))
        assert result.ok, result.problem
        by_job = entries_by_job(run)
        for job in run.jobs():
            events = Counter(by_job[job.id])
            assert events["ingested"] == 1 and events["published"] >= 1, (job.id, by_job[job.id])
            # every transition in the job store's history has its custody entry
            assert sum(events.values()) >= len(run.history(job.id)) - 1  # 'receiving' is not an event
