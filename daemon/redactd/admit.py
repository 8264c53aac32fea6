"""Admission: decide when an inbox file is complete, refuse what must not be processed, move it in.

A file is *ready* once its size, mtime and inode have not changed for the settle window (size
alone is not enough: Windows Explorer sets the final size at the start of an SMB copy). A ready
file is then checked (regular file, not hard-linked, inside the inbox, non-empty, not too large,
a name that can be recorded faithfully) and given a new inode in the raw store, where the
contributor can no longer change it: a reflink clone or a copy, hashed, then the inbox name unlinked.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import fnmatch
import hashlib
import os
import re
import secrets
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from redactd import log
from redactd.fsutil import atomic_output, file_kind, fsync_dir
from redactd.jobflow.jobstore import Job, JobState, JobStore, display_name
from redactd.jobflow.publish import Queues, safe_suffix
from redactd.space import is_out_of_space

_CHUNK = 1 << 20
_FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)

# Names written by copy tools, sync tools, office suites and NAS indexers while they work, or
# never meant as footage. Matched against every path component, case-insensitively.
JUNK_PATTERNS = (
    "*.part", "*.partial", "*.crdownload", "*.download", "*.tmp", "*.temp",
    ".~lock*", ".~*", "~$*", "._*", ".ds_store", "thumbs.db", "desktop.ini",
    "@eadir", "#recycle", "#snapshot", ".trash*", ".syncthing.*.tmp", "~syncthing~*.tmp", ".stfolder",
    ".stversions", ".redactd-*",
    ".redactd",  # contributor receipts (redactd.receipts): written by us, never footage
)
# rsync writes ".NAME.XXXXXX" (six random characters) and renames it when complete.
_RSYNC_TEMP = re.compile(r"^\..+\.[A-Za-z0-9]{6}$")


def is_junk(relative: Path) -> bool:
    """True for temp and junk names (in any component of the path inside the inbox)."""
    for part in relative.parts:
        low = part.lower()
        if any(fnmatch.fnmatchcase(low, pat) for pat in JUNK_PATTERNS) or _RSYNC_TEMP.match(part):
            return True
    return False


# --------------------------------------------------------------------------- stability


@dataclass(frozen=True)
class Snapshot:
    """What must not change during the settle window."""

    size: int
    mtime_ns: int
    ino: int
    dev: int

    @classmethod
    def of(cls, st: os.stat_result) -> Snapshot:
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


@dataclass
class _Watch:
    snapshot: Snapshot | None
    stable_since: float


class StabilityTracker:
    """Candidates seen in an inbox; ``due()`` returns those unchanged for ``settle`` seconds.

    Paths already handed out stay remembered until ``forget()``, so an event or rescan arriving
    while a file is being admitted never queues it twice.
    """

    def __init__(self, settle_seconds: float) -> None:
        self.settle = settle_seconds
        self._watching: dict[Path, _Watch] = {}
        self._handed_out: set[Path] = set()

    def __len__(self) -> int:
        return len(self._watching)

    def observe(self, path: Path, now: float) -> None:
        """Note a path (from an event or a scan); a known path restarts nothing by itself."""
        if path in self._handed_out or path in self._watching:
            return
        self._watching[path] = _Watch(_snapshot(path), now)

    def due(self, now: float) -> list[Path]:
        ready: list[Path] = []
        for path, watch in list(self._watching.items()):
            snap = _snapshot(path)
            if snap is None and not os.path.lexists(path):
                del self._watching[path]  # gone: renamed away or deleted by its writer
                continue
            if snap != watch.snapshot:
                watch.snapshot, watch.stable_since = snap, now
                continue
            if now - watch.stable_since >= self.settle:
                del self._watching[path]
                self._handed_out.add(path)
                ready.append(path)
        return ready

    def forget(self, path: Path) -> None:
        """Admission is done with ``path``; if a new file appears under the name, watch it afresh."""
        self._handed_out.discard(path)

    def set_settle(self, settle_seconds: float) -> None:
        self.settle = settle_seconds


def _snapshot(path: Path) -> Snapshot | None:
    try:
        return Snapshot.of(os.lstat(path))
    except OSError:
        return None


# --------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Rejection:
    """Why a file is refused, in words an operator and a contributor can act on."""

    reason: str
    advice: str


def check_name(relative: Path) -> Rejection | None:
    raw = os.fsencode(relative)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Rejection("the file name is not valid UTF-8, so it cannot be recorded faithfully in the "
                         "custody log", "rename the file using plain UTF-8 characters and copy it again")
    if any(not ch.isprintable() for ch in text):
        return Rejection("the file name contains control characters (such as a newline)",
                         "rename the file without line breaks or control characters and copy it again")
    return None


def check_candidate(path: Path, inbox_root: Path, max_size: int) -> tuple[os.stat_result | None, Rejection | None]:
    """lstat ``path`` and say why it must be refused, if it must; never follows a link."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None, None
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        where = "outside" if not _inside(path.parent / target, inbox_root) else "inside"
        return st, Rejection(f"it is a symbolic link (pointing {where} the inbox); only regular files are "
                             "accepted", "copy the file itself into the inbox, not a link to it")
    if not stat.S_ISREG(st.st_mode):
        return st, Rejection(f"it is a {file_kind(st)}, not a regular file",
                             "copy a regular video file into the inbox")
    if st.st_nlink > 1:
        return st, Rejection(f"it is hard-linked ({st.st_nlink} names share its data), so it could change "
                             "after admission through another name", "copy the file instead of linking it")
    if not _inside(path, inbox_root):
        return st, Rejection("its path resolves outside the inbox", "copy the file itself into the inbox")
    rejected = check_name(path.relative_to(inbox_root))
    if rejected is not None:
        return st, rejected
    if st.st_size == 0:
        return st, Rejection("the file is empty", "check the copy finished and copy the file again")
    if st.st_size > max_size:
        return st, Rejection(f"the file is {st.st_size} bytes, over the configured limit of {max_size} bytes "
                             "(limits.max_file_size)", "split the footage, or raise the limit in the config")
    return st, None


