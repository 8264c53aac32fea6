"""Remux a video into a fresh container that keeps only picture (and optionally sound) packets.

The remux runs in-process through PyAV (FFmpeg's muxers, no subprocess start-up). Packets are
copied unchanged except that in-frame user data is cut out of the coded video: every SEI NAL unit
for H.264 (type 6) and HEVC (39, 40), every metadata OBU for AV1 (type 5), MPEG-4 Part 2 and
MPEG-2 user data, Motion JPEG APPn/COM segments (see `inframe`). None of it is picture data, so decoded frames
stay bit-exact; where a decoder reads it anyway (MPEG-4, MJPEG) the decoded frames of input and
output are compared before the output is kept. The codec configuration record (avcC/hvcC/av1C,
MPEG-4's VOL header) is rebuilt the same way: x265, for one, stores its banner there.

Codecs whose frames carry personal data that cannot be cut out exactly (DV, ProRes) are refused
with the reason, or, when the caller allows it, re-encoded through the visual path's encoder.
"""

from __future__ import annotations

import errno
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import structlog

from redactd.errors import InputError, UnsupportedMediaError
from redactd.fsutil import atomic_output_keep_suffix
from redactd.media.probe import check_header
from redactd.metadata import boxes, inframe
from redactd.metadata.bitstream import codec_name
from redactd.metadata.verify import verify_clean
from redactd.policy import AudioMode, Encode, Limits
from redactd.space import is_out_of_space

log = structlog.get_logger(__name__)

# VP9 has no user-data syntax in its bitstream; the others' user data is cut (see `inframe`).
LOSSLESS_VIDEO = {"h264", "hevc", "vp9", "av1", "mpeg4", "mpeg2video", "mjpeg"}
#: Codecs whose decoder reads the in-frame data we cut (FFmpeg picks an IDCT and bug workarounds
#: from MPEG-4 user data naming XviD or DivX): decoded frames are compared before the output is kept.
DECODE_CHECKED = {"mpeg4", "mpeg2video", "mjpeg"}
Fallback = Literal["refuse", "reencode"]
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
    #: Why the pictures were re-encoded instead of copied (None: lossless, bit-exact).
    reencoded: str | None = None


class UncuttableError(UnsupportedMediaError):
    """The frames themselves carry personal data that no remux can cut out exactly."""

    def __init__(self, codec: str, why: str, detail: str = "") -> None:
        self.codec = codec
        self.why = why
        super().__init__(
            f"video codec {codec} cannot be cleaned losslessly: {why}{detail}; the metadata-only "
            "profile re-encodes such footage only when allowed (policy 'lossless: {fallback: reencode}', "
            "or --reencode-if-needed), else use a visual policy"
        )


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
        try:
            plan = _plan(container, keep_audio)
        except UncuttableError:
            return ".mp4"  # only ever re-encoded, to H.264/HEVC (audio that MP4 cannot hold, to AAC)
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
    uncuttable = sorted({codec_name(s) for s in video} & set(inframe.UNCUTTABLE))
    if uncuttable:
        raise UncuttableError(uncuttable[0], inframe.UNCUTTABLE[uncuttable[0]])
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
            if s.type == "video" and codec in inframe.CUTTABLE:
                extradata = bytes(s.codec_context.extradata or b"")
                cleaned, cut = inframe.clean_extradata(codec, extradata)
                if cut:
                    o.codec_context.extradata = cleaned
                    removed += cut
                filters[s.index] = inframe.FrameFilter(codec, extradata)
            streams[s.index] = o
        for packet in src.demux(*(plan.video + plan.audio)):
            if packet.dts is None and packet.size == 0:
                continue  # demuxer flush packet
            filt = filters.get(packet.stream.index)
            if filt is not None and packet.size:
                try:
                    data, cut = filt.clean(memoryview(packet))
                except ValueError as exc:
                    raise InputError(f"a {filt.codec} frame cannot be parsed, so its user data cannot be "
                                     f"found: {exc}") from exc
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


