"""Publishing: atomic placement, opaque names, temp sweeping, and the queues' reason files."""

from __future__ import annotations

import errno
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from redactd.jobflow.jobstore import JobState, JobStore
from redactd.jobflow.publish import Queues, output_name, place_file, safe_suffix, sweep_temps
from tests.conftest import tmpfs


@pytest.fixture()
def job(tmp_path: Path):
    store = JobStore.open(tmp_path / "jobs.sqlite3")
    store.begin_receiving("0123456789abcdef", "box", b"Anna's wedding (2).MP4", 5, "p", 1, tmp_path / "r")
    return store.finish_receiving("0123456789abcdef", "a" * 64)


class TestOutputName:
    def test_is_the_content_hash_or_the_job_id_unless_the_policy_opts_into_the_original(self, job):
        assert output_name("sha256", job, "b" * 64, ".mp4") == "b" * 64 + ".mp4"
        assert output_name("job_id", job, "b" * 64, ".mp4") == "0123456789abcdef.mp4"
        assert output_name("original", job, "b" * 64, ".mp4") == "Anna_s_wedding_2_-0123456789abcdef.mp4"

    def test_same_named_files_that_arrive_together_get_different_original_names(self, job):
        # Ids as new_job_id made them until ids led with random digits: 12 hex of ms, then 12 random. Files
        # admitted within the same minute shared the first 8 characters; such ids are still in stores.
        first, second = replace(job, id="01a239265ba0" + "3f9c2a71b0d4"), replace(job, id="01a239265c11" + "8e0d4b2a9f17")
        assert output_name("original", first, "b" * 64, ".mp4") != output_name("original", second, "b" * 64, ".mp4")

    @pytest.mark.parametrize("name, suffix", [("a.MP4", ".mp4"), ("a.mkv", ".mkv"), ("a", ""),
                                              ("a.mp4;rm -rf", ""), ("a.toolongsuffix", "")])
    def test_safe_suffix_keeps_only_short_plain_extensions(self, name, suffix):
        assert safe_suffix(name) == suffix


class TestPlaceFile:
    def test_moves_a_file_into_place_with_the_mode_asked_for(self, tmp_path):
        src = tmp_path / "scratch.mp4"
        src.write_bytes(b"video")
        (tmp_path / "clean").mkdir()
        place_file(src, tmp_path / "clean" / "out.mp4", 0o644)
        assert (tmp_path / "clean" / "out.mp4").read_bytes() == b"video" and not src.exists()
        assert oct((tmp_path / "clean" / "out.mp4").stat().st_mode & 0o777) == oct(0o644)

    def test_on_a_full_filesystem_leaves_neither_a_partial_file_nor_a_temp_behind(self, tmp_path):
        with tmpfs(tmp_path / "full", "size=64k") as full:
            src = tmp_path / "big.mp4"
            src.write_bytes(os.urandom(256 * 1024))
            with pytest.raises(OSError) as info:
                place_file(src, full / "out.mp4", 0o644)
            assert info.value.errno == errno.ENOSPC
            assert os.listdir(full) == [] and src.exists()


class TestSweepTemps:
    def test_removes_only_our_own_temp_files(self, tmp_path):
        (tmp_path / ".redactd-x1.tmp").write_bytes(b"")
        (tmp_path / ".redactd-x2.tmp.mp4").write_bytes(b"")
        (tmp_path / "keep.mp4").write_bytes(b"")
        (tmp_path / ".other.tmp").write_bytes(b"")
        assert sweep_temps(tmp_path) == 2
        assert sorted(os.listdir(tmp_path)) == [".other.tmp", "keep.mp4"]


class TestQueues:
    def test_publish_writes_the_sidecar_beside_the_output(self, tmp_path):
        queues = Queues(tmp_path / "clean", tmp_path / "review", tmp_path / "failed")
        queues.ensure()
        src = tmp_path / "o.mp4"
        src.write_bytes(b"v")
        dst = queues.publish(src, "n.mp4", {"job_id": "j"})
        assert dst.read_bytes() == b"v"
        assert json.loads((tmp_path / "clean" / "n.mp4.json").read_text()) == {"job_id": "j"}

    def test_review_folder_holds_output_sidecar_and_a_reason_an_operator_can_read(self, tmp_path, job):
        queues = Queues(tmp_path / "clean", tmp_path / "review", tmp_path / "failed")
        queues.ensure()
        src = tmp_path / "o.mp4"
        src.write_bytes(b"v")
        queues.to_review(job, src, ".mp4", {"k": 1}, "second detector found 2 faces")
        folder = tmp_path / "review" / job.id
        assert sorted(os.listdir(folder)) == ["REASON.txt", "output.json", "output.mp4"]
        reason = (folder / "REASON.txt").read_text()
        assert "second detector found 2 faces" in reason and "Anna's wedding (2).MP4" in reason
        assert job.state is JobState.ADMITTED

    def test_set_aside_renames_a_job_folder_instead_of_deleting_it(self, tmp_path):
        queues = Queues(tmp_path / "clean", tmp_path / "review", tmp_path / "failed")
        queues.ensure()
        (queues.folder(queues.failed_dir, "j1") / "REASON.txt").write_text("why")
        moved = queues.set_aside(queues.failed_dir, "j1")
        assert moved is not None and (moved / "REASON.txt").read_text() == "why"
        assert moved.name.startswith("j1.before-retry-")
