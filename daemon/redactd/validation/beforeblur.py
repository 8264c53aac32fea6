"""Review before blurring: run the detection pass alone, and later render exactly the boxes a human approved.

The two halves of `redact_video`, split at the point where a reviewer looks: the detections
document (the sidecar format, tracked and padded boxes per frame) is what the reviewer approves,
and the render replays those boxes without detecting again, so what is blurred is what was seen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from redactd.errors import ConfigError, InputError
from redactd.policy import AudioMode, RedactionPolicy
from redactd.visual import sidecar
from redactd.visual.codec import FramePlan, probe
from redactd.visual.detect import Box, ModelInfo, build_detector
from redactd.visual.render import _Clock, _container_for, detect_pass, plan_speech, render_pass
from redactd.visual.speech import audio_section
from redactd.visual.track import TrackedBox, track_boxes

Progress = Callable[[float], None]


def detect_only(src: Path, policy: RedactionPolicy, progress: Progress | None = None) -> dict[str, Any]:
    """The detections document for ``src`` (per-frame obscure boxes, models, policy), nothing rendered."""
    info = probe(src)
    plan = FramePlan.from_limits(info, policy.limits)
    detector = build_detector(policy.detect)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(min(1.0, done / max(1, plan.frames)))

    try:
        detections = detect_pass(src, plan, detector, policy.detect.every_k_frames, _Clock(), tick)
        infos = detector.models()
    finally:
        detector.close()
    if not detections:
        raise InputError(f"{src.name}: no video frames could be decoded")
    boxes = track_boxes(detections, policy.tracking, plan.width, plan.height)
    rate = plan.max_fps or info.fps
    return sidecar.document(policy, infos, boxes, plan.width, plan.height, float(rate) if rate else None,
                            info.interlaced)


def approved_boxes(doc: Mapping[str, Any], frames: int) -> list[list[TrackedBox]]:
    """Per frame, the boxes of an approved detections document, ready for the render pass."""
    out: list[list[TrackedBox]] = [[] for _ in range(frames)]
    for entry in doc.get("frames", []):
        i = int(entry["i"])
        if i >= frames:
            raise InputError(f"the approved boxes name frame {i}, the video has {frames} frames")
        out[i] = [TrackedBox(Box(b["x0"], b["y0"], b["x1"], b["y1"], b["score"], b["class"], float(b.get("turn", 0.0))),
                             int(b["track"]),
                             b["source"] == "detected") for b in entry["boxes"]]
    return out


def render_approved(src: Path, dst: Path, policy: RedactionPolicy, doc: Mapping[str, Any],
                    progress: Progress | None = None) -> tuple[str, tuple[ModelInfo, ...], dict[str, Any]]:
    """Obscure exactly the approved boxes and encode ``dst``; returns the audio kept, the models used
    and the detections' ``audio`` section (speech found now: the reviewer approved boxes, not sound)."""
    info = probe(src)
    plan = FramePlan.from_limits(info, policy.limits)
    video = doc.get("video", {})
    if (video.get("width"), video.get("height")) != (plan.width, plan.height):
        raise ConfigError(f"the approved boxes are for {video.get('width')}x{video.get('height')} frames, the "
                          f"policy now renders {plan.width}x{plan.height}: detect and review again")
    frames = int(doc.get("counts", {}).get("frames", 0))
    boxes = approved_boxes(doc, frames)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(min(1.0, done / max(1, frames)))

    speech = plan_speech(src, plan, policy)
    written = render_pass(src, dst, plan, policy, boxes, _container_for(dst, policy), _Clock(), tick, speech)
    if done != frames:
        dst.unlink(missing_ok=True)
        raise InputError(f"the video has {done} frames now, the approved boxes cover {frames}")
    models = tuple(ModelInfo(**m) for m in doc.get("models", [])) + ((speech.model,) if speech is not None else ())
    section = {} if policy.audio is AudioMode.DROP else \
        audio_section(speech, policy.audio.value, policy.speech, info.audio_codec is not None)
    return (policy.audio.value if written.audio else "none"), models, section
