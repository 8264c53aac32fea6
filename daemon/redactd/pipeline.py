"""Run one job's stages, chosen by its policy, inside the job's scratch directory."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog

from redactd import __version__
from redactd.fsutil import sha256_file
from redactd.metadata.clean import choose_container, clean_metadata
from redactd.policy import AudioMode, Mode, RedactionPolicy, policy_hash

log = structlog.get_logger(__name__)

Progress = Callable[[float], None]


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    raw_path: Path
    scratch_dir: Path
    policy: RedactionPolicy


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
    keep_audio = spec.policy.audio is AudioMode.KEEP
    suffix = choose_container(spec.raw_path, keep_audio, spec.policy.output.container)
    out = spec.scratch_dir / f"output{suffix}"
    result = clean_metadata(spec.raw_path, out, keep_audio=keep_audio)
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
        "verified": ["exiftool", "ffprobe", "box-tree", "bitstream-sei"],
    }
    return JobResult(out, sha256_file(out), sidecar, "publish")


# One entry per policy mode. The visual pipeline registers itself here.
STAGES: dict[Mode, Callable[[JobSpec, Progress | None], JobResult]] = {
    Mode.METADATA_ONLY: run_metadata_only,
}


def run_job(spec: JobSpec, progress: Progress | None = None) -> JobResult:
    """Process ``spec.raw_path`` (never modified) into an output inside ``spec.scratch_dir``."""
    started = time.monotonic()
    spec.scratch_dir.mkdir(parents=True, exist_ok=True)
    runner = STAGES[spec.policy.mode]
    result = runner(spec, progress)
    log.info("job_processed", job_id=spec.job_id, policy=spec.policy.id, verdict=result.verdict,
             output_sha256=result.output_sha256, seconds=round(time.monotonic() - started, 3))
    return result