def _inside(path: Path, root: Path) -> bool:
    real = Path(os.path.realpath(path))
    return real == root or root in real.parents


# --------------------------------------------------------------------------- moving


class MoveRaced(Exception):
    """The file changed between the check and the move (swapped, grown or re-linked)."""


class OutOfSpace(Exception):
    """The raw store (or the state directory) is full: the file stays in the inbox until space returns."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def move_in(src: Path, dst: Path, expected: os.stat_result, mode: int = 0o600) -> str:
    """Give a checked file a new inode in the raw store (owner-only), unlink it from the inbox, and
    return the SHA-256 of the bytes the raw store holds.

    Never a rename: a contributor who still holds the inbox file open (or another process writing
    as the daemon's user) would keep writing into the very inode the pipeline reads. A reflink
    clone where the filesystem offers one (btrfs, XFS: no data copied), else a copy hashed as it
    is written. If the file changed meanwhile (size, mtime or inode), ``MoveRaced`` is raised and
    nothing is left in the raw store.
    """
    return _copy_in(src, dst, expected, mode)


def _clone(sfd: int, dfd: int) -> bool:
    """Reflink ``sfd``'s data into ``dfd`` (FICLONE); False where the filesystem cannot."""
    try:
        fcntl.ioctl(dfd, _FICLONE, sfd)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EPERM):
            return False
        raise
    return True


