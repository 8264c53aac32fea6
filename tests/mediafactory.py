"""Make small real test videos with ffmpeg and exiftool, with personal metadata planted in them."""

from __future__ import annotations

import hashlib
import struct
import subprocess
from pathlib import Path

SEI_UUID = "086f3693-b7b3-4f2c-9653-21492feee5b8"


def ffmpeg(*args: str, timeout: float = 120) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                   check=True, timeout=timeout)


def exiftool_write(path: Path, *assignments: str) -> None:
    subprocess.run(["exiftool", "-q", "-overwrite_original", *assignments, str(path)], check=True,
                   timeout=60)


def plain_video(path: Path, seconds: float = 1.0, size: str = "160x120", rate: int = 10,
                codec: str = "libx264", audio: bool = False, extra: tuple[str, ...] = ()) -> Path:
    """A short testsrc2 clip (and a sine tone) encoded with ``codec``."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    args += ["-t", str(seconds), "-c:v", codec]
    if codec == "libx264":
        args += ["-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    elif codec == "libx265":
        args += ["-preset", "ultrafast", "-x265-params", "log-level=error"]
    elif codec == "libvpx-vp9":
        args += ["-deadline", "realtime", "-cpu-used", "8"]
    elif codec == "libaom-av1":
        args += ["-cpu-used", "8", "-row-mt", "1"]
    if audio:
        args += ["-c:a", "libopus" if path.suffix == ".webm" else "aac"]
    ffmpeg(*args, *extra, str(path))
    return path


def gpmd_track(path: Path, payload: bytes, samples: int = 3, entry: bytes = b"gpmd",
               handler: bytes = b"GoPro MET") -> None:
    """Add a GoPro-style telemetry track ('meta' handler, 'gpmd' sample entry) to an MP4 whose
    moov is the last box, with ``payload`` as every sample. FFmpeg cannot write one from scratch.
    With ``entry=b"mebx"`` it is shaped like an iPhone's timed-metadata (face detection) track."""
    data = path.read_bytes()
    pos, moov = 0, None
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"moov":
            moov = (pos, size)
        pos += size
    assert moov and moov[0] + moov[1] == len(data), "moov must be last (no faststart)"
    moov_body = bytearray(data[moov[0] + 8:moov[0] + moov[1]])
    # next_track_ID is the last field of mvhd (version 0: offset 8 + 96 in the box)
    mvhd_at = moov_body.index(b"mvhd") - 4
    next_id_at = mvhd_at + 8 + 96
    track_id = struct.unpack(">I", moov_body[next_id_at:next_id_at + 4])[0]
    moov_body[next_id_at:next_id_at + 4] = struct.pack(">I", track_id + 1)
    mdat_payload_offset = len(data) + 8  # our mdat goes after moov... moov grows, computed below

    def box(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I4s", 8 + len(body), kind) + body

    def full(kind: bytes, body: bytes, version: int = 0, flags: int = 0) -> bytes:
        return box(kind, struct.pack(">I", (version << 24) | flags) + body)

    def trak(chunk_offset: int) -> bytes:
        matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
        tkhd = full(b"tkhd", struct.pack(">IIIII", 0, 0, track_id, 0, samples * 1000) + b"\0" * 8
                    + struct.pack(">hhhH", 0, 0, 0, 0) + matrix + struct.pack(">II", 0, 0), flags=3)
        mdhd = full(b"mdhd", struct.pack(">IIII", 0, 0, 1000, samples * 1000) + struct.pack(">HH", 0x55C4, 0))
        hdlr = full(b"hdlr", struct.pack(">I4s", 0, b"meta") + b"\0" * 12 + handler + b"\0")
        dinf = box(b"dinf", full(b"dref", struct.pack(">I", 1) + full(b"url ", b"", flags=1)))
        stsd = full(b"stsd", struct.pack(">I", 1) + box(entry, b"\0" * 6 + struct.pack(">H", 1) + b"\0" * 4))
        stts = full(b"stts", struct.pack(">III", 1, samples, 1000))
        stsc = full(b"stsc", struct.pack(">IIII", 1, 1, samples, 1))
        stsz = full(b"stsz", struct.pack(">II", 0, samples) + struct.pack(">I", len(payload)) * samples)
        stco = full(b"stco", struct.pack(">II", 1, chunk_offset))
        stbl = box(b"stbl", stsd + stts + stsc + stsz + stco)
        minf = box(b"minf", full(b"nmhd", b"") + dinf + stbl)
        return box(b"trak", tkhd + box(b"mdia", mdhd + hdlr + minf))

    new_moov_size = moov[1] + len(trak(0))
    mdat_payload_offset = moov[0] + new_moov_size + 8
    new_moov = box(b"moov", bytes(moov_body) + trak(mdat_payload_offset))
    assert len(new_moov) == new_moov_size
    path.write_bytes(data[:moov[0]] + new_moov + box(b"mdat", payload * samples))


def box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


#: Where the children of a box begin, after its own fields: full boxes, sample tables, entries.
_CHILDREN_AT = {b"stsd": 8, b"avc1": 78, b"hvc1": 78, b"hev1": 78, b"meta": 4}


def add_box(path: Path, chain: tuple[bytes, ...], new: bytes) -> None:
    """Append box ``new`` inside the first box along ``chain`` (e.g. moov/trak/.../avc1), growing
    every box on the way. The MP4's moov must be its last box, so no chunk offset moves."""
    data = bytearray(path.read_bytes())
    start, end, spots = 0, len(data), []
    for kind in chain:
        pos = start
        while pos < end:
            size, found = struct.unpack(">I4s", data[pos:pos + 8])
            if found == kind:
                break
            pos += size
        else:
            raise AssertionError(f"no {kind!r} box")
        spots.append(pos)
        start, end = pos + 8 + _CHILDREN_AT.get(kind, 0), pos + size
    moov_end = spots[0] + struct.unpack(">I", data[spots[0]:spots[0] + 4])[0]
    assert chain[0] != b"moov" or moov_end == len(data), "moov must be the last box"
    data[end:end] = new
    for pos in spots:
        struct.pack_into(">I", data, pos, struct.unpack(">I", data[pos:pos + 4])[0] + len(new))
    path.write_bytes(bytes(data))


VIDEO_ENTRY = (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd", b"avc1")


def loaded_mp4(path: Path, work: Path, markers: dict[str, str], audio: bool = True) -> Path:
    """An H.264 MP4 carrying every kind of hidden metadata, each with its own marker string."""
    meta = work / "ffmeta.txt"
    meta.write_text(f";FFMETADATA1\ntitle={markers['title']}\ncomment={markers['comment']}\n"
                    f"[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=500\ntitle={markers['chapter']}\n")
    srt = work / "subs.srt"
    srt.write_text(f"1\n00:00:00,000 --> 00:00:00,900\n{markers['subtitle']}\n")
    cover = work / "cover.png"
    ffmpeg("-f", "lavfi", "-i", "color=red:size=32x32", "-frames:v", "1", str(cover))
    args = ["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    n = 2 if audio else 1
    args += ["-i", str(meta), "-i", str(srt), "-i", str(cover), "-t", "1",
             "-map", "0:v"] + (["-map", "1:a"] if audio else []) + [
        "-map", f"{n + 1}:s", "-map", f"{n + 2}:v",
        "-map_metadata", str(n), "-map_chapters", str(n),
        "-c:v:0", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-bsf:v:0", f"h264_metadata=sei_user_data={SEI_UUID}+{markers['sei']}",
        "-c:v:1", "png", "-disposition:v:1", "attached_pic",
        "-c:s", "mov_text", "-metadata:s:v:0", f"handler_name={markers['handler']}",
    ]
    if audio:
        args += ["-c:a", "aac"]
    ffmpeg(*args, str(path))
    gpmd_track(path, markers["telemetry"].encode() * 4)
    exiftool_write(path,
                   f"-UserData:Make={markers['make']}", f"-UserData:Model={markers['model']}",
                   "-UserData:GPSCoordinates=48.8584, 2.2945, 35",
                   "-Keys:GPSCoordinates=40.6892, -74.0445, 10",
                   f"-Keys:Model={markers['keys']}",
                   f"-XMP-dc:Creator={markers['xmp']}")
    with open(path, "ab") as fh:
        fh.write(markers["trailer"].encode())
    return path


def loaded_mkv(path: Path, work: Path, markers: dict[str, str]) -> Path:
    """A VP9/Opus Matroska file with tags, chapters, a subtitle track and an attachment."""
    meta = work / "ffmeta.txt"
    meta.write_text(f";FFMETADATA1\ntitle={markers['title']}\n"
                    f"[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=500\ntitle={markers['chapter']}\n")
    srt = work / "subs.srt"
    srt.write_text(f"1\n00:00:00,000 --> 00:00:00,900\n{markers['subtitle']}\n")
    att = work / "notes.txt"
    att.write_text(markers["attachment"])
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-f", "lavfi", "-i", "sine",
           "-i", str(meta), "-i", str(srt), "-t", "1", "-map", "0:v", "-map", "1:a", "-map", "3:s",
           "-map_metadata", "2", "-map_chapters", "2",
           "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus", "-c:s", "srt",
           "-metadata:s:v:0", f"ENCODER_SETTINGS={markers['stream_tag']}",
           "-attach", str(att), "-metadata:s:t", "mimetype=text/plain", str(path))
    with open(path, "ab") as fh:
        fh.write(markers["trailer"].encode())
    return path


def frame_md5s(path: Path, kind: str = "v") -> list[str]:
    """Per-frame MD5s of the decoded stream(s) of one kind: the bit-exactness check."""
    out = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", f"0:{kind}:0",
                          "-f", "framemd5", "-"], check=True, capture_output=True, timeout=120).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.decode().splitlines()
            if line and not line.startswith("#")]


def packet_md5s(path: Path, kind: str = "a") -> list[str]:
    """MD5 of each coded packet's bytes of the first stream of one kind: the bit-exact copy check
    for audio, whose decoded start depends on the container's edit list (AAC priming)."""
    import av

    with av.open(str(path)) as container:
        stream = (container.streams.audio if kind == "a" else container.streams.video)[0]
        return [hashlib.md5(bytes(p)).hexdigest() for p in container.demux(stream) if p.size]


def markers(prefix: str) -> dict[str, str]:
    keys = ["title", "comment", "chapter", "subtitle", "sei", "handler", "telemetry", "make",
            "model", "keys", "xmp", "trailer", "attachment", "stream_tag"]
    return {k: f"{prefix}{k.upper()}{i:02d}Q" for i, k in enumerate(keys)}
