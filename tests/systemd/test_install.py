"""`redactd install` / `uninstall` into a temporary root: layout, owners, modes, idempotence."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from redactd.config import load_config
from redactd.custody.keys import load_private_key, load_public_key
from redactd.install import (
    KEY_PATH,
    Installer,
    InstallError,
    Options,
    default_bin,
    hidden_from_service,
    layout,
)
from tests.systemd.conftest import install
from tests.systemd.sandbox import REPO, SYSTEMD_ANALYZE

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="install creates accounts and sets owners: needs root")

UNIT = "/etc/systemd/system/redactd.service"
WANTS = "/etc/systemd/system/multi-user.target.wants/redactd.service"


def owner_mode(path: Path) -> tuple[int, int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "daemon")}
    return subprocess.run([sys.executable, "-m", "redactd", *args, "--root", str(root)], check=False,
                          capture_output=True, text=True, timeout=120, env=env)


class TestInstall:
    def test_creates_accounts_directories_config_key_and_enabled_unit(self, root: Path) -> None:
        inst = install(root)
        uid, gid, share = inst.uid("redactd"), inst.gid("redactd"), inst.gid("redactd-share")
        passwd = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
        assert passwd["redactd"][5:] == ["/var/lib/redactd", "/usr/sbin/nologin"]
        assert int(passwd["redactd"][2]) < 1000, "a system account"
        group = {line.split(":")[0]: line.split(":") for line in (root / "etc/group").read_text().splitlines()}
        assert "redactd" in group["redactd-share"][3].split(",")
        gids = {"root": 0, "redactd": gid, "redactd-share": share}
        for spec in layout():
            want = (0 if spec.owner == "root" else uid, gids[spec.group], spec.mode)
            assert owner_mode(inst.at(spec.path)) == want, spec.path
        key = inst.at(KEY_PATH)
        assert owner_mode(key) == (uid, gid, 0o600)
        assert owner_mode(key.with_suffix(".pub")) == (0, 0, 0o644)
        assert load_public_key(key.with_suffix(".pub")) and load_private_key(key)
        cfg = load_config(inst.at("/etc/redactd/redactd.yaml"))
        assert cfg.raw_store == Path("/srv/redactd/raw") and cfg.state_dir == Path("/var/lib/redactd")
        assert cfg.custody.signing_key == Path(KEY_PATH)
        assert sorted(p.name for p in inst.at("/etc/redactd/policies").iterdir()) == \
            sorted(p.name for p in (REPO / "policies").glob("*.yaml"))
        assert os.readlink(inst.at(WANTS)) == UNIT
        assert f"ExecStart={default_bin()} --config /etc/redactd/redactd.yaml run" in inst.at(UNIT).read_text()

    def test_the_installed_unit_passes_systemd_analyze_verify(self, root: Path) -> None:
        inst = install(root)
        proc = subprocess.run([SYSTEMD_ANALYZE, "verify", str(inst.at(UNIT))], check=False, capture_output=True,
                              text=True, timeout=120)
        assert (proc.stdout + proc.stderr).strip() == ""

    def test_running_again_keeps_edits_and_the_key_and_changes_nothing(self, root: Path) -> None:
        inst = install(root)
        config = inst.at("/etc/redactd/redactd.yaml")
        config.write_text(config.read_text().replace("log_level: info", "log_level: debug"))
        before = {p: (p.read_bytes() if p.is_file() else None, owner_mode(p)) for p in sorted(root.rglob("*"))}
        again = cli(root, "install")
        assert again.returncode == 0, again.stderr
        # A checkout under /tmp also gets a warning that the service cannot see its program there
        # (PrivateTmp): a fact about where the tests run, not a change.
        outcomes = {line.split()[0] for line in again.stdout.splitlines() if "ExecStart=" not in line}
        assert outcomes == {"kept", "enabled"}, again.stdout
        after = {p: (p.read_bytes() if p.is_file() else None, owner_mode(p)) for p in sorted(root.rglob("*"))}
        assert after == before
        assert "log_level: debug" in config.read_text()

    def test_reports_a_changed_directory_mode_without_undoing_it(self, root: Path) -> None:
        inst = install(root)
        inbox = inst.at("/srv/redactd/inbox")
        inbox.chmod(0o1733)
        steps = Installer(inst.opts).install()
        [warning] = [s for s in steps if s.outcome == "warning" and not s.what.startswith("ExecStart=")]
        want = next(spec.mode for spec in layout() if spec.path == "/srv/redactd/inbox")
        assert warning.what == "/srv/redactd/inbox" and f"{want:o}" in warning.note
        assert stat.S_IMODE(inbox.stat().st_mode) == 0o1733

    def test_puts_an_existing_user_back_into_the_share_group(self, root: Path) -> None:
        inst = install(root)
        group = root / "etc/group"
        group.write_text(group.read_text().replace(":redactd\n", ":\n"))
        steps = Installer(inst.opts).install()
        assert [s.what for s in steps if s.outcome == "updated"] == ["user redactd"]
        assert inst.members("redactd-share") == ["redactd"]

    def test_refuses_a_public_key_whose_private_key_is_missing(self, root: Path) -> None:
        inst = install(root)
        inst.at(KEY_PATH).unlink()
        with pytest.raises(InstallError, match="without its private key"):
            Installer(inst.opts).install()
        assert not inst.at(KEY_PATH).exists(), "a new key must not silently replace the one officers hold"

    def test_refuses_a_root_without_account_files(self, tmp_path: Path) -> None:
        with pytest.raises(InstallError, match="etc/passwd: missing"):
            Installer(Options(root=tmp_path, source=REPO)).install()


class TestUninstall:
    def test_removes_the_unit_and_keeps_footage_state_config_keys_and_accounts(self, root: Path) -> None:
        inst = install(root)
        clip = inst.at("/srv/redactd/clean/abc.mp4")
        clip.write_bytes(b"footage")
        proc = cli(root, "uninstall")
        assert proc.returncode == 0, proc.stderr
        assert not inst.at(UNIT).exists() and not os.path.lexists(inst.at(WANTS))
        assert clip.read_bytes() == b"footage"
        assert inst.at(KEY_PATH).is_file() and inst.at("/etc/redactd/redactd.yaml").is_file()
        assert inst.at("/var/lib/redactd").is_dir() and inst.uid("redactd") > 0
        assert "kept     /srv/redactd" in proc.stdout


class TestSandboxWarning:
    UNIT_TEXT = (REPO / "systemd" / "redactd.service").read_text()

    @pytest.mark.parametrize(("program", "hidden_by"), [
        ("/home/ann/redactd/.venv/bin/redactd", "ProtectHome=yes"),
        ("/root/redactd/.venv/bin/redactd", "ProtectHome=yes"),
        ("/tmp/venv/bin/redactd", "PrivateTmp=yes")])
    def test_a_program_the_units_sandbox_hides_is_named_with_the_setting(self, program: str, hidden_by: str) -> None:
        why = hidden_from_service(program, self.UNIT_TEXT)
        assert why is not None and hidden_by in why and "203/EXEC" in why

    def test_a_program_under_opt_is_fine(self) -> None:
        assert hidden_from_service("/opt/redactd/venv/bin/redactd", self.UNIT_TEXT) is None

    def test_install_warns_when_execstart_would_be_hidden(self, root: Path) -> None:
        steps = Installer(Options(root=root, source=REPO, bin="/home/ann/redactd/.venv/bin/redactd")).install()
        warnings = [s for s in steps if s.outcome == "warning"]
        assert any("ProtectHome=yes hides" in s.note for s in warnings)

    def test_uninstall_under_a_root_says_nothing_was_stopped(self, root: Path) -> None:
        install(root)
        proc = cli(root, "uninstall")
        assert proc.returncode == 0, proc.stderr
        assert "nothing was stopped" in proc.stdout and "stopped and disabled" not in proc.stdout


class TestWebUnit:
    WEB = "/etc/systemd/system/redactd-web.service"

    def test_the_console_unit_is_installed_not_enabled_and_passes_verify(self, root: Path) -> None:
        inst = install(root)
        unit = inst.at(self.WEB)
        assert f"ExecStart={default_bin()} --config /etc/redactd/redactd.yaml web" in unit.read_text()
        assert not os.path.lexists(inst.at("/etc/systemd/system/multi-user.target.wants/redactd-web.service"))
        proc = subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit)], check=False, capture_output=True, text=True,
                              timeout=120)
        assert (proc.stdout + proc.stderr).strip() == ""
        assert any(s.what.endswith("redactd-web.service") and "not enabled" in s.note for s in inst.steps)

    def test_uninstall_removes_the_console_unit_too(self, root: Path) -> None:
        inst = install(root)
        proc = cli(root, "uninstall")
        assert proc.returncode == 0, proc.stderr
        assert not inst.at(self.WEB).exists() and "removed  /etc/systemd/system/redactd-web.service" in proc.stdout
