"""systemd/redactd-worker.service: systemd's own checkers accept it, hardened like the daemon's unit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from redactd.install import DEFAULT_BIN, default_bin
from tests.systemd.sandbox import REPO, SYSTEMD_ANALYZE
from tests.systemd.test_unit import analyze

WORKER_UNIT = REPO / "systemd" / "redactd-worker.service"

pytestmark = pytest.mark.skipif(not Path(SYSTEMD_ANALYZE).exists(),
                                reason="systemd-analyze missing: install Debian's systemd package (make deps)")


class TestWorkerUnit:
    def test_verify_prints_nothing(self, tmp_path: Path) -> None:
        unit = tmp_path / "redactd-worker.service"
        unit.write_text(WORKER_UNIT.read_text().replace(DEFAULT_BIN, default_bin()))
        proc = analyze("verify", str(unit))
        assert (proc.stdout + proc.stderr).strip() == ""

    def test_security_exposure_is_at_most_one_and_a_half(self) -> None:
        proc = analyze("security", "--offline=true", "--no-pager", str(WORKER_UNIT))
        match = re.search(r"Overall exposure level for redactd-worker\.service: (\d+\.\d+)", proc.stdout)
        assert match, proc.stdout + proc.stderr
        assert float(match.group(1)) <= 1.5, proc.stdout

    def test_runs_the_worker_command_with_the_documented_config(self) -> None:
        text = WORKER_UNIT.read_text()
        assert f"ExecStart={DEFAULT_BIN} worker --config /etc/redactd/worker.yaml" in text
        assert "MemoryDenyWriteExecute=yes" in text and "NoNewPrivileges=yes" in text
