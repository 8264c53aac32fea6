"""Run the console with uvicorn: ``redactd web`` in the foreground, or a thread of the daemon."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from redactd import log
from redactd.config import Web
from redactd.errors import ConfigError


def _token(web: Web) -> str | None:
    if web.metrics_token_file is None:
        return None
    try:
        token = web.metrics_token_file.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"web.metrics_token_file: cannot read {web.metrics_token_file}: {exc.strerror}") from exc
    if len(token) < 16:
        raise ConfigError(f"web.metrics_token_file: {web.metrics_token_file} holds a token shorter than 16 "
                          "characters")
    return token


def build(config_path: Path, listen: str | None = None, port: int | None = None) -> Any:
    """A configured (not yet running) uvicorn server for the console of ``config_path``."""
    import uvicorn

    from redactd.web.app import create_app
    from redactd.web.data import Console

    console = Console(config_path)
    web = console.cfg.web or Web()
    app = create_app(console, _token(web), web.session_hours)
    config = uvicorn.Config(
        app, host=listen or web.listen, port=port or web.port, log_config=None, access_log=False,
        # Forwarded headers (client address, https) are believed only from the reverse proxy.
        proxy_headers=True, forwarded_allow_ips=web.trusted_proxies, server_header=False,
    )
    return uvicorn.Server(config)


def serve(config_path: Path, listen: str | None = None, port: int | None = None) -> int:
    server = build(config_path, listen, port)
    log.get_logger().info("web_console_started", listen=server.config.host, port=server.config.port)
    server.run()
    return 0


class ConsoleThread:
    """The console inside the daemon (a ``web:`` section in its config); stopped with the daemon."""

    def __init__(self, config_path: Path) -> None:
        self.server = build(config_path)
        self.thread = threading.Thread(target=self.server.run, name="web-console", daemon=True)

    def start(self) -> None:
        self.thread.start()
        log.get_logger().info("web_console_started", listen=self.server.config.host, port=self.server.config.port)

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
