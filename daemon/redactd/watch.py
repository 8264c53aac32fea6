"""Watch the inboxes: inotify on local disks, polling on network mounts; events feed a queue."""

from __future__ import annotations

import os
import queue
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.api import BaseObserver
from watchdog.observers.inotify import InotifyObserver
from watchdog.observers.polling import PollingObserver

# inotify only sees changes made through this kernel: writes by an SMB/NFS client on another
# machine, or by the host of a 9p/virtiofs share, never raise an event here.
NETWORK_FILESYSTEMS = frozenset({
    "cifs", "smb3", "smbfs", "nfs", "nfs4", "fuse.sshfs", "sshfs", "9p", "virtiofs", "afs", "ceph",
    "fuse.ceph", "glusterfs", "fuse.glusterfs", "lustre", "gpfs", "ocfs2", "davfs", "fuse.davfs2",
    "fuse.rclone", "fuse.s3fs", "fuse.juicefs", "ncpfs", "coda",
})

MOUNTINFO = Path("/proc/self/mountinfo")


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash in paths as \040 \011 \012 \134
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def filesystem_type(path: Path, mountinfo: str | None = None) -> str:
    """The type of the filesystem ``path`` lives on, from the longest matching mount point."""
    if mountinfo is None:
        mountinfo = MOUNTINFO.read_text()
    target = os.path.realpath(path)
    best, best_type = "", "unknown"
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right:
            continue
        point = _unescape(fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        # Later lines are later mounts: on an equal mount point the last one is what is visible.
        if inside and len(point) >= len(best):
            best, best_type = point, right.split()[0]
    return best_type


def choose_mode(setting: str, path: Path, mountinfo: str | None = None) -> str:
    """``inotify`` or ``poll`` for an inbox whose config says ``auto``, ``inotify`` or ``poll``."""
    if setting != "auto":
        return setting
    return "poll" if filesystem_type(path, mountinfo) in NETWORK_FILESYSTEMS else "inotify"


@dataclass(frozen=True)
class Sighting:
    """A path worth looking at in an inbox; ``rescan`` when a whole directory arrived at once."""

    inbox: str
    path: Path
    rescan: bool = False


class _Handler(FileSystemEventHandler):
    """Created, moved-into and closed-after-write events; modified events matter for polling."""

    def __init__(self, inbox: str, out: queue.Queue[Sighting]) -> None:
        self.inbox, self.out = inbox, out

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("deleted", "opened", "closed_no_write"):
            return
        if event.is_directory and event.event_type == "modified":
            return  # its entries raise their own events
        raw = event.dest_path if event.event_type == "moved" else event.src_path
        path = Path(os.fsdecode(raw))
        # A directory renamed into the inbox brings its files without an event for each of them.
        self.out.put(Sighting(self.inbox, path, rescan=event.is_directory))


class InboxWatcher:
    """One watchdog observer per mode (inotify, poll), scheduling every inbox of that mode."""

    def __init__(self, out: queue.Queue[Sighting], poll_interval: float) -> None:
        self.out = out
        self.poll_interval = poll_interval
        self._observers: list[BaseObserver] = []
        self.modes: dict[str, str] = {}

    def start(self, inboxes: Iterable[tuple[str, Path, str]]) -> None:
        """``inboxes``: (name, path, watch setting) triples."""
        inotify: BaseObserver | None = None
        poll: BaseObserver | None = None
        for name, path, setting in inboxes:
            mode = choose_mode(setting, path)
            self.modes[name] = mode
            if mode == "poll":
                poll = poll or PollingObserver(timeout=self.poll_interval)
                observer = poll
            else:
                inotify = inotify or InotifyObserver()
                observer = inotify
            observer.schedule(_Handler(name, self.out), os.fspath(path), recursive=True)
        self._observers = [o for o in (inotify, poll) if o is not None]
        for o in self._observers:
            o.daemon = True
            o.start()

    def alive(self) -> bool:
        return all(o.is_alive() for o in self._observers)

    def stop(self) -> None:
        for o in self._observers:
            o.stop()
        for o in self._observers:
            o.join(timeout=5)
        self._observers = []
