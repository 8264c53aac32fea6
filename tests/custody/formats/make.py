"""How ``tests/custody/formats/`` was made: a custody log written by the redactd of two earlier formats.

Entries 0-3 (segment 1) were written by the format 1 writer (git ``9ef85780^``), entries 4-7
(segment 2) by the format 2 writer (git ``fc1e4e22``), each run as

    git archive COMMIT daemon | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old/daemon python tests/custody/formats/make.py OUT v1   # then v2

with a fixed clock, so the entries are what those versions really wrote (original names in
clear). ``custody.key`` is a throwaway key made for this fixture only. Tests copy the directory
and continue the log with the current writer (format 3).
"""

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redactd.custody import CustodyLog, Event
from redactd.custody.keys import init_key

if __name__ == "__main__":
    base, stage = Path(sys.argv[1]), sys.argv[2]
    key = base / "custody.key"
    if not key.exists():
        init_key(key)
    start = {"v1": datetime(2025, 11, 3, 9, 0, tzinfo=UTC), "v2": datetime(2026, 1, 12, 9, 0, tzinfo=UTC)}[stage]
    ticks = iter(range(10**6))
    raw, job = {"v1": "1" * 64, "v2": "2" * 64}[stage], f"job-{stage}"
    with CustodyLog.open(base / "log", key, clock=lambda: start + timedelta(seconds=next(ticks))) as log:
        log.append(Event.INGESTED, job_id=job, raw_sha256=raw, original_name=f"Old Zoë {stage}.mp4",
                   inbox="default")
        log.append(Event.PROCESSING_STARTED, job_id=job, raw_sha256=raw, attempt=1)
        log.append(Event.PUBLISHED, job_id=job, raw_sha256=raw, output_sha256=raw[:63] + "f")
