"""Red-team one redacted output: a second opinion on sampled frames, a leak score, publish or review.

The rule, tuned on measured false alarms (see bench/validation.py and the README):
  1. Every finding that lies mostly inside the pixels the render obscured (``covered_fraction``),
     or is centred on them, is ignored: that is where Haar fires on blurred blobs, and where
     CenterFace at a low threshold answers a blob with a box larger than it. For a person, the
     head is what counts.
  2. Findings narrower than ``min_size_px`` are ignored.
  3. What is left is a candidate. Candidates are chained across consecutive sampled frames; a chain
     is a leak when it persists for ``min_persistence`` samples, or when two detector families
     agree on it in one frame. A finding joins a chain where it lies in the same place (boxes
     overlapping by CHAIN_IOU, or centres within half a size), or, on the chain's first link, up
     to MOVING_LINK_SIZES away (a moving face); after such a move each next finding must lie
     where that motion carries the chain. Haar alone fires on text and texture, in chains of up to two
     samples on the test backgrounds; a missed face persists for as long as it is visible.
     A strong CenterFace finding that scores below ``centerface_alone_threshold``, and that no
     other family's finding in its frame agrees with (overlaps it by CHAIN_IOU), is weak: at its
     low threshold CenterFace alone answers a cat's face or a spot of texture on every sample,
     and the faces only it finds score higher. A chain whose CenterFace findings are all weak
     counts by its other findings only.
  4. Obscuring cannot make a face. When the raw input is at hand (it is, in a job), every leak
     chain is looked for in the original frames, through the render's own frame plan, with the
     same detectors: a chain none of whose findings lies mostly (``ORIGINAL_OVERLAP``) inside a
     finding there is an artefact of the obscuring (a blurred head's edge over a dark collar, a
     spot of texture next to a blurred region that the encode tipped over a threshold) and is set
     aside. A face the render missed is in the original too, at the same place. When the
     original cannot be read back, every chain stands.
  5. Leak frames are the sampled frames holding a leak; the leak score is their share. More than
     ``max_leak_frames`` or a share above ``max_leak_share`` sends the job to review.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, NamedTuple, Self

import av
import cv2
import numpy as np

from redactd import log
from redactd.errors import InputError
from redactd.policy import Limits, Obscure, Validation, ValidationDetectors
from redactd.validation.detectors import Finding, SecondDetector, build_second_opinion
from redactd.visual.codec import FramePlan, VideoReader, probe, to_bgr
from redactd.visual.detect import Box, ModelInfo, iou
from redactd.visual.obscure import Region, regions_for
from redactd.visual.orient import fields, quarter_turns, to_coded, upright

#: Most flagged frames kept in the report (sidecar and contact sheet): enough to judge, small to store.
MAX_FLAGGED = 12
CHAIN_IOU = 0.2
#: Rule 3: a chain's first link may be a move of up to this many box sizes (a small face under a
#: panning camera moved 47 px, 1.4 of its 33 px, between samples 10 frames apart, and never
#: chained); the links after it must follow that motion, within half a size.
MOVING_LINK_SIZES = 2.0
#: Rule 4: the share of a finding's box that must lie inside one finding on the original frame for
#: the finding to be there too. Measured on bench/validation.py (README): real misses lie 0.65-1.0
#: inside (0.93 and up for all but a small second box), artefacts of the obscuring 0.0-0.16.
ORIGINAL_OVERLAP = 0.5


class Original(NamedTuple):
    """The raw input of an output and the limits its render ran under (they fix the frame plan)."""

    path: Path
    limits: Limits


@dataclass(frozen=True)
class FlaggedFrame:
    """A sampled output frame holding a leak, and the uncovered boxes that make it one."""

    frame: int
    boxes: tuple[Box, ...]
    detectors: tuple[str, ...]


@dataclass(frozen=True)
class ValidationReport:
    """What the second opinion saw and decided. Geometry and counts only: no pixels, no names."""

    sampled_frames: int
    sample_step: int
    findings: int
    covered: int
    too_small: int
    candidates: int
    leak_frames: int
    leak_share: float
    verdict: Literal["publish", "review"]
    reason: str | None
    flagged: tuple[FlaggedFrame, ...]
    models: tuple[ModelInfo, ...]
    seconds: float
    by_family: dict[str, int] = field(default_factory=dict)
    #: Rule 4: whether the original was looked at ("checked"), not needed ("not needed": no leak
    #: chain), not given, or could not be read ("unreadable: ..."); and the chains set aside.
    original: str = "not given"
    not_in_original: int = 0
    #: Rule 3: the strong CenterFace's weak findings (below ``centerface_alone_threshold``, no other
    #: family agreeing) that were all its chain had, set aside.
    centerface_alone: int = 0

    @property
    def leak_score(self) -> float:
        return self.leak_share

    def figures(self) -> dict[str, Any]:
        """The sidecar's ``validation`` section."""
        return {
            "verdict": self.verdict,
            "leak_score": round(self.leak_share, 4),
            "leak_frames": self.leak_frames,
            "sampled_frames": self.sampled_frames,
            "sample_step": self.sample_step,
            "findings": self.findings,
            "findings_by_family": dict(sorted(self.by_family.items())),
            "covered": self.covered,
            "too_small": self.too_small,
            "candidates": self.candidates,
            "original": self.original,
            "not_in_original": self.not_in_original,
            "centerface_alone": self.centerface_alone,
            "seconds": round(self.seconds, 3),
            "models": [asdict(m) for m in self.models],
            "flagged": [
                {"i": f.frame, "detectors": list(f.detectors),
                 "boxes": [{"x0": round(b.x0, 1), "y0": round(b.y0, 1), "x1": round(b.x1, 1),
                            "y1": round(b.y1, 1), "class": b.label} for b in f.boxes]}
                for f in self.flagged
            ],
        }


