"""Independent checks of output files: ffprobe's view, MP4 box order and H.264 NAL unit types."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import av

#: Tags every MP4/MKV carries for its structure, not about the footage or its maker.
STRUCTURAL_TAGS = {"major_brand", "minor_version", "compatible_brands", "language", "handler_name", "vendor_id"}


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", "-show_chapters",
         str(path)],
        capture_output=True, text=True, timeout=30, check=True,
    )
    return json.loads(out.stdout)


def non_structural_tags(info: dict[str, Any]) -> dict[str, str]:
    tags = dict(info["format"].get("tags", {}))
    for stream in info["streams"]:
        tags.update({f"stream{stream['index']}:{k}": v for k, v in stream.get("tags", {}).items()})
    return {k: v for k, v in tags.items() if k.split(":")[-1] not in STRUCTURAL_TAGS}


def top_level_boxes(path: Path) -> list[str]:
    """MP4 top-level box types in file order."""
    names = []
    data = path.read_bytes()
    pos = 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8].decode("latin-1")
        if size == 1:
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        names.append(kind)
        if size < 8:
            break
        pos += size
    return names


def h264_nal_types(path: Path) -> set[int]:
    """Every NAL unit type in the first video stream's packets (length-prefixed, as in MP4)."""
    types: set[int] = set()
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        for packet in c.demux(stream):
            data = bytes(packet)
            pos = 0
            while pos + 4 <= len(data):
                n = int.from_bytes(data[pos : pos + 4], "big")
                types.add(data[pos + 4] & 0x1F)
                pos += 4 + n
    return types
