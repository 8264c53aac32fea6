"""Compose the visual redaction of one file: detection, tracking and the obscure-and-encode step.

One decoding pass: each frame is detected, held in memory, and encoded as soon as tracking has
seen every later detection that could still change its boxes (`tracking_lag` frames, 47 with
the default policy), so encoding overlaps detection and the file is decoded once (7 % less wall
time on 4K HEVC phone footage here, bench/passes.py). A policy whose tracking window would hold
more than `MAX_HELD_BYTES` of frames runs as two passes instead: detect the whole clip, track,
then decode again to render. The boxes are the same either way; review-before-blur uses the two
passes with a human in between.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from redactd import log
from redactd.errors import ConfigError, DetectError, EncodeError, InputError
from redactd.metadata.boxes import truncation
from redactd.policy import AudioMode, Mode, Obscure, RedactionPolicy
from redactd.visual import sidecar
from redactd.visual.codec import (
    CHROMA_INTERPOLATION,
    PREFETCH_DEPTH,
    Decoded,
    FramePlan,
    VideoInfo,
    VideoReader,
    VideoWriter,
    Written,
    fresh_copy,
    plane_views,
    prefetch,
    probe,
    to_bgr,
)
from redactd.visual.detect import Box, CompositeDetector, ModelInfo, Pending, build_detector
from redactd.visual.obscure import PLANAR_YUV, Region, obscure_planes, regions_for
from redactd.visual.orient import fields, quarter_turns, to_coded, upright
from redactd.visual.speech import SpeechPlan, audio_section, editor_for, find_speech, needs_speech
from redactd.visual.track import StreamTracker, TrackedBox, track_boxes, tracking_lag

Progress = Callable[[int, int], None]

@dataclass(frozen=True)
class PhaseTimes:
    """Seconds spent in each phase. Decode runs in its own thread, so the sum exceeds the wall time."""

    decode: float
    detect: float
    track: float
    obscure: float
    encode: float
    wall: float


@dataclass(frozen=True)
class RedactResult:
    """What one visual redaction did: sizes, counts, timings and models (no personal data)."""

    frames: int
    width: int
    height: int
    pix_fmt: str
    audio: str
    boxes_detected: int
    boxes_filled: int
    tracks: dict[str, int]
    models: tuple[ModelInfo, ...]
    times: PhaseTimes
    summary: dict[str, Any] = field(repr=False)
    speech: dict[str, Any] = field(default_factory=dict, repr=False)  # the sidecar's audio section
    #: Per ONNX model (by name): the calls this job made and the input pixels it fed them
    #: (`detect.Fed`): the work the policy asked for, the same on every run of the same clip.
    model_input: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.times.wall if self.times.wall > 0 else 0.0

    @property
    def model_mpx_per_frame(self) -> dict[str, float]:
        """Megapixels each model was fed per frame (`model_input`), rounded for a summary."""
        return {name: round(pixels / max(1, self.frames) / 1e6, 4) for name, (_, pixels) in self.model_input.items()}


class _Clock:
    """Accumulates seconds per phase; thread-safe enough for one writer per phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, phase: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - since
        return now

    def timed(self, phase: str, items: Iterator[Any]) -> Iterator[Any]:
        while True:
            start = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                self.add(phase, start)
                return
            self.add(phase, start)
            yield item


class _InFlight:
    """Frames handed to the detector and not taken back yet, in frame order.

    Up to ``detector.workers`` frames are detected at once, so each model's thread moves on to
    the next frame as soon as it is done with this one; results come back in frame order, with
    ``None`` for frames left to tracking (detection on every k-th frame only).
    """

    def __init__(self, detector: CompositeDetector, plan: FramePlan, every_k: int, clock: _Clock) -> None:
        self.detector = detector
        self.plan = plan
        self.every_k = every_k
        self.clock = clock
        self.turns = quarter_turns(plan.rotation)
        self.queue: deque[Pending | None] = deque()
        self.running = 0

    def add(self, item: Decoded) -> Iterator[list[Box] | None]:
        """Start on ``item`` (or skip it); yields the results now due, oldest first."""
        if item.index % self.every_k:
            self.queue.append(None)
        else:
            start = time.perf_counter()
            pictures = fields(to_bgr(item.frame)) if item.frame.interlaced_frame else [to_bgr(item.frame)]
            number = item.index // self.every_k  # passes on a cadence count detected frames
            pending = [self.detector.submit(upright(picture, self.turns), (number, part))
                       for part, picture in enumerate(pictures)]
            self.queue.append(pending[0] if len(pending) == 1 else Pending.joined(pending))
            self.running += 1
            self.clock.add("detect", start)
        yield from self.take(self.detector.workers)

    def take(self, limit: int = 0) -> Iterator[list[Box] | None]:
        """Results of the oldest frames until at most ``limit`` are still being detected."""
        while self.queue and (self.running > limit or self.queue[0] is None):
            pending = self.queue.popleft()
            if pending is None:
                yield None
                continue
            start = time.perf_counter()
            found = pending.result()
            self.running -= 1
            self.clock.add("detect", start)
            yield [to_coded(b, self.turns, self.plan.width, self.plan.height) for b in found]


