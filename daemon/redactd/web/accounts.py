"""Console accounts: names, roles and Argon2id password hashes in one owner-only file, and the sign-in record.

The accounts file (``<state_dir>/web-users.json``, mode 0600) is written atomically by
``redactd web user add``; the console only reads it, on every sign-in, so an account added or
removed takes effect without a restart. Sign-ins (good and bad) go to the log and to
``<state_dir>/web-signins.log`` (JSON lines, 0600): the console's own audit trail; review
decisions go to the custody log like any other decision.
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from redactd import log
from redactd.errors import ConfigError
from redactd.fsutil import atomic_write

USERS_FILE = "web-users.json"
SIGNINS_FILE = "web-signins.log"
NAME = re.compile(r"^[a-z][a-z0-9._-]{0,31}$")
MIN_PASSWORD = 10


class Role(str, Enum):
    OPERATOR = "operator"  # status, jobs, retry
    REVIEWER = "reviewer"  # the review queue and unredacted frames
    OFFICER = "officer"  # custody, reports, retention and holds


@dataclass(frozen=True)
class Account:
    name: str
    roles: frozenset[Role]
    password_hash: str


def _hasher():  # type: ignore[no-untyped-def]
    from argon2 import PasswordHasher

    return PasswordHasher()  # Argon2id with the library's (RFC 9106 low-memory) parameters


class Accounts:
    """The accounts file of one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / USERS_FILE
        self.signins = state_dir / SIGNINS_FILE

    def load(self) -> dict[str, Account]:
        try:
            doc = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path}: cannot read the console accounts: {exc}") from exc
        return {name: Account(name, frozenset(Role(r) for r in a["roles"]), a["hash"])
                for name, a in doc.get("users", {}).items()}

    def _save(self, accounts: dict[str, Account]) -> None:
        doc = {"version": 1, "users": {a.name: {"roles": sorted(r.value for r in a.roles), "hash": a.password_hash}
                                       for a in accounts.values()}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(doc, indent=1, sort_keys=True).encode(), 0o600)

    def add(self, name: str, roles: set[Role], password: str, replace: bool = False) -> Account:
        if not NAME.match(name):
            raise ConfigError(f"account name {name!r}: use 1-32 lower-case letters, digits, '.', '_' or '-', "
                              "starting with a letter")
        if not roles:
            raise ConfigError("give the account at least one role (--role operator|reviewer|officer)")
        if len(password) < MIN_PASSWORD:
            raise ConfigError(f"the password must have at least {MIN_PASSWORD} characters")
        accounts = self.load()
        if name in accounts and not replace:
            raise ConfigError(f"account {name!r} exists (use --replace to change its roles or password)")
        account = Account(name, frozenset(roles), _hasher().hash(password))
        accounts[name] = account
        self._save(accounts)
        return account

    def remove(self, name: str) -> None:
        accounts = self.load()
        if name not in accounts:
            raise ConfigError(f"no console account {name!r}")
        del accounts[name]
        self._save(accounts)

    def authenticate(self, name: str, password: str, client: str) -> Account | None:
        """The account if ``password`` is right; every attempt is recorded either way."""
        from argon2.exceptions import InvalidHashError, VerificationError

        account = self.load().get(name)
        ok = False
        if account is not None:
            try:
                ok = _hasher().verify(account.password_hash, password)
            except (VerificationError, InvalidHashError):
                ok = False
        else:
            # Same cost as a real check, so a wrong name cannot be told from a wrong password by timing.
            try:
                _hasher().verify(_dummy_hash(), password)
            except VerificationError:
                pass
        self.record_signin(name if account is not None else "(unknown account)", ok, client)
        return account if ok else None

    def record_signin(self, name: str, ok: bool, client: str) -> None:
        if ok:
            log.get_logger().info("web_signed_in", account=name, client=client)
        else:
            log.get_logger().warning("web_signin_refused", account=name, client=client)
        line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "account": name,
                           "ok": ok, "client": client}) + "\n"
        self.signins.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.signins, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


@functools.cache
def _dummy_hash() -> str:
    return str(_hasher().hash(os.urandom(16).hex()))
