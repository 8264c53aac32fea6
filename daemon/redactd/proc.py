"""Run external programs with a timeout, capturing stderr into the error they raise."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from redactd.errors import ToolError


def run_tool(argv: Sequence[str], timeout: float, what: str | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv``; raise ToolError (with the tail of stderr) on failure, timeout or absence."""
    name = what or argv[0]
    try:
        proc = subprocess.run(list(argv), check=False, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise ToolError(f"{name}: program not found ({argv[0]}); is it installed?") from exc
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"{name}: timed out after {timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise ToolError(f"{name} failed (exit {proc.returncode}): {stderr_tail(proc.stderr)}")
    return proc


def stderr_tail(stderr: bytes, lines: int = 12) -> str:
    text = stderr.decode("utf-8", "replace").strip().splitlines()
    return "\n".join(text[-lines:]) or "(no output on stderr)"
