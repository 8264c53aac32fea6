"""The `redactd` command line: parse arguments, configure logging, map errors to exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from redactd import __version__, log
from redactd.commands import COMMAND_MODULES
from redactd.errors import RedactdError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redactd",
        description="Make raw video footage safe for AI training: strip metadata, obscure faces "
        "and text, keep a signed chain of custody.",
    )
    parser.add_argument("--version", action="version", version=f"redactd {__version__}")
    parser.add_argument(
        "--config", "-c", default=None, help="daemon configuration (default: $REDACTD_CONFIG or "
        "/etc/redactd/redactd.yaml)"
    )
    parser.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-json", action="store_true", default=None, help="JSON logs even on a terminal")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log.configure(level=args.log_level or "info", json=args.log_json)
    try:
        rc = args.func(args)
        sys.stdout.flush()  # here, not at exit, so a closed pipe is handled below
    except BrokenPipeError:
        # `redactd status | head`: the reader left. Not an error worth a traceback; stop quietly
        # (stdout goes to /dev/null so the interpreter's own flush at exit cannot fail again).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a program killed by it
    except RedactdError as exc:
        # The message a person acts on comes first; a traceback, when the error means a bug or
        # tampering, follows it in the log.
        print(f"redactd: error: {exc}", file=sys.stderr, flush=True)
        if exc.traceback:
            log.get_logger().error("command_failed", error=str(exc), exc_info=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("redactd: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    raise SystemExit(main())