def _copy_in(src: Path, dst: Path, expected: os.stat_result, mode: int) -> str:
    h = hashlib.sha256()
    with atomic_output(dst, mode) as tmp:
        sfd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            st = os.fstat(sfd)
            if (st.st_ino, st.st_size, st.st_mtime_ns) != (expected.st_ino, expected.st_size, expected.st_mtime_ns):
                raise MoveRaced(f"{src.name!r} changed while it was being admitted")
            dfd = os.open(tmp, os.O_RDWR | os.O_TRUNC | os.O_NOFOLLOW)
            try:
                if _clone(sfd, dfd):
                    # Our own inode now: hash what it holds, whatever the source does next.
                    while chunk := os.read(dfd, _CHUNK):
                        h.update(chunk)
                else:
                    while chunk := os.read(sfd, _CHUNK):
                        h.update(chunk)
                        view = memoryview(chunk)
                        while view:
                            view = view[os.write(dfd, view):]
            finally:
                os.close(dfd)
            after = os.fstat(sfd)
            if (after.st_size, after.st_mtime_ns) != (expected.st_size, expected.st_mtime_ns):
                raise MoveRaced(f"{src.name!r} changed while it was being copied into the raw store")
        finally:
            os.close(sfd)
    os.unlink(src)
    fsync_dir(src.parent)
    return h.hexdigest()


def move_aside(src: Path, dst: Path) -> bool:
    """Move a refused entry (any type) to ``dst`` without reading it. False if it had to stay.

    A symlink, FIFO or device is renamed, never opened. Across filesystems only a regular file or a
    symlink can be moved; anything else stays where it is and the caller records that.
    """
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        st = os.lstat(src)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISREG(st.st_mode):
            _copy_in(src, dst, st, 0o600)
            return True
        else:
            return False
        os.unlink(src)
    fsync_dir(dst.parent)
    return True


def _link_target(path: Path) -> str | None:
    """Where a symbolic link points, or None when ``path`` is not a link."""
    try:
        return os.readlink(path) if stat.S_ISLNK(os.lstat(path).st_mode) else None
    except OSError:
        return None


