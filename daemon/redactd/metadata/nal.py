"""Split coded video into NAL units / OBUs and cut out the ones that carry user data.

H.264 SEI is NAL type 6, HEVC SEI types 39 (prefix) and 40 (suffix), AV1 metadata OBU type 5.
Packets come length-prefixed (MP4, Matroska: size from the configuration record) or in Annex B
(AVI, MPEG-TS: start codes); AV1 packets are low-overhead OBUs with size fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

USER_DATA_TYPES = {"h264": frozenset({6}), "hevc": frozenset({39, 40}), "av1": frozenset({5})}
FILTERABLE = frozenset(USER_DATA_TYPES)


def nal_type(codec: str, first_byte: int) -> int:
    return first_byte & 0x1F if codec == "h264" else (first_byte >> 1) & 0x3F


def is_annexb(data: bytes | memoryview) -> bool:
    return bytes(data[:3]) == b"\x00\x00\x01" or bytes(data[:4]) == b"\x00\x00\x00\x01"


def split_length_prefixed(data: memoryview | bytes, size: int) -> list[memoryview]:
    mv, units, pos = memoryview(data), [], 0
    while pos + size <= len(mv):
        n = int.from_bytes(mv[pos:pos + size], "big")
        pos += size
        if n == 0 or pos + n > len(mv):
            break
        units.append(mv[pos:pos + n])
        pos += n
    return units


def split_annexb(data: memoryview | bytes) -> list[bytes]:
    raw = bytes(data).replace(b"\x00\x00\x00\x01", b"\x00\x00\x01")
    return [p for p in raw.split(b"\x00\x00\x01")[1:] if p]


def split_obus(data: memoryview | bytes) -> list[tuple[int, memoryview]]:
    """(obu_type, whole OBU) for each OBU of a low-overhead AV1 bitstream."""
    mv, out, pos = memoryview(data), [], 0
    while pos < len(mv):
        start, header = pos, mv[pos]
        pos += 2 if header & 0x04 else 1
        if not header & 0x02:  # no size field: the OBU runs to the end
            out.append(((header >> 3) & 0x0F, mv[start:]))
            break
        size = shift = 0
        while pos < len(mv):
            byte = mv[pos]
            pos += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        pos += size
        out.append(((header >> 3) & 0x0F, mv[start:pos]))
    return out


def length_size(codec: str, extradata: bytes) -> int:
    """Bytes of each NAL length prefix, from avcC/hvcC; 0 means the stream is Annex B."""
    if codec == "h264" and len(extradata) > 4 and extradata[0] == 1:
        return (extradata[4] & 0x03) + 1
    if codec == "hevc" and len(extradata) > 21 and extradata[0] == 1:
        return (extradata[21] & 0x03) + 1
    return 0


def config_record_units(codec: str, extradata: bytes) -> list[bytes]:
    """The NAL units inside an avcC / hvcC record (or Annex B extradata)."""
    if not extradata:
        return []
    if is_annexb(extradata):
        return split_annexb(extradata)
    units: list[bytes] = []
    if codec == "h264" and len(extradata) >= 7:
        pos, count = 6, extradata[5] & 0x1F
        for group in range(2):
            for _ in range(count):
                n = int.from_bytes(extradata[pos:pos + 2], "big")
                units.append(extradata[pos + 2:pos + 2 + n])
                pos += 2 + n
            if group == 0 and pos < len(extradata):
                count, pos = extradata[pos], pos + 1
    elif codec == "hevc" and len(extradata) >= 23:
        for _, nals in _hvcc_arrays(extradata):
            units += nals
    return units


def _hvcc_arrays(record: bytes) -> list[tuple[bytes, list[bytes]]]:
    """(array bytes, its NAL units) for each array of an hvcC record."""
    arrays, pos = [], 23
    for _ in range(record[22]):
        if pos + 3 > len(record):
            break
        start, count, units = pos, int.from_bytes(record[pos + 1:pos + 3], "big"), []
        pos += 3
        for _ in range(count):
            n = int.from_bytes(record[pos:pos + 2], "big")
            units.append(record[pos + 2:pos + 2 + n])
            pos += 2 + n
        arrays.append((record[start:pos], units))
    return arrays


def clean_config_record(codec: str, extradata: bytes) -> tuple[bytes, int]:
    """``extradata`` without user-data units, and how many were cut."""
    types = USER_DATA_TYPES.get(codec)
    if not types or not extradata:
        return extradata, 0
    if codec == "hevc" and not is_annexb(extradata) and len(extradata) >= 23:
        arrays = _hvcc_arrays(extradata)
        kept = [raw for raw, _ in arrays if (raw[0] & 0x3F) not in types]
        cut = sum(len(units) for raw, units in arrays if (raw[0] & 0x3F) in types)
        return (extradata[:22] + bytes([len(kept)]) + b"".join(kept), cut) if cut else (extradata, 0)
    if codec == "av1" and len(extradata) > 4:
        obus = split_obus(extradata[4:])
        cut = sum(1 for t, _ in obus if t in types)
        return (extradata[:4] + b"".join(bytes(o) for t, o in obus if t not in types), cut) if cut else (extradata, 0)
    if is_annexb(extradata):
        units = split_annexb(extradata)
        kept = [u for u in units if nal_type(codec, u[0]) not in types]
        cut = len(units) - len(kept)
        return (b"".join(b"\x00\x00\x00\x01" + u for u in kept), cut) if cut else (extradata, 0)
    return extradata, 0  # avcC holds only parameter sets by its syntax


@dataclass
class PacketFilter:
    """Cuts user-data units out of one stream's packets, keeping their framing."""

    codec: str
    extradata: bytes

    def __post_init__(self) -> None:
        self.types = USER_DATA_TYPES[self.codec]
        self.size = length_size(self.codec, self.extradata)

    def length_prefixed(self, data: memoryview | bytes) -> bool:
        """Whether ``data`` is in the configuration record's length-prefixed framing.

        A start code alone does not tell: a 4-byte length of 256–511 begins 00 00 01 too. A
        packet that parses as length-prefixed units to its last byte is taken as such.
        """
        if not self.size:
            return False
        if not is_annexb(data):
            return True
        return sum(self.size + len(u) for u in split_length_prefixed(data, self.size)) == len(data)

    def units(self, data: memoryview | bytes) -> Sequence[tuple[int, bytes | memoryview]]:
        if self.codec == "av1":
            return split_obus(data)
        if self.length_prefixed(data):
            return [(nal_type(self.codec, u[0]), u) for u in split_length_prefixed(data, self.size)]
        return [(nal_type(self.codec, u[0]), u) for u in split_annexb(data)]

    def count(self, data: memoryview | bytes) -> int:
        return sum(1 for t, _ in self.units(data) if t in self.types)

    def clean(self, data: memoryview) -> tuple[bytes | memoryview, int]:
        """(new payload, units cut); the payload is ``data`` itself when nothing was cut."""
        units = self.units(data)
        cut = sum(1 for t, _ in units if t in self.types)
        if not cut:
            return data, 0
        kept = [u for t, u in units if t not in self.types]
        if self.codec == "av1":
            return b"".join(bytes(u) for u in kept), cut
        if self.length_prefixed(data):
            return b"".join(len(u).to_bytes(self.size, "big") + bytes(u) for u in kept), cut
        return b"".join(b"\x00\x00\x00\x01" + bytes(u) for u in kept), cut