def clean_metadata(src: Path, dst: Path, keep_audio: bool = False, verify: bool = True,
                   fallback: Fallback = "refuse", encode: Encode | None = None) -> CleanResult:
    """Write ``dst``: ``src``'s video (and audio) packets, bit-exact, in a fresh, metadata-free file.

    ``dst`` is created atomically under a new inode; its suffix picks the container (.mp4, .mkv,
    .webm). With ``verify`` (the default) the output is checked and removed again on any finding.
    Footage whose frames carry data that cannot be cut exactly (DV, ProRes) raises
    `UncuttableError`, or with ``fallback="reencode"`` is re-encoded with ``encode``'s settings.
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
    try:
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
                _check_pictures_unchanged(src, tmp, plan)
                if verify:
                    verify_clean(tmp, expect_video=len(plan.video), expect_audio=len(plan.audio))
    except UncuttableError as exc:
        if fallback != "reencode":
            raise
        log.info("lossless_clean_refused", codec=exc.codec, fallback="reencode")
        return _reencode(src, dst, container_name, keep_audio, encode or Encode(), exc, started, verify)
    dropped = plan.dropped + ((f"user-data-units:{cut}",) if cut else ())
    result = CleanResult(dst, container_name, len(plan.video), len(plan.audio), dropped,
                         time.monotonic() - started)
    log.info("metadata_cleaned", container=container_name, video=len(plan.video), audio=len(plan.audio),
             dropped=list(dropped), seconds=round(result.seconds, 3))
    return result


def decoded_frame_hashes(path: Path, index: int) -> list[str]:
    """SHA-256 of each decoded frame's visible samples, plane by plane, of stream ``index``."""
    from redactd.visual.codec import plane_views

    hashes = []
    with av.open(str(path)) as container:
        stream = container.streams.video[[s.index for s in container.streams.video].index(index)]
        for frame in container.decode(stream):
            digest = hashlib.sha256(frame.format.name.encode())
            with plane_views(frame) as planes:
                for plane in planes:
                    digest.update(plane.tobytes())
            hashes.append(digest.hexdigest())
    return hashes


def _check_pictures_unchanged(src: Path, out: Path, plan: _Plan) -> None:
    """Compare decoded frames where the decoder reads the data we cut; refuse a changed picture."""
    for position, stream in enumerate(plan.video):
        codec = codec_name(stream)
        if codec not in DECODE_CHECKED:
            continue
        if decoded_frame_hashes(src, stream.index) != decoded_frame_hashes(out, position):
            raise UncuttableError(codec, "its decoder reads the in-frame data that carries the encoder's "
                                  "or camera's name (XviD/DivX user data pick the IDCT)",
                                  "; cutting it changed the decoded pictures")


def _reencode(src: Path, dst: Path, container_name: str, keep_audio: bool, encode: Encode,
              why: UncuttableError, started: float, verify: bool) -> CleanResult:
    """Decode every frame and encode it again with the visual path's encoder: no pixel is obscured."""
    from redactd.visual.codec import FramePlan, VideoReader, VideoWriter, fresh_copy
    from redactd.visual.codec import probe as video_probe

    if container_name == "webm":
        raise UnsupportedMediaError("re-encoded output is H.264/HEVC: use .mp4 or .mkv, not .webm")
    plan = FramePlan.from_limits(video_probe(src), Limits())
    audio = AudioMode.KEEP if keep_audio else AudioMode.DROP
    with atomic_output_keep_suffix(dst, mode=0o644) as tmp:
        with VideoReader(src, plan, with_audio=keep_audio) as reader:
            writer = VideoWriter(tmp, reader, encode, audio, container_name)
            try:
                for item in reader.items():
                    if isinstance(item, av.Packet):
                        writer.write_audio(item)
                        continue
                    frame = fresh_copy(item.frame, writer.video_format)
                    frame.pts, frame.duration, frame.time_base = item.pts, item.duration, item.time_base
                    writer.write_frame(frame)
                writer.commit()
            except BaseException:
                writer.abort()
                raise
            written = writer.written
        if verify:
            verify_clean(tmp, expect_video=1, expect_audio=1 if written.audio else 0)
    reason = f"{why.codec}: {why.why}"
    result = CleanResult(dst, container_name, 1, 1 if written.audio else 0,
                         (f"reencoded:{why.codec}->{encode.codec}",), time.monotonic() - started, reason)
    log.info("metadata_cleaned", container=container_name, video=1, audio=result.audio_streams,
             dropped=list(result.dropped), reencoded=why.codec, seconds=round(result.seconds, 3))
    return result
