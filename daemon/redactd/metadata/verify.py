"""Fail-closed check that a cleaned file carries nothing but structure, pictures and sound.

Four independent looks, each enough to fail the file:
  1. exiftool (through pyexiftool, with embedded-data extraction) — any tag outside a short
     allow-list of structural tags;
  2. ffprobe — any stream, chapter or tag that should not be there;
  3. the MP4/QuickTime box tree — udta/meta with content, uuid/XMP boxes, free/skip boxes with
     payload, trailing bytes after the last box;
  4. the coded bitstream and its configuration record (avcC/hvcC/av1C) — any SEI NAL unit or
     AV1 metadata OBU.
"""

from __future__ import annotations

import re
from pathlib import Path

import exiftool

from redactd.errors import VerifyError
from redactd.media.probe import Probe, probe
from redactd.metadata import bitstream, boxes

EXIFTOOL_ARGS = ["-ee3", "-a", "-u", "-G1", "-s"]

# Tags that describe structure only. Anything else exiftool finds fails the file.
_ALLOWED = {
    "ExifTool": {"ExifToolVersion"},
    "System": {"FileName", "Directory", "FileSize", "FileModifyDate", "FileAccessDate",
               "FileInodeChangeDate", "FilePermissions"},
    "File": {"FileType", "FileTypeExtension", "MIMEType"},
    "QuickTime": {"MajorBrand", "MinorVersion", "CompatibleBrands", "MovieHeaderVersion", "CreateDate",
                  "ModifyDate", "TimeScale", "Duration", "PreferredRate", "PreferredVolume",
                  "MatrixStructure", "PreviewTime", "PreviewDuration", "PosterTime", "SelectionTime",
                  "SelectionDuration", "CurrentTime", "NextTrackID", "HandlerType", "HandlerVendorID",
                  "Free", "MediaDataSize", "MediaDataOffset", "MediaData"},
    "Track": {"TrackHeaderVersion", "TrackCreateDate", "TrackModifyDate", "TrackID", "TrackDuration",
              "TrackLayer", "TrackVolume", "MatrixStructure", "ImageWidth", "ImageHeight", "Unknown_edts",
              "MediaHeaderVersion", "MediaCreateDate", "MediaModifyDate", "MediaTimeScale",
              "MediaDuration", "MediaLanguageCode", "HandlerType", "HandlerDescription", "GraphicsMode",
              "OpColor", "CompressorID", "CompressorName", "SourceImageWidth", "SourceImageHeight",
              "XResolution", "YResolution", "BitDepth", "AVCConfiguration", "HEVCConfiguration",
              "AV1Configuration", "VPConfiguration", "Unknown_vpcC", "Unknown_av1C", "Unknown_hvcC",
              "PixelAspectRatio", "BufferSize", "MaxBitrate",
              "AverageBitrate", "VideoFrameRate", "SyncSampleTable", "SampleToChunk", "SampleSizes",
              "ChunkOffset", "ChunkOffset64", "TimeToSampleTable", "CompositionTimeToSample",
              "CompositionToDecodeTimelineMapping", "IdependentAndDisposableSamples", "Balance",
              "AudioFormat", "AudioChannels", "AudioBitsPerSample", "AudioSampleRate", "Unknown_esds",
              "Unknown_btrt", "Unknown_dOps", "Unknown_dfLa", "Unknown_dac3", "Unknown_dec3",
              "Unknown_alac",  # ALAC's decoder configuration (frame length, depth, channels, rate)
              "OutputAudioSampleRate",  # Matroska's playback rate of AAC (SBR) audio
              "SampleGroupDescription", "SampleToGroup", "ColorRepresentation", "ColorPrimaries",
              "TransferCharacteristics", "MatrixCoefficients", "VideoFullRangeFlag", "Unknown_colr",
              "VideoFieldOrder",
              # Matroska track elements
              "TrackNumber", "TrackUID", "TrackLacing", "TrackLanguage", "TrackDefault", "TrackForced",
              "CodecID", "CodecPrivate", "TrackType", "VideoScanType", "DefaultDuration", "DisplayWidth",
              "DisplayHeight", "DisplayUnit", "Matroska_0x15b0", "Matroska_0x16aa", "Matroska_0x16bb",
              "Matroska_0x55ee", "CodecDelay", "SeekPreRoll", "VideoCodecID", "MaxBlockAdditionID",
              "Unknown_pasp", "Unknown_fiel", "Unknown_sgpd", "Unknown_sbgp", "Unknown_ctts"},
    "Composite": {"ImageSize", "Megapixels", "AvgBitrate", "Rotation"},
    "Matroska": {"EBMLVersion", "EBMLReadVersion", "EBMLMaxIDLength", "EBMLMaxSizeLength", "DocType",
                 "DocTypeVersion", "DocTypeReadVersion", "TimecodeScale", "MuxingApp", "WritingApp",
                 "Duration", "TrackNumber", "TrackUID", "TrackType", "TrackLanguage", "TrackLanguageIETF",
                 "CodecID", "CodecPrivate", "DefaultDuration", "VideoFrameRate", "ImageWidth",
                 "ImageHeight", "DisplayWidth", "DisplayHeight", "DisplayUnit", "VideoScanType",
                 "AudioChannels", "AudioSampleRate", "AudioBitsPerSample", "CodecDelay", "SeekPreRoll",
                 "TagName", "TagString", "TrackUsed", "TrackDefault", "TrackForced", "TrackLacing",
                 "MinCache", "MaxBlockAdditionID", "CodecDecodeAll", "TrackOverlay",
                 "ColourRange", "ColourPrimaries", "TransferCharacteristics", "MatrixCoefficients",
                 "ChromaSitingHorz", "ChromaSitingVert", "HorizontalChromaSiting", "VerticalChromaSiting",
                 "CRC-32", "SeekID", "SeekPosition", "CueTime", "CueTrack", "CueClusterPosition",
                 "CueRelativePosition", "Matroska_0x0070", "TagTrackUID"},
}
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


