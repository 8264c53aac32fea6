"""Real camera-shaped files through the lossless cleaner: structure FFmpeg writes is let through
knowingly, every planted canary is gone, and the decoded frames are bit-exact."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from redactd.errors import VerifyError
from redactd.jobflow.pipeline import JobSpec, run_metadata_only
from redactd.metadata import clean_metadata, verify_clean
from redactd.metadata.clean import UncuttableError
from redactd.metadata.inspect import inspect_file
from redactd.metadata.verify import allow_reason
from redactd.policy import RedactionPolicy
from tests import mediafactory as mf
from tests.camerafactory import (
    CAMERAS,
    avchd_like,
    canaries,
    dv_clip,
    iphone_like,
    mjpeg_avi,
    mpeg4_avi,
    structure_fixture,
)


def ffprobe_video(path: Path) -> dict[str, object]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_streams", "-of", "json",
                          str(path)], check=True, capture_output=True, text=True, timeout=60).stdout
    stream: dict[str, object] = json.loads(out)["streams"][0]
    return stream


def rotation(info: dict[str, object]) -> int:
    for side in info.get("side_data_list", []):  # type: ignore[attr-defined]
        if "rotation" in side:
            return int(side["rotation"])
    return 0


def assert_canaries_gone(path: Path, canaries: list[str]) -> None:
    blob = path.read_bytes()
    found = [c for c in canaries if any(c.encode(e) in blob for e in ("utf-8", "utf-16-le", "utf-16-be"))]
    assert found == [], f"canaries survived: {found}"


def assert_lossless(src: Path, out: Path, audio: bool = False) -> None:
    assert mf.frame_md5s(out, "v") == mf.frame_md5s(src, "v")
    assert len(mf.frame_md5s(out, "v")) >= 10
    if audio:  # packets: MP4's edit list trims AAC priming on decode, Matroska has no such list
        assert mf.packet_md5s(out, "a") == mf.packet_md5s(src, "a")


# --------------------------------------------------------------------------- structure FFmpeg writes

#: What each fixture must still say after cleaning: the structure is kept, not just tolerated.
_KEPT: dict[str, Callable[[dict[str, object]], bool]] = {
    "bt709-limited": lambda i: i.get("color_transfer") == "bt709" and i.get("color_range") == "tv",
    "bt709-full": lambda i: i.get("color_primaries") == "bt709" and i.get("color_range") == "pc",
    "bt2020-hlg": lambda i: i.get("color_transfer") == "arib-std-b67" and i.get("color_primaries") == "bt2020",
    "bt2020-pq-hevc": lambda i: i.get("color_transfer") == "smpte2084",
    "interlaced-tff-mts": lambda i: i.get("field_order") == "tt",
    "interlaced-bff-mkv": lambda i: i.get("field_order") == "bb",
    "rotation-90": lambda i: abs(rotation(i)) == 90,
    "pasp-anamorphic": lambda i: i.get("sample_aspect_ratio") == "4:3",
    "clap": lambda i: i.get("width") == 160,
}


class TestStructureFfmpegWritesIsAllowedKnowingly:
    @pytest.mark.slow
    @pytest.mark.parametrize("out_suffix", [".mp4", ".mkv"])
    @pytest.mark.parametrize("kind", list(_KEPT))
    def test_cleans_losslessly_and_keeps_the_structure(self, kind: str, out_suffix: str, tmp_path: Path) -> None:
        src = structure_fixture(kind, tmp_path)
        out = tmp_path / f"out{out_suffix}"
        clean_metadata(src, out)  # verifies; refused before: Track1:ColorProfiles, Matroska_0x001d/0x3670
        assert_lossless(src, out)
        assert _KEPT[kind](ffprobe_video(src)), "the fixture lacks what it is about"
        info = ffprobe_video(out)
        assert _KEPT[kind](info), (kind, out_suffix, info)

    def test_every_allowed_tag_has_a_reason(self) -> None:
        for group, tag in [("Track1", "ColorProfiles"), ("Track1", "Matroska_0x001d"),
                           ("Track1", "Matroska_0x3670"), ("Track2", "PixelAspectRatio"),
                           ("QuickTime", "MajorBrand"), ("Matroska", "MuxingApp")]:
            reason = allow_reason(group, tag)
            assert reason and len(reason) > 10, (group, tag)
        assert allow_reason("Track1", "Matroska_0x7777") is None


# --------------------------------------------------------------------------- camera-shaped files

class TestCameraShapedFilesCleanLosslessly:
    @pytest.mark.slow
    @pytest.mark.parametrize("out_suffix", [".mp4", ".mkv"])
    @pytest.mark.parametrize("camera", list(CAMERAS))
    def test_every_canary_is_gone_and_frames_are_bit_exact(self, camera: str, out_suffix: str,
                                                           tmp_path: Path) -> None:
        build, keys, audio = CAMERAS[camera]
        c = canaries(keys)
        src = build(tmp_path, c)
        blob = src.read_bytes()
        planted = [k for k in keys if any(c[k].encode(e) in blob for e in ("utf-8", "utf-16-be"))]
        assert planted == list(keys), f"fixture did not plant {set(keys) - set(planted)}"
        out = tmp_path / f"clean{out_suffix}"
        result = clean_metadata(src, out, keep_audio=audio)
        assert result.reencoded is None
        assert_canaries_gone(out, [c[k] for k in keys])
        assert_lossless(src, out, audio=audio)
        verify_clean(out, expect_video=1, expect_audio=1 if audio else 0)


# --------------------------------------------------------------------------- frames we cannot cut

class TestFramesThatCannotBeCutExactly:
    def test_dv_is_refused_with_the_reason_and_the_way_out(self, tmp_path: Path) -> None:
        with pytest.raises(UncuttableError, match=r"dvvideo cannot be cleaned losslessly: DV frames carry VAUX "
                                                  r"packs with the recording date.*reencode"):
            clean_metadata(dv_clip(tmp_path), tmp_path / "out.mp4")
        assert not (tmp_path / "out.mp4").exists()

    def test_prores_is_refused(self, tmp_path: Path) -> None:
        src = mf.plain_video(tmp_path / "in.mov", codec="prores_ks", seconds=0.3)
        with pytest.raises(UncuttableError, match="ProRes frame headers"):
            clean_metadata(src, tmp_path / "out.mp4")

    def test_dv_is_reencoded_when_allowed_and_verified_clean(self, tmp_path: Path) -> None:
        src = dv_clip(tmp_path)
        out = tmp_path / "out.mp4"
        result = clean_metadata(src, out, fallback="reencode")
        assert result.reencoded and "VAUX" in result.reencoded
        assert result.dropped == ("reencoded:dvvideo->libx264",)
        info = ffprobe_video(out)
        assert info["codec_name"] == "h264" and (info["width"], info["height"]) == (720, 576)
        assert len(mf.frame_md5s(out)) == len(mf.frame_md5s(src)) == 10
        verify_clean(out)

    def test_the_metadata_only_job_follows_its_policy(self, tmp_path: Path) -> None:
        src = dv_clip(tmp_path)
        base = {"kind": "redaction", "id": "camcorder", "version": 1, "mode": "metadata-only"}
        with pytest.raises(UncuttableError):
            run_metadata_only(JobSpec("j1", src, tmp_path, RedactionPolicy.model_validate(base)), None)
        policy = RedactionPolicy.model_validate({**base, "lossless": {"fallback": "reencode"}})
        result = run_metadata_only(JobSpec("j2", src, tmp_path, policy), None)
        assert result.sidecar["reencoded"]["codec"] == "libx264"
        assert "VAUX" in result.sidecar["reencoded"]["why"]
        assert ffprobe_video(result.output_path)["codec_name"] == "h264"


# --------------------------------------------------------------------------- refusals say what and where

class TestRefusalsSayWhatWhereAndWhetherPersonal:
    def test_personal_findings_name_the_tag_and_where_it_sits(self, tmp_path: Path) -> None:
        c = canaries(("faces", "make", "model", "software", "xmp"))
        src = iphone_like(tmp_path, c)
        with pytest.raises(VerifyError) as err:
            verify_clean(src, expect_video=1, expect_audio=1)
        text = str(err.value)
        assert "personal: Keys:GPSCoordinates in moov/meta/keys (Apple metadata keys) [exiftool]" in text
        assert "personal: XMP-dc:Creator in an XMP packet" in text
        assert "personal: extra data stream" in text and "in stream #2 [ffprobe]" in text
        assert "personal," in str(err.value).splitlines()[0]

    def test_an_unknown_box_is_called_unknown_with_its_place(self, tmp_path: Path) -> None:
        src = mf.plain_video(tmp_path / "in.mp4")
        out = tmp_path / "out.mp4"
        clean_metadata(src, out)
        with open(out, "ab") as fh:
            fh.write(mf.box(b"zzzz", b"\0" * 8))
        with pytest.raises(VerifyError) as err:
            verify_clean(out)
        assert "unknown: unexpected top-level box 'zzzz' in zzzz" in str(err.value)
        assert "0 personal" in str(err.value)

    def test_an_unknown_matroska_element_is_called_unknown_with_its_path(self, tmp_path: Path) -> None:
        src = mf.plain_video(tmp_path / "in.mp4")
        out = tmp_path / "out.mkv"
        clean_metadata(src, out)
        with open(out, "ab") as fh:
            fh.write(b"\x4f\x01\x83abc")  # an element the format does not define, after the segment
        with pytest.raises(VerifyError) as err:
            verify_clean(out)
        assert "unknown: element 0x4F01 in 0x4F01 (not a known structural element) [matroska]" in str(err.value)

    def test_a_matroska_title_is_personal_with_its_element_path(self, tmp_path: Path) -> None:
        src = mf.plain_video(tmp_path / "in.mkv", extra=("-metadata", "title=CNRYTITLE"))
        with pytest.raises(VerifyError) as err:
            verify_clean(src)
        assert "personal: element Title in Segment/Info/Title [matroska]" in str(err.value)


# --------------------------------------------------------------------------- inspect, CLI

class TestInspectListsInFrameDataByStream:
    def test_mjpeg_app_segments_and_sei_are_listed_per_stream(self, tmp_path: Path) -> None:
        c = canaries(("make", "model", "serial", "xmp", "comment", "thumb"))
        groups = inspect_file(mjpeg_avi(tmp_path, c))
        frames = "\n".join(groups["in-frame data: stream #0 (mjpeg), coded frames"])
        assert "10 x APP1 (Exif)" in frames and "10 x COM comment" in frames
        assert "APP1 (http://ns.adobe.com/xap/1.0/)" in frames

    def test_mpeg4_user_data_is_listed_in_the_stream_and_its_vol_header(self, tmp_path: Path) -> None:
        c = canaries(("udata", "artist"))
        groups = inspect_file(mpeg4_avi(tmp_path, c))
        assert any(k.startswith("in-frame data: stream #0 (mpeg4)") and "user data (00 00 01 B2)" in "\n".join(v)
                   for k, v in groups.items())

    def test_avchd_sei_is_listed_by_payload_type(self, tmp_path: Path) -> None:
        groups = inspect_file(avchd_like(tmp_path, canaries(("mdpm", "provider", "service"))))
        assert "x SEI unregistered user data" in "\n".join(groups["in-frame data: stream #0 (h264), coded frames"])


class TestCli:
    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "redactd", *args], check=False, capture_output=True,
                              text=True, timeout=300)

    def test_dv_refusal_and_reencode_if_needed(self, tmp_path: Path) -> None:
        src = dv_clip(tmp_path)
        refused = self.run("clean-metadata", str(src), "-o", str(tmp_path / "a.mp4"))
        assert refused.returncode == 3 and "VAUX" in refused.stderr and "Traceback" not in refused.stderr
        done = self.run("clean-metadata", str(src), "-o", str(tmp_path / "b.mp4"), "--reencode-if-needed")
        assert done.returncode == 0, done.stderr
        assert "re-encoded, not lossless (dvvideo: DV frames carry VAUX packs" in done.stdout

    def test_inspect_prints_in_frame_data_grouped_by_stream(self, tmp_path: Path) -> None:
        src = avchd_like(tmp_path, canaries(("mdpm", "provider", "service")))
        proc = self.run("inspect", str(src))
        assert proc.returncode == 0
        assert "in-frame data: stream #0 (h264), coded frames:" in proc.stdout
