"""Remux a video into a fresh container that keeps only picture (and optionally sound) packets.

The remux runs in-process through PyAV (FFmpeg's muxers, no subprocess start-up). Packets are
copied unchanged except that in-band user data is cut out of the coded video: every SEI NAL unit
for H.264 (type 6) and HEVC (39, 40), every metadata OBU for AV1 (type 5). SEI and metadata OBUs
carry no picture data, so decoded frames stay bit-exact. The codec configuration record
(avcC/hvcC/av1C) is rebuilt the same way: x265, for one, stores its banner there.
"""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass
from pathlib import Path

import av
import structlog

from redactd.errors import InputError, UnsupportedMediaError
from redactd.fsutil import atomic_output_keep_suffix
from redactd.media.probe import check_header
from redactd.metadata import boxes, nal
from redactd.metadata.bitstream import codec_name
from redactd.metadata.verify import verify_clean
from redactd.space import is_out_of_space

log = structlog.get_logger(__name__)

LOSSLESS_VIDEO = {"h264", "hevc", "vp9", "av1"}  # VP9 has no user-data syntax in its bitstream
MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}
WEBM_VIDEO = {"vp9", "av1"}
WEBM_AUDIO = {"opus", "vorbis"}
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mp4", ".mkv": "matroska", ".webm": "webm"}
# No muxer version strings or creation times; MP4 index up front for streaming.
MUXER_OPTIONS = {"mp4": {"fflags": "+bitexact", "movflags": "+faststart"},
                 "matroska": {"fflags": "+bitexact"}, "webm": {"fflags": "+bitexact"}}


@dataclass(frozen=True)
class CleanResult:
    output: Path
    container: str
    video_streams: int
    audio_streams: int
    dropped: tuple[str, ...]  # what was removed, by kind (no values: they may be personal)
    seconds: float


@dataclass(frozen=True)
class _Plan:
    video: tuple[av.stream.Stream, ...]
    audio: tuple[av.stream.Stream, ...]
    dropped: tuple[str, ...]


def _is_picture(stream: av.stream.Stream) -> bool:
    return stream.type == "video" and not (stream.disposition & av.stream.Disposition.attached_pic)


def choose_container(src: Path, keep_audio: bool, preference: str = "auto") -> str:
    """Pick the output file suffix: mp4 where the kept codecs fit, else webm or mkv."""
    if preference in ("mp4", "mkv"):
        return "." + preference
    with _open_input(src) as container:
        plan = _plan(container, keep_audio)
        video = {codec_name(s) for s in plan.video}
        audio = {codec_name(s) for s in plan.audio}
    if audio <= MP4_AUDIO:
        return ".mp4"
    if video <= WEBM_VIDEO and audio <= WEBM_AUDIO:
        return ".webm"
    return ".mkv"


def _open_input(src: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(src), mode="r")
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        # FFmpeg's messages name the file; file names are personal data and stay out of errors.
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise InputError(f"not a readable media file: {reason}") from exc
    try:
        check_header(src, container.format.name)
    except InputError:
        container.close()
        raise
    return container


def _plan(container: av.container.InputContainer, keep_audio: bool) -> _Plan:
    video = tuple(s for s in container.streams if _is_picture(s))
    if not video:
        raise InputError("no video stream: not a video file")
    unsupported = sorted({codec_name(s) for s in video} - LOSSLESS_VIDEO)
    if unsupported:
        raise UnsupportedMediaError(
            f"video codec {', '.join(unsupported)} cannot be cleaned losslessly here "
            f"(supported: {', '.join(sorted(LOSSLESS_VIDEO))}); use a visual policy, which re-encodes"
        )
    audio = tuple(s for s in container.streams if s.type == "audio") if keep_audio else ()
    kept = {s.index for s in video + audio}
    dropped = [f"{'cover-art' if s.type == 'video' else s.type}:{codec_name(s) if s.codec_context else '?'}"
               for s in container.streams if s.index not in kept]
    if container.metadata:
        dropped.append(f"global-tags:{len(container.metadata)}")
    return _Plan(video, audio, tuple(dropped))


