"""Building retention items from the real job store and queue folders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redactd.jobflow.jobstore import JobStore
from redactd.retention import Action, ItemKind
from redactd.retention.service import make_plan
from tests.retention.conftest import Layout, later


def kinds(layout: Layout, job_id: str) -> dict[str, tuple[str, str]]:
    """(action, reason) by item kind for one job, ten years from now: everything due is due."""
    cfg, policies = layout.load()
    p = make_plan(cfg, policies, layout.store_file, datetime.now(UTC) + timedelta(days=3650))
    return {d.item.kind.value: (d.action.value, d.reason) for d in p.decisions if d.item.job_id == job_id}


class TestCollectItems:
    def test_a_published_job_has_its_raw_file_and_its_clean_output(self, layout: Layout) -> None:
        job = layout.published(b"two items")
        cfg, policies = layout.load()
        p = make_plan(cfg, policies, layout.store_file, later(job, days=1))
        items = {d.item.kind: d.item for d in p.decisions}
        assert items[ItemKind.RAW].path == job.raw_path and items[ItemKind.RAW].sha256 == job.raw_sha256
        assert items[ItemKind.RAW].size == len(b"two items") and items[ItemKind.RAW].ext == ".mp4"
        clean = items[ItemKind.CLEAN]
        assert clean.sha256 == job.output_sha256 and clean.companions[0].name.endswith(".mp4.json")

    def test_a_file_refused_at_admission_is_listed_but_never_deleted(self, layout: Layout) -> None:
        cfg = layout.cfg
        folder = cfg.failed_dir / "rejected0001"
        folder.mkdir()
        kept = folder / "original.mp4"
        kept.write_bytes(b"not a video")
        store = JobStore.open(layout.store_file)
        try:
            store.record_rejection("rejected0001", "default", b"x.mp4", 11, "metadata-only", "not a video", kept)
        finally:
            store.close()
        layout.write_policy(require=False)
        assert kinds(layout, "rejected0001")["failed"][0] == Action.KEEP.value
        assert "no SHA-256" in kinds(layout, "rejected0001")["failed"][1]

    def test_raw_of_a_job_still_waiting_is_kept(self, layout: Layout) -> None:
        job = layout.duplicate(b"admitted only")  # admitted, never claimed: no original to follow
        assert kinds(layout, job.id)["raw"][0] == "keep" and "admitted" in kinds(layout, job.id)["raw"][1]