def detect_pass(
    src: Path,
    plan: FramePlan,
    detector: CompositeDetector,
    every_k: int,
    clock: _Clock,
    tick: Callable[[], None],
) -> list[list[Box] | None]:
    """Run the detectors on every k-th kept frame; ``None`` for frames left to tracking."""
    detections: list[list[Box] | None] = []
    flight = _InFlight(detector, plan, every_k, clock)
    with VideoReader(src, plan) as reader:
        for item in prefetch(clock.timed("decode", reader.frames())):
            for found in flight.add(item):
                detections.append(found)
                tick()
        for found in flight.take():
            detections.append(found)
            tick()
    return detections


def obscure_frame(decoded: av.VideoFrame, out_format: str, regions: list[Region], cfg: Obscure) -> av.VideoFrame:
    """A copy of ``decoded`` in ``out_format`` with ``regions`` obscured.

    Planar YUV formats (8 to 12 bits) are obscured in place at their own depth; anything else
    goes through 8-bit 4:2:0 for obscuring and is converted back.
    """
    fmt = out_format if out_format in PLANAR_YUV else "yuv420p"
    frame = fresh_copy(decoded, fmt)
    sx, sy, bits = PLANAR_YUV[fmt]
    with plane_views(frame) as planes:
        obscure_planes(planes, regions, cfg, (sx, sy), bits)
    return frame if fmt == out_format else frame.reformat(format=out_format, interpolation=CHROMA_INTERPOLATION)


def render_frame(item: Decoded, boxes: list[TrackedBox], writer: VideoWriter, cfg: Obscure, clock: _Clock) -> None:
    """Obscure one decoded frame's boxes and hand it to the encoder."""
    start = time.perf_counter()
    regions = regions_for([(b.box.x0, b.box.y0, b.box.x1, b.box.y1, b.box.label, b.box.turn) for b in boxes], cfg,
                          (item.frame.width, item.frame.height))
    frame = obscure_frame(item.frame, writer.video_format, regions, cfg)
    frame.pts = item.pts
    frame.duration = item.duration
    frame.time_base = item.time_base
    start = clock.add("obscure", start)
    writer.write_frame(frame)
    clock.add("encode", start)


def render_pass(
    src: Path,
    dst: Path,
    plan: FramePlan,
    policy: RedactionPolicy,
    boxes: list[list[TrackedBox]],
    container_format: str,
    clock: _Clock,
    tick: Callable[[], None],
    speech: SpeechPlan | None = None,
) -> Written:
    """Decode again, obscure each frame's boxes in its YUV planes, encode; returns what was written."""
    with (VideoReader(src, plan, with_audio=policy.audio is not AudioMode.DROP) as reader,
          _output(dst, reader, policy, container_format, clock, speech) as writer):
        rendered = 0
        for item in prefetch(clock.timed("decode", reader.items())):
            if not isinstance(item, Decoded):
                writer.write_audio(item)
                continue
            if item.index >= len(boxes):
                raise DetectError("the render pass decoded more frames than the detection pass")
            render_frame(item, boxes[item.index], writer, policy.obscure, clock)
            tick()
            rendered = item.index + 1
        if rendered != len(boxes):
            # Fail closed before the output exists: frames and boxes no longer line up.
            raise DetectError(f"the render pass decoded {rendered} frames, the detection pass {len(boxes)}")
    return writer.written


@contextmanager
def _output(
    dst: Path, reader: VideoReader, policy: RedactionPolicy, container_format: str, clock: _Clock,
    speech: SpeechPlan | None = None,
) -> Iterator[VideoWriter]:
    """The encoder for ``dst``: committed (timed as encoding) if the block succeeds, else aborted,
    so a failure never leaves an output behind."""
    shift = policy.audio is AudioMode.ANONYMIZE and policy.speech.anonymizer == "pitch_shift"
    writer = VideoWriter(dst, reader, policy.encode, policy.audio, container_format,
                         editor_for(speech, policy.audio.value, policy.speech), shift)
    try:
        yield writer
        start = time.perf_counter()
        writer.commit()
        clock.add("encode", start)
    except BaseException:
        writer.abort()
        raise


