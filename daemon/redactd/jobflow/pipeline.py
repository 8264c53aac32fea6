"""Run one job's stages, chosen by its policy, inside the job's scratch directory."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog

from redactd import __version__
from redactd.fsutil import sha256_file
from redactd.policy import AudioMode, Mode, RedactionPolicy, policy_hash

log = structlog.get_logger(__name__)

Progress = Callable[[float], None]


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    raw_path: Path
    scratch_dir: Path
    policy: RedactionPolicy
    #: Boxes a reviewer approved (review before blurring): render exactly these, detect nothing.
    approved_detections: Path | None = None
    #: The SHA-256 recorded at admission; a worker on another host checks the raw file against it.
    raw_sha256: str | None = None
    #: Where the detectors run: "cpu", or "cuda" on a worker with onnxruntime-gpu.
    device: str = "cpu"


@dataclass(frozen=True)
class JobResult:
    output_path: Path  # inside scratch_dir, with its final suffix
    output_sha256: str
    sidecar: dict[str, Any]  # JSON-able; no personal data
    verdict: Literal["publish", "review"]
    reason: str | None = None


def policy_record(policy: RedactionPolicy) -> dict[str, Any]:
    return {"id": policy.id, "version": policy.version, "sha256": policy_hash(policy)}


def run_metadata_only(spec: JobSpec, progress: Progress | None) -> JobResult:
    """Detect, track, obscure, re-encode; verify the output carries no metadata; then red-team it."""
    # Stage modules load PyAV, OpenCV and onnxruntime (about a second): imported by the worker
    # that runs a job, never by the daemon or a command that only reads this module's types.
    from redactd.metadata.clean import choose_container, clean_metadata

    keep_audio = spec.policy.audio is AudioMode.KEEP
    suffix = choose_container(spec.raw_path, keep_audio, spec.policy.output.container)
    out = spec.scratch_dir / f"output{suffix}"
    result = clean_metadata(spec.raw_path, out, keep_audio=keep_audio, fallback=spec.policy.lossless.fallback,
                            encode=spec.policy.encode)
    if progress:
        progress(1.0)
    sidecar = {
        "redactd_version": __version__,
        "job_id": spec.job_id,
        "policy": policy_record(spec.policy),
        "mode": spec.policy.mode.value,
        "container": result.container,
        "streams": {"video": result.video_streams, "audio": result.audio_streams},
        "removed": list(result.dropped),
        "verified": ["exiftool", "ffprobe", "box-tree", "matroska-elements", "bitstream-in-frame"],
    }
    if result.reencoded:
        sidecar["reencoded"] = {"why": result.reencoded, "codec": spec.policy.encode.codec}
    return JobResult(out, sha256_file(out), sidecar, "publish")


#: The sidecar's ``stage`` of a job held for review before blurring (nothing rendered yet).
BEFORE_BLUR = "review-before-blur"

#: Share of a visual job's progress bar the render takes; validation fills the rest.
RENDER_SHARE = 0.85


def hold_for_box_review(spec: JobSpec, progress: Progress | None) -> JobResult:
    """Review before blurring: detect only; the boxes and a contact sheet wait for a reviewer."""
    from redactd.validation.beforeblur import detect_only
    from redactd.validation.sheet import contact_sheet, write_private_png
    policy = spec.policy
    doc = detect_only(spec.raw_path, policy, (lambda f: progress(0.9 * f)) if progress else None)
    out = spec.scratch_dir / "output.png"
    write_private_png(spec.scratch_dir, out.name, contact_sheet(spec.raw_path, None, {"detections": doc}, policy))
    if progress:
        progress(1.0)
    counts = doc["counts"]
    sidecar: dict[str, Any] = {
        "redactd_version": __version__,
        "job_id": spec.job_id,
        "stage": BEFORE_BLUR,
        "policy": policy_record(policy),
        "mode": policy.mode.value,
        "models": {m["name"]: m["sha256"] for m in doc["models"]},
        "detections": doc,
    }
    reason = (f"review before blurring (policy {policy.id}): {sum(counts['tracks'].values())} track(s) on "
              f"{counts['frames_with_boxes']} of {counts['frames']} frames would be obscured; approve the "
              "boxes to render them, or reject")
    return JobResult(out, sha256_file(out), sidecar, "review", reason)


def run_visual(spec: JobSpec, progress: Progress | None) -> JobResult:
    from redactd.metadata.verify import verify_clean
    from redactd.validation import Original, validate_output
    from redactd.validation.beforeblur import render_approved
    from redactd.validation.speech import check_speech
    from redactd.visual import redact_video
    policy = spec.policy
    if policy.validation.review_before_blur and spec.approved_detections is None:
        return hold_for_box_review(spec, progress)
    suffix = ".mkv" if policy.output.container == "mkv" else ".mp4"
    out = spec.scratch_dir / f"output{suffix}"
    detections_path = spec.scratch_dir / "detections.json"
    share = RENDER_SHARE if policy.validation.enabled else 1.0

    def render_progress(done: int, total: int) -> None:
        if progress:
            progress(share * done / max(1, total))

    review: dict[str, Any] = {}
    if spec.approved_detections is not None:
        approval = json.loads(spec.approved_detections.read_bytes())
        detections = approval["detections"]
        audio, models, speech = render_approved(spec.raw_path, out, policy, detections,
                                                lambda f: render_progress(int(f * 1000), 1000))
        if speech:
            detections = {**detections, "audio": speech}
        review = {"boxes_approved_by": approval["approved_by"], "boxes_approved_at": approval["approved_at"]}
    else:
        redacted = redact_video(spec.raw_path, out, policy, render_progress, sidecar_path=detections_path)
        audio, models = redacted.audio, redacted.models
        detections = json.loads(detections_path.read_bytes())
    keep_audio = audio not in ("none", AudioMode.DROP.value)
    verify_clean(out, expect_video=1, expect_audio=int(keep_audio))
    sidecar: dict[str, Any] = {
        "redactd_version": __version__,
        "job_id": spec.job_id,
        "policy": policy_record(policy),
        "mode": policy.mode.value,
        "audio": audio,
        "models": {m.name: m.sha256 for m in models},
        "detections": detections,
        "verified": ["exiftool", "ffprobe", "box-tree", "matroska-elements", "bitstream-in-frame"],
    }
    if review:
        sidecar["review"] = review
    if not policy.validation.enabled:
        sidecar["validation"] = {"verdict": "skipped", "note": "validation disabled by the policy"}
        return JobResult(out, sha256_file(out), sidecar, "publish")

    def validate_progress(fraction: float) -> None:
        if progress:
            progress(share + (1 - share) * fraction)

    # The raw input goes along so that a finding the obscuring made (not in the original) is set aside.
    report = validate_output(out, detections, policy.validation, policy.obscure, validate_progress,
                             Original(spec.raw_path, policy.limits))
    sidecar["validation"] = report.figures()
    sidecar["models"].update({m.name: m.sha256 for m in report.models})
    verdict, reasons = report.verdict, [report.reason] if report.reason else []
    if policy.audio is AudioMode.MUTE_SPEECH and keep_audio and policy.validation.audio.enabled:
        heard = check_speech(out, policy.validation.audio, policy.speech)
        sidecar["validation"]["audio"] = heard.figures()
        if heard.verdict == "review":
            verdict = "review"
            reasons.append(heard.reason or "validation: speech left in the audio")
    return JobResult(out, sha256_file(out), sidecar, verdict, "; ".join(reasons) or None)


# One entry per policy mode.
STAGES: dict[Mode, Callable[[JobSpec, Progress | None], JobResult]] = {
    Mode.METADATA_ONLY: run_metadata_only,
    Mode.VISUAL: run_visual,
}


def run_job(spec: JobSpec, progress: Progress | None = None) -> JobResult:
    """Process ``spec.raw_path`` (never modified) into an output inside ``spec.scratch_dir``."""
    from redactd.visual.detect import use_device

    started = time.monotonic()
    use_device(spec.device)
    spec.scratch_dir.mkdir(parents=True, exist_ok=True)
    runner = STAGES[spec.policy.mode]
    result = runner(spec, progress)
    log.info("job_processed", job_id=spec.job_id, policy=spec.policy.id, verdict=result.verdict,
             output_sha256=result.output_sha256, seconds=round(time.monotonic() - started, 3))
    return result
