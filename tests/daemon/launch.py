"""Start the real daemon with a test processor from ``processors.py``: ``launch.py CONFIG NAME``.

This goes through the same composition root as ``redactd run``; only the processing function
injected at its seam differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    import processors

    from redactd import log
    from redactd.daemon import run_daemon

    log.configure(level="info", json=True)
    raise SystemExit(run_daemon(Path(sys.argv[1]), processor=getattr(processors, sys.argv[2])))
