"""A damaged container header is damaged input; a full disk while remuxing is not the input's fault."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from redactd.errors import InputError, UnsupportedMediaError
from redactd.jobflow.workers import Ending, classify
from redactd.media.probe import probe
from redactd.metadata.clean import clean_metadata
from tests.conftest import tmpfs

EBML_MAGIC = b"\x1a\x45\xdf\xa3"


def elementary(tmp_path: Path, codec: str, fmt: str) -> bytes:
    out = tmp_path / f"raw.{fmt}"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t", "1",
                    "-c:v", codec, "-f", fmt, str(out)], check=True, capture_output=True, timeout=60)
    return out.read_bytes()


@pytest.fixture()
def bogus_mkv(tmp_path: Path) -> Path:
    """An MKV whose EBML header is garbage: FFmpeg falls back to guessing the raw bytes after it."""
    path = tmp_path / "camera.mkv"
    path.write_bytes(EBML_MAGIC + elementary(tmp_path, "mpeg2video", "mpeg2video"))
    return path


class TestHeaderParseFailures:
    def test_remux_reports_a_bogus_ebml_header_as_damaged_input_not_as_an_unsupported_codec(
            self, bogus_mkv: Path, tmp_path: Path) -> None:
        with pytest.raises(InputError) as caught:
            clean_metadata(bogus_mkv, tmp_path / "out.mkv")
        assert not isinstance(caught.value, UnsupportedMediaError)
        message = str(caught.value)
        assert "damaged" in message and "EBML" in message and "cannot be cleaned losslessly" not in message

    def test_probe_reports_it_the_same_way(self, bogus_mkv: Path) -> None:
        with pytest.raises(InputError, match="damaged: it starts with a Matroska/WebM \\(EBML\\) header"):
            probe(bogus_mkv)


class TestFullDiskWhileRemuxing:
    def test_a_full_output_disk_is_an_out_of_space_error_not_a_damaged_file(self, tmp_path: Path) -> None:
        src = tmp_path / "clip.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "2",
                        "-c:v", "libx264", "-preset", "ultrafast", str(src)], check=True, capture_output=True,
                       timeout=60)
        with tmpfs(tmp_path / "full", "size=64k") as full:
            with open(full / "filler", "wb") as fh:
                fh.write(b"\0" * (os.statvfs(full).f_bavail * os.statvfs(full).f_frsize - 8192))
            with pytest.raises(OSError) as caught:
                clean_metadata(src, full / "out.mp4")
        assert caught.value.errno == errno.ENOSPC and not isinstance(caught.value, InputError)
        assert classify(caught.value) is Ending.NO_SPACE