#: Decoded frames the single pass may hold while their boxes wait on later detections; a policy
#: that needs more (a very long ``max_gap`` on large frames) runs as two passes instead.
MAX_HELD_BYTES = 512 * 1024 * 1024


def held_frames(tracking_lag: int, workers: int) -> int:
    """Frames the single pass holds at most: the tracker's lag, frames being detected, decode read-ahead."""
    return tracking_lag + workers + PREFETCH_DEPTH + 2


def frame_bytes(plan: FramePlan, pix_fmt: str) -> int:
    """Memory one decoded frame takes, near enough: its luma and two chroma planes at the format's
    subsampling (4:4:4 where the format is not a planar YUV one), two bytes a sample above 8 bits."""
    sx, sy, bits = PLANAR_YUV.get(pix_fmt, (0, 0, 8))
    depth = 2 if bits > 8 else 1
    chroma = -(-plan.width >> sx) * -(-plan.height >> sy)
    return (plan.width * plan.height + 2 * chroma) * depth


def single_pass(
    src: Path,
    dst: Path,
    plan: FramePlan,
    policy: RedactionPolicy,
    detector: CompositeDetector,
    container_format: str,
    clock: _Clock,
    tick: Callable[[], None],
    speech: SpeechPlan | None = None,
) -> tuple[Written, list[list[TrackedBox]]]:
    """Decode once: detect, track and render together, each frame encoded once its boxes are final.

    A frame waits (decoded, in memory) only until the tracker has seen the detections that can
    still change its boxes (`StreamTracker.lag` frames), so encoding overlaps detection and the
    file is decoded once. The boxes are exactly those of detecting the whole clip first.
    Returns the output pixel format and every frame's boxes (for the sidecar).
    """
    every_k = policy.detect.every_k_frames
    tracker = StreamTracker(policy.tracking, plan.width, plan.height, every_k)
    flight = _InFlight(detector, plan, every_k, clock)
    waiting: deque[Decoded] = deque()
    boxes: list[list[TrackedBox]] = []
    with (VideoReader(src, plan, with_audio=policy.audio is not AudioMode.DROP) as reader,
          _output(dst, reader, policy, container_format, clock, speech) as writer):

        def track(found: list[Box] | None) -> None:
            start = time.perf_counter()
            final = tracker.push(found)
            clock.add("track", start)
            render(final)

        def render(final: list[list[TrackedBox]]) -> None:
            for frame_boxes in final:
                render_frame(waiting.popleft(), frame_boxes, writer, policy.obscure, clock)
                boxes.append(frame_boxes)
                tick()

        for item in prefetch(clock.timed("decode", reader.items()), PREFETCH_DEPTH):
            if not isinstance(item, Decoded):
                writer.write_audio(item)
                continue
            waiting.append(item)
            for found in flight.add(item):
                track(found)
        for found in flight.take():
            track(found)
        render(tracker.finish())
        if not boxes:
            raise InputError(f"{src.name}: no video frames could be decoded")
    return writer.written, boxes


_SUFFIX_CONTAINER = {".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska"}


def _container_for(dst: Path, policy: RedactionPolicy) -> str:
    """The container ``dst``'s name asks for, which must be the one the policy writes, if it names one:
    MP4 bytes in a file called ``.mkv`` (or ``.webm``) mislead every tool that trusts the name."""
    named = _SUFFIX_CONTAINER.get(dst.suffix.lower())
    if named is None:
        raise ConfigError(f"{dst.name}: redactd writes MP4 or Matroska video: name the output .mp4 or .mkv")
    if policy.output.container != "auto" and {"mp4": "mp4", "mkv": "matroska"}[policy.output.container] != named:
        raise ConfigError(f"{dst.name}: policy '{policy.id}' writes {policy.output.container.upper()} "
                          f"(output.container): name the output .{policy.output.container}")
    return named


def plan_speech(src: Path, plan: FramePlan, policy: RedactionPolicy) -> SpeechPlan | None:
    """Where the speech is in ``src``'s audio, when the policy's audio mode needs to know (a pass over
    the audio alone, before the render); None when it does not, or there is no audio."""
    kind = needs_speech(policy.audio.value, policy.speech)
    if kind is None:
        return None
    with VideoReader(src, plan, with_audio=True) as reader:
        return find_speech(reader, policy.speech, measure_noise=kind == "mute" and policy.speech.fill == "noise")


