"""Fail-closed check that a cleaned file carries nothing but structure, pictures and sound.

Five independent looks, each enough to fail the file:
  1. exiftool (through pyexiftool, with embedded-data extraction) — any tag outside a short
     allow-list of structural tags;
  2. ffprobe — any stream, chapter or tag that should not be there;
  3. the MP4/QuickTime box tree — udta/meta with content, uuid/XMP boxes, free/skip boxes with
     payload, trailing bytes after the last box;
  4. the Matroska element tree — every element outside an allow-list of what FFmpeg writes;
  5. the coded bitstream and its configuration record (avcC/hvcC/av1C) — any SEI NAL unit or
     AV1 metadata OBU.
"""

from __future__ import annotations

import re
from pathlib import Path

import exiftool

from redactd.errors import VerifyError
from redactd.media.probe import Probe, probe
from redactd.metadata import bitstream, boxes, matroska
from redactd.metadata.findings import Finding

EXIFTOOL_ARGS = ["-ee3", "-a", "-u", "-G1", "-s"]

def _allow(reason: str, *tags: str) -> dict[str, str]:
    return dict.fromkeys(tags, reason)


# Tags that describe structure only, each with why it is not personal. Anything else exiftool
# finds fails the file: as personal when its name or group says so, else as unknown.
_ALLOWED: dict[str, dict[str, str]] = {
    "ExifTool": _allow("the reading tool's own version", "ExifToolVersion"),
    "System": _allow("the file system's view of the output we just wrote (its name is ours)",
                     "FileName", "Directory", "FileSize", "FileModifyDate", "FileAccessDate",
                     "FileInodeChangeDate", "FilePermissions"),
    "File": _allow("the detected file format", "FileType", "FileTypeExtension", "MIMEType"),
    "QuickTime": {
        **_allow("ftyp: the format brand FFmpeg's muxer writes", "MajorBrand", "MinorVersion",
                 "CompatibleBrands"),
        **_allow("mvhd: movie timing and playback defaults; dates are checked to be zero",
                 "MovieHeaderVersion", "CreateDate", "ModifyDate", "TimeScale", "Duration", "PreferredRate",
                 "PreferredVolume", "MatrixStructure", "PreviewTime", "PreviewDuration", "PosterTime",
                 "SelectionTime", "SelectionDuration", "CurrentTime", "NextTrackID"),
        **_allow("hdlr of the empty udta/meta FFmpeg writes ('mdir', 'appl')", "HandlerType",
                 "HandlerVendorID"),
        **_allow("free/wide: empty padding (checked to be empty)", "Free", "Wide"),
        **_allow("mdat: where the coded frames lie", "MediaDataSize", "MediaDataOffset", "MediaData"),
    },
    "Track": {
        **_allow("tkhd: track id, timing, layer, volume; dates are checked to be zero",
                 "TrackHeaderVersion", "TrackCreateDate", "TrackModifyDate", "TrackID", "TrackDuration",
                 "TrackLayer", "TrackVolume", "ImageWidth", "ImageHeight"),
        **_allow("tkhd display matrix: the display rotation phones record (90/180/270 degrees)",
                 "MatrixStructure"),
        **_allow("edts/elst: the edit list that maps media time to play time", "Unknown_edts"),
        **_allow("mdhd: media timing; language is 'und'", "MediaHeaderVersion", "MediaCreateDate",
                 "MediaModifyDate", "MediaTimeScale", "MediaDuration", "MediaLanguageCode"),
        **_allow("hdlr: the track kind; the name is checked to be FFmpeg's generic one", "HandlerType",
                 "HandlerDescription"),
        **_allow("vmhd/smhd: media header defaults", "GraphicsMode", "OpColor", "Balance"),
        **_allow("stsd sample entry: codec, picture size and depth", "CompressorID", "CompressorName",
                 "SourceImageWidth", "SourceImageHeight", "XResolution", "YResolution", "BitDepth"),
        **_allow("decoder configuration record; SEI in it is cut and checked by the bitstream scan",
                 "AVCConfiguration", "HEVCConfiguration", "AV1Configuration", "VPConfiguration",
                 "Unknown_vpcC", "Unknown_av1C", "Unknown_hvcC", "Unknown_esds", "Unknown_dOps",
                 "Unknown_dfLa", "Unknown_dac3", "Unknown_dec3"),
        **_allow("ALAC's decoder configuration (frame length, depth, channels, rate)", "Unknown_alac"),
        **_allow("colr (nclx/nclc): colour primaries, transfer (BT.709, HLG, PQ), matrix and range; "
                 "checked not to be an ICC profile", "ColorProfiles", "ColorRepresentation",
                 "ColorPrimaries", "TransferCharacteristics", "MatrixCoefficients", "VideoFullRangeFlag",
                 "Unknown_colr"),
        **_allow("pasp: pixel aspect ratio of anamorphic video", "PixelAspectRatio", "Unknown_pasp"),
        **_allow("clap: clean aperture, the displayed part of the coded picture", "CleanAperture",
                 "CleanApertureDimensions", "CleanApertureWidth", "CleanApertureHeight",
                 "CleanApertureOffsetX", "CleanApertureOffsetY", "Unknown_clap"),
        **_allow("fiel: field order of interlaced video (tff/bff)", "VideoFieldOrder", "Unknown_fiel"),
        **_allow("btrt: buffer size and bit rates of the stream", "BufferSize", "MaxBitrate",
                 "AverageBitrate", "Unknown_btrt"),
        **_allow("sample tables: where each coded frame lies, its size and when it plays",
                 "VideoFrameRate", "SyncSampleTable", "SampleToChunk", "SampleSizes", "ChunkOffset",
                 "ChunkOffset64", "TimeToSampleTable", "CompositionTimeToSample",
                 "CompositionToDecodeTimelineMapping", "IdependentAndDisposableSamples",
                 "SampleGroupDescription", "SampleToGroup", "Unknown_sgpd", "Unknown_sbgp",
                 "Unknown_ctts"),
        **_allow("audio sample entry: format, channels, depth, rate", "AudioFormat", "AudioChannels",
                 "AudioBitsPerSample", "AudioSampleRate", "OutputAudioSampleRate"),
        # Matroska track elements (exiftool puts them in the same TrackN groups)
        **_allow("Matroska TrackEntry: stream number, id, flags, codec and its configuration",
                 "TrackNumber", "TrackUID", "TrackLacing", "TrackLanguage", "TrackDefault", "TrackForced",
                 "CodecID", "CodecPrivate", "TrackType", "DefaultDuration", "CodecDelay", "SeekPreRoll",
                 "VideoCodecID", "MaxBlockAdditionID", "Matroska_0x16aa", "Matroska_0x16bb",
                 "Matroska_0x15ee"),
        **_allow("Matroska Video: coded and display size, scan type", "VideoScanType", "DisplayWidth",
                 "DisplayHeight", "DisplayUnit"),
        **_allow("Matroska PixelCrop: the displayed part of the coded picture (from MP4's clap)",
                 "CropBottom", "CropTop", "CropLeft", "CropRight"),
        **_allow("Matroska FieldOrder (0x9D): which field comes first in interlaced video",
                 "Matroska_0x001d"),
        **_allow("Matroska Colour (0x55B0): colour description, its children checked by the "
                 "element walk", "Matroska_0x15b0"),
        **_allow("Matroska Projection (0x7670): display rotation; the element walk refuses "
                 "ProjectionPrivate", "Matroska_0x3670"),
    },
    "Composite": _allow("derived by exiftool from the tags above", "ImageSize", "Megapixels",
                        "AvgBitrate", "Rotation"),
    "Matroska": {
        **_allow("EBML header: format name and versions", "EBMLVersion", "EBMLReadVersion",
                 "EBMLMaxIDLength", "EBMLMaxSizeLength", "DocType", "DocTypeVersion",
                 "DocTypeReadVersion"),
        **_allow("segment Info: time scale, duration; the muxer name is checked to be bare 'Lavf'",
                 "TimecodeScale", "MuxingApp", "WritingApp", "Duration"),
        **_allow("track elements as older exiftool groups them", "TrackNumber", "TrackUID",
                 "TrackType", "TrackLanguage", "TrackLanguageIETF", "CodecID", "CodecPrivate",
                 "DefaultDuration", "VideoFrameRate", "ImageWidth", "ImageHeight", "DisplayWidth",
                 "DisplayHeight", "DisplayUnit", "VideoScanType", "AudioChannels", "AudioSampleRate",
                 "AudioBitsPerSample", "CodecDelay", "SeekPreRoll", "TrackUsed", "TrackDefault",
                 "TrackForced", "TrackLacing", "MinCache", "MaxBlockAdditionID", "CodecDecodeAll",
                 "TrackOverlay"),
        **_allow("colour description", "ColourRange", "ColourPrimaries", "TransferCharacteristics",
                 "MatrixCoefficients", "ChromaSitingHorz", "ChromaSitingVert", "HorizontalChromaSiting",
                 "VerticalChromaSiting"),
        **_allow("FFmpeg's per-stream DURATION tag (name checked)", "TagName", "TagString", "TagTrackUID"),
        **_allow("checksums, seek head and cues: indexes into the file", "CRC-32", "SeekID",
                 "SeekPosition", "CueTime", "CueTrack", "CueClusterPosition", "CueRelativePosition",
                 "Matroska_0x0070"),
    },
}
_PERSONAL_GROUPS = re.compile(
    r"^(UserData|Keys|ItemList|XMP.*|GPS|IFD\d|ExifIFD|SubIFD|InteropIFD|MakerNotes|Apple|GoPro|Canon.*|"
    r"Nikon.*|Sony.*|Panasonic.*|FujiFilm|Olympus|Samsung|Microsoft|ID3.*|MIE.*|IPTC|Photoshop|ICC.*|"
    r"JFIF|MPF\d*|DJI|Insta360|CameraInfo|Preview|Real.*|Parrot|Kenwood|Garmin|Vivitar|Track\d+UserData)$"
)
_PERSONAL_TAGS = re.compile(
    r"(GPS|Location|Latitude|Longitude|Altitude|Make|Model|Serial|Author|Artist|Creator|Title|Comment|"
    r"Description|Copyright|Keyword|Software|Encoder|Owner|Name|Lens|Camera|Firmware|Face|Person|Album|"
    r"Genre|Rating|Contributor|Publisher|Credit|Subject|Thumbnail|Preview|Accelerometer|Gyro|Telemetry|"
    r"Text|Information|Date|CreationTime|Address|City|Country|Note|Chapter|Subtitle|Cover|Picture)", re.IGNORECASE)
