"""Contact sheets for reviewers: flagged frames, the original beside the redacted output, boxes drawn.

A contact sheet shows unobscured faces from the raw footage: it is personal data. It is only ever
written into a private directory (0700, file 0600) under the daemon's state directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from redactd.errors import InputError
from redactd.fsutil import atomic_write
from redactd.policy import RedactionPolicy
from redactd.visual.codec import FramePlan, VideoReader, probe, to_bgr

PANEL_WIDTH = 400
OBSCURED = (0, 200, 0)  # green: what the render obscured
FLAGGED = (0, 0, 255)  # red: what validation found left visible
BAND = 22


def pick_frames(sidecar: Mapping[str, Any], most: int) -> list[int]:
    """Flagged frames first; else frames with the most boxes, spread over the clip; else evenly spaced."""
    flagged = [int(f["i"]) for f in sidecar.get("validation", {}).get("flagged", [])]
    if flagged:
        return sorted(flagged)[:most]
    detections = sidecar.get("detections", {})
    with_boxes = [int(f["i"]) for f in detections.get("frames", [])]
    pool = with_boxes or list(range(int(detections.get("counts", {}).get("frames", 0))))
    if not pool:
        return [0]
    step = max(1, len(pool) // most)
    return pool[::step][:most]


def _boxes(sidecar: Mapping[str, Any]) -> tuple[dict[int, list[tuple[float, ...]]], dict[int, list[tuple[float, ...]]]]:
    obscured: dict[int, list[tuple[float, ...]]] = {}
    for f in sidecar.get("detections", {}).get("frames", []):
        obscured[int(f["i"])] = [(b["x0"], b["y0"], b["x1"], b["y1"]) for b in f["boxes"]]
    flagged: dict[int, list[tuple[float, ...]]] = {}
    for f in sidecar.get("validation", {}).get("flagged", []):
        flagged[int(f["i"])] = [(b["x0"], b["y0"], b["x1"], b["y1"]) for b in f["boxes"]]
    return obscured, flagged


def _frames_of(path: Path, wanted: set[int], plan: FramePlan | None) -> dict[int, np.ndarray]:
    """BGR frames at the wanted indices: through the render's frame plan for a raw file, plain otherwise."""
    out: dict[int, np.ndarray] = {}
    last = max(wanted)
    try:
        if plan is not None:
            with VideoReader(path, plan) as reader:
                for item in reader.frames():
                    if item.index in wanted:
                        out[item.index] = to_bgr(item.frame)
                    if item.index >= last:
                        break
        else:
            with av.open(str(path)) as container:
                for index, frame in enumerate(container.decode(video=0)):
                    if index in wanted:
                        out[index] = to_bgr(frame)
                    if index >= last:
                        break
    except av.error.FFmpegError as exc:
        raise InputError(f"cannot decode {path.name} for the contact sheet: {exc}") from exc
    return out


def _draw(img: np.ndarray, boxes: Sequence[tuple[float, ...]], colour: tuple[int, int, int]) -> None:
    for x0, y0, x1, y1 in boxes:
        cv2.rectangle(img, (int(x0), int(y0)), (int(x1), int(y1)), colour, 2)


def _panel(img: np.ndarray | None, width: int, height: int, caption: str) -> np.ndarray:
    k = PANEL_WIDTH / width
    h = round(height * k)
    body = np.full((h, PANEL_WIDTH, 3), 40, np.uint8) if img is None else cv2.resize(img, (PANEL_WIDTH, h))
    band = np.full((BAND, PANEL_WIDTH, 3), 20, np.uint8)
    cv2.putText(band, caption, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (235, 235, 235), 1, cv2.LINE_AA)
    return np.vstack([band, body])


def contact_sheet(raw: Path, output: Path | None, sidecar: Mapping[str, Any], policy: RedactionPolicy,
                  most: int = 6) -> np.ndarray:
    """One row per chosen frame: the original (obscured boxes green, flagged red) beside the output.

    Without an output (review before blurring) each row is the original with the boxes to obscure.
    """
    if not raw.is_file():
        raise InputError(f"the raw file is not at {raw}: no contact sheet without it")
    frames = pick_frames(sidecar, most)
    wanted = set(frames)
    plan = FramePlan.from_limits(probe(raw), policy.limits)
    originals = _frames_of(raw, wanted, plan)
    redacted = _frames_of(output, wanted, None) if output is not None and output.is_file() else {}
    obscured, flagged = _boxes(sidecar)
    rows = []
    for i in frames:
        left = originals.get(i)
        if left is not None:
            left = left.copy()
            _draw(left, obscured.get(i, []), OBSCURED)
            _draw(left, flagged.get(i, []), FLAGGED)
        right = redacted.get(i)
        if right is not None:
            right = right.copy()
            _draw(right, flagged.get(i, []), FLAGGED)
        if output is None:  # review before blurring: only the boxes that will be obscured
            rows.append(_panel(left, plan.width, plan.height, f"frame {i}: green will be obscured"))
            continue
        label = "flagged" if i in flagged else "sample"
        rows.append(np.hstack([
            _panel(left, plan.width, plan.height, f"frame {i} original ({label}): green obscured, red left visible"),
            _panel(right, plan.width, plan.height, f"frame {i} redacted"),
        ]))
    return np.vstack(rows)


def write_private_png(directory: Path, name: str, image: np.ndarray) -> Path:
    """Write ``image`` as ``directory/name`` with owner-only access (0700 directory, 0600 file)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask; an existing one may be wider
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise InputError("could not encode the contact sheet as PNG")
    path = directory / name
    atomic_write(path, data.tobytes(), 0o600)
    return path
