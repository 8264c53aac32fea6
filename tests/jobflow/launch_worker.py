"""Start a real `redactd worker` with a test processor from tests/daemon/processors.py:
``launch_worker.py CONFIG NAME``. Same ``serve`` as the CLI; only the injected processor differs."""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    import processors

    from redactd import log
    from redactd.config import load_worker_config
    from redactd.jobflow.remote import serve
    from redactd.jobflow.signing import load_credentials

    log.configure(level="info", json=True)
    cfg = load_worker_config(Path(sys.argv[1]))
    raise SystemExit(serve(cfg, load_credentials(cfg.credentials_file), getattr(processors, sys.argv[2])))
