"""Find in-band user data in coded video: SEI NAL units (H.264/HEVC) and AV1 metadata OBUs."""

from __future__ import annotations

from pathlib import Path

import av

from redactd.errors import InputError

_SEI_TYPES = {"h264": {6}, "hevc": {39, 40}}


def _nal_type(codec: str, first: int) -> int:
    return first & 0x1F if codec == "h264" else (first >> 1) & 0x3F


def _length_prefixed(data: bytes, size: int) -> list[bytes]:
    nals, pos = [], 0
    while pos + size <= len(data):
        n = int.from_bytes(data[pos:pos + size], "big")
        pos += size
        if n == 0 or pos + n > len(data):
            break
        nals.append(data[pos:pos + n])
        pos += n
    return nals


def _annexb(data: bytes) -> list[bytes]:
    parts = data.replace(b"\x00\x00\x00\x01", b"\x00\x00\x01").split(b"\x00\x00\x01")
    return [p for p in parts[1:] if p]


def config_record_nals(codec: str, extradata: bytes) -> list[bytes]:
    """NAL units stored in an avcC/hvcC configuration record (or Annex B extradata)."""
    if not extradata:
        return []
    if extradata[:3] == b"\x00\x00\x01" or extradata[:4] == b"\x00\x00\x00\x01":
        return _annexb(extradata)
    nals: list[bytes] = []
    if codec == "h264" and len(extradata) >= 7:
        pos, count = 6, extradata[5] & 0x1F
        for group in range(2):
            for _ in range(count):
                n = int.from_bytes(extradata[pos:pos + 2], "big")
                nals.append(extradata[pos + 2:pos + 2 + n])
                pos += 2 + n
            if group == 0 and pos < len(extradata):
                count, pos = extradata[pos], pos + 1
    elif codec == "hevc" and len(extradata) >= 23:
        pos, arrays = 23, extradata[22]
        for _ in range(arrays):
            if pos + 3 > len(extradata):
                break
            count = int.from_bytes(extradata[pos + 1:pos + 3], "big")
            pos += 3
            for _ in range(count):
                n = int.from_bytes(extradata[pos:pos + 2], "big")
                nals.append(extradata[pos + 2:pos + 2 + n])
                pos += 2 + n
    return nals


def _nal_length_size(codec: str, extradata: bytes) -> int:
    if codec == "h264" and len(extradata) > 4 and extradata[0] == 1:
        return (extradata[4] & 0x03) + 1
    if codec == "hevc" and len(extradata) > 21 and extradata[0] == 1:
        return (extradata[21] & 0x03) + 1
    return 0  # Annex B


def _av1_metadata_obus(data: bytes) -> int:
    """Count metadata OBUs (type 5) in a low-overhead AV1 bitstream."""
    count, pos = 0, 0
    while pos < len(data):
        header = data[pos]
        obu_type = (header >> 3) & 0x0F
        has_ext, has_size = header & 0x04, header & 0x02
        pos += 2 if has_ext else 1
        if not has_size:
            count += obu_type == 5
            break
        size = shift = 0
        while pos < len(data):
            byte = data[pos]
            pos += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        count += obu_type == 5
        pos += size
    return count


def findings(path: Path) -> list[str]:
    """One line per video stream that carries SEI / metadata OBUs, in its config record or packets."""
    out: list[str] = []
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise InputError(f"cannot open output for the bitstream check: {exc}") from exc
    with container:
        for stream in container.streams.video:
            codec = stream.codec_context.name
            extradata = bytes(stream.codec_context.extradata or b"")
            if codec in _SEI_TYPES:
                sei = _SEI_TYPES[codec]
                in_config = sum(1 for n in config_record_nals(codec, extradata) if n and _nal_type(codec, n[0]) in sei)
                if in_config:
                    out.append(f"bitstream: stream #{stream.index}: {in_config} SEI unit(s) in the codec configuration record")
            elif codec == "av1" and len(extradata) > 4 and _av1_metadata_obus(extradata[4:]):
                out.append(f"bitstream: stream #{stream.index}: metadata OBU in the codec configuration record")
        video = [s for s in container.streams.video if s.codec_context.name in _SEI_TYPES or s.codec_context.name == "av1"]
        if not video:
            return out
        counts = {s.index: 0 for s in video}
        sizes = {s.index: _nal_length_size(s.codec_context.name, bytes(s.codec_context.extradata or b"")) for s in video}
        for packet in container.demux(video):
            if packet.size == 0:
                continue
            codec = packet.stream.codec_context.name
            data = bytes(packet)
            if codec == "av1":
                counts[packet.stream.index] += _av1_metadata_obus(data)
                continue
            size = sizes[packet.stream.index]
            nals = _length_prefixed(data, size) if size else _annexb(data)
            counts[packet.stream.index] += sum(1 for n in nals if n and _nal_type(codec, n[0]) in _SEI_TYPES[codec])
        out += [f"bitstream: stream #{i}: {n} SEI/metadata unit(s) in coded packets" for i, n in counts.items() if n]
    return out