def _check_fits(container_name: str, plan: _Plan) -> None:
    video = {codec_name(s) for s in plan.video}
    audio = {codec_name(s) for s in plan.audio}
    if container_name == "webm" and not (video <= WEBM_VIDEO and audio <= WEBM_AUDIO):
        raise UnsupportedMediaError("WebM holds only VP9/AV1 video and Opus/Vorbis audio: use .mkv")
    if container_name == "mp4" and not audio <= MP4_AUDIO:
        raise UnsupportedMediaError(f"audio codec {', '.join(sorted(audio - MP4_AUDIO))} does not fit MP4 "
                                    "losslessly: use .mkv")


def _remux(src: av.container.InputContainer, dst: Path, container_name: str, plan: _Plan) -> int:
    """Copy the planned streams into ``dst``; return how many user-data units were cut out."""
    removed = 0
    with av.open(str(dst), mode="w", format=container_name, options=MUXER_OPTIONS[container_name]) as out:
        streams, filters = {}, {}
        for s in plan.video + plan.audio:
            # opaque: copy codec parameters without looking for an encoder (there is no AV1
            # encoder named after the dav1d decoder, and a remux needs none)
            o = out.add_stream_from_template(s, opaque=True)
            o.metadata.clear()
            codec = codec_name(s)
            if s.type == "video" and codec in nal.FILTERABLE:
                extradata = bytes(s.codec_context.extradata or b"")
                cleaned, cut = nal.clean_config_record(codec, extradata)
                if cut:
                    o.codec_context.extradata = cleaned
                    removed += cut
                filters[s.index] = nal.PacketFilter(codec, extradata)
            streams[s.index] = o
        for packet in src.demux(*(plan.video + plan.audio)):
            if packet.dts is None and packet.size == 0:
                continue  # demuxer flush packet
            filt = filters.get(packet.stream.index)
            if filt is not None:
                data, cut = filt.clean(memoryview(packet))
                if cut:
                    packet = _replace_payload(packet, data)
                    removed += cut
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return removed


def _replace_payload(packet: av.Packet, data: bytes | memoryview) -> av.Packet:
    new = av.Packet(bytes(data))
    new.pts, new.dts, new.duration, new.time_base = packet.pts, packet.dts, packet.duration, packet.time_base
    new.is_keyframe = packet.is_keyframe
    new.stream = packet.stream
    return new


def clean_metadata(src: Path, dst: Path, keep_audio: bool = False, verify: bool = True) -> CleanResult:
    """Write ``dst``: ``src``'s video (and audio) packets, bit-exact, in a fresh, metadata-free file.

    ``dst`` is created atomically under a new inode; its suffix picks the container (.mp4, .mkv,
    .webm). With ``verify`` (the default) the output is checked and removed again on any finding.
    """
    started = time.monotonic()
    if not src.is_file():
        raise InputError("input is not a regular file")
    container_name = CONTAINERS.get(dst.suffix.lower())
    if container_name is None:
        raise InputError(f"output suffix {dst.suffix!r} not supported (use one of {', '.join(CONTAINERS)})")
    cut_short = boxes.truncation(src)
    if cut_short:
        raise InputError(f"truncated: {cut_short}")
    with _open_input(src) as container:
        plan = _plan(container, keep_audio)
        _check_fits(container_name, plan)
        with atomic_output_keep_suffix(dst, mode=0o644) as tmp:
            try:
                cut = _remux(container, tmp, container_name, plan)
            except av.FFmpegError as exc:
                if is_out_of_space(exc):
                    # Writing the output failed, not reading the input: a full disk, not a damaged file.
                    raise OSError(errno.ENOSPC, f"remux could not write its output: {exc.strerror}") from exc
                raise InputError(f"remux failed, the file is damaged: {getattr(exc, 'strerror', exc)}") from exc
            if verify:
                verify_clean(tmp, expect_video=len(plan.video), expect_audio=len(plan.audio))
    dropped = plan.dropped + ((f"user-data-units:{cut}",) if cut else ())
    result = CleanResult(dst, container_name, len(plan.video), len(plan.audio), dropped,
                         time.monotonic() - started)
    log.info("metadata_cleaned", container=container_name, video=len(plan.video), audio=len(plan.audio),
             dropped=list(dropped), seconds=round(result.seconds, 3))
    return result
