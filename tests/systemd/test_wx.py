"""MemoryDenyWriteExecute=yes: onnxruntime, OpenCV and PyAV/x264 all run with W^X enforced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
WORKLOADS = ("centerface_onnxruntime", "ppocr_det_onnxruntime", "centerface_opencv_dnn", "opencv_image_ops",
             "pyav_x264")


def probe(mode: str, workdir: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(HERE / "wx_probe.py"), mode, str(workdir)], check=False, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def kernel_has_mdwe() -> bool:
    # PR_SET_MDWE arrived in Linux 6.3; the probe finds out for sure, this only picks the skip.
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    return (major, minor) >= (6, 3)


class TestWriteXorExecute:
    def test_workloads_run_under_the_kernels_mdwe_prctl(self, tmp_path: Path) -> None:
        if not kernel_has_mdwe():
            pytest.skip(f"kernel {os.uname().release} has no PR_SET_MDWE (needs Linux >= 6.3)")
        report = probe("kernel", tmp_path)
        assert report["prctl_applied"] is True
        assert report["wx_mapping_refused"] is True, "the ban must hold, or this test proves nothing"
        for name in WORKLOADS:
            assert report[name]["ok"], f"{name} failed under PR_SET_MDWE:\n{report[name].get('error')}"
        assert report["centerface_onnxruntime"]["result"]["providers"] == ["CPUExecutionProvider"]
        assert report["pyav_x264"]["result"]["decoded_frames"] == 10

    def test_workloads_run_under_systemds_seccomp_rules(self, tmp_path: Path) -> None:
        report = probe("seccomp", tmp_path)
        assert report["wx_mapping_refused"] is True
        for name in WORKLOADS:
            assert report[name]["ok"], f"{name} failed under the seccomp W^X rules:\n{report[name].get('error')}"

    def test_a_writable_executable_mapping_is_allowed_without_the_ban(self, tmp_path: Path) -> None:
        # The control: without the ban the same probe maps W|X fine, so the refusals above are real.
        report = probe("none", tmp_path)
        assert report["wx_mapping_refused"] is False
        assert all(report[name]["ok"] for name in WORKLOADS)
