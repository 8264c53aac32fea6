"""`redactd config check`: validate the daemon config and every policy it names."""

from __future__ import annotations

import argparse

from redactd.commands._common import config_path
from redactd.config import check_config
from redactd.custody.keys import check_custody_config
from redactd.policy import policy_hash


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("config", help="check the configuration and policies")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = csub.add_parser("check", help="validate the config and every policy it references")
    check.add_argument("--config", dest="sub_config", default=None, help="config file to check")
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    path = config_path(args)
    cfg, policies = check_config(path)
    c = cfg.custody
    key_id = check_custody_config(c.signing_key, c.passphrase_file, c.witnesses)
    print(f"{path}: OK ({len(cfg.inboxes)} inbox(es), {cfg.worker_count} worker(s))")
    for pol in sorted(policies.all(), key=lambda p: p.id):
        print(f"  policy {pol.id} v{pol.version} ({pol.kind}, {policies.files[pol.id].name}) "
              f"sha256:{policy_hash(pol)[:16]}")
    for inbox in cfg.inboxes:
        print(f"  inbox {inbox.name}: {inbox.path} -> {inbox.policy} (watch: {inbox.watch})")
    print(f"  custody: {c.directory}, signing key {c.signing_key} ({key_id}), "
          f"checkpoint within {c.checkpoint_seconds:g} s, {len(c.witnesses)} witness(es)")
    return 0
