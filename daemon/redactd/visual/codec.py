"""Decode and encode video through PyAV's bundled FFmpeg: frame selection, size caps, audio, no metadata.

PyAV was measured against piping raw frames to/from the ffmpeg CLI on this machine (see
bench/codec_path.py and the README): decode was as fast either way, and the pipe costs an extra
copy of every frame through the kernel, so everything stays in process.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Self, TypeVar, cast

import av
import av.bitstream
import numpy as np

from redactd.errors import EncodeError, InputError, UnsupportedMediaError
from redactd.fsutil import fsync_dir, fsync_file
from redactd.policy import AudioMode, Encode, Limits
from redactd.visual.audio import AudioConverter, encoder_format, native_decoder_layout, voice_shift_factor
from redactd.visual.obscure import PLANAR_YUV
from redactd.visual.speech import SpeechEditor

T = TypeVar("T")

#: H.264/HEVC SEI NAL units: x264 writes its version and full option string there as "user data
#: unregistered", and cameras put serials and GPS there. Removed from every packet we write.
_STRIP_SEI = {"h264": "filter_units=remove_types=6", "hevc": "filter_units=remove_types=39|40"}
_ENCODER_STREAM = {"libx264": "h264", "libx265": "hevc"}
#: Audio codecs kept audio is copied in when the output is MP4, named as the stream's codec (PyAV
#: decodes MP3 with "mp3float", which is still MP3): those with a registered MP4 sample entry that
#: FFmpeg's mp4 muxer writes without `-strict experimental` and that players read from MP4 (FFmpeg
#: and VLC all of them, browsers and Apple's most). MP2 (which FFmpeg 5 reads back as MP3), DTS,
#: Vorbis, PCM (`ipcm`, which FFmpeg 5 reads back as 16-bit) and the rest are re-encoded to AAC.
_MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}
_OPEN_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class VideoInfo:
    """What the input holds, as far as redaction needs to know."""

    width: int
    height: int
    pix_fmt: str
    fps: Fraction | None
    frames: int  # estimated from the container when it does not say
    duration_s: float
    audio_codec: str | None
    rotation: int = 0  # display rotation in degrees (phone footage), from the first frame
    other_video: int = 0  # video streams besides the footage (other angles, cover art): not kept
    interlaced: bool = False  # the first frame is (each interlaced frame is detected field by field)


@dataclass(frozen=True)
class FramePlan:
    """How input frames become output frames: size after the height cap, and the frame-rate cap."""

    width: int
    height: int
    max_fps: Fraction | None
    frames: int  # expected output frames (for progress)
    rotation: int = 0  # display rotation, kept on the output; detectors see frames upright

    @classmethod
    def from_limits(cls, info: VideoInfo, limits: Limits) -> FramePlan:
        width, height = info.width, info.height
        short, long = min(width, height), max(width, height)
        if limits.max_height is not None and short > limits.max_height:
            # The cap is on the picture's shorter side, which is what "1080p" means for vertical
            # video too: a 1080x1920 screen recording stays 1080x1920, as the same picture coded
            # 1920x1080 with a phone's rotation flag does. Keep the aspect ratio; even sizes
            # because 4:2:0 chroma needs them.
            short_capped = limits.max_height - limits.max_height % 2
            long_capped = max(2, round(long * short_capped / short / 2) * 2)
            width, height = (long_capped, short_capped) if width >= height else (short_capped, long_capped)
        max_fps = None
        frames = info.frames
        if limits.max_fps is not None and (info.fps is None or info.fps > limits.max_fps):
            max_fps = Fraction(limits.max_fps).limit_denominator(1001)
            frames = math.ceil(info.duration_s * max_fps) if info.duration_s else frames
        return cls(width, height, max_fps, frames, info.rotation)


#: How chroma is resampled when a frame changes pixel format (RGB or 4:4:4 into 4:2:0 and back):
#: PyAV's default, bilinear, cost RGB footage ~5 dB PSNR against ffmpeg's own conversion.
CHROMA_INTERPOLATION = "BICUBIC"

#: AVCOL_SPC_BT470BG: the BT.601 matrix, swscale's default for RGB <-> YUV.
_BT601 = 5


def _is_rgb(fmt: str) -> bool:
    try:
        desc = av.VideoFormat(fmt, 64, 64)
    except (ValueError, av.error.FFmpegError):
        return False
    return bool(desc.is_rgb or desc.has_palette)


def _yuv_layout(fmt: str) -> tuple[int, int, int] | None:
    """(log2 horizontal, log2 vertical) chroma subsampling and bit depth of a YUV format, or None."""
    try:
        desc = av.VideoFormat(fmt, 64, 64)
    except (ValueError, av.error.FFmpegError):
        return None
    comps = desc.components
    if desc.is_rgb or len(comps) < 3:
        return None
    return (64 // comps[1].width).bit_length() - 1, (64 // comps[1].height).bit_length() - 1, comps[0].bits


def _nearest_yuv(src_fmt: str, supported: set[str], subsampling: tuple[int, int] | None = None) -> str:
    """The supported planar YUV format closest to ``src_fmt`` (with ``subsampling`` instead of its
    own, if given); 8-bit 4:2:0 (4:4:4 if that was asked for) when none is close."""
    layout = _yuv_layout(src_fmt)
    if layout is None:
        return "yuv444p" if subsampling == (0, 0) else "yuv420p"
    sx, sy, bits = layout
    if subsampling is not None:
        sx, sy = subsampling
    full_range = src_fmt.startswith("yuvj")
    candidates = [
        (depth, name) for name, (cx, cy, depth) in PLANAR_YUV.items()
        if name in supported and (cx, cy) == (sx, sy) and name.startswith("yuvj") == full_range
    ]
    if not candidates:
        return "yuv444p" if (sx, sy) == (0, 0) else "yuv420p"
    shallower = [c for c in candidates if c[0] <= bits]
    return max(shallower)[1] if shallower else min(candidates)[1]


def _open(path: Path) -> Any:
    try:
        return av.open(str(path), metadata_errors="ignore", timeout=_OPEN_TIMEOUT_S)
    except av.error.FFmpegError as exc:
        raise InputError(f"{path.name}: not a readable media file ({exc})") from exc


def main_video(container: Any, name: str) -> Any:
    """The stream that is the footage: the largest picture, cover art aside, the first of equals.

    A second video stream is a preview, a thumbnail track or another angle; it is not redacted and
    never reaches the output (the log says how many were left out).
    """
    pictures = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not pictures:
        kind = "only cover art" if container.streams.video else "no video stream"
        raise UnsupportedMediaError(f"{name}: has {kind}")
    return max(pictures, key=lambda s: (s.codec_context.width or 0) * (s.codec_context.height or 0))


def probe(path: Path) -> VideoInfo:
    """Size, pixel format, rate, length and audio codec of the footage's video stream."""
    with _open(path) as container:
        vs = main_video(container, path.name)
        ctx = vs.codec_context
        if not ctx.width or not ctx.height or ctx.format is None:
            raise UnsupportedMediaError(f"{path.name}: video stream has no usable size or pixel format")
        # FFmpeg's own guess (av_guess_frame_rate), not the average alone: raw H.264 has no
        # timestamps to average (a 60 fps stream reads as 25), Ogg has no average at all, and DV
        # reports its time base's 60000 as one.
        rate = vs.guessed_rate or vs.average_rate
        fps = Fraction(rate) if rate else None
        if vs.duration is not None and vs.time_base is not None:
            duration = float(vs.duration * vs.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        frames = vs.frames or (round(duration * fps) if fps else 0)
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        others = sum(1 for s in container.streams.video if s is not vs)
        rotation, interlaced = _first_frame_facts(container, vs)
        return VideoInfo(ctx.width, ctx.height, ctx.format.name, fps, frames, duration, audio,
                         rotation, others, interlaced)


def _first_frame_facts(container: Any, stream: Any) -> tuple[int, bool]:
    """The display rotation FFmpeg attaches to decoded frames, and whether they are interlaced,
    as the first frame says (0 and False when it has none or does not decode)."""
    try:
        frame = next(container.decode(stream), None)
    except av.error.FFmpegError:
        return 0, False  # decoding problems are reported by the passes that need the frames
    if frame is None:
        return 0, False
    return (round(frame.rotation) if frame.rotation else 0), bool(frame.interlaced_frame)


class _Timeline:
    """Puts decoded frames on the output's timeline: the input's own times, moved to start at zero.

    Times stay in ticks of the input stream's time base, so variable-rate footage keeps its exact
    timing. A frame without a timestamp (raw H.264/HEVC elementary streams carry none) or whose
    timestamp does not move forward (broken input; no encoder or muxer takes it) is placed one
    frame after the previous one: that frame's duration, else a period at the stream's rate.

    The rate cap keeps the first frame of each 1/max_fps slot, counted from the first frame, a
    frame counting in the slot where the middle of its display interval falls: input at a whole
    multiple of the cap keeps every n-th frame from the first, and frames jittering around the
    cap's own rate all stay.
    """

    def __init__(self, time_base: Fraction, offset: int, rate: Fraction | None, max_fps: Fraction | None) -> None:
        self.time_base = time_base
        self.offset = offset  # ticks of the input taken as the output's zero
        self.period = max(1, round(1 / (rate * time_base))) if rate else 1
        self.max_fps = max_fps
        self.first: int | None = None
        self.last: int | None = None
        self.last_step = self.period
        self.last_slot: int | None = None

    @property
    def end(self) -> int:
        """Where the last frame seen stops showing, on the output's timeline."""
        return 0 if self.last is None else self.last + self.last_step - self.offset

    def place(self, pts: int | None, duration: int) -> int | None:
        """The output timestamp of a frame at ``pts`` showing for ``duration`` ticks, or None to drop it."""
        if pts is None or (self.last is not None and pts <= self.last):
            pts = self.offset if self.last is None else self.last + self.last_step
        step = duration if duration > 0 else self.period
        self.last, self.last_step = pts, step
        if self.first is None:
            self.first = pts
        if self.max_fps is not None:
            slots = (pts - self.first) * self.time_base * self.max_fps
            slot = math.floor(slots + min(Fraction(1), step * self.time_base * self.max_fps) / 2)
            if self.last_slot is not None and slot <= self.last_slot:
                return None
            self.last_slot = slot
        return pts - self.offset


@dataclass(frozen=True)
class Decoded:
    """One kept frame: its index among kept frames, output timestamp and duration, and the (size-capped) frame."""

    index: int
    pts: int
    time_base: Fraction
    frame: av.VideoFrame
    duration: int  # until the next kept frame: the input's spacing, or the frames the rate cap dropped


#: Items decoded ahead of the consumer.
PREFETCH_DEPTH = 4


def prefetch(items: Iterator[T], depth: int = PREFETCH_DEPTH) -> Iterator[T]:
    """Run an iterator in a background thread so decoding overlaps detection or encoding.

    FFmpeg and onnxruntime release the GIL, so the two really run in parallel.
    """
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def worker() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer's thread
            q.put(("error", exc))

    thread = threading.Thread(target=worker, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join(timeout=5)


class VideoReader:
    """Decodes the footage's video stream (and, if asked, hands over audio packets in file order)."""

    def __init__(self, path: Path, plan: FramePlan, with_audio: bool = False) -> None:
        self.path = path
        self.plan = plan
        self.with_audio = with_audio
        self.container = _open(path)
        self.video = main_video(self.container, path.name)
        self.video.thread_type = "AUTO"
        self.audio = self.container.streams.audio[0] if with_audio and self.container.streams.audio else None
        if self.audio is not None:
            native_decoder_layout(self.audio, path)
        #: The output keeps the input's time base: variable-rate frame times stay exact.
        self.time_base = Fraction(self.video.time_base)
        # The output starts at zero wherever the input starts (MPEG-TS and -PS start anywhere, often
        # past 1 s): every stream written moves back by the earliest start among them, so audio keeps
        # its offset from the video. FFmpeg's per-stream start times already account for edit lists.
        starts = [Fraction(s.start_time) * s.time_base for s in (self.video, self.audio)
                  if s is not None and s.start_time is not None]
        self.start = min(starts, default=Fraction(0))
        self._audio_shift = round(self.start / self.audio.time_base) if self.audio is not None else 0

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fit(self, frame: av.VideoFrame) -> av.VideoFrame:
        if (frame.width, frame.height) == (self.plan.width, self.plan.height):
            return frame
        return frame.reformat(width=self.plan.width, height=self.plan.height, interpolation="AREA")

    def items(self) -> Iterator[Decoded | av.Packet]:
        """Kept video frames (as `Decoded`) and, when audio is wanted, audio packets, in file order.

        Both on the output's timeline (see `_Timeline`). A kept frame is handed on once the next one
        is decoded, which fixes its duration: the last frame's matters, it ends the file.
        """
        rate = self.video.guessed_rate or self.video.average_rate
        timeline = _Timeline(self.time_base, round(self.start / self.time_base),
                             Fraction(rate) if rate else None, self.plan.max_fps)
        streams = [self.video] + ([self.audio] if self.audio is not None else [])
        index = 0
        held: tuple[int, av.VideoFrame] | None = None
        try:
            for packet in self.container.demux(*streams):
                if packet.stream is self.audio:
                    if packet.dts is not None:
                        packet.dts -= self._audio_shift
                        if packet.pts is not None:
                            packet.pts -= self._audio_shift
                        yield packet
                    continue
                for frame in packet.decode():
                    pts = timeline.place(frame.pts, frame.duration)
                    if pts is None:
                        continue
                    if held is not None:
                        yield Decoded(index, held[0], self.time_base, held[1], pts - held[0])
                        index += 1
                    held = (pts, self._fit(frame))
        except av.error.FFmpegError as exc:
            raise InputError(f"{self.path.name}: decoding failed at frame {index} ({exc})") from exc
        if held is not None:
            yield Decoded(index, held[0], self.time_base, held[1], timeline.end - held[0])

    def frames(self) -> Iterator[Decoded]:
        for item in self.items():
            if isinstance(item, Decoded):
                yield item


@dataclass(frozen=True)
class Written:
    """What an output file ended up holding."""

    pix_fmt: str
    audio: bool  # an audio track with at least one packet (an input track with no frames gives none)


class VideoWriter:
    """Encodes frames into a fresh MP4/MKV: no metadata, no SEI user data, MP4 with faststart.

    Written to a temporary file beside ``dst`` and renamed into place on `commit`, so a crash or an
    error never leaves a half-written output under the final name.
    """

    def __init__(
        self,
        dst: Path,
        reader: VideoReader,
        encode: Encode,
        audio: AudioMode,
        container_format: str = "mp4",
        speech: SpeechEditor | None = None,
        shift_voice: bool = False,
    ) -> None:
        """``speech`` rewrites the speech segments of the audio (mute_speech, McAdams); ``shift_voice``
        shifts the whole track's pitch instead (the older anonymiser)."""
        self.dst = dst
        self.speech = speech
        self.shift_voice = shift_voice
        # Same temp naming as redactd.fsutil: watchers and junk filters skip ".redactd-*.tmp".
        try:
            fd, tmp = tempfile.mkstemp(prefix=".redactd-", suffix=".tmp", dir=dst.parent)
        except OSError as exc:
            raise EncodeError(f"cannot write in {dst.parent}: {exc.strerror or exc}") from exc
        os.close(fd)
        self.tmp = Path(tmp)
        opts = {"movflags": "+faststart"} if container_format == "mp4" else {}
        try:
            self.out = av.open(str(self.tmp), "w", format=container_format, options=opts)
        except av.error.FFmpegError as exc:
            self.tmp.unlink(missing_ok=True)
            raise EncodeError(f"cannot create output {dst.name}: {exc}") from exc
        self._committed = False
        try:
            self._setup(reader, encode, audio, container_format)
        except av.error.FFmpegError as exc:
            self.abort()
            raise EncodeError(f"cannot set up the {encode.codec} encoder: {exc}") from exc
        except BaseException:
            self.abort()
            raise

    def _setup(self, reader: VideoReader, encode: Encode, audio: AudioMode, container_format: str) -> None:
        # "bitexact" stops libavformat writing its own "encoder: Lavf…" tag into the file.
        self.out.flags |= av.container.Flags.bitexact.value  # type: ignore[operator]
        self.out.metadata.clear()
        src_ctx = reader.video.codec_context
        rate = reader.plan.max_fps or reader.video.guessed_rate or reader.video.average_rate or Fraction(25)
        # The encoder works in the input's time base too: in 1/rate it would put two frames closer
        # than one period (variable-rate footage) on the same tick, which the muxer refuses.
        self.video = self.out.add_stream(encode.codec, rate=rate, time_base=reader.time_base)
        self.video.width = reader.plan.width
        self.video.height = reader.plan.height
        self.video.pix_fmt = self._pix_fmt(encode.codec, src_ctx.format.name, reader.plan.width,
                                           reader.plan.height)
        self.video.time_base = reader.time_base
        if reader.plan.rotation:
            # Frames stay in their coded orientation: keep the player's instruction to turn them.
            self.video.set_display_rotation(reader.plan.rotation)
        self.video.codec_context.thread_type = "FRAME"  # measured 2x faster than x264's sliced threads
        from_rgb = _is_rgb(src_ctx.format.name) and not _is_rgb(str(self.video.pix_fmt))
        for attr in ("color_range", "colorspace", "color_primaries", "color_trc"):
            # Colour description is kept so colours do not shift; a value the encoder refuses is
            # left at its default rather than failing the job. RGB turned into YUV is described by
            # the matrix swscale used, BT.601: the source's "GBR" would tell players the planes
            # are G, B and R (an odd-sized RGB clip came out in false colours, 12 dB PSNR).
            value = _BT601 if from_rgb and attr == "colorspace" else getattr(src_ctx, attr, None)
            if value is not None:
                with contextlib.suppress(AttributeError, ValueError, TypeError):
                    setattr(self.video.codec_context, attr, value)
        # Non-square pixels (DV, MPEG-2, anamorphic): without it a 16:9 picture plays as 4:3. The
        # container's value wins over the bitstream's, as in FFmpeg (an H.263 stream says 12:11
        # inside a 3GP that says 1:1; `-aspect 16:9` rewrites only the container's).
        sar = reader.video.sample_aspect_ratio or src_ctx.sample_aspect_ratio
        if sar:
            self.video.codec_context.sample_aspect_ratio = sar
        self.video.options = {"crf": str(encode.crf), "preset": encode.preset}
        if encode.codec == "libx265":
            # x265 puts its banner SEI in the hvcC configuration record, which the packet filter
            # below never sees: tell it not to write one.
            self.video.options["x265-params"] = "info=0:log-level=error"
        self.bsf = av.bitstream.BitStreamFilterContext(
            _STRIP_SEI[_ENCODER_STREAM[encode.codec]], self.video
        )
        self.audio_out: Any = None
        self.audio_decoder: Any = None  # the input's, when the audio is re-encoded
        self.audio_source = ""  # the input's file name, for errors
        self.audio_convert: AudioConverter | None = None
        self.audio_copy = False
        self.audio_packets = 0
        if audio is not AudioMode.DROP and reader.audio is not None:
            self._add_audio(reader.audio, audio, container_format)

    @staticmethod
    def _pix_fmt(codec: str, src_fmt: str, width: int, height: int) -> str:
        """The input's pixel format when the encoder takes it, else the nearest one it does.

        Nearest: the same chroma subsampling at the deepest depth not above the input's (ProRes
        4444's 12-bit 4:4:4 with alpha becomes 10-bit 4:4:4 in x264, not 8-bit 4:2:0). RGB and
        unusual subsamplings (4:1:1) become 4:2:0, the one every player reads. x264/x265 cannot
        subsample chroma of an odd-sized frame (VP9 and others can): such a frame keeps its exact
        size in 4:4:4 rather than being cropped or padded.
        """
        supported = {f.name for f in (av.codec.Codec(codec, "w").video_formats or [])}
        fmt = src_fmt if src_fmt in supported else _nearest_yuv(src_fmt, supported)
        if (width % 2 or height % 2) and PLANAR_YUV.get(fmt, (1, 1, 8))[:2] != (0, 0) and not fmt.startswith("gray"):
            return _nearest_yuv(fmt, supported, subsampling=(0, 0))  # at the depth it had
        return fmt

    def _add_audio(self, src: Any, mode: AudioMode, container_format: str) -> None:
        ctx = src.codec_context
        if mode is AudioMode.KEEP and self._carries(ctx.codec, container_format):
            self.audio_out = self.out.add_stream_from_template(src)
            self.audio_out.metadata.clear()
            self.audio_copy = True
            return
        # The encoder is set up from the stream header (the output's header is written before any
        # audio is decoded); the converter fits whatever the frames turn out to be to it.
        rate, layout = encoder_format(ctx)
        if self.speech is not None and (self.speech.plan.rate, self.speech.plan.layout) != (rate, layout):
            raise EncodeError(f"the speech plan is for {self.speech.plan.layout} at {self.speech.plan.rate} Hz, the "
                              f"encoder takes {layout} at {rate} Hz")
        self.audio_decoder = ctx
        self.audio_source = Path(src.container.name).name
        self.audio_out = self.out.add_stream("aac", rate=rate)
        self.audio_out.layout = layout
        # Else FFmpeg's AAC encoder writes its name and version ("Lavc62.28.102") into the first
        # packet, as x264 does into its SEI.
        self.audio_out.codec_context.flags |= av.codec.context.Flags.bitexact
        shift = voice_shift_factor() if mode is AudioMode.ANONYMIZE and self.shift_voice else None
        self.audio_convert = AudioConverter(rate, layout, shift, self.speech)

    def _carries(self, codec: av.Codec, container_format: str) -> bool:
        """Whether the output holds audio in ``codec`` as it is: in MP4 the `_MP4_AUDIO` codecs,
        in other containers whatever their muxer takes (Matroska takes neither WMA nor mu-law)."""
        if container_format == "mp4":
            return codec.canonical_name in _MP4_AUDIO
        supported = self.out.supported_codecs
        return codec.name in supported or codec.canonical_name in supported

    @property
    def video_format(self) -> str:
        return str(self.video.pix_fmt)

    @property
    def written(self) -> Written:
        return Written(self.video_format, self.audio_packets > 0)

    def _mux_audio(self, packet: av.Packet) -> None:
        if packet.size:
            self.audio_packets += 1
        self.out.mux(packet)

    def write_frame(self, frame: av.VideoFrame) -> None:
        try:
            for packet in self.video.encode(frame):
                self._mux_video(packet)
        except av.error.FFmpegError as exc:
            raise EncodeError(f"video encoding failed: {exc}") from exc

    def _mux_video(self, packet: av.Packet) -> None:
        for out in self.bsf.filter(packet):
            out.stream = self.video
            self.out.mux(out)

    def write_audio(self, packet: av.Packet) -> None:
        if self.audio_out is None:
            return
        frames = [] if self.audio_copy else self._decode_audio(packet)
        try:
            if self.audio_copy:
                packet.stream = self.audio_out
                self._mux_audio(packet)
            for frame in frames:
                self._encode_audio(frame)
        except av.error.FFmpegError as exc:
            raise EncodeError(f"audio processing failed: {exc}") from exc

    def _decode_audio(self, packet: av.Packet | None) -> list[av.AudioFrame]:
        """The frames of one input packet, or with None what the decoder still holds."""
        try:
            return cast(list[av.AudioFrame], self.audio_decoder.decode(packet))
        except av.error.FFmpegError as exc:
            # Bad input, like a video frame that does not decode: not the encoder's failure.
            raise InputError(f"{self.audio_source}: audio decoding failed ({exc})") from exc

    def _encode_audio(self, frame: av.AudioFrame | None) -> None:
        assert self.audio_convert is not None
        frames: list[av.AudioFrame | None] = list(self.audio_convert.convert(frame))
        if frame is None:
            frames.append(None)
        for f in frames:
            for packet in self.audio_out.encode(f):
                self._mux_audio(packet)

    def commit(self) -> None:
        """Flush encoders, finish the file, fsync it and rename it to ``dst``."""
        try:
            for packet in self.video.encode(None):
                self._mux_video(packet)
            for out in self.bsf.filter(None):
                out.stream = self.video
                self.out.mux(out)
            if self.audio_out is not None and not self.audio_copy:
                # The reader passes on no end-of-stream packet: what the decoder still holds (WMA
                # keeps a frame back) comes out here.
                for frame in self._decode_audio(None):
                    self._encode_audio(frame)
                self._encode_audio(None)
            self.out.close()
        except av.error.FFmpegError as exc:
            self.abort()
            raise EncodeError(f"finishing the output failed: {exc}") from exc
        try:
            os.chmod(self.tmp, 0o644)
            fsync_file(self.tmp)
            os.replace(self.tmp, self.dst)
        except OSError as exc:
            self.tmp.unlink(missing_ok=True)
            raise EncodeError(f"cannot put the output in place as {self.dst}: {exc.strerror or exc}; "
                              "no output was kept") from exc
        self._committed = True
        fsync_dir(self.dst.parent)

    def abort(self) -> None:
        if not self._committed:
            # The file is being thrown away: an error while closing it changes nothing.
            with contextlib.suppress(av.error.FFmpegError, OSError, ValueError):
                self.out.close()
            self.tmp.unlink(missing_ok=True)


@contextmanager
def plane_views(frame: av.VideoFrame) -> Iterator[list[np.ndarray]]:
    """Writable numpy views (rows × visible width) of each plane of a frame we own.

    8-bit formats give uint8 planes; 9- to 16-bit little-endian ones (``yuv420p10le``…) uint16
    planes holding the samples as they are (0..1023 for 10-bit).
    """
    dtype = np.dtype("<u2") if frame.format.name.endswith("le") else np.dtype(np.uint8)
    yield [_plane_bytes(plane).view(dtype)[:, : plane.width] for plane in frame.planes]


def _plane_bytes(plane: av.video.plane.VideoPlane) -> np.ndarray:
    """The whole plane buffer (rows × line size in bytes, padding included) as a writable array."""
    return np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)


def fresh_copy(frame: av.VideoFrame, fmt: str) -> av.VideoFrame:
    """A new frame we own, in ``fmt``, with none of the decoder's side data or picture type.

    Decoded frames can be the decoder's reference pictures (writing into them would corrupt the
    frames decoded after), and their side data may carry SEI that an encoder would copy out.
    """
    src = frame if frame.format.name == fmt else frame.reformat(format=fmt, interpolation=CHROMA_INTERPOLATION)
    out = av.VideoFrame(src.width, src.height, fmt)
    for a, b in zip(src.planes, out.planes, strict=True):
        sa, sb = _plane_bytes(a), _plane_bytes(b)
        width = min(a.line_size, b.line_size)
        sb[:, :width] = sa[:, :width]
    out.pts = frame.pts
    out.time_base = frame.time_base
    out.color_range = src.color_range
    return out


def to_bgr(frame: av.VideoFrame) -> np.ndarray:
    """A BGR copy for the detectors; OpenCV's I420 conversion is ~10x cheaper than swscale's."""
    import cv2

    if frame.format.name in ("yuv420p", "yuvj420p") and frame.width % 2 == 0 and frame.height % 2 == 0:
        with plane_views(frame) as (y, u, v):
            # OpenCV reads I420 as one buffer of height × 3/2 rows: the chroma planes follow the
            # luma back to back, not row-aligned (a 270-row frame has 135 chroma rows each).
            i420 = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(-1, frame.width)
        return cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)
    return frame.to_ndarray(format="bgr24")


Progress = Callable[[int, int], None]
