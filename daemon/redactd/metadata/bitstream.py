"""Find in-frame data in coded video: SEI, AV1 metadata OBUs, MPEG-4 user data, JPEG APPn/COM."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import av

from redactd.errors import InputError
from redactd.metadata.findings import Finding
from redactd.metadata.inframe import CUTTABLE, FrameFilter, extradata_kinds


def codec_name(stream: av.stream.Stream) -> str:
    """The codec's canonical name (e.g. 'av1'), not the decoder's ('libdav1d')."""
    ctx = stream.codec_context
    return ctx.codec.canonical_name if ctx is not None else "unknown"


def inventory(path: Path) -> dict[str, Counter[str]]:
    """In-frame data by stream ("stream #0 (h264), configuration record" / "..., coded frames"), by kind."""
    out: dict[str, Counter[str]] = {}
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise InputError(f"cannot open the file for the bitstream check: {exc.strerror}") from exc
    with container:
        video = [s for s in container.streams.video if codec_name(s) in CUTTABLE]
        filters, counts = {}, {}
        for s in video:
            codec = codec_name(s)
            extradata = bytes(s.codec_context.extradata or b"")
            in_config = extradata_kinds(codec, extradata)
            if in_config:
                out[f"stream #{s.index} ({codec}), configuration record"] = in_config
            filters[s.index] = FrameFilter(codec, extradata)
            counts[s.index] = Counter[str]()
        if not video:
            return out
        for packet in container.demux(*video):
            if packet.size:
                counts[packet.stream.index] += filters[packet.stream.index].kinds(memoryview(packet))
        for s in video:
            if counts[s.index]:
                out[f"stream #{s.index} ({codec_name(s)}), coded frames"] = counts[s.index]
    return out


def findings(path: Path) -> list[Finding]:
    """One finding per stream and place that carries in-frame data: it can all carry personal data."""
    return [Finding(", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())), where, True, "bitstream",
                    "in-frame data")
            for where, kinds in inventory(path).items()]
