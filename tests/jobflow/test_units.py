"""The pieces of the distributed executor that need no broker: signing, credentials, path maps, devices."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from redactd.config import PathMapping, WorkerConfig
from redactd.errors import ConfigError
from redactd.jobflow.signing import Forged, load_credentials, make_credentials, seal, unseal
from redactd.visual import detect


class TestSigning:
    def test_a_sealed_body_opens_with_the_same_key(self):
        key = os.urandom(32)
        msg = seal(key, {"job_id": "j1", "attempt": 2})
        assert unseal(key, msg["body"], msg["sig"]) == {"job_id": "j1", "attempt": 2}

    def test_another_key_or_an_edited_body_is_forged(self):
        key = os.urandom(32)
        msg = seal(key, {"verdict": "review"})
        with pytest.raises(Forged):
            unseal(os.urandom(32), msg["body"], msg["sig"])
        with pytest.raises(Forged):
            unseal(key, msg["body"].replace("review", "publish"), msg["sig"])
        with pytest.raises(Forged):
            unseal(key, None, None)


class TestCredentials:
    def test_a_file_readable_by_others_is_refused_with_the_fix(self, tmp_path):
        path = tmp_path / "creds"
        make_credentials(path)
        path.chmod(0o644)
        with pytest.raises(ConfigError, match="chmod 600"):
            load_credentials(path)

    def test_a_missing_file_says_how_to_make_one(self, tmp_path):
        with pytest.raises(ConfigError, match="redactd worker"):
            load_credentials(tmp_path / "none")

    def test_a_short_key_is_refused(self, tmp_path):
        path = tmp_path / "creds"
        path.write_text("hmac_key: abcd\n")
        path.chmod(0o600)
        with pytest.raises(ConfigError, match="at least 32 bytes"):
            load_credentials(path)


class TestPathMap:
    def cfg(self, *pairs: tuple[str, str]) -> WorkerConfig:
        return WorkerConfig(version=1, broker_url="redis://nas:6379/0", credentials_file=Path("/c"),
                            path_map=[PathMapping(daemon=Path(d), worker=Path(w)) for d, w in pairs])

    def test_the_longest_daemon_prefix_wins(self):
        cfg = self.cfg(("/srv/redactd", "/mnt/nas"), ("/srv/redactd/raw", "/mnt/raw"))
        assert cfg.to_worker(Path("/srv/redactd/raw/j1.mp4")) == Path("/mnt/raw/j1.mp4")
        assert cfg.to_worker(Path("/srv/redactd/scratch/j1")) == Path("/mnt/nas/scratch/j1")

    def test_a_prefix_matches_whole_path_components_only(self):
        cfg = self.cfg(("/srv/raw", "/mnt/raw"))
        assert cfg.to_worker(Path("/srv/rawer/x")) == Path("/srv/rawer/x")
        assert cfg.to_worker(Path("/srv/raw")) == Path("/mnt/raw")


class TestDevice:
    def test_cuda_is_used_where_onnxruntime_offers_it_and_a_clear_error_where_not(self):
        import onnxruntime as ort

        try:
            if "CUDAExecutionProvider" in ort.get_available_providers():  # onnxruntime-gpu on a GPU host
                detect.use_device("cuda")
                assert detect._providers[0] == "CUDAExecutionProvider"
            else:
                with pytest.raises(ConfigError, match="onnxruntime-gpu"):
                    detect.use_device("cuda")
            with pytest.raises(ConfigError, match="not one of"):
                detect.use_device("tpu")
        finally:
            detect.use_device("cpu")
        assert detect._providers == ["CPUExecutionProvider"]


class TestStateOnLocalDisk:
    MOUNTINFO = (
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "95 22 0:52 / /srv/nas\\040share rw,relatime shared:50 - nfs4 nas:/export rw,vers=4.2\n"
        "96 22 0:53 / /srv/nas2 rw,relatime shared:51 - cifs //nas/x rw\n"
    )

    def test_the_longest_mount_point_above_a_path_names_its_filesystem(self, tmp_path):
        info = tmp_path / "mountinfo"
        info.write_text(self.MOUNTINFO)
        from redactd.fsutil import filesystem_type

        assert filesystem_type(Path("/srv/nas share/state"), str(info)) == "nfs4"
        assert filesystem_type(Path("/srv/nas2"), str(info)) == "cifs"
        assert filesystem_type(Path("/srv/nas22/x"), str(info)) == "ext4"
        assert filesystem_type(Path("/proc/self")) == "proc"  # this machine's own table
