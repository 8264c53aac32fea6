"""Remux a video into a fresh container that keeps only picture (and optionally sound) packets."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from redactd.errors import InputError, UnsupportedMediaError
from redactd.fsutil import atomic_output_keep_suffix
from redactd.media.probe import Probe, Stream, probe
from redactd.metadata.configrecord import strip_sei_from_mp4
from redactd.metadata.verify import verify_clean
from redactd.proc import run_tool

log = structlog.get_logger(__name__)

# Video codecs we can remux losslessly, and the bitstream filter that drops their in-band user
# data: every SEI NAL unit for H.264 (type 6) and HEVC (prefix 39, suffix 40), every metadata
# OBU for AV1 (type 5). SEI carries no picture data, so decoded frames stay bit-exact.
# filter_units also rewrites the codec configuration record (avcC/hvcC) it finds in extradata.
SEI_FILTER: dict[str, str | None] = {
    "h264": "filter_units=remove_types=6",
    "hevc": "filter_units=remove_types=39|40",
    "av1": "filter_units=remove_types=5",
    "vp9": None,  # VP9 has no user-data syntax in its bitstream
}

MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}
WEBM_VIDEO = {"vp9", "av1"}
WEBM_AUDIO = {"opus", "vorbis"}
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mp4", ".mkv": "matroska", ".webm": "webm"}

REMUX_TIMEOUT = 3 * 3600.0


@dataclass(frozen=True)
class CleanResult:
    output: Path
    container: str
    video_streams: int
    audio_streams: int
    dropped: tuple[str, ...]  # what was removed, by kind (no values: they may be personal)
    seconds: float


def choose_container(src: Probe, keep_audio: bool, preference: str = "auto") -> str:
    """Pick the output file suffix: mp4 where the kept codecs fit, else mkv (or webm)."""
    if preference in ("mp4", "mkv"):
        return "." + preference
    audio = {s.codec for s in src.audio} if keep_audio else set()
    if audio <= MP4_AUDIO:
        return ".mp4"
    if {s.codec for s in src.video} <= WEBM_VIDEO and audio <= WEBM_AUDIO:
        return ".webm"
    return ".mkv"


def _kept_streams(info: Probe, keep_audio: bool) -> tuple[list[Stream], list[Stream], list[str]]:
    video = info.video
    if not video:
        raise InputError("no video stream: not a video file")
    unsupported = sorted({s.codec for s in video if s.codec not in SEI_FILTER})
    if unsupported:
        raise UnsupportedMediaError(
            f"video codec {', '.join(unsupported)} cannot be cleaned losslessly here "
            f"(supported: {', '.join(sorted(SEI_FILTER))}); use a visual policy, which re-encodes"
        )
    audio = info.audio if keep_audio else []
    dropped = [f"{s.kind}:{s.codec}" for s in info.streams if s not in video and s not in audio]
    if info.chapters:
        dropped.append(f"chapters:{info.chapters}")
    if info.tags:
        dropped.append(f"global-tags:{len(info.tags)}")
    return video, audio, dropped


def remux_argv(src: Path, dst: Path, container: str, video: list[Stream], audio: list[Stream],
               faststart: bool = True, filters: bool = True) -> list[str]:
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src)]
    for s in video + audio:
        argv += ["-map", f"0:{s.index}"]
    argv += [
        "-c", "copy",
        "-map_metadata", "-1",  # global tags
        "-map_metadata:s", "-1",  # per-stream tags (handler names, timecode, languages)
        "-map_chapters", "-1",
        "-fflags", "+bitexact",  # no muxer version strings, no creation times
    ]
    for i, s in enumerate(video):
        bsf = SEI_FILTER[s.codec]
        if bsf and filters:
            argv += [f"-bsf:v:{i}", bsf]
    if container == "mp4" and faststart:
        argv += ["-movflags", "+faststart", "-f", "mp4"]
    else:
        argv += ["-f", container]
    return argv + [str(dst)]


def _remux_hevc(src: Path, dst: Path, container: str, video: list[Stream], audio: list[Stream]) -> None:
    """HEVC encoders keep SEI in the hvcC record, which filter_units leaves alone: remux to an MP4
    with moov last, rewrite its hvcC records, then remux that into the final container."""
    with tempfile.TemporaryDirectory(prefix=".redactd-", dir=dst.parent) as scratch:
        mid = Path(scratch) / "stage.mp4"
        run_tool(remux_argv(src, mid, "mp4", video, audio, faststart=False), timeout=REMUX_TIMEOUT,
                 what="ffmpeg remux")
        strip_sei_from_mp4(mid)
        staged = probe(mid)
        run_tool(remux_argv(mid, dst, container, staged.video, staged.audio, filters=False),
                 timeout=REMUX_TIMEOUT, what="ffmpeg remux")


def clean_metadata(src: Path, dst: Path, keep_audio: bool = False, verify: bool = True) -> CleanResult:
    """Write ``dst``: ``src``'s video (and audio) packets, bit-exact, in a fresh, metadata-free file.

    ``dst`` is created atomically under a new inode; its suffix picks the container (.mp4, .mkv,
    .webm). With ``verify`` (the default) the output is checked and removed again on any finding.
    """
    started = time.monotonic()
    if not src.is_file():
        raise InputError("input is not a regular file")
    container = CONTAINERS.get(dst.suffix.lower())
    if container is None:
        raise InputError(f"output suffix {dst.suffix!r} not supported (use one of {', '.join(CONTAINERS)})")
    info = probe(src)
    video, audio, dropped = _kept_streams(info, keep_audio)
    if container == "webm" and not ({s.codec for s in video} <= WEBM_VIDEO
                                    and {s.codec for s in audio} <= WEBM_AUDIO):
        raise UnsupportedMediaError("WebM holds only VP9/AV1 video and Opus/Vorbis audio: use .mkv")
    if container == "mp4" and not {s.codec for s in audio} <= MP4_AUDIO:
        raise UnsupportedMediaError(f"audio codec {audio[0].codec} does not fit MP4 losslessly: use .mkv")
    with atomic_output_keep_suffix(dst, mode=0o644) as tmp:
        if any(s.codec == "hevc" for s in video):
            _remux_hevc(src, tmp, container, video, audio)
        else:
            run_tool(remux_argv(src, tmp, container, video, audio), timeout=REMUX_TIMEOUT, what="ffmpeg remux")
        if verify:
            verify_clean(tmp, expect_video=len(video), expect_audio=len(audio))
    result = CleanResult(
        output=dst,
        container=container,
        video_streams=len(video),
        audio_streams=len(audio),
        dropped=tuple(dropped),
        seconds=time.monotonic() - started,
    )
    log.info("metadata_cleaned", container=container, video=len(video), audio=len(audio),
             dropped=list(dropped), seconds=round(result.seconds, 3))
    return result
