"""CLI sub-commands: each module has ``register(subparsers)``; the order here is the help order."""

from redactd.commands import (
    config_cmd,
    custody_cmd,
    daemon_cmd,
    install_cmd,
    metadata_cmd,
    retention_cmd,
    review_cmd,
    visual_cmd,
    web_cmd,
    worker_cmd,
)

COMMAND_MODULES = [config_cmd, metadata_cmd, visual_cmd, daemon_cmd, review_cmd, custody_cmd, retention_cmd,
                   web_cmd, install_cmd, worker_cmd]