def walk(root: Path) -> Iterable[Path]:
    """Every non-directory entry under ``root``, plus symlinked directories (never followed)."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        keep = []
        for d in dirnames:
            p = base / d
            if os.path.islink(p):
                yield p
            elif not is_junk(p.relative_to(root)):
                keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            yield base / f


# --------------------------------------------------------------------------- admission


def new_job_id() -> str:
    """Opaque and unique at a glance: 8 random hex digits, then 12 of milliseconds, then 4 random.

    Ids used to start with the time, so files admitted together shared their first 8-10
    characters and a short prefix named none of them. Now the first 8 characters differ between
    any two jobs with near certainty (32 random bits: one pair in ~8,600 among 1,000 jobs shares
    them; any unique prefix is accepted, so a clash only means typing more). Listings are ordered
    by ``created_at``, never by id.
    """
    return f"{secrets.token_hex(4)}{time.time_ns() // 1_000_000:012x}{secrets.token_hex(2)}"


@dataclass(frozen=True)
class Route:
    """An inbox as admission sees it: where it is and which policy its files get."""

    name: str
    root: Path  # resolved: links in the configured path are followed once, here
    policy_id: str
    policy_version: int | None
    watch: str = "auto"
    policy_sha256: str | None = None


class Admitter:
    """Turns a ready inbox path into an admitted job, a duplicate, or a rejection in the failed queue."""

    def __init__(self, store: JobStore, raw_store: Path, queues: Queues, max_size: int) -> None:
        self.store, self.raw_store, self.queues, self.max_size = store, raw_store, queues, max_size
        self.log = log.get_logger()

    def admit(self, route: Route, path: Path) -> Job | None:
        """None when the file vanished or could not be moved yet (it stays in the inbox)."""
        st, rejection = check_candidate(path, route.root, self.max_size)
        if st is None:
            return None
        job_id = new_job_id()
        original = os.fsencode(path.relative_to(route.root))
        if rejection is not None:
            return self.reject(route, path, job_id, original, st.st_size, rejection)
        raw_path = self.raw_store / f"{job_id}{safe_suffix(path.name)}"
        self.store.begin_receiving(job_id, route.name, original, st.st_size, route.policy_id,
                                   route.policy_version, raw_path, route.policy_sha256)
        try:
            sha = move_in(path, raw_path, st)
        except MoveRaced as exc:
            self.store.abandon_receiving(job_id)
            if os.path.lexists(raw_path):
                # Renamed already, but not the file that was checked: refuse what arrived.
                return self.reject(route, raw_path, job_id, original, st.st_size,
                                   Rejection(str(exc), "copy the file again and leave it alone until it is "
                                             "admitted"))
            self.log.warning("admission_postponed", inbox=route.name, job_id=job_id, error=str(exc))
            return None
        except FileNotFoundError:
            self.store.abandon_receiving(job_id)
            return None
        except OSError as exc:
            self.store.abandon_receiving(job_id)
            if is_out_of_space(exc):
                raise OutOfSpace(f"raw store: {exc.strerror or exc}") from exc
            self.log.error("admission_failed", inbox=route.name, job_id=job_id, error=str(exc))
            return None
        job = self.store.finish_receiving(job_id, sha)
        self.log.info("file_admitted" if job.state is JobState.ADMITTED else "duplicate_recorded",
                      job_id=job_id, inbox=route.name, sha256=sha, size=st.st_size,
                      duplicate_of=job.duplicate_of)
        return job

    def reject(self, route: Route, path: Path, job_id: str, original: bytes, size: int | None,
               rejection: Rejection) -> Job:
        folder = self.queues.folder(self.queues.failed_dir, job_id)
        kept: Path | None = folder / f"original{safe_suffix(path.name)}"
        reason = rejection.reason
        described = ""
        target = _link_target(path)
        if target is not None:
            # A link is kept as words, never as a live link: an operator opening failed/JOB/original.mp4
            # would open whatever it points at (/etc/shadow). The target stays out of the log (and
            # of the reason recorded in the job store): it may name a person's files.
            described = (f"\n\nthe link pointed to: {display_name(os.fsencode(target))}\nthe link itself was "
                         "removed from the inbox and is not kept here")
            kept = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                fsync_dir(path.parent)
        else:
            try:
                if not move_aside(path, kept):  # type: ignore[arg-type]
                    kept, reason = None, reason + " (left in the inbox: it cannot be moved to another filesystem)"
            except FileNotFoundError:
                kept, reason = None, reason + " (it disappeared before it could be moved)"
        # The reason file first: a failed job must never lack one, even after a crash right here.
        draft = Job.draft(job_id, JobState.FAILED, route.name, original, size, route.policy_id,
                          raw_path=kept, last_error=reason)
        self.queues.write_reason(folder, draft, "this file was refused at admission", reason + described,
                                 rejection.advice)
        job = self.store.record_rejection(job_id, route.name, original, size, route.policy_id, reason, kept)
        self.log.warning("file_rejected", job_id=job_id, inbox=route.name, reason=reason)
        return job

    def recover(self, routes: dict[str, Route]) -> None:
        """Finish or forget admissions a crash interrupted (jobs left in ``receiving``)."""
        for job in self.store.jobs({JobState.RECEIVING}):
            raw = job.raw_path
            if raw is not None and raw.is_file() and not raw.is_symlink():
                sha = sha256_of(raw)
                route = routes.get(job.inbox)
                source = route.root / os.fsdecode(job.original_name) if route else None
                # A crash after the copy's rename but before the source's unlink leaves both.
                if source is not None and source.is_file() and not source.is_symlink() \
                        and sha256_of(source) == sha:
                    os.unlink(source)
                self.store.finish_receiving(job.id, sha)
                self.log.info("admission_recovered", job_id=job.id, sha256=sha)
            else:
                self.store.abandon_receiving(job.id)
                self.log.info("admission_abandoned", job_id=job.id)
