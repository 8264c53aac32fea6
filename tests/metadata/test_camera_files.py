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
from redactd.metadata import clean_metadata, verify_clean
from redactd.metadata.clean import UncuttableError
from redactd.metadata.inspect import inspect_file
from redactd.metadata.verify import allow_reason
from tests import mediafactory as mf

TESTSRC = ("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10")
SINE = ("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000")
X264 = ("-c:v", "libx264", "-preset", "ultrafast")
#: The UUID Sony and Panasonic AVCHD cameras put in front of their MDPM camera data (SEI).
MDPM_UUID = "17ee8c60-f84d-11d9-8cd6-0800200c9a66"


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

def _colour(tmp: Path, name: str, suffix: str, *args: str) -> Path:
    return mf.plain_video(tmp / f"{name}{suffix}", extra=args)


def _structure_fixture(kind: str, tmp: Path) -> Path:
    if kind == "bt709-limited":
        return _colour(tmp, kind, ".mp4", "-color_primaries", "bt709", "-color_trc", "bt709",
                       "-colorspace", "bt709", "-color_range", "tv")
    if kind == "bt709-full":
        return _colour(tmp, kind, ".mp4", "-color_primaries", "bt709", "-color_trc", "bt709",
                       "-colorspace", "bt709", "-color_range", "pc")
    if kind == "bt2020-hlg":  # as phones record HDR: 10-bit, BT.2020, HLG, in a QuickTime file
        path = tmp / f"{kind}.mov"
        mf.ffmpeg(*TESTSRC, "-t", "1", *X264, "-pix_fmt", "yuv420p10le", "-color_primaries", "bt2020",
                  "-color_trc", "arib-std-b67", "-colorspace", "bt2020nc", "-color_range", "tv", str(path))
        return path
    if kind == "bt2020-pq-hevc":
        path = tmp / f"{kind}.mp4"
        mf.ffmpeg(*TESTSRC, "-t", "1", "-c:v", "libx265", "-preset", "ultrafast", "-x265-params",
                  "log-level=error", "-pix_fmt", "yuv420p10le", "-color_primaries", "bt2020", "-color_trc",
                  "smpte2084", "-colorspace", "bt2020nc", "-tag:v", "hvc1", str(path))
        return path
    if kind in ("interlaced-tff-mts", "interlaced-bff-mkv"):
        tff = kind.startswith("interlaced-tff")
        path = tmp / (f"{kind}.mts" if tff else f"{kind}.mkv")
        mf.ffmpeg(*TESTSRC, "-t", "1", *X264, "-flags", "+ildct+ilme", "-top", "1" if tff else "0",
                  "-field_order", "tt" if tff else "bb", *(("-f", "mpegts") if tff else ()), str(path))
        return path
    if kind == "rotation-90":  # a phone held upright: a display matrix turning the picture
        plain = mf.plain_video(tmp / "upright.mp4")
        path = tmp / f"{kind}.mp4"
        mf.ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(path))
        return path
    if kind == "pasp-anamorphic":
        return _colour(tmp, kind, ".mp4", "-aspect", "16:9")
    if kind == "clap":
        path = mf.plain_video(tmp / f"{kind}.mov")
        # clean aperture 152x112 centred: 8 fractions (width, height, horizontal and vertical offset)
        mf.add_box(path, mf.VIDEO_ENTRY, mf.box(b"clap", b"".join(
            n.to_bytes(4, "big") for n in (152, 1, 112, 1, 0, 1, 0, 1))))
        return path
    raise AssertionError(kind)


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
    @pytest.mark.parametrize("out_suffix", [".mp4", ".mkv"])
    @pytest.mark.parametrize("kind", list(_KEPT))
    def test_cleans_losslessly_and_keeps_the_structure(self, kind: str, out_suffix: str, tmp_path: Path) -> None:
        src = _structure_fixture(kind, tmp_path)
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

