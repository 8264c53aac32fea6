"""Admission: junk names, the stability tracker, refusal reasons, and moving into the raw store."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from redactd.admit import (
    Admitter,
    MoveRaced,
    Route,
    StabilityTracker,
    check_candidate,
    is_junk,
    move_aside,
    move_in,
    sha256_of,
    walk,
)
from redactd.jobflow.jobstore import JobState, JobStore, JobStoreError
from redactd.jobflow.publish import Queues


class TestIsJunk:
    @pytest.mark.parametrize("name", [
        "clip.mp4.part", "video.crdownload", ".~lock.notes.odt#", "._clip.mp4", ".DS_Store", "Thumbs.db",
        "@eaDir/clip.mp4", ".syncthing.clip.mp4.tmp", "~syncthing~clip.mp4.tmp", ".clip.mp4.Xy12Ab",
        ".redactd-abc123.tmp",
    ])
    def test_flags_temp_and_junk_names(self, name):
        assert is_junk(Path(name))

    @pytest.mark.parametrize("name", ["clip.mp4", "sub/clip.MOV", "part-1.mp4", "a.b.c.mkv", ".hidden-clip.mp4"])
    def test_lets_ordinary_names_through(self, name):
        assert not is_junk(Path(name))


class TestStabilityTracker:
    def test_hands_out_a_file_only_after_it_was_unchanged_for_the_settle_window(self, tmp_path):
        f = tmp_path / "a.mp4"
        f.write_bytes(b"x" * 10)
        tracker = StabilityTracker(settle_seconds=5)
        tracker.observe(f, now=100)
        assert tracker.due(now=104) == []
        assert tracker.due(now=105) == [f]
        tracker.observe(f, now=106)  # an event while it is being admitted: not queued twice
        assert tracker.due(now=200) == []

    def test_restarts_the_window_when_only_the_mtime_changes(self, tmp_path):
        f = tmp_path / "a.mp4"
        f.write_bytes(b"x" * 10)
        tracker = StabilityTracker(settle_seconds=5)
        tracker.observe(f, now=100)
        st = f.stat()
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # same size, newer mtime
        assert tracker.due(now=104) == []
        assert tracker.due(now=108) == []
        assert tracker.due(now=109) == [f]

    def test_drops_a_file_that_disappears_and_watches_a_new_one_after_forget(self, tmp_path):
        f = tmp_path / "a.mp4"
        f.write_bytes(b"x")
        tracker = StabilityTracker(settle_seconds=1)
        tracker.observe(f, now=0)
        f.unlink()
        assert tracker.due(now=5) == [] and len(tracker) == 0
        f.write_bytes(b"y")
        tracker.observe(f, now=10)
        assert tracker.due(now=11) == [f]
        tracker.forget(f)
        tracker.observe(f, now=20)
        assert tracker.due(now=21) == [f]


class TestCheckCandidate:
    def test_accepts_a_plain_file(self, tmp_path):
        (tmp_path / "a.mp4").write_bytes(b"data")
        st, rejection = check_candidate(tmp_path / "a.mp4", tmp_path, max_size=100)
        assert st is not None and rejection is None

    def test_reports_nothing_for_a_file_that_is_gone(self, tmp_path):
        assert check_candidate(tmp_path / "gone.mp4", tmp_path, 100) == (None, None)

    @pytest.mark.parametrize("make, words", [
        (lambda d: os.symlink("/etc/passwd", d / "f"), "symbolic link (pointing outside"),
        (lambda d: os.mkfifo(d / "f"), "named pipe (FIFO)"),
        (lambda d: (d / "f").write_bytes(b""), "empty"),
        (lambda d: (d / "f").write_bytes(b"x" * 101), "over the configured limit of 100 bytes"),
        (lambda d: ((d / "o").write_bytes(b"x"), os.link(d / "o", d / "f")), "hard-linked (2 names"),
    ])
    def test_refuses_with_a_reason(self, tmp_path, make, words):
        make(tmp_path)
        _, rejection = check_candidate(tmp_path / "f", tmp_path, max_size=100)
        assert rejection is not None and words in rejection.reason and rejection.advice

    def test_refuses_a_path_through_a_symlinked_directory_that_leaves_the_inbox(self, tmp_path):
        inbox, elsewhere = tmp_path / "inbox", tmp_path / "elsewhere"
        inbox.mkdir()
        elsewhere.mkdir()
        (elsewhere / "secret.mp4").write_bytes(b"x")
        os.symlink(elsewhere, inbox / "door")
        _, rejection = check_candidate(inbox / "door" / "secret.mp4", inbox, 100)
        assert rejection is not None and "outside the inbox" in rejection.reason

    @pytest.mark.parametrize("name, words", [(b"a\nb.mp4", "control characters"), (b"\xff.mp4", "not valid UTF-8")])
    def test_refuses_names_that_cannot_be_recorded_faithfully(self, tmp_path, name, words):
        path = Path(os.fsdecode(os.fsencode(tmp_path) + b"/" + name))
        path.write_bytes(b"x")
        _, rejection = check_candidate(path, tmp_path, 100)
        assert rejection is not None and words in rejection.reason


class TestMoveIn:
    def test_gives_the_file_a_new_owner_only_inode_and_returns_its_sha256(self, tmp_path):
        src, dst = tmp_path / "in.mp4", tmp_path / "raw.mp4"
        src.write_bytes(b"footage")
        src.chmod(0o666)
        st = os.lstat(src)
        digest = move_in(src, dst, st)
        assert not src.exists() and dst.read_bytes() == b"footage"
        assert dst.stat().st_ino != st.st_ino and stat.S_IMODE(dst.stat().st_mode) == 0o600
        assert digest == sha256_of(dst)

    def test_a_writer_holding_the_inbox_file_open_cannot_change_the_raw_copy(self, tmp_path):
        src, dst = tmp_path / "in.mp4", tmp_path / "raw.mp4"
        with open(src, "wb") as writer:
            writer.write(b"the footage as admitted")
            writer.flush()
            digest = move_in(src, dst, os.lstat(src))
            writer.seek(0)
            writer.write(b"REWRITTEN after admission")
            writer.flush()
        assert dst.read_bytes() == b"the footage as admitted" and digest == sha256_of(dst)

    def test_copies_verifies_and_unlinks_across_filesystems(self, tmp_path):
        shm = Path("/dev/shm")
        if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("needs /dev/shm on another filesystem")
        src = shm / f"redactd-test-{os.getpid()}.mp4"
        src.write_bytes(b"footage" * 1000)
        try:
            digest = move_in(src, tmp_path / "raw.mp4", os.lstat(src))
        finally:
            src.unlink(missing_ok=True)
        assert not src.exists() and (tmp_path / "raw.mp4").read_bytes() == b"footage" * 1000
        assert digest == sha256_of(tmp_path / "raw.mp4")
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

    @pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file another owner")
    def test_copies_a_file_someone_else_owns_so_the_raw_copy_is_ours(self, tmp_path):
        # A contributor's file on the share: renamed, it would stay theirs (fchmod would fail too).
        src, dst = tmp_path / "in.mp4", tmp_path / "raw.mp4"
        src.write_bytes(b"footage")
        os.chown(src, 54321, 54321)
        st = os.lstat(src)
        digest = move_in(src, dst, st)
        assert not src.exists() and dst.read_bytes() == b"footage"
        raw = dst.stat()
        assert raw.st_ino != st.st_ino and raw.st_uid == os.geteuid() and stat.S_IMODE(raw.st_mode) == 0o600
        assert digest == sha256_of(dst)

    def test_refuses_a_file_that_changed_after_it_was_checked(self, tmp_path):
        src = tmp_path / "in.mp4"
        src.write_bytes(b"first")
        st = os.lstat(src)
        src.write_bytes(b"second and longer")
        with pytest.raises(MoveRaced):
            move_in(src, tmp_path / "raw.mp4", st)


class TestMoveAside:
    def test_moves_a_fifo_and_a_symlink_without_opening_them(self, tmp_path):
        os.mkfifo(tmp_path / "pipe")
        os.symlink("/etc/passwd", tmp_path / "link")
        assert move_aside(tmp_path / "pipe", tmp_path / "pipe2")  # opening a FIFO would block here
        assert move_aside(tmp_path / "link", tmp_path / "link2")
        assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe2").st_mode)
        assert os.readlink(tmp_path / "link2") == "/etc/passwd"


class TestWalk:
    def test_yields_files_and_symlinked_directories_and_skips_junk_directories(self, tmp_path):
        (tmp_path / "sub" / "@eaDir").mkdir(parents=True)
        (tmp_path / "sub" / "@eaDir" / "thumb.jpg").write_bytes(b"x")
        (tmp_path / "sub" / "a.mp4").write_bytes(b"x")
        os.symlink("/etc", tmp_path / "etc-link")
        found = sorted(str(p.relative_to(tmp_path)) for p in walk(tmp_path))
        assert found == ["etc-link", "sub/a.mp4"]


class TestAdmitter:
    def _setup(self, tmp_path: Path) -> tuple[Admitter, Route, JobStore, Queues]:
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        queues = Queues(tmp_path / "clean", tmp_path / "review", tmp_path / "failed")
        queues.ensure()
        (tmp_path / "raw").mkdir()
        store = JobStore.open(tmp_path / "jobs.sqlite3")
        return Admitter(store, tmp_path / "raw", queues, 1000), Route("box", inbox, "p", 1), store, queues

    def test_admits_a_file_and_records_a_second_copy_as_a_duplicate(self, tmp_path):
        admitter, route, _, _ = self._setup(tmp_path)
        (route.root / "a.mp4").write_bytes(b"same")
        (route.root / "b.mp4").write_bytes(b"same")
        first = admitter.admit(route, route.root / "a.mp4")
        second = admitter.admit(route, route.root / "b.mp4")
        assert first is not None and first.state is JobState.ADMITTED and first.raw_path.read_bytes() == b"same"
        assert second is not None and second.state is JobState.DUPLICATE and second.duplicate_of == first.id
        assert list(route.root.iterdir()) == []

    def test_moves_a_refused_file_into_its_failed_folder_with_a_reason_file(self, tmp_path):
        admitter, route, _, queues = self._setup(tmp_path)
        (route.root / "empty.mp4").write_bytes(b"")
        job = admitter.admit(route, route.root / "empty.mp4")
        assert job is not None and job.state is JobState.FAILED and job.raw_sha256 is None
        assert job.raw_path == queues.failed_dir / job.id / "original.mp4" and job.raw_path.exists()
        reason = (queues.failed_dir / job.id / "REASON.txt").read_text()
        assert "the file is empty" in reason and "empty.mp4" in reason

    def test_a_refused_symlink_is_described_in_the_reason_file_not_kept_as_a_live_link(self, tmp_path):
        admitter, route, _, queues = self._setup(tmp_path)
        os.symlink("/etc/shadow", route.root / "payroll.mp4")
        job = admitter.admit(route, route.root / "payroll.mp4")
        assert job is not None and job.state is JobState.FAILED and job.raw_path is None
        folder = queues.failed_dir / job.id
        assert sorted(p.name for p in folder.iterdir()) == ["REASON.txt"]
        assert not any(os.path.islink(p) for p in folder.iterdir())
        reason = (folder / "REASON.txt").read_text()
        assert "symbolic link" in reason and "the link pointed to: /etc/shadow" in reason
        assert "/etc/shadow" not in (job.last_error or "")  # the log and job store keep no target
        assert list(route.root.iterdir()) == []

    def test_files_admitted_together_differ_in_their_first_eight_characters(self, tmp_path):
        admitter, route, store, _ = self._setup(tmp_path)
        for i in range(60):
            (route.root / f"clip{i:02}.mp4").write_bytes(b"%d" % i)
        jobs = [admitter.admit(route, route.root / f"clip{i:02}.mp4") for i in range(60)]
        ids = [j.id for j in jobs if j is not None]
        assert len(ids) == 60 and all(len(i) == 24 for i in ids)
        assert len({i[:8] for i in ids}) == 60  # a glance at the start tells them apart
        assert all(store.get(i[:8]).id == i for i in ids)  # and the short form names the job

    def test_recovery_finishes_an_admission_whose_file_reached_the_raw_store(self, tmp_path):
        admitter, route, store, _ = self._setup(tmp_path)
        raw = tmp_path / "raw" / "j1.mp4"
        store.begin_receiving("j1", "box", b"a.mp4", 4, "p", 1, raw)
        store.begin_receiving("j2", "box", b"b.mp4", 4, "p", 1, tmp_path / "raw" / "j2.mp4")
        raw.write_bytes(b"data")
        (route.root / "a.mp4").write_bytes(b"data")  # crash between the copy's rename and the unlink
        admitter.recover({"box": route})
        assert store.get("j1").state is JobState.ADMITTED and not (route.root / "a.mp4").exists()
        with pytest.raises(JobStoreError, match="no job"):
            store.get("j2")


class TestSha256Of:
    def test_matches_sha256sum_on_a_file_larger_than_one_read(self, tmp_path):
        f = tmp_path / "f"
        f.write_bytes(os.urandom(3 << 20))
        out = subprocess.run(["sha256sum", str(f)], capture_output=True, text=True, check=True, timeout=30)
        assert sha256_of(f) == out.stdout.split()[0]
