"""Watching: filesystem type from mountinfo, the observer choice, and real watchdog events."""

from __future__ import annotations

import os
import queue
import time
from pathlib import Path

import pytest

from redactd.watch import InboxWatcher, Sighting, choose_mode, filesystem_type

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /srv/share rw,relatime shared:20 - cifs //nas/share rw,vers=3.1.1
41 40 0:36 / /srv/share/local rw,relatime shared:21 - ext4 /dev/sdb1 rw
42 22 0:37 / /mnt/my\\040videos rw,relatime shared:22 - nfs4 nas:/videos rw
43 22 0:38 / /mnt/sshbox rw,relatime shared:23 - fuse.sshfs me@box: rw
"""


class TestFilesystemType:
    @pytest.mark.parametrize("path, fstype", [
        ("/srv/share/inbox", "cifs"),
        ("/srv/share/local/inbox", "ext4"),
        ("/srv/shared", "ext4"),  # a prefix of the mount point's name is not inside it
        ("/mnt/my videos/in", "nfs4"),
        ("/mnt/sshbox", "fuse.sshfs"),
    ])
    def test_picks_the_longest_mount_point_containing_the_path(self, path, fstype):
        assert filesystem_type(Path(path), MOUNTINFO) == fstype

    def test_reads_this_machines_mountinfo(self, tmp_path):
        assert filesystem_type(tmp_path) not in ("", "unknown")


class TestChooseMode:
    def test_polls_network_filesystems_and_uses_inotify_on_local_ones(self):
        assert choose_mode("auto", Path("/srv/share/in"), MOUNTINFO) == "poll"
        assert choose_mode("auto", Path("/mnt/sshbox/in"), MOUNTINFO) == "poll"
        assert choose_mode("auto", Path("/srv/share/local/in"), MOUNTINFO) == "inotify"

    def test_an_explicit_setting_wins(self):
        assert choose_mode("poll", Path("/"), MOUNTINFO) == "poll"
        assert choose_mode("inotify", Path("/srv/share/in"), MOUNTINFO) == "inotify"


def _collect(out: queue.Queue[Sighting], want: set[Path], timeout: float = 10) -> list[Sighting]:
    seen: list[Sighting] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end and not want <= {s.path for s in seen}:
        try:
            seen.append(out.get(timeout=0.2))
        except queue.Empty:
            pass
    return seen


class TestInboxWatcher:
    @pytest.mark.parametrize("mode", ["inotify", "poll"])
    def test_reports_created_moved_in_and_written_files_and_arriving_directories(self, tmp_path, mode):
        inbox, outside = tmp_path / "inbox", tmp_path / "outside"
        inbox.mkdir()
        outside.mkdir()
        out: queue.Queue[Sighting] = queue.Queue()
        watcher = InboxWatcher(out, poll_interval=0.2)
        watcher.start([("box", inbox, mode)])
        try:
            assert watcher.modes == {"box": mode} and watcher.alive()
            (inbox / "new.mp4").write_bytes(b"x")
            (outside / "moved.mp4").write_bytes(b"x")
            os.rename(outside / "moved.mp4", inbox / "moved.mp4")
            (outside / "folder").mkdir()
            (outside / "folder" / "inside.mp4").write_bytes(b"x")
            os.rename(outside / "folder", inbox / "folder")
            seen = _collect(out, {inbox / "new.mp4", inbox / "moved.mp4", inbox / "folder"})
        finally:
            watcher.stop()
        paths = {s.path for s in seen}
        assert {inbox / "new.mp4", inbox / "moved.mp4", inbox / "folder"} <= paths
        assert any(s.rescan for s in seen if s.path == inbox / "folder")
        assert {s.inbox for s in seen} == {"box"}