def redact_video(
    src: Path,
    dst: Path,
    policy: RedactionPolicy,
    progress: Progress | None = None,
    sidecar_path: Path | None = None,
    detector: CompositeDetector | None = None,
) -> RedactResult:
    """Find, track and obscure faces and text in ``src``; write the re-encoded result to ``dst``.

    ``progress(done, total)`` counts frames (half a frame per pass when it runs as two).
    ``detector`` lets a caller reuse loaded models across jobs (loading costs ~0.3 s); by default
    the policy's are built.
    The output is written atomically; on any error nothing is left at ``dst``.
    """
    if policy.mode is not Mode.VISUAL:
        raise ConfigError(f"policy '{policy.id}' is mode {policy.mode.value}: visual redaction needs mode visual")
    if not src.is_file():
        raise InputError(f"{src}: input file not found" if not src.exists() else f"{src}: not a regular file")
    container_format = _container_for(dst, policy)
    cut_short = truncation(src)
    if cut_short:
        # Its index may still list every frame, but only those before the cut can be decoded:
        # it would be published as a shorter clip without a word.
        raise InputError(f"{src.name}: truncated: {cut_short}")
    started = time.perf_counter()
    info = probe(src)
    plan = FramePlan.from_limits(info, policy.limits)
    own_detector = detector is None
    detector = detector or build_detector(policy.detect)
    try:
        return _redact(src, dst, policy, progress, sidecar_path, detector, info, plan, container_format, started)
    finally:
        if own_detector:
            detector.close()


def _redact(
    src: Path,
    dst: Path,
    policy: RedactionPolicy,
    progress: Progress | None,
    sidecar_path: Path | None,
    detector: CompositeDetector,
    info: VideoInfo,
    plan: FramePlan,
    container_format: str,
    started: float,
) -> RedactResult:
    logger = log.get_logger().bind(policy=policy.id, policy_version=policy.version)
    clock = _Clock()
    if info.other_video:
        logger.info("video_streams_left_out", count=info.other_video, kept=f"{info.width}x{info.height}",
                    why="only the largest picture is redacted and kept (other angles, previews, cover art)")
    lag = tracking_lag(policy.tracking, policy.detect.every_k_frames)
    held = held_frames(lag, detector.workers) * frame_bytes(plan, info.pix_fmt)
    single = held <= MAX_HELD_BYTES
    passes = 1 if single else 2
    done = 0
    # In frames: the container's count is an estimate until the first pass has seen every frame.
    total = max(1, plan.frames)

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done // passes, max(total, done // passes))

    fed_before = detector.fed()  # a detector handed in may have run other jobs
    start = time.perf_counter()
    speech = plan_speech(src, plan, policy)
    clock.add("speech", start)
    if single:
        written, boxes = single_pass(src, dst, plan, policy, detector, container_format, clock, tick, speech)
    else:
        logger.info("two_passes", reason="frames held for tracking would exceed the memory cap",
                    held_mib=held >> 20, cap_mib=MAX_HELD_BYTES >> 20)
        detections = detect_pass(src, plan, detector, policy.detect.every_k_frames, clock, tick)
        if not detections:
            raise InputError(f"{src.name}: no video frames could be decoded")
        total = len(detections)
        start = time.perf_counter()
        boxes = track_boxes(detections, policy.tracking, plan.width, plan.height)
        clock.add("track", start)
        written = render_pass(src, dst, plan, policy, boxes, container_format, clock, tick, speech)
    # A model loaded only for some pictures (fp32 CenterFace, for dim ones) is named where it ran.
    models = [*detector.models(fed_before), *([speech.model] if speech is not None else [])]
    summary = sidecar.summary(policy, models, boxes)
    audio = audio_section(speech, policy.audio.value, policy.speech, info.audio_codec is not None)
    if sidecar_path is not None:
        rate = plan.max_fps or info.fps
        fps = float(rate) if rate is not None else None
        try:
            doc = sidecar.document(policy, models, boxes, plan.width, plan.height, fps, info.interlaced)
            if policy.audio is not AudioMode.DROP:
                doc["audio"] = audio
            sidecar.write(sidecar_path, doc)
        except OSError as exc:
            dst.unlink(missing_ok=True)  # a redacted video and its detections come together or not at all
            raise EncodeError(f"cannot write the detections sidecar {sidecar_path.name}: "
                              f"{exc.strerror or exc}; no output was kept") from exc
    s = clock.seconds
    times = PhaseTimes(
        s.get("decode", 0.0), s.get("detect", 0.0), s.get("track", 0.0), s.get("obscure", 0.0),
        s.get("encode", 0.0), time.perf_counter() - started,
    )
    counts = summary["counts"]
    fed = {}
    for name, (calls, pixels) in detector.fed().items():
        calls_before, pixels_before = fed_before.get(name, (0, 0))
        if calls > calls_before or any(m.name == name for m in detector.infos):
            fed[name] = (calls - calls_before, pixels - pixels_before)
    result = RedactResult(
        frames=len(boxes), width=plan.width, height=plan.height, pix_fmt=written.pix_fmt,
        audio=policy.audio.value if written.audio else "none",
        boxes_detected=counts["boxes_detected"], boxes_filled=counts["boxes_filled"],
        tracks=dict(counts["tracks"]), models=tuple(models), times=times, summary=summary, speech=audio,
        model_input=fed,
    )
    logger.info(
        "video_redacted", frames=len(boxes), width=plan.width, height=plan.height,
        boxes_detected=counts["boxes_detected"], boxes_filled=counts["boxes_filled"],
        wall_s=round(times.wall, 3), detect_s=round(times.detect, 3), encode_s=round(times.encode, 3),
        speech_s=round(s.get("speech", 0.0), 3), model_mpx_per_frame=result.model_mpx_per_frame,
    )
    return result