def sample_indices(frames: int, every_n: int, max_samples: int) -> list[int]:
    """Every n-th frame from the first; spread wider when that would exceed ``max_samples``."""
    if frames <= 0:
        return []
    step = max(every_n, -(-frames // max_samples))
    return list(range(0, frames, step))


def obscured_regions(doc: Mapping[str, Any], obscure: Obscure) -> dict[int, list[Region]]:
    """Per frame index, the regions the render obscured, from the detections sidecar."""
    out: dict[int, list[Region]] = {}
    video = doc.get("video") or {}
    frame = (int(video["width"]), int(video["height"])) if "width" in video and "height" in video else None
    for entry in doc.get("frames", []):
        boxes = [(b["x0"], b["y0"], b["x1"], b["y1"], b["class"], b.get("turn", 0.0)) for b in entry["boxes"]]
        out[int(entry["i"])] = regions_for(boxes, obscure, frame)
    return out


def checked_area(box: Box) -> tuple[float, float, float, float]:
    """The part of a finding that must be obscured: the whole box, or a person's head."""
    if box.label != "person":
        return box.x0, box.y0, box.x1, box.y1
    # HOG and YOLO person boxes run head to foot; the head is the top fifth, middle half.
    w, h = box.width, box.height
    return box.x0 + w / 4, box.y0, box.x1 - w / 4, box.y0 + h / 5


def centre_obscured(box: Box, regions: Sequence[Region]) -> bool:
    """Whether the finding's centre lies in obscured pixels (ellipses as rendered)."""
    x0, y0, x1, y1 = checked_area(box)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    for r in regions:
        if not (r.x0 <= cx < r.x1 and r.y0 <= cy < r.y1):
            continue
        if not r.ellipse:
            return True
        ax, ay = max(0.5, (r.x1 - r.x0) / 2), max(0.5, (r.y1 - r.y0) / 2)
        if ((cx - (r.x0 + r.x1) / 2) / ax) ** 2 + ((cy - (r.y0 + r.y1) / 2) / ay) ** 2 <= 1.0:
            return True
    return False


def is_covered(box: Box, regions: Sequence[Region], fraction: float) -> bool:
    """Rule 1: mostly inside obscured pixels, or centred on them.

    The second test is for detectors that answer a blurred blob with a box larger than the blob
    (CenterFace at a low threshold does): the blob is then a minority of the box's area.
    """
    return centre_obscured(box, regions) or covered_share(box, regions) >= fraction


def covered_share(box: Box, regions: Sequence[Region]) -> float:
    """Share of the finding's checked area inside obscured pixels (ellipses as rendered)."""
    x0, y0, x1, y1 = (round(v) for v in checked_area(box))
    w, h = x1 - x0, y1 - y0
    if w <= 0 or h <= 0:
        return 1.0
    mask = np.zeros((h, w), np.uint8)
    for r in regions:
        if r.x1 <= x0 or r.x0 >= x1 or r.y1 <= y0 or r.y0 >= y1:
            continue
        if r.ellipse:
            centre = ((r.x0 + r.x1) / 2 - x0, (r.y0 + r.y1) / 2 - y0)
            axes = (max(1.0, (r.x1 - r.x0) / 2), max(1.0, (r.y1 - r.y0) / 2))
            cv2.ellipse(mask, (centre, (axes[0] * 2, axes[1] * 2), 0.0), 1, -1)
        else:
            cv2.rectangle(mask, (r.x0 - x0, r.y0 - y0), (r.x1 - x0 - 1, r.y1 - y0 - 1), 1, -1)
    return float(mask.mean())


@dataclass
class _Chain:
    """Uncovered findings of (probably) one object over consecutive sampled frames."""

    members: list[Finding]
    last_sample: int
    #: How far its centre moved from one sample to the next, once its first link was a move.
    step: tuple[float, float] | None = None

    def matches(self, finding: Finding, sample: int) -> bool:
        if sample - self.last_sample > 1:
            return False
        last = self._last_boxes()
        if (sample == self.last_sample or self.step is None) and any(_same_place(b, finding.box) for b in last):
            return True
        if sample == self.last_sample:
            return False
        if self.step is None:  # its first link may be a move (a face under a panning camera)
            return self.samples == 1 and any(_centre_close(b, finding.box, MOVING_LINK_SIZES) for b in last)
        dx, dy = self.step  # after a move, the next find must be where the motion carries it
        return any(_centre_close(b.shifted(dx, dy), finding.box) for b in last)

    def add(self, finding: Finding, sample: int) -> None:
        """Append a finding ``matches`` accepted; a link between samples that is a move sets ``step``."""
        if sample != self.last_sample:
            nearest = min(self._last_boxes(), key=lambda b: _centre_distance(b, finding.box))
            if self.step is not None or not _same_place(nearest, finding.box):
                self.step = ((finding.box.x0 + finding.box.x1 - nearest.x0 - nearest.x1) / 2,
                             (finding.box.y0 + finding.box.y1 - nearest.y0 - nearest.y1) / 2)
        self.members.append(finding)
        self.last_sample = sample

    def _last_boxes(self) -> list[Box]:
        """The boxes of its latest frame."""
        return [m.box for m in self.members if m.frame == self.members[-1].frame]

    @property
    def samples(self) -> int:
        return len({m.frame for m in self.members})

    @property
    def families_together(self) -> bool:
        """Two families saw it in the same frame."""
        seen: dict[int, set[str]] = {}
        for m in self.members:
            seen.setdefault(m.frame, set()).add(m.family)
        return any(len(f) > 1 for f in seen.values())


def _same_place(a: Box, b: Box) -> bool:
    return iou(a, b) >= CHAIN_IOU or _centre_close(a, b)


def _centre_distance(a: Box, b: Box) -> float:
    return float(np.hypot((a.x0 + a.x1 - b.x0 - b.x1) / 2, (a.y0 + a.y1 - b.y0 - b.y1) / 2))


def _centre_close(a: Box, b: Box, sizes: float = 0.5) -> bool:
    return _centre_distance(a, b) < sizes * max(a.width, a.height, b.width, b.height, 1.0)


def chain_candidates(candidates: Sequence[tuple[int, Finding]]) -> list[_Chain]:
    """Group (sample number, finding) pairs into chains, in sample order."""
    chains: list[_Chain] = []
    for sample, finding in sorted(candidates, key=lambda p: p[0]):
        for chain in chains:
            if chain.last_sample != sample and chain.matches(finding, sample):
                chain.add(finding, sample)
                break
        else:
            same = [c for c in chains if c.last_sample == sample and c.matches(finding, sample)]
            if same:
                same[0].add(finding, sample)
            else:
                chains.append(_Chain([finding], sample))
    return chains


def decide(
    frames: Sequence[int],
    findings: Sequence[Finding],
    regions: Mapping[int, Sequence[Region]],
    cfg: Validation,
) -> tuple[dict[str, int], list[_Chain], list[Finding]]:
    """Apply rules 1–3 of the module docstring: counts, leak chains, and every candidate."""
    th = cfg.thresholds
    sample_of = {f: k for k, f in enumerate(frames)}
    counts = {"covered": 0, "too_small": 0}
    candidates: list[tuple[int, Finding]] = []
    for finding in findings:
        box = finding.box
        if min(box.width, box.height) < th.min_size_px:
            counts["too_small"] += 1
            continue
        if is_covered(box, regions.get(finding.frame, ()), th.covered_fraction):
            counts["covered"] += 1
            continue
        candidates.append((sample_of[finding.frame], finding))
    need = min(th.min_persistence, len(frames))
    by_frame: dict[int, list[Finding]] = {}
    for _, f in candidates:
        by_frame.setdefault(f.frame, []).append(f)
    weak = {id(f) for _, f in candidates if _weak_centerface(f, by_frame[f.frame], cfg.detectors)}
    counts["centerface_alone"] = 0
    leaks: list[_Chain] = []
    for chain in chain_candidates(candidates):
        if any(id(m) in weak for m in chain.members) and not any(
                m.family == "centerface" and id(m) not in weak for m in chain.members):
            # Every CenterFace finding of the chain is weak and alone: only its others count.
            counts["centerface_alone"] += sum(id(m) in weak for m in chain.members)
            rest = chain_candidates([(sample_of[m.frame], m) for m in chain.members if id(m) not in weak])
            leaks.extend(c for c in rest if c.samples >= need or c.families_together)
        elif chain.samples >= need or chain.families_together:
            leaks.append(chain)
    return counts, leaks, [f for _, f in candidates]


def _weak_centerface(finding: Finding, same_frame: Sequence[Finding], cfg: ValidationDetectors) -> bool:
    """Rule 3's weak finding: the strong CenterFace's, below ``centerface_alone_threshold``, and no
    other family's finding in its frame (``same_frame``) agrees with it (overlaps it by CHAIN_IOU)."""
    if finding.family != "centerface" or finding.box.score >= cfg.centerface_alone_threshold:
        return False
    return not any(g.family != finding.family and iou(g.box, finding.box) >= CHAIN_IOU for g in same_frame)


class Validator:
    """Loads the second-opinion detectors once; ``check`` runs them over one output."""

    def __init__(self, cfg: Validation) -> None:
        self.cfg = cfg
        self.detectors: list[SecondDetector] = build_second_opinion(cfg.detectors, cfg.thresholds.min_size_px)
        self._pool = ThreadPoolExecutor(len(self.detectors), "validate")

    @property
    def models(self) -> tuple[ModelInfo, ...]:
        return tuple(info for d in self.detectors for info in d.infos)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for d in self.detectors:
            close = getattr(d, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def look(self, index: int, frame: np.ndarray) -> list[Finding]:
        """Every detector on one BGR frame, side by side (OpenCV and onnxruntime release the GIL)."""
        futures = [(d, self._pool.submit(d.detect, frame)) for d in self.detectors]
        return [Finding(index, box, d.infos[0].name, d.family) for d, fut in futures for box in fut.result()]

    def check(
        self,
        output: Path,
        detections: Mapping[str, Any],
        obscure: Obscure,
        progress: Callable[[float], None] | None = None,
        original: Original | None = None,
    ) -> ValidationReport:
        """Sample ``output``'s frames, look for what the render left visible, and decide.

        ``original``: the raw input, for rule 4 (leak chains must be in the original frames too).
        """
        started = time.perf_counter()
        total = int(detections.get("counts", {}).get("frames", 0))
        frames = sample_indices(total, self.cfg.sample_every_n_frames, self.cfg.max_samples)
        wanted = set(frames)
        # The output is flagged progressive but keeps an interlaced input's two fields per frame:
        # look at each field, as the detection did (a combed face is easy to miss).
        interlaced = bool(detections.get("video", {}).get("interlaced"))
        findings: list[Finding] = []
        seen: list[int] = []
        try:
            with av.open(str(output)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for index, frame in enumerate(container.decode(stream)):
                    if index in wanted:
                        # Detectors look at the picture upright, as a viewer would (phone footage).
                        findings.extend(self._look_upright(index, to_bgr(frame), quarter_turns(frame.rotation),
                                                           interlaced))
                        seen.append(index)
                        if progress is not None:
                            progress(len(seen) / len(frames))
        except av.error.FFmpegError as exc:
            raise InputError(f"the rendered output cannot be decoded for validation: {exc}") from exc
        if len(seen) != len(frames):
            raise InputError(f"the output has fewer frames than the sidecar says ({len(seen)} of "
                             f"{len(frames)} sampled frames decoded)")
        counts, leaks, candidates = decide(seen, findings, obscured_regions(detections, obscure), self.cfg)
        status, set_aside = "not given", 0
        if original is not None:
            status = "not needed"
            if leaks:
                kept, status = self._in_original(leaks, original, detections, interlaced)
                set_aside, leaks = len(leaks) - len(kept), kept
        return self._report(seen, findings, counts, candidates, leaks, time.perf_counter() - started,
                            status, set_aside)

    def _look_upright(self, index: int, image: np.ndarray, turns: int, interlaced: bool) -> list[Finding]:
        """Findings on one frame (each field of an interlaced one), in coded-frame coordinates."""
        height, width = image.shape[:2]
        return [replace(f, box=to_coded(f.box, turns, width, height))
                for picture in (fields(image) if interlaced else [image])
                for f in self.look(index, upright(picture, turns))]

    def _in_original(self, leaks: list[_Chain], original: Original, detections: Mapping[str, Any],
                     interlaced: bool) -> tuple[list[_Chain], str]:
        """Rule 4: the leak chains that are in the original frames too, and how the original was read.

        The original is decoded through the render's frame plan (size cap, rate cap, rotation), so
        its frame i is the picture the render obscured into output frame i. Only the sampled frames
        holding a leak finding are looked at, and only until every chain is found once (a real miss
        is found at its first frame). Anything that stops the comparison keeps every chain.
        """
        members: dict[int, list[tuple[int, Finding]]] = {}
        for k, chain in enumerate(leaks):
            for m in chain.members:
                members.setdefault(m.frame, []).append((k, m))
        last = max(members)
        confirmed: set[int] = set()
        video = detections.get("video", {})
        try:
            plan = FramePlan.from_limits(probe(original.path), original.limits)
            if (video.get("width"), video.get("height")) != (plan.width, plan.height):
                raise InputError(f"it renders at {plan.width}x{plan.height}, the detections are for "
                                 f"{video.get('width')}x{video.get('height')}")
            turns = quarter_turns(plan.rotation)
            with VideoReader(original.path, plan) as reader:
                for item in reader.frames():
                    if item.index in members:
                        there = self._look_upright(item.index, to_bgr(item.frame), turns, interlaced)
                        confirmed.update(k for k, m in members[item.index] if _inside_any(m.box, there))
                    # A chain found once is a face; stop when every chain is, or at the last frame.
                    if len(confirmed) == len(leaks) or item.index >= last:
                        break
                else:
                    raise InputError(f"it ends before output frame {last}")
        except (InputError, OSError, av.error.FFmpegError) as exc:
            log.get_logger().warning("validation_original_unreadable", path=original.path.name, error=str(exc))
            return leaks, f"unreadable: {exc}"
        return [c for k, c in enumerate(leaks) if k in confirmed], "checked"

    def _report(self, frames: list[int], findings: list[Finding], counts: Mapping[str, int],
                candidates: list[Finding], leaks: list[_Chain], seconds: float, original: str,
                not_in_original: int) -> ValidationReport:
        th = self.cfg.thresholds
        by_frame: dict[int, list[Finding]] = {}
        for chain in leaks:
            for m in chain.members:
                by_frame.setdefault(m.frame, []).append(m)
        leak_frames = len(by_frame)
        share = leak_frames / len(frames) if frames else 0.0
        review = leak_frames > th.max_leak_frames or share > th.max_leak_share
        reason = None
        if review:
            first = min(by_frame)
            reason = (f"validation: {leak_frames} of {len(frames)} sampled frames show a face or person the "
                      f"redaction left visible (leak score {share:.3f}; the policy allows "
                      f"{th.max_leak_frames} frames and {th.max_leak_share:.3f}); first at output frame {first}")
        flagged = tuple(
            FlaggedFrame(i, tuple(m.box for m in ms), tuple(sorted({m.detector for m in ms})))
            for i, ms in sorted(by_frame.items())[:MAX_FLAGGED]
        )
        by_family: dict[str, int] = {}
        for f in findings:
            by_family[f.family] = by_family.get(f.family, 0) + 1
        report = ValidationReport(
            sampled_frames=len(frames), sample_step=frames[1] - frames[0] if len(frames) > 1 else 1,
            findings=len(findings), covered=counts["covered"], too_small=counts["too_small"],
            candidates=len(candidates), leak_frames=leak_frames, leak_share=share,
            verdict="review" if review else "publish", reason=reason, flagged=flagged, models=self.models,
            seconds=seconds, by_family=by_family, original=original, not_in_original=not_in_original,
            centerface_alone=counts["centerface_alone"],
        )
        log.get_logger().info("output_validated", verdict=report.verdict, sampled=len(frames),
                              findings=len(findings), covered=counts["covered"], candidates=len(candidates),
                              leak_frames=leak_frames, original=original.split(":")[0],
                              not_in_original=not_in_original, centerface_alone=counts["centerface_alone"],
                              seconds=round(seconds, 3))
        return report


def _inside_any(box: Box, found: Sequence[Finding]) -> bool:
    """Whether ``ORIGINAL_OVERLAP`` of ``box`` lies inside one of ``found``'s boxes."""
    area = box.width * box.height
    for f in found:
        ix = min(box.x1, f.box.x1) - max(box.x0, f.box.x0)
        iy = min(box.y1, f.box.y1) - max(box.y0, f.box.y0)
        if ix > 0 and iy > 0 and ix * iy >= ORIGINAL_OVERLAP * area:
            return True
    return False


def validate_output(
    output: Path,
    detections: Mapping[str, Any],
    cfg: Validation,
    obscure: Obscure,
    progress: Callable[[float], None] | None = None,
    original: Original | None = None,
) -> ValidationReport:
    """One-shot ``Validator(cfg).check(...)``: load the detectors, check, release them."""
    with Validator(cfg) as validator:
        return validator.check(output, detections, obscure, progress, original)
