"""The detections sidecar: what was found where, by which model, under which policy; no personal data.

Per frame: each obscured box with its class, score, track id and whether a detector saw it there
or tracking filled it in. Only geometry and model identities are recorded: never file names,
recognised text or pixels.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from redactd.fsutil import atomic_write
from redactd.policy import RedactionPolicy, policy_hash
from redactd.visual.detect import ModelInfo
from redactd.visual.track import TrackedBox

SIDECAR_FORMAT = "redactd-detections"
SIDECAR_VERSION = 1


def summary(
    policy: RedactionPolicy, models: Sequence[ModelInfo], boxes: Sequence[Sequence[TrackedBox]]
) -> dict[str, Any]:
    """Counts and identities only: small enough for the job record and the custody log."""
    detected = sum(1 for frame in boxes for b in frame if b.detected)
    filled = sum(1 for frame in boxes for b in frame if not b.detected)
    tracks: dict[str, set[int]] = {}
    for frame in boxes:
        for b in frame:
            tracks.setdefault(b.box.label, set()).add(b.track_id)
    return {
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "policy": {"id": policy.id, "version": policy.version, "sha256": policy_hash(policy)},
        "models": [asdict(m) for m in models],
        "counts": {
            "frames": len(boxes),
            "frames_with_boxes": sum(1 for frame in boxes if frame),
            "boxes_detected": detected,
            "boxes_filled": filled,
            "tracks": {label: len(ids) for label, ids in sorted(tracks.items())},
        },
    }


def document(
    policy: RedactionPolicy,
    models: Sequence[ModelInfo],
    boxes: Sequence[Sequence[TrackedBox]],
    width: int,
    height: int,
    fps: float | None,
    interlaced: bool = False,
) -> dict[str, Any]:
    """The full sidecar: the summary plus every frame that has boxes."""
    doc = summary(policy, models, boxes)
    doc["video"] = {"width": width, "height": height, "fps": fps, "interlaced": interlaced}
    doc["frames"] = [
        {
            "i": index,
            "boxes": [
                {
                    "x0": round(b.box.x0, 1),
                    "y0": round(b.box.y0, 1),
                    "x1": round(b.box.x1, 1),
                    "y1": round(b.box.y1, 1),
                    "class": b.box.label,
                    "score": round(b.box.score, 3),
                    "track": b.track_id,
                    "source": "detected" if b.detected else "filled",
                    # A turned face's region reaches further towards the back of the head.
                    **({"turn": round(b.box.turn, 3)} if b.box.turn else {}),
                }
                for b in frame
            ],
        }
        for index, frame in enumerate(boxes)
        if frame
    ]
    return doc


def write(path: Path, doc: dict[str, Any]) -> None:
    """Write the sidecar atomically."""
    atomic_write(path, json.dumps(doc, indent=None, separators=(",", ":"), sort_keys=True).encode())
