"""Helpers shared by the CLI sub-commands."""

from __future__ import annotations

import argparse
import stat
from pathlib import Path

from redactd.config import DEFAULT_CONFIG
from redactd.errors import ConfigError, InputError
from redactd.fsutil import file_kind


def check_file_paths(src: Path, dst: Path, force: bool, extra: tuple[tuple[str, Path | None], ...] = ()) -> None:
    """Refuse, before any work, a command whose paths would lose data or could not be written.

    ``src`` must be a regular file (symlinks to one are fine). ``dst``, and each named ``extra``
    output (``("sidecar", path)``), must be in an existing folder, must not be ``src`` or each
    other, and may replace only a regular file, and only with ``force``: never a device, a pipe
    or a folder (``-o /dev/null`` as root would otherwise swap the device for a file).
    """
    try:
        st = src.stat()
    except FileNotFoundError:
        raise InputError(f"{src}: input file not found") from None
    except OSError as exc:
        raise InputError(f"{src}: cannot read the input: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{src}: the input is a {file_kind(st)}, not a video file")
    outputs = [("output", dst), *((name, path) for name, path in extra if path is not None)]
    seen: dict[Path, str] = {src.resolve(): "input"}
    for name, path in outputs:
        if not path.parent.is_dir():
            raise ConfigError(f"{path.parent}: {name} directory does not exist")
        other = seen.get(path.resolve())
        if other is not None:
            raise ConfigError(f"{path}: the {name} would overwrite the {other}")
        seen[path.resolve()] = name
        try:
            out_st = path.stat()
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(out_st.st_mode):
            raise ConfigError(f"{path}: the {name} path is a {file_kind(out_st)}: give a file name")
        if not force:
            raise ConfigError(f"{path}: already exists (use --force to replace it)")


def add_config_arg(p: argparse.ArgumentParser, help: str = "daemon configuration file") -> None:
    """``--config`` after the sub-command too, as in ``redactd run --config FILE`` (the systemd unit)."""
    p.add_argument("--config", dest="sub_config", default=None, metavar="FILE", help=help)


def config_path(args: argparse.Namespace) -> Path:
    """The --config given to the sub-command, else the global one, else the default."""
    value = getattr(args, "sub_config", None) or getattr(args, "config", None)
    return Path(value) if value else DEFAULT_CONFIG
