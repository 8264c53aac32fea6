"""Console sessions: an opaque random token in the cookie, everything else (account, CSRF token) server-side.

Sessions live in the console's memory: a restart signs everyone out, which is the safe failure.
Every visitor gets a session before signing in (the sign-in form needs a CSRF token too); signing
in replaces it with a new token, so a token planted before sign-in is worthless after.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from redactd.web.accounts import Role

COOKIE = "redactd_session"
_MAX_SESSIONS = 10_000  # anonymous sessions are cheap to make: bound what they can cost
_ANONYMOUS_SECONDS = 3600.0


@dataclass
class Session:
    token: str
    csrf: str
    expires: float
    account: str | None = None
    roles: frozenset[Role] = field(default_factory=frozenset)
    flash: list[str] = field(default_factory=list)  # messages for the next page shown

    def has(self, role: Role) -> bool:
        return role in self.roles

    def csrf_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf, given or "")


class Sessions:
    def __init__(self, lifetime_s: float) -> None:
        self.lifetime_s = lifetime_s
        self._by_token: dict[str, Session] = {}
        self._lock = threading.Lock()

    def get(self, token: str | None, now: float | None = None) -> Session | None:
        if not token:
            return None
        now = time.time() if now is None else now
        with self._lock:
            s = self._by_token.get(token)
            if s is not None and s.expires <= now:
                del self._by_token[token]
                return None
            return s

    def new(self, account: str | None = None, roles: frozenset[Role] = frozenset()) -> Session:
        now = time.time()
        life = self.lifetime_s if account else _ANONYMOUS_SECONDS
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now + life, account, roles)
        with self._lock:
            if len(self._by_token) >= _MAX_SESSIONS:
                self._prune(now)
            self._by_token[s.token] = s
        return s

    def drop(self, token: str) -> None:
        with self._lock:
            self._by_token.pop(token, None)

    def _prune(self, now: float) -> None:
        for token in [t for t, s in self._by_token.items() if s.expires <= now]:
            del self._by_token[token]
        if len(self._by_token) >= _MAX_SESSIONS:  # still full: drop the anonymous ones, oldest first
            anon = sorted((s.expires, t) for t, s in self._by_token.items() if s.account is None)
            for _, t in anon[: len(anon) // 2 + 1]:
                del self._by_token[t]
