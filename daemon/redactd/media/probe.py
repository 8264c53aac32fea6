"""Describe a media file with ffprobe: container, streams, chapters, tags."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redactd.errors import InputError, ToolError
from redactd.proc import run_tool

PROBE_TIMEOUT = 120.0


@dataclass(frozen=True)
class Stream:
    index: int
    kind: str  # video | audio | subtitle | data | attachment
    codec: str
    codec_tag: str
    width: int = 0
    height: int = 0
    pix_fmt: str = ""
    attached_pic: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Probe:
    path: Path
    format_names: tuple[str, ...]
    duration: float | None
    size: int
    streams: tuple[Stream, ...]
    chapters: int
    tags: dict[str, str]

    @property
    def video(self) -> list[Stream]:
        """Real video streams (cover art / thumbnails excluded)."""
        return [s for s in self.streams if s.kind == "video" and not s.attached_pic]

    @property
    def audio(self) -> list[Stream]:
        return [s for s in self.streams if s.kind == "audio"]


#: Leading bytes that name a container, and the FFmpeg demuxers that read it. A file that starts
#: like one but is read by another demuxer has a header FFmpeg could not parse: FFmpeg then guesses
#: a raw bitstream (H.264, HEVC, VVC...) from whatever bytes follow, and the codec it names is noise.
_SIGNATURES = (
    ("Matroska/WebM (EBML)", lambda head: head[:4] == b"\x1a\x45\xdf\xa3", {"matroska", "webm"}),
    ("MP4/QuickTime", lambda head: head[4:8] == b"ftyp", {"mov", "mp4", "m4a", "3gp", "3g2", "mj2"}),
)


def check_header(path: Path, format_names: tuple[str, ...] | str) -> None:
    """Raise ``InputError`` (damaged input) when the file's signature and the demuxer FFmpeg chose disagree."""
    names = set(format_names.split(",") if isinstance(format_names, str) else format_names)
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return
    for container, matches, demuxers in _SIGNATURES:
        if matches(head) and not names & demuxers:
            raise InputError(f"the file is damaged: it starts with a {container} header that could not be "
                             f"parsed (FFmpeg could only guess it as {'/'.join(sorted(names)) or 'nothing'})")


def probe(path: Path) -> Probe:
    argv = ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-show_chapters",
            "-of", "json", "--", str(path)]
    try:
        proc = run_tool(argv, timeout=PROBE_TIMEOUT, what="ffprobe")
    except ToolError as exc:
        raise InputError(f"not a readable media file: {_strip_path(str(exc), path)}") from exc
    doc = json.loads(proc.stdout or b"{}")
    fmt = doc.get("format") or {}
    check_header(path, str(fmt.get("format_name", "")))
    streams = tuple(_stream(s) for s in doc.get("streams", []))
    duration = fmt.get("duration")
    return Probe(
        path=path,
        format_names=tuple(str(fmt.get("format_name", "")).split(",")),
        duration=float(duration) if duration not in (None, "N/A") else None,
        size=int(fmt.get("size") or 0),
        streams=streams,
        chapters=len(doc.get("chapters", [])),
        tags={str(k): str(v) for k, v in (fmt.get("tags") or {}).items()},
    )


def _stream(s: dict[str, Any]) -> Stream:
    return Stream(
        index=int(s["index"]),
        kind=str(s.get("codec_type", "unknown")),
        codec=str(s.get("codec_name", "unknown")),
        codec_tag=str(s.get("codec_tag_string", "")),
        width=int(s.get("width") or 0),
        height=int(s.get("height") or 0),
        pix_fmt=str(s.get("pix_fmt", "")),
        attached_pic=bool((s.get("disposition") or {}).get("attached_pic")),
        tags={str(k): str(v) for k, v in (s.get("tags") or {}).items()},
        raw=s,
    )


def _strip_path(message: str, path: Path) -> str:
    # ffprobe prefixes errors with the path; file names are personal data and stay out of errors.
    return message.replace(str(path) + ": ", "").replace(str(path), "<input>")
