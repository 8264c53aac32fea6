"""Contributor receipts written by the real daemon into ``<inbox>/.redactd/`` (an inbox with ``receipts: true``)."""

from __future__ import annotations

import time

from redactd.jobflow.jobstore import JobState
from redactd.receipts import render
from tests.daemon.conftest import drop


class TestReceipts:
    def test_each_file_gets_a_receipt_naming_only_itself_and_the_folder_is_never_admitted(
            self, daemon_run, clip_bytes):
        run = daemon_run()
        run.settings["inboxes"][0]["receipts"] = True
        run.write_config()
        run.start()
        (run.inbox / "trip").mkdir()
        drop(run.inbox, "trip/alice-dashcam.mp4", clip_bytes)
        (first,) = run.wait_finished(1, timeout=60)
        drop(run.inbox, "bob copy.mp4", clip_bytes)
        drop(run.inbox, "notes.mp4", b"not a video at all\n" * 10)
        jobs = run.wait_finished(3, timeout=60)
        receipts = run.inbox / ".redactd"
        # CI once read a receipt still saying "processing": wait_receipt waits for the final state.
        published = run.wait_receipt(receipts / "trip" / "alice-dashcam.mp4.txt", "published")
        assert f"ref:     {first.id}" in published
        dup = run.wait_receipt(receipts / "bob copy.mp4.txt", "received: the same content arrived before")
        assert "alice" not in dup and first.id not in dup  # never another contributor's file
        failed = run.wait_receipt(receipts / "notes.mp4.txt", "failed")
        assert "why:" in failed
        # The daemon rewrote receipts inside the watched inbox and admitted none of them.
        time.sleep(7)  # past a periodic rescan (5 s in these tests) and the settle window
        assert len(run.jobs()) == 3 and {j.state for j in jobs} == {JobState.PUBLISHED, JobState.DUPLICATE,
                                                                       JobState.FAILED}
        assert run.stop() == 0

    def test_a_rejection_in_review_is_told_without_the_reviewers_name(self, daemon_run, clip_bytes) -> None:
        from redactd.jobflow.jobstore import Job

        job = Job.draft("01abc", JobState.FAILED, "in", b"sub/clip.mp4", 10, "p",
                        last_error="rejected in review by rita: a face is readable")
        text = render(job)
        assert "rejected in review: a face is readable" in text and "rita" not in text
        assert text.startswith("file:    clip.mp4\n")
