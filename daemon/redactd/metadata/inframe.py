"""In-frame data of every codec the lossless path handles: find it, name it, cut it exactly.

- H.264 / HEVC: SEI NAL units; AV1: metadata OBUs (see `nal`).
- MPEG-4 Part 2 and MPEG-2: user-data segments (start code 00 00 01 B2), where encoders and
  cameras write their names, versions and settings, in the stream header and in any frame.
- Motion JPEG: per-frame APPn and COM segments (EXIF with maker notes and GPS, thumbnails, XMP,
  ICC profiles, MPF extra images) and any bytes after the picture's end marker. What decoding
  needs stays: the JFIF/AVI1 APP0 (pixel density, field order; a JFIF thumbnail is dropped
  from it) and Adobe's APP14 (which colour transform the planes use).

None of these carries picture data, so cutting them keeps the decoded frames bit-exact. Where a
decoder does read them (FFmpeg picks bug workarounds and an IDCT from MPEG-4 user data that
names XviD or DivX), the cleaner compares decoded frames before it keeps the output.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from redactd.metadata.nal import FILTERABLE, PacketFilter, clean_config_record, config_record_units, nal_type

#: Codecs whose frames carry user data that is cut out exactly.
CUTTABLE = FILTERABLE | {"mpeg4", "mpeg2video", "mjpeg"}
#: Codecs with MPEG-style start codes whose user data (00 00 01 B2) is cut: MPEG-4 Part 2 and
#: MPEG-2 (DVD and HDV camcorders; its user data also holds closed captions and bar data).
START_CODE_CODECS = {"mpeg4", "mpeg2video"}
#: Codecs whose frames carry data that cannot be cut out without re-encoding: DV's VAUX packs
#: (recording date and time, camera settings) sit in fixed places inside every DIF block, and
#: ProRes frame headers carry an encoder identifier; neither has a bit-exact way out.
UNCUTTABLE = {
    "dvvideo": "DV frames carry VAUX packs with the recording date and time in every DIF sequence",
    "prores": "ProRes frame headers carry the encoder's vendor identifier in every frame",
}

_SEI_TYPES = {0: "buffering period", 1: "picture timing", 4: "registered user data (T.35)",
              5: "unregistered user data", 6: "recovery point", 45: "frame packing", 47: "display orientation",
              129: "active parameter sets", 137: "mastering display colour volume",
              144: "content light level", 147: "alternative transfer characteristics"}


def sei_payload_types(codec: str, unit: bytes | memoryview) -> list[int]:
    """The payload types of the SEI messages in one SEI NAL unit (emulation prevention removed)."""
    raw = bytes(unit)[1 if codec == "h264" else 2:].replace(b"\x00\x00\x03", b"\x00\x00")
    types, pos = [], 0
    while pos < len(raw) and raw[pos:] != b"\x80":
        value = 0
        while pos < len(raw) and raw[pos] == 0xFF:
            value, pos = value + 255, pos + 1
        if pos >= len(raw):
            break
        value, pos = value + raw[pos], pos + 1
        size = 0
        while pos < len(raw) and raw[pos] == 0xFF:
            size, pos = size + 255, pos + 1
        if pos >= len(raw):
            break
        size, pos = size + raw[pos], pos + 1
        types.append(value)
        pos += size
    return types


def _nal_kinds(codec: str, units: Sequence[tuple[int, bytes | memoryview]], types: frozenset[int]) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for t, unit in units:
        if t not in types:
            continue
        if codec == "av1":
            kinds["metadata OBU"] += 1
            continue
        payloads = sei_payload_types(codec, unit) or [-1]
        for p in payloads:
            kinds[f"SEI {_SEI_TYPES.get(p, f'type {p}')}"] += 1
    return kinds


# --------------------------------------------------------------------------- MPEG-4 Part 2

def _start_code_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(code, start, end) of each start-code segment; code -1 for bytes before the first."""
    out, pos = [], data.find(b"\x00\x00\x01")
    if pos != 0:
        out.append((-1, 0, len(data) if pos < 0 else pos))
    while 0 <= pos < len(data) - 3:
        nxt = data.find(b"\x00\x00\x01", pos + 4)
        end = len(data) if nxt < 0 else nxt
        out.append((data[pos + 3], pos, end))
        pos = nxt
    return out


#: User data that is nothing but an encoder's build tag, which FFmpeg's decoder reads to choose its
#: IDCT and bug workarounds (XviD's, DivX's, old libavcodec's): cutting it changes the decoded
#: pictures. A version number of an encoder is not personal; anything longer or else is cut.
DECODER_BUILD_TAG = re.compile(rb"(XviD\d{1,6}|DivX\d{1,4}(Build\d{1,6}|b\d{1,6})p?|Lavc\d+\.\d+\.\d+|"
                               rb"FFmpe?g?\d*b\d{1,6})\x00*")


def mpeg4_cut(data: bytes) -> tuple[bytes, Counter[str]]:
    """``data`` without its user-data segments (00 00 01 B2 up to the next start code), except
    a bare encoder build tag that the decoder needs (`DECODER_BUILD_TAG`)."""
    kinds: Counter[str] = Counter()
    kept = []
    for code, start, end in _start_code_segments(data):
        if code == 0xB2 and not DECODER_BUILD_TAG.fullmatch(data[start + 4:end]):
            kinds["user data (00 00 01 B2)"] += 1
        else:
            kept.append(data[start:end])
    return (b"".join(kept), kinds) if kinds else (data, kinds)


# --------------------------------------------------------------------------- Motion JPEG

