"""systemd/redactd.service: systemd's own checkers accept it, and it keeps the daemon's contract."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from redactd.install import DEFAULT_BIN, default_bin, installed_config
from tests.systemd.sandbox import REPO, SYSTEMD_ANALYZE, UNIT, unit_settings

pytestmark = pytest.mark.skipif(not Path(SYSTEMD_ANALYZE).exists(),
                                reason="systemd-analyze missing: install Debian's systemd package (make deps)")


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SYSTEMD_ANALYZE, *args], check=False, capture_output=True, text=True, timeout=120)


def verify(unit_text: str, tmp_path: Path) -> str:
    """`systemd-analyze verify` output for ``unit_text``, with ExecStart= pointing at a real redactd.

    verify refuses a unit whose program does not exist, and /opt/redactd/venv exists only on an
    installed system, so the copy runs the redactd this test suite runs: the same program.
    """
    unit = tmp_path / "redactd.service"
    unit.write_text(unit_text.replace(DEFAULT_BIN, default_bin()))
    proc = analyze("verify", str(unit))
    return (proc.stdout + proc.stderr).strip()


class TestSystemdAnalyze:
    def test_verify_prints_nothing_for_the_shipped_unit(self, tmp_path: Path) -> None:
        assert Path(default_bin()).is_file(), "the test needs an installed redactd entry point"
        assert verify(UNIT.read_text(), tmp_path) == ""

    def test_verify_output_catches_a_misspelt_directive(self, tmp_path: Path) -> None:
        # verify exits 0 here too, so the check above must (and does) compare the output.
        assert "Unknown key" in verify(UNIT.read_text().replace("ProtectSystem=", "ProtectSystm="), tmp_path)

    def test_security_exposure_is_at_most_one(self) -> None:
        proc = analyze("security", "--offline=true", "--no-pager", str(UNIT))
        match = re.search(r"Overall exposure level for redactd\.service: (\d+\.\d+)", proc.stdout)
        assert match, proc.stdout + proc.stderr
        assert float(match.group(1)) <= 1.0, proc.stdout

    def test_syscall_filter_names_only_groups_systemd_knows(self) -> None:
        groups = analyze("syscall-filter", "--no-pager").stdout
        for value in unit_settings()["SystemCallFilter"]:
            for name in value.lstrip("~").split():
                assert re.search(rf"^{re.escape(name)}$", groups, re.MULTILINE), name


class TestUnitContract:
    def test_is_a_notify_service_with_a_watchdog(self) -> None:
        s = unit_settings()
        assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
        assert s["WatchdogSec"] and s["Restart"] == ["on-failure"]

    def test_first_sigterm_reaches_only_the_main_process(self) -> None:
        # KillMode=mixed: job children keep running while the daemon drains; only the final kill hits all.
        s = unit_settings()
        assert s["KillMode"] == ["mixed"] and s["KillSignal"] == ["SIGTERM"]
        assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]

    def test_every_writable_directory_of_the_installed_config_is_writable_in_the_unit(self) -> None:
        import yaml

        cfg = yaml.safe_load(installed_config((REPO / "etc" / "redactd.yaml").read_text()))
        s = unit_settings()
        writable = [p for v in s["ReadWritePaths"] for p in v.split()]
        writable += [f"/var/lib/{d}" for v in s["StateDirectory"] for d in v.split()]
        needed = [cfg["inboxes"][0]["path"], cfg["raw_store"], cfg["clean_dir"], cfg["review_dir"],
                  cfg["failed_dir"], cfg["state_dir"], cfg["custody"]["directory"]]
        for path in needed:
            assert any(path == w or path.startswith(w + "/") for w in writable), path
        # Inbox and raw store in ONE writable entry: two bind mounts would make admission's rename fail (EXDEV).
        def mount_of(p: str) -> str:
            return max((w for w in writable if p == w or p.startswith(w + "/")), key=len)

        assert mount_of(cfg["inboxes"][0]["path"]) == mount_of(cfg["raw_store"])