_MP4_WHERE = {"QuickTime": "moov (movie header)", "UserData": "a udta user-data box",
              "Keys": "moov/meta/keys (Apple metadata keys)", "ItemList": "udta/meta/ilst (iTunes list)"}
# Values that must be empty/zero even where the tag itself is structural.
_ZERO_DATES = {"CreateDate", "ModifyDate", "TrackCreateDate", "TrackModifyDate", "MediaCreateDate",
               "MediaModifyDate"}
_HANDLERS = {"VideoHandler", "SoundHandler", ""}
_MKV_APPS = re.compile(r"^Lavf[\d.]*$")
# Matroska's muxer writes one structural tag per stream: its duration.
_MKV_TAGS = {"DURATION"}
_LINE = re.compile(r"^\[(?P<group>[^\]]+)\]\s+(?P<tag>\S+)\s*:\s?(?P<value>.*)$")

_ALLOWED_STREAM_TAGS = {"handler_name", "vendor_id", "language", "DURATION"}
_ALLOWED_FORMAT_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder"}


def exiftool_tags(path: Path) -> list[tuple[str, str, str]]:
    """(group, tag, value) for every tag exiftool reports, embedded data included."""
    # pyexiftool adds -G -n by default; we want family-1 groups and printed values. latin-1
    # never fails on the binary junk a hostile file can put into a tag value.
    with exiftool.ExifTool(common_args=[], encoding="latin-1") as et:
        text = et.execute(*EXIFTOOL_ARGS, str(path))
    return [(m["group"], m["tag"], m["value"].strip()) for m in map(_LINE.match, text.splitlines()) if m]


