"""Remove SEI NAL units from the HEVC configuration record (hvcC) of an MP4 whose moov is last.

FFmpeg's filter_units bitstream filter cleans coded packets but (in FFmpeg 5.1) leaves the
configuration record alone, and x265 stores its version banner there as SEI user data. The
record lives in moov/trak/mdia/minf/stbl/stsd/<hvc1|hev1>/hvcC; with moov after mdat, rewriting
it changes no chunk offset, so a box-size fix-up along the path is all it takes.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

_PATH = [b"trak", b"mdia", b"minf", b"stbl", b"stsd"]
_HEVC_ENTRIES = {b"hvc1", b"hev1"}
_SEI = {39, 40}
_VISUAL_ENTRY_FIELDS = 78  # bytes of VisualSampleEntry fields before its child boxes


def strip_hvcc_sei(record: bytes) -> bytes:
    """An hvcC payload without its SEI arrays (bytes 0-21 are fixed fields, 22 is the array count)."""
    if len(record) < 23:
        return record
    head, arrays, pos, kept = record[:22], record[22], 23, []
    for _ in range(arrays):
        start = pos
        nal_type = record[pos] & 0x3F
        count = int.from_bytes(record[pos + 1:pos + 3], "big")
        pos += 3
        for _ in range(count):
            pos += 2 + int.from_bytes(record[pos:pos + 2], "big")
        if nal_type not in _SEI:
            kept.append(record[start:pos])
    return head + bytes([len(kept)]) + b"".join(kept) + record[pos:]


def _children(buf: bytes, start: int, end: int) -> list[tuple[bytes, int, int, int]]:
    """(type, offset, size, header length) of each box in buf[start:end]."""
    out, pos = [], start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", buf[pos:pos + 8])
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", buf[pos + 8:pos + 16])
            header = 16
        if size < header or pos + size > end:
            break
        out.append((kind, pos, size, header))
        pos += size
    return out


def _rewrite(buf: bytes, start: int, end: int, depth: int) -> bytes:
    """Rebuild buf[start:end] (a sequence of boxes at path depth ``depth``) with clean hvcC records."""
    parts = []
    for kind, off, size, header in _children(buf, start, end):
        box = buf[off:off + size]
        if depth < len(_PATH) and kind == _PATH[depth]:
            skip = 4 + 4 if kind == b"stsd" else 0  # stsd: version/flags + entry count
            body = box[header:header + skip] + _rewrite(buf, off + header + skip, off + size, depth + 1)
            box = _box(kind, body)
        elif depth == len(_PATH) and kind in _HEVC_ENTRIES:
            fields = box[header:header + _VISUAL_ENTRY_FIELDS]
            inner = []
            for ckind, coff, csize, chead in _children(buf, off + header + _VISUAL_ENTRY_FIELDS, off + size):
                child = buf[coff:coff + csize]
                if ckind == b"hvcC":
                    child = _box(b"hvcC", strip_hvcc_sei(child[chead:]))
                inner.append(child)
            box = _box(kind, fields + b"".join(inner))
        parts.append(box)
    return b"".join(parts)


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def strip_sei_from_mp4(path: Path) -> bool:
    """Rewrite ``path``'s hvcC records in place. Needs moov to be the last top-level box."""
    with open(path, "r+b") as fh:
        data_end = fh.seek(0, os.SEEK_END)
        fh.seek(0)
        # Walk the top level without reading mdat into memory.
        pos, moov = 0, None
        while pos + 8 <= data_end:
            fh.seek(pos)
            size, kind = struct.unpack(">I4s", fh.read(8))
            if size == 1:
                (size,) = struct.unpack(">Q", fh.read(8))
            elif size == 0:
                size = data_end - pos
            if kind == b"moov":
                moov = (pos, size)
            pos += size
        if moov is None or moov[0] + moov[1] != data_end:
            raise ValueError("moov is not the last box")
        fh.seek(moov[0])
        buf = fh.read(moov[1])
        new = _box(b"moov", _rewrite(buf, 8, len(buf), 0))
        if new == buf:
            return False
        fh.seek(moov[0])
        fh.write(new)
        fh.truncate()
    return True