def exiftool_findings(path: Path, tags: list[tuple[str, str, str]] | None = None) -> list[str]:
    """Every exiftool tag outside the structural allow-list, as 'Group:Tag (why)'."""
    findings = []
    for group, tag, value in exiftool_tags(path) if tags is None else tags:
        why = tag_problem(group, tag, value)
        if why is not None:
            findings.append(f"{group}:{tag}{why}")
    return findings


def tag_problem(group: str, tag: str, value: str) -> str | None:
    """None when the tag is plain structure, else a (possibly empty) explanation suffix."""
    family = "Track" if re.fullmatch(r"Track\d+", group) else group
    if tag not in _ALLOWED.get(family, set()):
        if family == "ExifTool" and tag == "Warning":
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
    if tag == "Free" and not value.startswith("(Binary data 0 bytes"):
        return " (free space with content)"
    return None


def ffprobe_findings(path: Path, expect_video: int, expect_audio: int, info: Probe | None = None) -> list[str]:
    info = info or probe(path)
    findings = []
    video = [s for s in info.streams if s.kind == "video"]
    audio = [s for s in info.streams if s.kind == "audio"]
    others = [s for s in info.streams if s.kind not in ("video", "audio")]
    if len(video) != expect_video:
        findings.append(f"ffprobe: {len(video)} video stream(s), expected {expect_video}")
    if any(s.attached_pic for s in video):
        findings.append("ffprobe: cover art / attached picture stream")
    if len(audio) != expect_audio:
        findings.append(f"ffprobe: {len(audio)} audio stream(s), expected {expect_audio}")
    findings += [f"ffprobe: extra {s.kind} stream #{s.index} ({s.codec})" for s in others]
    if info.chapters:
        findings.append(f"ffprobe: {info.chapters} chapter(s)")
    findings += [f"ffprobe: format tag {k}" for k in info.tags if k not in _ALLOWED_FORMAT_TAGS]
    if info.tags.get("encoder", "").strip() not in ("", "Lavf") and not info.tags["encoder"].startswith("Lavf"):
        findings.append("ffprobe: format tag encoder (not the bare muxer name)")
    for s in info.streams:
        for k, v in s.tags.items():
            if k not in _ALLOWED_STREAM_TAGS:
                findings.append(f"ffprobe: stream #{s.index} tag {k}")
            elif k == "handler_name" and v not in _HANDLERS:
                findings.append(f"ffprobe: stream #{s.index} custom handler name")
            elif k == "language" and v != "und":
                findings.append(f"ffprobe: stream #{s.index} language tag")
    return findings


def verify_clean(path: Path, expect_video: int = 1, expect_audio: int = 0) -> None:
    """Raise VerifyError listing everything found that is not structure, pictures or sound."""
    findings = ffprobe_findings(path, expect_video, expect_audio)
    findings += boxes.findings(path)
    findings += bitstream.findings(path)
    findings += exiftool_findings(path)
    if findings:
        raise VerifyError("output still carries metadata; refusing it", findings)