# --------------------------------------------------------------------------- preview

COLOURS = {"face": (0, 255, 0), "text": (0, 165, 255), "plate": (0, 0, 255), "person": (255, 0, 0)}


def _frame_at(src: Path, plan: FramePlan, at_s: float, seek: bool) -> av.VideoFrame | None:
    """The first frame at or after ``at_s`` (the last one if none is), or None if a seek missed it.

    Times count from the first frame, as in the redacted output: an MPEG-TS clip's 0.5 s is 0.5 s
    after its first frame, not 0.5 s on a clock that starts at about 1.4.
    """
    with VideoReader(src, plan) as reader:
        if seek:
            try:
                reader.container.seek(int((at_s + reader.start) / reader.video.time_base), stream=reader.video,
                                      backward=True)
            except av.error.FFmpegError:
                return None
        chosen = None
        for item in reader.frames():
            time_s = float(item.pts * item.time_base)
            if seek and chosen is None and time_s > at_s + 1e-6:
                return None  # landed past it
            chosen = item.frame
            if time_s + 1e-6 >= at_s:
                break
        return chosen


def preview_frame(
    src: Path, at_s: float, policy: RedactionPolicy, detector: CompositeDetector | None = None
) -> tuple[np.ndarray, list[Box]]:
    """The frame at ``at_s`` seconds (after the policy's size cap) with detections drawn, and the boxes."""
    info = probe(src)
    if info.duration_s and at_s > info.duration_s:
        raise InputError(f"{src.name}: --at {at_s:g}s is past the end ({info.duration_s:.2f}s)")
    plan = FramePlan.from_limits(info, policy.limits)
    uncapped = FramePlan(plan.width, plan.height, None, plan.frames)
    # A seek can land on a frame that does not decode on its own (MPEG-TS has no index of key
    # frames) or past the time: then the frame is found by decoding from the start.
    chosen = (_frame_at(src, uncapped, at_s, seek=True) if at_s > 0 else None) or \
        _frame_at(src, uncapped, at_s, seek=False)
    if chosen is None:
        raise InputError(f"{src.name}: no frame at {at_s:g}s")
    image = to_bgr(chosen)
    pictures = fields(image) if chosen.interlaced_frame else [image]  # as redact looks at it
    active = detector if detector is not None else build_detector(policy.detect)
    try:
        found = [box for picture in pictures for box in active.detect(picture)]
    finally:
        if detector is None:
            active.close()
    canvas = image.copy()
    pad = policy.tracking.pad
    for box in found:
        colour = COLOURS.get(box.label, (255, 255, 255))
        cv2.rectangle(canvas, (int(box.x0), int(box.y0)), (int(box.x1), int(box.y1)), colour, 2)
        px, py = box.width * pad / 2, box.height * pad / 2
        cv2.rectangle(
            canvas, (int(box.x0 - px), int(box.y0 - py)), (int(box.x1 + px), int(box.y1 + py)), colour, 1
        )
        cv2.putText(canvas, f"{box.label} {box.score:.2f}", (int(box.x0), max(12, int(box.y0) - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    return canvas, found
