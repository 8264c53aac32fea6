"""State, raw store and keys are owner-only: created so, tightened at start-up, refused where that is impossible."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from redactd.custody.keys import init_key
from redactd.jobflow.jobstore import JobState, JobStore
from tests.conftest import TEST_POLICIES, tmpfs

from .conftest import drop

pytestmark = pytest.mark.timeout(180)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


class TestOwnerOnly:
    def test_a_fresh_daemon_creates_state_raw_store_and_keys_owner_only(self, daemon_run, clip_bytes, tmp_path):
        run = daemon_run()
        key = tmp_path / "keys" / "custody.key"
        init_key(key)
        run.settings["custody"]["signing_key"] = str(key)
        run.write_config()
        run.start()
        drop(run.inbox, "clip.mp4", clip_bytes)
        (job,) = run.wait_finished(1, timeout=60)
        assert job.state is JobState.PUBLISHED, job.last_error
        assert run.stop() == 0
        assert (run.state / "custody" / "checkpoint.json").exists()
        for d in (run.state, run.raw, run.state / "custody", key.parent):
            assert mode(d) == 0o700, d
        names = ["jobs.sqlite3", "jobs.sqlite3-wal", "jobs.sqlite3-shm", "custody/checkpoint.json"]
        for name in names:
            if (run.state / name).exists() or name == "jobs.sqlite3":
                assert mode(run.state / name) == 0o600, name
        assert mode(key) == 0o600
        assert all(mode(p) == 0o600 for p in (run.state / "custody").iterdir() if p.is_file())

    def test_start_up_tightens_directories_and_files_left_readable_by_everyone(self, daemon_run, clip_bytes):
        run = daemon_run()
        for d in (run.state, run.raw):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o755)
        JobStore.open(run.state / "jobs.sqlite3").close()
        os.chmod(run.state / "jobs.sqlite3", 0o644)
        left = run.raw / "leftover.mp4"
        left.write_bytes(b"raw bytes")
        os.chmod(left, 0o644)
        run.start()
        tightened = {e["path"]: (e["was"], e["now"]) for e in run.events("permissions_tightened")}
        assert tightened[str(run.state)] == ("0755", "0700")
        assert tightened[str(run.raw)] == ("0755", "0700")
        assert tightened[str(run.state / "jobs.sqlite3")] == ("0644", "0600")
        assert tightened[str(left)] == ("0644", "0600")
        drop(run.inbox, "clip.mp4", clip_bytes)
        run.wait_finished(1, timeout=60)
        for p in (run.state / "jobs.sqlite3", run.state / "jobs.sqlite3-wal", run.state / "jobs.sqlite3-shm"):
            assert mode(p) == 0o600, p
        assert mode(run.state) == mode(run.raw) == 0o700
        assert run.stop() == 0

    def test_refuses_to_start_when_a_loose_directory_cannot_be_tightened(self, daemon_run):
        run = daemon_run()
        with tmpfs(run.raw, "ro,mode=0755"):
            proc = subprocess.run([sys.executable, "-m", "redactd", "--config", str(run.config), "run"],
                                  capture_output=True, text=True, timeout=60, env=run.env, check=False)
        assert proc.returncode == 2, proc.stderr
        assert f"{run.raw} is mode 0755" in proc.stderr and "cannot be made owner-only" in proc.stderr
        assert "Traceback" not in proc.stderr


class TestNothingWrittenOutsideConfiguredDirectories:
    @pytest.mark.slow
    def test_the_real_visual_pipeline_writes_nothing_under_home_or_the_temp_directory(
            self, daemon_run, clip_bytes, tmp_path):
        # The real daemon and the real visual pipeline (CenterFace and PP-OCR on onnxruntime,
        # Silero VAD, ffmpeg, exiftool) under an empty HOME and TMPDIR: onnxruntime used to leave
        # ~/.cache/Microsoft/DeveloperTools/.onnxruntime/onnxruntime.db behind.
        home, tmp = tmp_path / "home", tmp_path / "tmpdir"
        home.mkdir()
        tmp.mkdir()
        run = daemon_run()
        shutil.copy(TEST_POLICIES / "visual-default.yaml", run.policies)
        run.settings["inboxes"][0]["policy"] = "visual-default"
        run.write_config()
        # No $REDACTD_CACHE_DIR either: the daemon keeps the int8 model it makes in its state_dir.
        env = {"HOME": str(home), "TMPDIR": str(tmp), "XDG_CACHE_HOME": "", "ORT_DISABLE_TELEMETRY": "",
               "REDACTD_CACHE_DIR": ""}
        run.env = {k: v for k, v in {**run.env, **env}.items() if v}
        run.start()
        drop(run.inbox, "clip.mp4", clip_bytes)
        (job,) = run.wait_finished(1, timeout=150)
        assert job.state in (JobState.PUBLISHED, JobState.REVIEW), job.last_error
        assert run.stop() == 0
        assert [str(p.relative_to(home)) for p in home.rglob("*")] == []
        assert [str(p.relative_to(tmp)) for p in tmp.rglob("*")] == []
        assert len(list((run.state / "cache").glob("centerface-int8-*.onnx"))) == 1


class TestKeyDirectory:
    def test_a_key_directory_of_its_own_is_tightened_a_shared_one_keeps_its_mode(self, tmp_path):
        from redactd.private import secure_layout

        own = tmp_path / "keys"
        init_key(own / "custody.key")
        os.chmod(own, 0o755)
        shared = tmp_path / "etc"
        init_key(shared / "custody.key")
        (shared / "redactd.yaml").write_text("version: 1\n")
        os.chmod(shared, 0o755)
        os.chmod(shared / "custody.key", 0o644)
        changed = secure_layout(tmp_path / "state", tmp_path / "raw", tmp_path / "state" / "custody",
                                own / "custody.key")
        assert mode(own) == 0o700 and f"{own}: 0755 -> 0700" in changed
        assert mode(own / "custody.pub") == 0o644  # public keys are meant to be handed out
        secure_layout(tmp_path / "state", tmp_path / "raw", tmp_path / "state" / "custody", shared / "custody.key")
        assert mode(shared) == 0o755 and mode(shared / "redactd.yaml") == 0o644
        assert mode(shared / "custody.key") == 0o600
