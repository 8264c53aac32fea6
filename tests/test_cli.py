"""The command line as a whole: start-up cost, pipes, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "daemon")}


class TestStartUp:
    def test_parsing_the_command_line_loads_no_media_or_model_library(self) -> None:
        # PyAV, OpenCV, onnx and onnxruntime cost about a second of CPU to import: only the
        # commands that decode or detect may load them, never `--version`, `status` or `jobs`.
        code = ("import sys; import redactd.cli as c; c.build_parser(); "
                "print(sorted(m for m in ('av', 'cv2', 'onnx', 'onnxruntime', 'numpy', 'exiftool') "
                "if m in sys.modules))")
        out = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120,
                             check=True)
        assert out.stdout.strip() == "[]"

    def test_version_prints_the_version(self) -> None:
        out = subprocess.run([sys.executable, "-m", "redactd", "--version"], env=ENV, capture_output=True, text=True,
                             timeout=120, check=True)
        assert out.stdout.startswith("redactd ")
