"""Camera-shaped test videos: the structure phones, action cams and camcorders write, and canary
strings planted everywhere their metadata hides. Shared by tests/metadata and bench/metadata_cameras.py."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from tests import mediafactory as mf

TESTSRC = ("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10")
SINE = ("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000")
X264 = ("-c:v", "libx264", "-preset", "ultrafast")
#: The UUID Sony and Panasonic AVCHD cameras put in front of their MDPM camera data (SEI).
MDPM_UUID = "17ee8c60-f84d-11d9-8cd6-0800200c9a66"



def _colour(tmp: Path, name: str, suffix: str, *args: str) -> Path:
    return mf.plain_video(tmp / f"{name}{suffix}", extra=args)


def structure_fixture(kind: str, tmp: Path) -> Path:
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


STRUCTURE_KINDS = ["bt709-limited", "bt709-full", "bt2020-hlg", "bt2020-pq-hevc", "interlaced-tff-mts",
                   "interlaced-bff-mkv", "rotation-90", "pasp-anamorphic", "clap"]


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


def mpeg2_mpg(tmp: Path, c: dict[str, str]) -> Path:
    """MPEG-2 in MPEG-PS as DVD and HDD camcorders (.MOD/.MPG) write it, a camera note as user data."""
    raw = mf.plain_video(tmp / "m2v.es", codec="mpeg2video", rate=25, extra=("-f", "mpeg2video"))
    data = raw.read_bytes()
    picture = data.index(b"\x00\x00\x01\x00", data.index(b"\x00\x00\x01\xb8"))  # after the GOP header
    raw.write_bytes(data[:picture] + b"\x00\x00\x01\xb2" + c["udata"].encode() + data[picture:])
    path = tmp / "MOV042.MPG"
    mf.ffmpeg("-fflags", "+genpts", "-r", "25", "-f", "mpegvideo", "-i", str(raw), "-c", "copy", "-f", "vob", str(path))
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
    "mpeg-2 ps (camcorder .mpg)": (mpeg2_mpg, ("udata",), False),
    "mjpeg avi": (mjpeg_avi, ("make", "model", "serial", "xmp", "comment", "thumb"), False),
    "mjpeg mov": (mjpeg_mov, ("make", "model", "serial", "xmp", "comment", "thumb"), False),
}


def canaries(keys: tuple[str, ...]) -> dict[str, str]:
    return {k: f"CNRY{k.upper()}{i:02d}Z" for i, k in enumerate(keys)}


def dv_clip(tmp: Path) -> Path:
    """PAL DV whose every frame carries the recording date (FFmpeg's encoder writes it from
    creation_time into the VAUX packs)."""
    path = tmp / "tape.dv"
    mf.ffmpeg("-f", "lavfi", "-i", "testsrc2=size=720x576:rate=25", "-t", "0.4", "-c:v", "dvvideo",
              "-pix_fmt", "yuv420p", "-metadata", "creation_time=2019-05-04T10:20:30Z", str(path))
    return path