def gopro_like(tmp: Path, c: dict[str, str]) -> Path:
    """H.264 + AAC with BT.709 colour, a GPMF telemetry track and GoPro's udta boxes."""
    path = mf.plain_video(tmp / "GX010042.MP4", audio=True,
                          extra=("-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709"))
    udta = mf.box(b"udta", mf.box(b"FIRM", c["firmware"].encode()) + mf.box(b"CAME", c["serial"].encode())
                  + mf.box(b"GPMF", b"DEVC" + c["gpmf"].encode()))
    mf.add_box(path, (b"moov",), udta)
    mf.gpmd_track(path, (c["telemetry"] + "GPS5").encode() * 4)
    mf.exiftool_write(path, f"-UserData:Make={c['make']}", f"-UserData:Model={c['model']}")
    return path


def iphone_like(tmp: Path, c: dict[str, str]) -> Path:
    """A QuickTime HLG clip, turned 90 degrees, with Apple's metadata keys, XMP and a mebx track."""
    path = tmp / "IMG_0042.MOV"
    mf.ffmpeg(*TESTSRC, *SINE, "-t", "1", *X264, "-pix_fmt", "yuv420p10le", "-color_primaries", "bt2020",
              "-color_trc", "arib-std-b67", "-colorspace", "bt2020nc", "-c:a", "aac", str(path))
    mf.gpmd_track(path, c["faces"].encode() * 4, entry=b"mebx", handler=b"Core Media Metadata")
    mf.exiftool_write(path, "-Rotation=90", "-Keys:GPSCoordinates=48.8584, 2.2945, 35", f"-Keys:Make={c['make']}",
                      f"-Keys:Model={c['model']}", f"-Keys:Software={c['software']}",
                      "-Keys:CreationDate=2024:05:04 10:20:30+02:00", f"-XMP-dc:Creator={c['xmp']}")
    assert b"com.apple.quicktime.location.ISO6709" in path.read_bytes()
    return path


def threegp(tmp: Path, c: dict[str, str]) -> Path:
    path = tmp / "VID_0042.3gp"
    mf.ffmpeg(*TESTSRC, *SINE, "-t", "1", *X264, "-pix_fmt", "yuv420p", "-c:a", "aac", "-ar", "16000",
              "-metadata", f"title={c['title']}", "-metadata", f"author={c['author']}",
              "-metadata", f"copyright={c['copyright']}", "-metadata", f"album={c['album']}",
              "-f", "3gp", str(path))
    mf.exiftool_write(path, "-UserData:GPSCoordinates=40.6892, -74.0445, 10")
    return path


def avchd_like(tmp: Path, c: dict[str, str]) -> Path:
    """Interlaced H.264 + AC-3 in MPEG-TS, camera data in SEI user data as AVCHD's MDPM."""
    path = tmp / "00042.MTS"
    mf.ffmpeg(*TESTSRC, *SINE, "-t", "1", *X264, "-pix_fmt", "yuv420p", "-flags", "+ildct+ilme", "-top", "1",
              "-field_order", "tt", "-bsf:v", f"h264_metadata=sei_user_data={MDPM_UUID}+{c['mdpm']}",
              "-c:a", "ac3", "-metadata", f"service_provider={c['provider']}",
              "-metadata", f"service_name={c['service']}", "-f", "mpegts", str(path))
    return path


def mpeg4_avi(tmp: Path, c: dict[str, str]) -> Path:
    """MPEG-4 Part 2 in AVI, a camera string in the bitstream's user data (start code 00 00 01 B2)."""
    path = mf.plain_video(tmp / "MOV_0042.AVI", codec="mpeg4", extra=("-metadata", f"artist={c['artist']}"))
    data = path.read_bytes()
    tag = data[data.index(b"\x00\x00\x01\xb2") + 4:].split(b"\x00")[0]  # "Lavc59.37.100"
    camera = c["udata"].encode()[:len(tag)].ljust(len(tag), b"Q")
    c["udata"] = camera.decode()
    path.write_bytes(data.replace(b"\x00\x00\x01\xb2" + tag, b"\x00\x00\x01\xb2" + camera))
    return path


