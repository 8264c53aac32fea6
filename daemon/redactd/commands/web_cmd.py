"""`redactd web` (serve the console and /metrics) and `redactd web user add|remove|list` (its accounts)."""

from __future__ import annotations

import argparse
import getpass
import sys

from redactd.commands._common import add_config_arg, config_path
from redactd.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    web = sub.add_parser("web", help="the web console for operators, reviewers and officers, and /metrics")
    add_config_arg(web)
    web.add_argument("--listen", default=None, metavar="ADDR", help="address to bind (default: web.listen of "
                     "the config, else 127.0.0.1)")
    web.add_argument("--port", type=int, default=None, help="port (default: web.port of the config, else 8477)")
    web.set_defaults(func=cmd_serve)
    wsub = web.add_subparsers(dest="web_command", metavar="ACTION")
    user = wsub.add_parser("user", help="console accounts (stored under the state directory, mode 0600)")
    usub = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = usub.add_parser("add", help="create an account (asks for its password)")
    add.add_argument("name")
    add.add_argument("--role", action="append", required=True, choices=["operator", "reviewer", "officer"],
                     help="operator: status, jobs, retry; reviewer: the review queue and unredacted frames; "
                     "officer: custody and retention (repeatable)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--replace", action="store_true", help="change an existing account's roles and password")
    add_config_arg(add)
    add.set_defaults(func=cmd_user_add)
    rm = usub.add_parser("remove", help="delete an account (its open sessions end at their next request)")
    rm.add_argument("name")
    add_config_arg(rm)
    rm.set_defaults(func=cmd_user_remove)
    ls = usub.add_parser("list", help="accounts and their roles")
    add_config_arg(ls)
    ls.set_defaults(func=cmd_user_list)


def _accounts(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from redactd.config import load_config
    from redactd.web.accounts import Accounts

    return Accounts(load_config(config_path(args)).state_dir)


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise ConfigError("no terminal to ask for the password on: use --password-stdin")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ConfigError("the two passwords differ; nothing changed")
    return first


def cmd_user_add(args: argparse.Namespace) -> int:
    from redactd.web.accounts import Role

    accounts = _accounts(args)
    account = accounts.add(args.name, {Role(r) for r in args.role}, _password(args), replace=args.replace)
    print(f"account {account.name}: {', '.join(sorted(r.value for r in account.roles))} ({accounts.path}, mode 0600)")
    return 0


def cmd_user_remove(args: argparse.Namespace) -> int:
    accounts = _accounts(args)
    accounts.remove(args.name)
    print(f"account {args.name} removed")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    found = _accounts(args).load()
    if not found:
        print("no console accounts yet: redactd web user add NAME --role operator|reviewer|officer")
    for a in sorted(found.values(), key=lambda a: a.name):
        print(f"{a.name:<20} {', '.join(sorted(r.value for r in a.roles))}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from redactd.web.server import serve

    return serve(config_path(args), listen=args.listen, port=args.port)