def exiftool_findings(path: Path, tags: list[tuple[str, str, str]] | None = None) -> list[Finding]:
    """Every exiftool tag outside the structural allow-list, with where it sits."""
    findings = []
    container = "matroska" if matroska.is_matroska(path) else "mp4"
    for group, tag, value in exiftool_tags(path) if tags is None else tags:
        why = tag_problem(group, tag, value)
        if why is not None:
            findings.append(tag_finding(group, tag, value, why, container))
    return findings


def allow_reason(group: str, tag: str) -> str | None:
    """Why a tag is let through (the allow-list's one-line reason), or None when it is not."""
    family = "Track" if re.fullmatch(r"Track\d+", group) else group
    return _ALLOWED.get(family, {}).get(tag)


def tag_problem(group: str, tag: str, value: str) -> str | None:
    """None when the tag is plain structure, else a (possibly empty) explanation suffix."""
    if allow_reason(group, tag) is None:
        if group == "ExifTool" and tag == "Warning":
            return " (exiftool could not parse the file cleanly)"
        return ""
    if tag in _ZERO_DATES and not value.startswith("0000:00:00"):
        return " (a real date)"
    if tag == "HandlerDescription" and value not in _HANDLERS:
        return " (a custom handler name)"
    if tag in ("MuxingApp", "WritingApp") and not _MKV_APPS.match(value):
        return " (not the bare muxer name)"
    if tag == "TagName" and value not in _MKV_TAGS:
        return " (a Matroska tag other than DURATION)"
    if tag in ("Free", "Wide") and not value.startswith("(Binary data 0 bytes"):
        return " (free space with content)"
    if tag == "ColorProfiles" and value not in ("nclx", "nclc"):
        return " (an embedded ICC profile, not a parametric colour description)"
    return None


