"""Find in-band user data in coded video: SEI NAL units (H.264/HEVC) and AV1 metadata OBUs."""

from __future__ import annotations

from pathlib import Path

import av

from redactd.errors import InputError
from redactd.metadata.nal import FILTERABLE, PacketFilter, clean_config_record


def codec_name(stream: av.stream.Stream) -> str:
    """The codec's canonical name (e.g. 'av1'), not the decoder's ('libdav1d')."""
    ctx = stream.codec_context
    return ctx.codec.canonical_name if ctx is not None else "unknown"


def findings(path: Path) -> list[str]:
    """One line per video stream that carries user data, in its config record or its packets."""
    out: list[str] = []
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise InputError(f"cannot open the file for the bitstream check: {exc.strerror}") from exc
    with container:
        video = [s for s in container.streams.video if codec_name(s) in FILTERABLE]
        filters = {}
        for s in video:
            extradata = bytes(s.codec_context.extradata or b"")
            _, in_config = clean_config_record(codec_name(s), extradata)
            if in_config:
                out.append(f"bitstream: stream #{s.index}: {in_config} SEI/metadata unit(s) "
                           "in the codec configuration record")
            filters[s.index] = PacketFilter(codec_name(s), extradata)
        if not video:
            return out
        counts = dict.fromkeys(filters, 0)
        for packet in container.demux(*video):
            if packet.size:
                counts[packet.stream.index] += filters[packet.stream.index].count(memoryview(packet))
        out += [f"bitstream: stream #{i}: {n} SEI/metadata unit(s) in coded packets"
                for i, n in counts.items() if n]
    return out
