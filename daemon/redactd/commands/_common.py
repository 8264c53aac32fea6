"""Helpers shared by the CLI sub-commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from redactd.config import DEFAULT_CONFIG


def add_config_arg(p: argparse.ArgumentParser, help: str = "daemon configuration file") -> None:
    """``--config`` after the sub-command too, as in ``redactd run --config FILE`` (the systemd unit)."""
    p.add_argument("--config", dest="sub_config", default=None, metavar="FILE", help=help)


def config_path(args: argparse.Namespace) -> Path:
    """The --config given to the sub-command, else the global one, else the default."""
    value = getattr(args, "sub_config", None) or getattr(args, "config", None)
    return Path(value) if value else DEFAULT_CONFIG