_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_NO_LENGTH = {0x01, *range(0xD0, 0xD8)}  # TEM, RSTn: markers without a length field
#: The end of a scan: a marker other than a stuffed FF 00, a restart marker or a fill byte.
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def _app_kind(marker: int, body: bytes) -> str:
    if marker == 0xFE:
        return "COM comment"
    ident = body[:body.find(b"\x00")] if b"\x00" in body[:32] else body[:8]
    label = ident.decode("latin-1", "replace").strip() or "no identifier"
    return f"APP{marker - 0xE0} ({label})"


def _keep_app(marker: int, body: bytes) -> bytes | None:
    """The segment body to keep for an APPn, or None to cut it."""
    if marker == 0xE0 and body[:5] == b"JFIF\x00" and len(body) >= 14:
        return body[:12] + b"\x00\x00"  # version, density; thumbnail dropped (0x0)
    if marker == 0xE0 and body[:4] == b"AVI1":
        return body  # field polarity of interlaced MJPEG: the decoder needs it
    if marker == 0xEE and body[:5] == b"Adobe" and len(body) == 12:
        return body  # colour transform of the planes: the decoder needs it
    return None


def jpeg_cut(data: bytes) -> tuple[bytes, Counter[str]]:
    """One MJPEG frame (one or two pictures) without APPn/COM segments or trailing bytes."""
    kinds: Counter[str] = Counter()
    out = bytearray()
    pos, n = 0, len(data)
    while pos + 1 < n and data[pos] == 0xFF and data[pos + 1] == _SOI:
        out += data[pos:pos + 2]
        pos += 2
        while pos + 1 < n:
            if data[pos] != 0xFF:
                raise ValueError("a JPEG marker was expected")
            marker = data[pos + 1]
            if marker == 0xFF:
                pos += 1  # fill byte
                continue
            if marker == _EOI:
                out += data[pos:pos + 2]
                pos += 2
                break
            if marker in _NO_LENGTH:
                out += data[pos:pos + 2]
                pos += 2
                continue
            length = int.from_bytes(data[pos + 2:pos + 4], "big")
            end = pos + 2 + length
            if length < 2 or end > n:
                raise ValueError("a JPEG segment runs past the frame")
            body = data[pos + 4:end]
            if 0xE0 <= marker <= 0xEF or marker == 0xFE:
                keep = _keep_app(marker, body)
                if keep is None:
                    kinds[_app_kind(marker, body)] += 1
                else:
                    if keep != body:
                        kinds["APP0 (JFIF thumbnail)"] += 1
                    out += bytes([0xFF, marker]) + (len(keep) + 2).to_bytes(2, "big") + keep
            else:
                out += data[pos:end]
            pos = end
            if marker == _SOS:  # entropy-coded data runs to the next marker that is not RSTn or a stuffed 00
                found = _SCAN_END.search(data, pos)
                scan = found.start() if found else n
                out += data[pos:scan]
                pos = scan
    if not out:
        raise ValueError("the frame does not start with a JPEG start-of-image marker")
    if pos < n and data[pos:].strip(b"\x00"):
        kinds["bytes after the end of the picture"] += 1
    return (bytes(out), kinds) if kinds else (data, kinds)


# --------------------------------------------------------------------------- per stream

@dataclass
class FrameFilter:
    """Cuts one stream's in-frame user data out of its packets, keeping everything else."""

    codec: str
    extradata: bytes
    _nal: PacketFilter | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.codec not in CUTTABLE:
            raise ValueError(f"no in-frame filter for {self.codec}")
        if self.codec in FILTERABLE:
            self._nal = PacketFilter(self.codec, self.extradata)

    def kinds(self, data: bytes | memoryview) -> Counter[str]:
        """What user data one packet carries, by kind."""
        if self._nal is not None:
            return _nal_kinds(self.codec, list(self._nal.units(data)), self._nal.types)
        try:
            return self._cutter(bytes(data))[1]
        except ValueError:
            return Counter({"unparsable frame (cannot be checked)": 1})

    def clean(self, data: memoryview) -> tuple[bytes | memoryview, int]:
        """(new payload, units cut); the payload is ``data`` itself when nothing was cut.

        Raises ValueError for a frame that cannot be parsed (its user data could not be found).
        """
        if self._nal is not None:
            return self._nal.clean(data)
        cleaned, kinds = self._cutter(bytes(data))
        return (cleaned, sum(kinds.values())) if kinds else (data, 0)

    @property
    def _cutter(self) -> Callable[[bytes], tuple[bytes, Counter[str]]]:
        return mpeg4_cut if self.codec in START_CODE_CODECS else jpeg_cut


def clean_extradata(codec: str, extradata: bytes) -> tuple[bytes, int]:
    """The codec configuration (avcC/hvcC/av1C, MPEG-4's VOL header) without user data."""
    if codec in FILTERABLE:
        return clean_config_record(codec, extradata)
    if codec in START_CODE_CODECS and extradata:
        cleaned, kinds = mpeg4_cut(extradata)
        return cleaned, sum(kinds.values())
    return extradata, 0


def extradata_kinds(codec: str, extradata: bytes) -> Counter[str]:
    """What user data a codec configuration record carries, by kind."""
    if codec in FILTERABLE:
        types = FrameFilter(codec, extradata)._nal.types  # type: ignore[union-attr]
        if codec == "av1":
            return Counter({"metadata OBU": clean_config_record(codec, extradata)[1]}) - Counter()
        units = [(nal_type(codec, u[0]), u) for u in config_record_units(codec, extradata) if u]
        return _nal_kinds(codec, units, types)
    if codec in START_CODE_CODECS:
        return mpeg4_cut(extradata)[1]
    return Counter()
