"""`redactd worker`: run jobs for a daemon on another host (executor `dramatiq`), or make the shared key."""

from __future__ import annotations

import argparse
from pathlib import Path

from redactd import log
from redactd.commands._common import add_config_arg
from redactd.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    worker = sub.add_parser(
        "worker", help="take redaction jobs from Redis and run them on this host (see 'More than one machine')")
    add_config_arg(worker, help="worker configuration file (see etc/redactd-worker.yaml)")
    worker.add_argument("--new-credentials", metavar="FILE", type=Path,
                        help="write a new shared key (mode 0600) to FILE and exit; copy it to the daemon and "
                        "every worker")
    worker.add_argument("--redis-password-file", metavar="FILE", type=Path,
                        help="with --new-credentials: also store the Redis password read from FILE")
    worker.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    if args.new_credentials is not None:
        from redactd.jobflow.signing import make_credentials

        password = None
        if args.redis_password_file is not None:
            try:
                password = args.redis_password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{args.redis_password_file}: cannot read: {exc.strerror}") from None
        make_credentials(args.new_credentials, password)
        print(f"wrote {args.new_credentials} (mode 0600): copy it to the daemon host and to every worker")
        return 0
    value = args.sub_config or args.config
    if not value:
        raise ConfigError("redactd worker needs --config FILE (the worker's configuration)")
    from redactd.config import load_worker_config
    from redactd.jobflow.pipeline import run_job
    from redactd.jobflow.remote import serve
    from redactd.jobflow.signing import load_credentials

    cfg = load_worker_config(Path(value))
    if args.log_level is None:
        log.configure(level=cfg.log_level, json=args.log_json)
    return serve(cfg, load_credentials(cfg.credentials_file), run_job)
