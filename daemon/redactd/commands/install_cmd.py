"""`redactd install` / `redactd uninstall`: set this machine up to run redactd as a systemd service."""

from __future__ import annotations

import argparse
from pathlib import Path

from redactd.install import SHARE_GROUP, USER, Installer, Options, Step, default_bin, default_source


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    inst = sub.add_parser("install", help="create the redactd user, directories, config, signing key and unit "
                          "(safe to run again)")
    _common(inst)
    inst.add_argument("--source", type=Path, default=None,
                      help="redactd checkout with systemd/, etc/ and policies/ (default: the one this runs from)")
    inst.add_argument("--bin", default=None, help="the redactd program the unit runs (default: the one beside "
                      "this interpreter, else /opt/redactd/venv/bin/redactd)")
    inst.set_defaults(func=cmd_install)
    uninst = sub.add_parser("uninstall", help="stop, disable and remove the unit; keep footage, state, config, "
                            "keys and accounts")
    _common(uninst)
    uninst.set_defaults(func=cmd_uninstall)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", type=Path, default=Path("/"),
                   help="install into this root directory instead of / (image builds, tests)")
    p.add_argument("--user", default=USER, help=f"service user (default {USER})")
    p.add_argument("--share-group", default=SHARE_GROUP,
                   help=f"group of the share's contributors, a supplementary group of the user (default {SHARE_GROUP})")


def _print(step: Step) -> None:
    print(step.line(), flush=True)


def _options(args: argparse.Namespace) -> Options:
    return Options(root=args.root.resolve(), source=getattr(args, "source", None) or default_source(),
                   bin=getattr(args, "bin", None) or default_bin(), user=args.user, share_group=args.share_group)


def cmd_install(args: argparse.Namespace) -> int:
    Installer(_options(args), report=_print).install()
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    Installer(_options(args), report=_print).uninstall()
    return 0
