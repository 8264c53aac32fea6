"""Walk a Matroska/WebM file's EBML tree; report every element that is not known structure.

The allow-list below is every element FFmpeg's Matroska muxer writes for a clean stream, each
with why it is not personal. Elements known to carry personal data are named as such; anything
else is unknown and fails the file closed too, with its element path, so an operator can tell a
privacy failure from a gap in this list.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from redactd.metadata.findings import Finding

_EBML_MAGIC = b"\x1a\x45\xdf\xa3"

#: id: (name, why it is not personal). Masters are descended into.
STRUCTURE: dict[int, tuple[str, str]] = {
    0x1A45DFA3: ("EBML", "file header: format name and versions"),
    0x4286: ("EBMLVersion", "format version"),
    0x42F7: ("EBMLReadVersion", "format version a reader needs"),
    0x42F2: ("EBMLMaxIDLength", "parser limit"),
    0x42F3: ("EBMLMaxSizeLength", "parser limit"),
    0x4282: ("DocType", "'matroska' or 'webm'"),
    0x4287: ("DocTypeVersion", "format version"),
    0x4285: ("DocTypeReadVersion", "format version a reader needs"),
    0x18538067: ("Segment", "the one top-level container of the file"),
    0xEC: ("Void", "reserved space the muxer fills with zeros (checked)"),
    0xBF: ("CRC-32", "checksum of its parent"),
    0x114D9B74: ("SeekHead", "index of the file's top-level elements"),
    0x4DBB: ("Seek", "one index entry"),
    0x53AB: ("SeekID", "the id of an indexed element"),
    0x53AC: ("SeekPosition", "its byte offset"),
    0x1549A966: ("Info", "segment facts: time scale, duration, muxer"),
    0x2AD7B1: ("TimestampScale", "time unit"),
    0x4489: ("Duration", "length of the clip"),
    0x4D80: ("MuxingApp", "'Lavf' with bitexact: the muxer's bare name (checked by exiftool)"),
    0x5741: ("WritingApp", "'Lavf' with bitexact (checked by exiftool)"),
    0x1654AE6B: ("Tracks", "the list of streams"),
    0xAE: ("TrackEntry", "one stream's decoding setup"),
    0xD7: ("TrackNumber", "stream number"),
    0x73C5: ("TrackUID", "per-file stream id; bitexact makes it the track number"),
    0x9C: ("FlagLacing", "packing of frames into blocks"),
    0x22B59C: ("Language", "'und' (checked by ffprobe)"),
    0x22B59D: ("LanguageIETF", "'und' (checked by ffprobe)"),
    0x88: ("FlagDefault", "playback default flag"),
    0x55AA: ("FlagForced", "playback forced flag"),
    0x86: ("CodecID", "codec name"),
    0x63A2: ("CodecPrivate", "decoder configuration (avcC/hvcC/...: SEI in it is cut and checked)"),
    0x83: ("TrackType", "video or audio"),
    0x23E383: ("DefaultDuration", "frame duration"),
    0x56AA: ("CodecDelay", "audio decoder delay"),
    0x56BB: ("SeekPreRoll", "audio decoder pre-roll"),
    0x55EE: ("MaxBlockAdditionID", "how many per-block additions exist (0; additions themselves are refused)"),
    0xE0: ("Video", "picture setup"),
    0x9A: ("FlagInterlaced", "progressive or interlaced coding"),
    0x9D: ("FieldOrder", "which field comes first in interlaced video (tff/bff)"),
    0xB0: ("PixelWidth", "coded width"),
    0xBA: ("PixelHeight", "coded height"),
    0x54B0: ("DisplayWidth", "display width: pixel aspect ratio"),
    0x54BA: ("DisplayHeight", "display height: pixel aspect ratio"),
    0x54B2: ("DisplayUnit", "unit of the display size"),
    0x54AA: ("PixelCropBottom", "crop: display window of the coded picture"),
    0x54BB: ("PixelCropTop", "crop"),
    0x54CC: ("PixelCropLeft", "crop"),
    0x54DD: ("PixelCropRight", "crop"),
    0x53B8: ("StereoMode", "3D layout of the picture"),
    0x53C0: ("AlphaMode", "whether blocks carry an alpha plane"),
    0x2383E3: ("FrameRate", "nominal frame rate"),
    0x55B0: ("Colour", "colour description"),
    0x55B1: ("MatrixCoefficients", "YUV matrix (BT.709, BT.2020...)"),
    0x55B2: ("BitsPerChannel", "sample depth"),
    0x55B3: ("ChromaSubsamplingHorz", "chroma layout"),
    0x55B4: ("ChromaSubsamplingVert", "chroma layout"),
    0x55B5: ("CbSubsamplingHorz", "chroma layout"),
    0x55B6: ("CbSubsamplingVert", "chroma layout"),
    0x55B7: ("ChromaSitingHorz", "chroma sample position"),
    0x55B8: ("ChromaSitingVert", "chroma sample position"),
    0x55B9: ("Range", "full or limited range"),
    0x55BA: ("TransferCharacteristics", "transfer curve (BT.709, HLG, PQ)"),
    0x55BB: ("Primaries", "colour primaries"),
    0x55BC: ("MaxCLL", "HDR content light level"),
    0x55BD: ("MaxFALL", "HDR frame-average light level"),
    0x55D0: ("MasteringMetadata", "HDR mastering display colour volume"),
    **{i: (f"Mastering{n}", "a mastering display's chromaticity or luminance") for i, n in zip(
        range(0x55D1, 0x55DB),
        ("PrimaryRX", "PrimaryRY", "PrimaryGX", "PrimaryGY", "PrimaryBX", "PrimaryBY", "WhitePointX",
         "WhitePointY", "LuminanceMax", "LuminanceMin"), strict=True)},
    0x7670: ("Projection", "display rotation, as FFmpeg writes a display matrix"),
    0x7671: ("ProjectionType", "0: a flat picture (others are checked to carry no private data)"),
    0x7673: ("ProjectionPoseYaw", "rotation angle"),
    0x7674: ("ProjectionPosePitch", "rotation angle"),
    0x7675: ("ProjectionPoseRoll", "rotation angle: the display rotation"),
    0xE1: ("Audio", "sound setup"),
    0xB5: ("SamplingFrequency", "sample rate"),
    0x78B5: ("OutputSamplingFrequency", "playback rate (AAC SBR)"),
    0x9F: ("Channels", "channel count"),
    0x6264: ("BitDepth", "sample depth"),
    0x1254C367: ("Tags", "FFmpeg's per-stream DURATION tag only (checked by exiftool and ffprobe)"),
    0x7373: ("Tag", "one tag"),
    0x63C0: ("Targets", "what a tag is about"),
    0x63C5: ("TagTrackUID", "the stream a tag is about"),
    0x68CA: ("TargetTypeValue", "tag level"),
    0x67C8: ("SimpleTag", "name and value; only DURATION is let through"),
    0x45A3: ("TagName", "'DURATION' (checked)"),
    0x4487: ("TagString", "the stream's duration (checked by name)"),
    0x447A: ("TagLanguage", "tag language"),
    0x4484: ("TagDefault", "tag default flag"),
    0x1C53BB6B: ("Cues", "seek index"),
    0xBB: ("CuePoint", "one seek point"),
    0xB3: ("CueTime", "its time"),
    0xB7: ("CueTrackPositions", "its position"),
    0xF7: ("CueTrack", "stream number"),
    0xF1: ("CueClusterPosition", "byte offset"),
    0xF0: ("CueRelativePosition", "byte offset in the cluster"),
    0xB2: ("CueDuration", "duration"),
    0x5378: ("CueBlockNumber", "block number"),
    0x1F43B675: ("Cluster", "a run of coded frames"),
    0xE7: ("Timestamp", "the cluster's start time"),
    0xA7: ("Position", "the cluster's byte offset"),
    0xAB: ("PrevSize", "the previous cluster's size"),
    0xA3: ("SimpleBlock", "a coded frame (its in-band user data is cut and checked)"),
    0xA0: ("BlockGroup", "a coded frame with timing"),
    0xA1: ("Block", "a coded frame (its in-band user data is cut and checked)"),
    0x9B: ("BlockDuration", "frame duration"),
    0xFB: ("ReferenceBlock", "frame dependency"),
    0x75A2: ("DiscardPadding", "audio samples to drop at the end"),
}
#: Elements that exist to hold personal data (or content beyond picture and sound).
PERSONAL: dict[int, str] = {
    0x7BA9: "Title", 0x536E: "Name (track name)", 0x4461: "DateUTC", 0x73A4: "SegmentUUID",
    0x1043A770: "Chapters", 0x1941A469: "Attachments", 0x75A1: "BlockAdditions",
    0x7672: "ProjectionPrivate",
    0x7384: "SegmentFilename", 0x3CB923: "PrevUID", 0x3EB923: "NextUID", 0x258688: "CodecName",
    0x6624: "TrackTranslate", 0x2EB524: "ColourSpace", 0x53B9: "OldStereoMode",
}
_MASTERS = {0x1A45DFA3, 0x18538067, 0x114D9B74, 0x4DBB, 0x1549A966, 0x1654AE6B, 0xAE, 0xE0, 0x55B0, 0x55D0,
            0x7670, 0xE1, 0x1254C367, 0x7373, 0x63C0, 0x67C8, 0x1C53BB6B, 0xBB, 0xB7, 0x1F43B675, 0xA0}


def name_of(element_id: int) -> str:
    if element_id in STRUCTURE:
        return STRUCTURE[element_id][0]
    return PERSONAL.get(element_id, f"0x{element_id:X}")


def from_exiftool(number: int) -> int:
    """The element id exiftool names ``Matroska_0x<number>`` (it drops the length marker bit)."""
    for length in range(1, 5):
        marker = 1 << (7 * length)
        if number < marker:
            return number | marker
    return number


def is_matroska(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == _EBML_MAGIC


def _vint(fh: BinaryIO, keep_marker: bool) -> tuple[int, int] | None:
    """(value, length) of one EBML variable-length integer; None at the end or on a bad one."""
    first = fh.read(1)
    if not first:
        return None
    length = 8 - first[0].bit_length() + 1
    if length > 8:
        return None
    rest = fh.read(length - 1)
    if len(rest) != length - 1:
        return None
    value = int.from_bytes(first + rest, "big")
    if not keep_marker:
        value &= (1 << (7 * length)) - 1
        if value == (1 << (7 * length)) - 1:
            value = -1  # unknown size
    return value, length


def findings(path: Path) -> list[Finding]:
    """Every element outside the structural allow-list, with its element path. Empty for non-Matroska."""
    out: list[Finding] = []
    if not is_matroska(path):
        return out
    size = path.stat().st_size
    with open(path, "rb") as fh:
        _walk(fh, 0, size, "", out, top=True)
    return out


def _finding(element: str, where: str, personal: bool, detail: str = "") -> Finding:
    return Finding(element, where or "the top level", personal, "matroska", detail)


def _walk(fh: BinaryIO, start: int, end: int, path: str, out: list[Finding], top: bool = False) -> None:
    pos = start
    while pos < end:
        fh.seek(pos)
        head = _vint(fh, keep_marker=True)
        size_field = _vint(fh, keep_marker=False) if head else None
        if head is None or size_field is None:
            out.append(_finding(f"{end - pos} unparsable byte(s)", path, False,
                                "trailing data after the last element" if top else f"at offset {pos}"))
            return
        element_id, size = head[0], size_field[0]
        data = pos + head[1] + size_field[1]
        name = name_of(element_id)
        here = f"{path}/{name}" if path else name
        if size < 0 or data + size > end:
            out.append(_finding(f"element {name}", here, False,
                                "of unknown size" if size < 0 else "runs past its parent"))
            return
        if element_id in PERSONAL:
            out.append(_finding(f"element {name}", here, True))
        elif element_id not in STRUCTURE:
            out.append(_finding(f"element 0x{element_id:X}", here, False, "not a known structural element"))
        elif top and element_id not in (0x1A45DFA3, 0x18538067):
            out.append(_finding(f"element {name}", here, False, "outside the segment"))
        elif element_id in _MASTERS:
            _walk(fh, data, data + size, here, out)
        else:
            _check_value(fh, element_id, data, size, here, out)
        pos = data + size


def _check_value(fh: BinaryIO, element_id: int, data: int, size: int, where: str, out: list[Finding]) -> None:
    if element_id == 0xEC:
        fh.seek(data)
        if fh.read(size).strip(b"\x00"):
            out.append(_finding("element Void with content", where, False, "reserved space should be zeros"))
    elif element_id == 0x45A3:
        fh.seek(data)
        if fh.read(min(size, 64)).rstrip(b"\x00") != b"DURATION":
            out.append(_finding("a tag other than DURATION", where, True))
    elif element_id == 0x7671:
        fh.seek(data)
        if int.from_bytes(fh.read(size), "big") != 0:
            out.append(_finding("a projection other than a flat picture", where, False,
                                "360-degree layouts are not checked"))
