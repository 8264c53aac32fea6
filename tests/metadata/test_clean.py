"""The lossless metadata cleaner: everything hidden goes, every picture and sample stays."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from redactd.errors import InputError, UnsupportedMediaError, VerifyError
from redactd.metadata import clean_metadata, verify_clean
from redactd.metadata.bitstream import findings as sei_findings
from redactd.metadata.inspect import inspect_file
from redactd.metadata.verify import exiftool_findings
from tests import mediafactory as mf

MP4_PLANTED = ["title", "comment", "chapter", "subtitle", "sei", "handler", "telemetry", "make", "model",
               "keys", "xmp", "trailer"]
MKV_PLANTED = ["title", "chapter", "subtitle", "attachment", "stream_tag", "trailer"]


def _encodings(text: str) -> list[bytes]:
    return [text.encode("utf-8"), text.encode("utf-16-le"), text.encode("utf-16-be")]


def assert_no_markers(path: Path, markers: dict[str, str], planted: list[str]) -> None:
    blob = path.read_bytes()
    leaked = [k for k in planted if any(enc in blob for enc in _encodings(markers[k]))]
    assert leaked == [], f"markers survived: {leaked}"


@pytest.fixture()
def loaded_mp4(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    markers = mf.markers("RDX")
    src = mf.loaded_mp4(tmp_path / "Holiday at Alice's house.mp4", tmp_path, markers)
    blob = src.read_bytes()
    missing = [k for k in MP4_PLANTED if markers[k].encode() not in blob]
    assert missing == [], f"fixture did not plant {missing}"
    return src, markers


class TestCleanMp4:
    def test_no_planted_marker_survives_anywhere_in_the_output(self, loaded_mp4, tmp_path):
        src, markers = loaded_mp4
        out = tmp_path / "out.mp4"
        clean_metadata(src, out, keep_audio=True)
        assert_no_markers(out, markers, MP4_PLANTED)

    def test_exiftool_reports_nothing_outside_the_allow_list(self, loaded_mp4, tmp_path):
        src, _ = loaded_mp4
        assert exiftool_findings(src), "the loaded input must have findings"
        out = tmp_path / "out.mp4"
        clean_metadata(src, out, keep_audio=True)
        assert exiftool_findings(out) == []

    def test_only_video_and_kept_audio_streams_remain(self, loaded_mp4, tmp_path):
        src, _ = loaded_mp4
        out = tmp_path / "out.mp4"
        result = clean_metadata(src, out, keep_audio=True)
        streams = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type",
                                  "-of", "csv=p=0", str(out)], check=True, capture_output=True, text=True).stdout.split()
        assert streams == ["video", "audio"]
        assert (result.video_streams, result.audio_streams) == (1, 1)
        assert any(d.startswith("data:") for d in result.dropped)
        assert any(d.startswith("subtitle:") for d in result.dropped)

    def test_audio_is_dropped_unless_kept(self, loaded_mp4, tmp_path):
        src, _ = loaded_mp4
        out = tmp_path / "out.mp4"
        clean_metadata(src, out, keep_audio=False)
        verify_clean(out, expect_video=1, expect_audio=0)

    def test_decoded_video_and_audio_frames_are_bit_exact(self, loaded_mp4, tmp_path):
        src, _ = loaded_mp4
        out = tmp_path / "out.mp4"
        clean_metadata(src, out, keep_audio=True)
        assert mf.frame_md5s(out, "v") == mf.frame_md5s(src, "v")
        assert mf.frame_md5s(out, "a") == mf.frame_md5s(src, "a")
        assert len(mf.frame_md5s(out, "v")) == 10

    def test_sei_user_data_is_gone_from_the_bitstream(self, loaded_mp4, tmp_path):
        src, _ = loaded_mp4
        assert sei_findings(src), "the input carries SEI user data"
        out = tmp_path / "out.mp4"
        clean_metadata(src, out)
        assert sei_findings(out) == []

    def test_output_is_a_new_inode_with_fresh_mtime_and_no_xattrs(self, loaded_mp4, tmp_path):
        src, _ = loaded_mp4
        os.setxattr(src, "user.owner", b"alice")
        os.utime(src, (1_000_000_000, 1_000_000_000))
        out = tmp_path / "out.mp4"
        clean_metadata(src, out)
        assert os.stat(out).st_ino != os.stat(src).st_ino
        assert os.listxattr(out) == []
        assert os.stat(out).st_mtime > 1_500_000_000
        # the name is the caller's choice; nothing of the input name leaks into the file
        assert b"Alice" not in out.read_bytes()

    def test_failed_run_leaves_no_partial_output(self, tmp_path):
        bad = tmp_path / "bad.mp4"
        bad.write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(4000))
        out = tmp_path / "out.mp4"
        with pytest.raises(InputError):
            clean_metadata(bad, out)
        assert list(tmp_path.iterdir()) == [bad]


class TestCleanOtherContainersAndCodecs:
    def test_matroska_tags_chapters_subtitles_and_attachments_are_dropped(self, tmp_path):
        markers = mf.markers("MKX")
        src = mf.loaded_mkv(tmp_path / "in.mkv", tmp_path, markers)
        assert all(markers[k].encode() in src.read_bytes() for k in MKV_PLANTED)
        out = tmp_path / "out.mkv"
        clean_metadata(src, out, keep_audio=True)
        assert_no_markers(out, markers, MKV_PLANTED)
        assert exiftool_findings(out) == []
        assert mf.frame_md5s(out) == mf.frame_md5s(src)

    def test_vp9_webm_output(self, tmp_path):
        src = mf.plain_video(tmp_path / "in.webm", codec="libvpx-vp9", audio=True,
                             extra=("-metadata", "title=WEBMTITLE"))
        out = tmp_path / "out.webm"
        clean_metadata(src, out, keep_audio=True)
        assert b"WEBMTITLE" not in out.read_bytes()
        assert mf.frame_md5s(out) == mf.frame_md5s(src)

    def test_hevc_sei_in_the_hvcc_record_is_removed(self, tmp_path):
        src = mf.plain_video(tmp_path / "in.mp4", codec="libx265")
        assert b"x265" in src.read_bytes()  # x265 writes its banner as SEI in hvcC
        assert sei_findings(src)
        out = tmp_path / "out.mp4"
        clean_metadata(src, out)
        assert b"x265" not in out.read_bytes()
        assert sei_findings(out) == []
        assert mf.frame_md5s(out) == mf.frame_md5s(src)

    @pytest.mark.slow
    def test_av1_is_remuxed_bit_exact(self, tmp_path):
        src = mf.plain_video(tmp_path / "in.mkv", codec="libaom-av1", seconds=0.5, size="64x64",
                             extra=("-metadata", "title=AV1TITLE"))
        out = tmp_path / "out.mp4"
        clean_metadata(src, out)
        assert b"AV1TITLE" not in out.read_bytes()
        assert mf.frame_md5s(out) == mf.frame_md5s(src)

    def test_avi_h264_becomes_a_clean_mp4(self, tmp_path):
        src = mf.plain_video(tmp_path / "in.avi", extra=("-metadata", "artist=AVIARTIST"))
        assert b"AVIARTIST" in src.read_bytes()
        out = tmp_path / "out.mp4"
        clean_metadata(src, out)
        assert b"AVIARTIST" not in out.read_bytes()
        assert mf.frame_md5s(out) == mf.frame_md5s(src)

    def test_mov_with_timecode_track_loses_it(self, tmp_path):
        src = mf.plain_video(tmp_path / "in.mov", extra=("-timecode", "01:02:03:04"))
        out = tmp_path / "out.mp4"
        result = clean_metadata(src, out)
        assert "data:unknown" in result.dropped or any(d.startswith("data:") for d in result.dropped)
        verify_clean(out, expect_video=1)


class TestCleanRejectsWhatItCannotClean:
    def test_text_file_named_mp4_is_a_clear_input_error(self, tmp_path):
        src = tmp_path / "notes.mp4"
        src.write_text("this is not a video\n")
        with pytest.raises(InputError, match="not a readable media file"):
            clean_metadata(src, tmp_path / "out.mp4")

    def test_truncated_mp4_is_a_clear_input_error(self, tmp_path):
        full = mf.plain_video(tmp_path / "full.mp4")
        src = tmp_path / "cut.mp4"
        src.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
        with pytest.raises(InputError):
            clean_metadata(src, tmp_path / "out.mp4")

    def test_truncated_mp4_with_index_first_is_refused_not_published_short(self, tmp_path):
        full = mf.plain_video(tmp_path / "full.mp4", seconds=2, extra=("-movflags", "+faststart"))
        src = tmp_path / "cut.mp4"
        src.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 3])
        with pytest.raises(InputError, match=r"truncated: the file ends inside its 'mdat' box"):
            clean_metadata(src, tmp_path / "out.mp4")

    def test_audio_only_file_is_not_a_video(self, tmp_path):
        src = tmp_path / "a.m4a"
        mf.ffmpeg("-f", "lavfi", "-i", "sine", "-t", "0.5", "-c:a", "aac", str(src))
        with pytest.raises(InputError, match="no video stream"):
            clean_metadata(src, tmp_path / "out.mp4")

    def test_unsupported_codec_names_the_codec_and_the_way_out(self, tmp_path):
        src = mf.plain_video(tmp_path / "in.avi", codec="msmpeg4")
        with pytest.raises(UnsupportedMediaError, match=r"msmpeg4v3 cannot be cleaned losslessly.*visual policy"):
            clean_metadata(src, tmp_path / "out.mp4")

    def test_error_messages_do_not_contain_the_input_file_name(self, tmp_path):
        src = tmp_path / "Bob Smith at the clinic.mp4"
        src.write_bytes(b"garbage" * 100)
        with pytest.raises(InputError) as err:
            clean_metadata(src, tmp_path / "out.mp4")
        assert "Bob Smith" not in str(err.value)


class TestVerifyFailsClosed:
    def test_verifier_lists_every_kind_of_leftover(self, loaded_mp4):
        src, _ = loaded_mp4
        with pytest.raises(VerifyError) as err:
            verify_clean(src, expect_video=1, expect_audio=1)
        text = "\n".join(err.value.findings)
        for expected in ("subtitle stream", "data stream", "chapter", "cover art", "GPSCoordinates",
                         "XMP-dc:Creator", "SEI", "trailing data"):
            assert expected in text, expected

    def test_inspect_groups_personal_metadata_by_location(self, loaded_mp4, tmp_path):
        src, markers = loaded_mp4
        groups = inspect_file(src)
        flat = "\n".join(f"{k}: {v}" for k, items in groups.items() for v in items)
        assert markers["make"] in flat and "GPSCoordinates" in flat
        assert "SEI unregistered user data" in "\n".join(groups["in-frame data: stream #0 (h264), coded frames"])
        out = tmp_path / "out.mp4"
        clean_metadata(src, out)
        assert inspect_file(out) == {}


class TestCli:
    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "redactd", *args], check=False, capture_output=True, text=True,
                              timeout=120)

    def test_clean_metadata_command_writes_a_verified_file(self, loaded_mp4, tmp_path):
        src, _ = loaded_mp4
        out = tmp_path / "clean.mp4"
        proc = self.run("clean-metadata", str(src), "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        assert "clean (mp4, 1 video, 0 audio" in proc.stdout
        verify_clean(out)

    def test_clean_metadata_refuses_to_overwrite(self, loaded_mp4, tmp_path):
        src, _ = loaded_mp4
        out = tmp_path / "clean.mp4"
        out.write_bytes(b"keep me")
        proc = self.run("clean-metadata", str(src), "-o", str(out))
        assert proc.returncode == 2  # a usage error, as for `redactd redact`
        assert "already exists" in proc.stderr
        assert out.read_bytes() == b"keep me"

    def test_not_a_video_exits_3_without_traceback(self, tmp_path):
        src = tmp_path / "x.mp4"
        src.write_text("hello")
        proc = self.run("clean-metadata", str(src), "-o", str(tmp_path / "o.mp4"))
        assert proc.returncode == 3
        assert "Traceback" not in proc.stderr
        assert "not a readable media file" in proc.stderr

    def test_inspect_before_and_after(self, loaded_mp4, tmp_path):
        src, markers = loaded_mp4
        before = self.run("inspect", str(src))
        assert before.returncode == 0
        assert "GPSCoordinates" in before.stdout and markers["xmp"] in before.stdout
        out = tmp_path / "clean.mp4"
        assert self.run("clean-metadata", str(src), "-o", str(out)).returncode == 0
        after = self.run("inspect", str(out))
        assert "no metadata beyond structure" in after.stdout

    def test_inspect_takes_several_files_and_goes_on_past_a_bad_one(self, loaded_mp4, tmp_path):
        src, markers = loaded_mp4
        out = tmp_path / "clean.mp4"
        assert self.run("clean-metadata", str(src), "-o", str(out)).returncode == 0
        bad = tmp_path / "notes.mp4"
        bad.write_text("hello")
        both = self.run("inspect", str(src), str(bad), str(out))
        assert both.returncode == 3 and "Traceback" not in both.stderr
        assert f"== {src}" in both.stdout and markers["xmp"] in both.stdout
        assert f"{out}: no metadata beyond structure" in both.stdout
        assert "notes.mp4" in both.stderr