def xvid_avi(tmp: Path, c: dict[str, str]) -> Path:
    """XviD keeps its build tag (the decoder picks its IDCT by it); a camera string beside it goes."""
    raw = mf.plain_video(tmp / "xvid.es", codec="libxvid", extra=("-f", "m4v"))  # elementary stream
    data = raw.read_bytes()
    vop = data.index(b"\x00\x00\x01\xb6")  # a camera's note as user data in front of the first frame
    raw.write_bytes(data[:vop] + b"\x00\x00\x01\xb2" + c["udata"].encode() + data[vop:])
    path = tmp / "xvid.avi"
    mf.ffmpeg("-f", "m4v", "-r", "10", "-i", str(raw), "-c", "copy", "-metadata", f"artist={c['artist']}", str(path))
    return path


def mjpeg_frames(tmp: Path, c: dict[str, str]) -> Path:
    frames = tmp / "jpg"
    frames.mkdir()
    mf.ffmpeg(*TESTSRC, "-t", "1", "-c:v", "mjpeg", "-q:v", "3", str(frames / "f%02d.jpg"))
    thumb = tmp / "thumb.jpg"
    mf.ffmpeg("-f", "lavfi", "-i", "color=blue:size=16x16", "-frames:v", "1", str(thumb))
    mf.exiftool_write(thumb, f"-Comment={c['thumb']}")
    jpgs = sorted(str(p) for p in frames.iterdir())
    subprocess.run(["exiftool", "-q", "-overwrite_original", f"-Make={c['make']}", f"-Model={c['model']}",
                    f"-SerialNumber={c['serial']}", "-GPSLatitude=48.8584", "-GPSLatitudeRef=N",
                    "-GPSLongitude=2.2945", "-GPSLongitudeRef=E", f"-XMP-dc:Creator={c['xmp']}",
                    f"-Comment={c['comment']}", f"-ThumbnailImage<={thumb}", *jpgs], check=True, timeout=60)
    return frames


def mjpeg_avi(tmp: Path, c: dict[str, str]) -> Path:
    path = tmp / "DSCN0042.AVI"
    mf.ffmpeg("-framerate", "10", "-i", str(mjpeg_frames(tmp, c) / "f%02d.jpg"), "-c", "copy", str(path))
    return path


def mjpeg_mov(tmp: Path, c: dict[str, str]) -> Path:
    path = tmp / "P1000042.MOV"
    mf.ffmpeg("-framerate", "10", "-i", str(mjpeg_frames(tmp, c) / "f%02d.jpg"), "-c", "copy", str(path))
    return path


CAMERAS: dict[str, tuple[Callable[[Path, dict[str, str]], Path], tuple[str, ...], bool]] = {
    # name: (builder, canary keys, audio kept and compared)
    "gopro-like mp4": (gopro_like, ("telemetry", "firmware", "serial", "gpmf", "make", "model"), True),
    "iphone-like mov": (iphone_like, ("faces", "make", "model", "software", "xmp"), True),
    "3gp": (threegp, ("title", "author", "copyright", "album"), True),
    "avchd-like mts": (avchd_like, ("mdpm", "provider", "service"), True),
    "mpeg-4 part 2 avi": (mpeg4_avi, ("udata", "artist"), False),
    "xvid avi": (xvid_avi, ("udata", "artist"), False),
    "mjpeg avi": (mjpeg_avi, ("make", "model", "serial", "xmp", "comment", "thumb"), False),
    "mjpeg mov": (mjpeg_mov, ("make", "model", "serial", "xmp", "comment", "thumb"), False),
}


def canaries(keys: tuple[str, ...]) -> dict[str, str]:
    return {k: f"CNRY{k.upper()}{i:02d}Z" for i, k in enumerate(keys)}


class TestCameraShapedFilesCleanLosslessly:
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

def dv_clip(tmp: Path) -> Path:
    """PAL DV whose every frame carries the recording date (FFmpeg's encoder writes it from
    creation_time into the VAUX packs)."""
    path = tmp / "tape.dv"
    mf.ffmpeg("-f", "lavfi", "-i", "testsrc2=size=720x576:rate=25", "-t", "0.4", "-c:v", "dvvideo",
              "-pix_fmt", "yuv420p", "-metadata", "creation_time=2019-05-04T10:20:30Z", str(path))
    return path


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
