"""Owner-only permissions where original file names, raw footage and keys live: state, raw store, keys.

Directories are 0700 and files 0600. At start-up anything looser is tightened, with a log line
naming the path and both modes; where that is impossible (owned by another user, a read-only
mount) the daemon refuses to start and says what to fix. Public keys (``*.pub``) are meant to be
handed out and keep their mode; the directory around them still keeps other users out.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from redactd import log
from redactd.errors import ConfigError

DIR_MODE = 0o700
FILE_MODE = 0o600
_PUBLIC_SUFFIXES = (".pub",)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty and owner-only if it does not exist (SQLite gives its -wal/-shm the same mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def _tighten(path: Path, st: os.stat_result, wanted: int) -> str | None:
    """Make ``path`` no looser than ``wanted``; the change in words, or None when it already was."""
    mode = stat.S_IMODE(st.st_mode)
    if not mode & ~wanted & 0o777:
        return None
    new = mode & wanted
    try:
        os.chmod(path, new, follow_symlinks=False)
    except OSError as exc:
        owner = f"owned by uid {st.st_uid}" if st.st_uid != os.geteuid() else "owned by this user"
        raise ConfigError(f"{path} is mode {mode:04o} ({owner}) and cannot be made owner-only "
                          f"({exc.strerror}): it holds original file names or footage other users must not "
                          f"read; run: chown {os.geteuid()} {path} && chmod {wanted:04o} {path}") from None
    log.get_logger().warning("permissions_tightened", path=str(path), was=f"{mode:04o}", now=f"{new:04o}")
    return f"{path}: {mode:04o} -> {new:04o}"


def secure_dirs(dirs: Iterable[Path], deep: Iterable[Path] = ()) -> list[str]:
    """Create each directory 0700 (or tighten it) and tighten the files directly in it to 0600.

    ``deep`` directories also have their subdirectories' files checked (the custody log's
    segments). Returns what was changed, one line each.
    """
    changed: list[str] = []
    deep = {Path(d) for d in deep}
    for d in dict.fromkeys(Path(x) for x in dirs):
        d.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        changed += _secure_dir(d, recurse=d in deep)
    return changed


def _secure_dir(d: Path, recurse: bool) -> list[str]:
    changed: list[str] = []
    st = os.lstat(d)
    if stat.S_ISLNK(st.st_mode):
        st = os.stat(d)  # a configured path may be a link to the real directory
    note = _tighten(d, st, DIR_MODE)
    if note:
        changed.append(note)
    for entry in os.scandir(d):
        est = entry.stat(follow_symlinks=False)
        if stat.S_ISREG(est.st_mode) and not entry.name.endswith(_PUBLIC_SUFFIXES):
            note = _tighten(Path(entry.path), est, FILE_MODE)
        elif stat.S_ISDIR(est.st_mode) and recurse:
            changed += _secure_dir(Path(entry.path), recurse=True)
            continue
        else:
            continue
        if note:
            changed.append(note)
    return changed


def secure_layout(state_dir: Path, raw_store: Path, custody_dir: Path, signing_key: Path) -> list[str]:
    """What the daemon checks at start-up: state (job store, scratch, custody log), raw store, keys.

    The key's directory is tightened when this user owns it and it holds only that key's files
    (``custody.key``, ``custody.pub``, ``custody.key.next``). Anything else (a config directory,
    or the installed ``/etc/redactd/keys``, root's and read-only under the unit) only has the
    private key itself checked: its mode is what keeps it secret, and the public key is public.
    """
    changed = secure_dirs([state_dir, raw_store, custody_dir], deep=[state_dir, custody_dir])
    key_dir = signing_key.parent
    if key_dir.is_dir():
        own = os.stat(key_dir).st_uid == os.geteuid() and all(
            e.name.startswith(signing_key.stem + ".") for e in os.scandir(key_dir))
        if own:
            changed += secure_dirs([key_dir])
        elif signing_key.exists():
            note = _tighten(signing_key, os.lstat(signing_key), FILE_MODE)
            if note:
                changed.append(note)
    return changed
