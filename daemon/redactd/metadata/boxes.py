"""Walk an MP4/QuickTime box tree and report boxes that can carry metadata."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from redactd.metadata.findings import Finding

# Containers whose children we descend into.
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"udta", b"meta", b"mvex"}
# Boxes that only ever hold metadata: any of them is a finding, wherever it sits.
_METADATA = {b"uuid", b"XMP_", b"ilst", b"keys", b"\xa9xyz", b"loci", b"cprt", b"auth", b"titl",
             b"dscp", b"gps0", b"GPS ", b"CNTH", b"CNDA", b"thmb", b"PRVW", b"tags", b"ID32"}
_FREE = {b"free", b"skip", b"wide"}
_TOP_OK = {b"ftyp", b"moov", b"mdat"} | _FREE


def _is_isobmff(fh: BinaryIO) -> bool:
    head = fh.read(12)
    fh.seek(0)
    return len(head) >= 8 and head[4:8] in {b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"}


def _read_header(fh: BinaryIO, end: int) -> tuple[bytes, int, int] | None:
    start = fh.tell()
    if end - start < 8:
        return None
    size, kind = struct.unpack(">I4s", fh.read(8))
    header = 8
    if size == 1:
        (size,) = struct.unpack(">Q", fh.read(8))
        header = 16
    elif size == 0:
        size = end - start
    return kind, size, header


def findings(path: Path) -> list[Finding]:
    """Everything in the box tree that is not plain structure. Empty for non-MP4 files."""
    out: list[Finding] = []
    size = path.stat().st_size
    with open(path, "rb") as fh:
        if not _is_isobmff(fh):
            return out
        _walk(fh, 0, size, top=True, out=out, path="")
    return out


def _finding(element: str, where: str, personal: bool, detail: str = "") -> Finding:
    return Finding(element, where or "the top level", personal, "box tree", detail)


_KNOWN_TOP = _TOP_OK | {b"uuid", b"meta", b"moof", b"mfra", b"sidx", b"styp", b"pdin"}


def truncation(path: Path) -> str | None:
    """Why an MP4/QuickTime file looks cut short (a top-level box runs past its end), else None.

    A copy that stopped early still demuxes when its index comes first, and would otherwise be
    published as a shorter clip. Unknown bytes after the last box are trailing junk, not this.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        if not _is_isobmff(fh):
            return None
        pos = 0
        while pos < size:
            fh.seek(pos)
            hdr = _read_header(fh, size)
            if hdr is None:
                return None
            kind, box_size, _ = hdr
            if box_size < 8:
                return None
            if pos + box_size > size:
                if kind in _KNOWN_TOP:
                    return (f"the file ends inside its '{kind.decode('latin-1')}' box "
                            f"({size - pos} of {box_size} bytes present): the copy is incomplete")
                return None
            pos += box_size
    return None


def _child_path(parent: str, name: str, seen: dict[str, int]) -> str:
    """``parent/name``, numbered (from 1, as exiftool numbers tracks) where siblings repeat."""
    seen[name] = seen.get(name, 0) + 1
    label = f"{name}[{seen[name]}]" if name in _NUMBERED else name
    return f"{parent}/{label}" if parent else label


_NUMBERED = {"trak"}


def _walk(fh: BinaryIO, start: int, end: int, top: bool, out: list[Finding], path: str) -> None:
    pos = start
    seen: dict[str, int] = {}
    while pos < end:
        fh.seek(pos)
        hdr = _read_header(fh, end)
        if hdr is None:
            out.append(_finding(f"{end - pos} stray byte(s)", path, False, f"at offset {pos}"))
            return
        kind, size, header = hdr
        name = kind.decode("latin-1")
        if size < header or pos + size > end:
            detail = "trailing data after the last box" if top else f"runs past its parent, at offset {pos}"
            out.append(_finding(f"box '{name}'", path, False, detail))
            return
        here = _child_path(path, name, seen)
        if top and kind not in _TOP_OK and kind not in _METADATA:
            out.append(_finding(f"unexpected top-level box '{name}'", here, False, f"at offset {pos}"))
        if kind in _FREE and size != header:
            out.append(_finding(f"box '{name}' with {size - header} byte(s) of content", here, False,
                                "free space should be empty"))
        if kind in _METADATA:
            out.append(_finding(f"metadata box '{name}'", here, True))
        if kind == b"udta":
            _check_udta(fh, pos + header, pos + size, out, here)
        elif kind in _CONTAINERS:
            inner = pos + header + (_meta_skip(fh, pos + header) if kind == b"meta" else 0)
            _walk(fh, inner, pos + size, top=False, out=out, path=here)
        pos += size


def _meta_skip(fh: BinaryIO, payload: int) -> int:
    """ISO 'meta' is a full box (4 bytes of version/flags first); QuickTime's is a plain container."""
    fh.seek(payload)
    probe = fh.read(8)
    return 0 if probe[4:8] == b"hdlr" else 4


def _boxes(fh: BinaryIO, start: int, end: int, out: list[Finding], where: str) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, offset, size, header length) of each box in [start, end); a malformed one ends it."""
    pos = start
    while pos < end:
        fh.seek(pos)
        hdr = _read_header(fh, end)
        if hdr is None:
            return
        kind, size, header = hdr
        if size < header or pos + size > end:
            out.append(_finding("malformed box", where, False, f"at offset {pos}"))
            return
        yield kind, pos, size, header
        pos += size


def _check_udta(fh: BinaryIO, start: int, end: int, out: list[Finding], where: str) -> None:
    """udta may hold only an empty iTunes-style meta (hdlr + empty ilst), as FFmpeg writes it.

    Anything else in it is user data by the box's definition: personal.
    """
    for kind, pos, size, header in _boxes(fh, start, end, out, where):
        name = kind.decode("latin-1")
        if kind == b"meta":
            _check_meta(fh, pos + header + _meta_skip(fh, pos + header), pos + size, out, f"{where}/meta")
        else:
            out.append(_finding(f"user-data box '{name}'", f"{where}/{name}", True))


def _check_meta(fh: BinaryIO, start: int, end: int, out: list[Finding], where: str) -> None:
    for kind, _, size, header in _boxes(fh, start, end, out, where):
        name = kind.decode("latin-1")
        if kind == b"ilst" and size > header:
            out.append(_finding("iTunes metadata list with entries", f"{where}/ilst", True))
        elif kind not in (b"hdlr", b"ilst"):
            out.append(_finding(f"meta child '{name}'", f"{where}/{name}", True))
