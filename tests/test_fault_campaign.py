"""bench/fault_campaign.py runs and reports a clean table (the hostile and retention scenarios, which need no root)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_the_campaign_finds_nothing_lost_published_twice_or_escaped() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "fault_campaign.py"), "--only", "hostile", "retention"],
                          capture_output=True, text=True, timeout=360, check=False, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "scenario" not in line]
    assert [r.split(" | ")[0] for r in rows] == ["| hostile names and inputs", "| retention vs. missing clean copies"]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        tried, survived, lost, twice, escaped = (int(c) for c in cells[1:6])
        assert tried > 0 and survived == tried and (lost, twice, escaped) == (0, 0, 0), row
