"""Helpers shared by the CLI sub-commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from redactd.config import DEFAULT_CONFIG


def config_path(args: argparse.Namespace) -> Path:
    """The --config given to the sub-command, else the global one, else the default."""
    value = getattr(args, "sub_config", None) or getattr(args, "config", None)
    return Path(value) if value else DEFAULT_CONFIG