def tag_finding(group: str, tag: str, value: str, why: str, container: str = "mp4") -> Finding:
    """One exiftool tag the allow-list refused: is it personal or merely unknown, and where is it."""
    problem = why.strip(" ()")
    allowed = allow_reason(group, tag) is not None
    personal = (bool(_PERSONAL_GROUPS.match(group)) or bool(_PERSONAL_TAGS.search(tag))
                or (allowed and "free space" not in problem))
    if problem.startswith("exiftool could not"):
        personal = False
    track = re.fullmatch(r"Track(\d+)", group)
    where = f"exiftool group {group}"
    element = f"{group}:{tag}"
    if container == "matroska":
        where = f"Segment/Tracks/TrackEntry[{track[1]}]" if track else "Segment"
        unknown = re.fullmatch(r"Matroska_0x([0-9a-fA-F]+)", tag)
        if unknown:
            element_id = matroska.from_exiftool(int(unknown[1], 16))
            element += f" (Matroska element 0x{element_id:X} {matroska.name_of(element_id)})"
    elif track:
        where = f"moov/trak[{track[1]}]"
    elif group in _MP4_WHERE:
        where = _MP4_WHERE[group]
    elif group.startswith("XMP"):
        where = "an XMP packet (uuid or udta/XMP_ box)"
    return Finding(element, where, personal, "exiftool", problem)


def ffprobe_findings(path: Path, expect_video: int, expect_audio: int, info: Probe | None = None) -> list[Finding]:
    info = info or probe(path)
    findings: list[Finding] = []

    def found(element: str, where: str, personal: bool, detail: str = "") -> None:
        findings.append(Finding(element, where, personal, "ffprobe", detail))

    video = [s for s in info.streams if s.kind == "video"]
    audio = [s for s in info.streams if s.kind == "audio"]
    others = [s for s in info.streams if s.kind not in ("video", "audio")]
    if len(video) != expect_video:
        found(f"{len(video)} video stream(s), expected {expect_video}", "the container", False)
    for s in video:
        if s.attached_pic:
            found("cover art / attached picture stream", f"stream #{s.index}", True)
    if len(audio) != expect_audio:
        found(f"{len(audio)} audio stream(s), expected {expect_audio}", "the container", False)
    for s in others:
        found(f"extra {s.kind} stream ({s.codec})", f"stream #{s.index}", True)
    if info.chapters:
        found(f"{info.chapters} chapter(s)", "the container", True)
    for k in info.tags:
        if k not in _ALLOWED_FORMAT_TAGS:
            found(f"format tag {k}", "the container", True)
    if info.tags.get("encoder", "").strip() not in ("", "Lavf") and not info.tags["encoder"].startswith("Lavf"):
        found("format tag encoder", "the container", True, "not the bare muxer name")
    for s in info.streams:
        for k, v in s.tags.items():
            if k not in _ALLOWED_STREAM_TAGS:
                found(f"stream tag {k}", f"stream #{s.index}", True)
            elif k == "handler_name" and v not in _HANDLERS:
                found("custom handler name", f"stream #{s.index}", True)
            elif k == "language" and v != "und":
                found("language tag", f"stream #{s.index}", True)
    return findings


def all_findings(path: Path, expect_video: int = 1, expect_audio: int = 0) -> list[Finding]:
    """Everything the five looks find that is not structure, pictures or sound."""
    findings = ffprobe_findings(path, expect_video, expect_audio)
    findings += boxes.findings(path)
    findings += matroska.findings(path)
    findings += bitstream.findings(path)
    findings += exiftool_findings(path)
    return findings


def refusal(findings: list[Finding]) -> VerifyError:
    personal = sum(f.personal for f in findings)
    return VerifyError(f"output still carries metadata; refusing it ({personal} personal, "
                       f"{len(findings) - personal} unknown)", [str(f) for f in findings])


def verify_clean(path: Path, expect_video: int = 1, expect_audio: int = 0) -> None:
    """Raise VerifyError listing everything found that is not structure, pictures or sound.

    Each finding says what it is, where it sits and whether it is personal or merely unknown.
    """
    findings = all_findings(path, expect_video, expect_audio)
    if findings:
        raise refusal(findings)
