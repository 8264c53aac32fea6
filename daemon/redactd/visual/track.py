"""Turn per-frame detections into tracks, then use the whole clip to cover every frame a box is visible.

Redaction runs offline, so after the detection pass each track can look into its own future: gaps
where the detector missed are filled by interpolation, the track is extended backwards and
forwards with its motion (a face is covered from the first frame it appears, not the first frame
it was detected), and held in place for a few frames after its last detection. A face that one
frame of detection missed is the typical leak; this is what closes it.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from redactd.policy import Tracking
from redactd.visual.detect import Box

# An extrapolated box grows by this fraction per frame (up to MAX_GROWTH) because where an
# undetected face is gets less certain the further it is from a detection.
GROWTH_PER_FRAME = 0.03
MAX_GROWTH = 0.5
# Second-chance matching for boxes IoU cannot pair (small and fast): centres at most this many box
# sizes apart from the track's prediction.
MAX_CENTRE_DISTANCE = 1.5
# ...and at most this many times wider or taller, or narrower or lower, than it.
MAX_SIZE_RATIO = 2.0
# Two lone face boxes further apart than MAX_CENTRE_DISTANCE are taken for one face found twice
# (`_Associator._pair`) where it would have moved at most this many box sizes a frame between them.
MAX_PAIR_SPEED = 0.5
# A face's box narrower or lower than this share of its track's detections a few frames before is
# taken for part of the face (see `_part`).
SHRINK = 0.75


@dataclass(frozen=True)
class TrackedBox:
    """A box to obscure in one frame, the track it belongs to, and whether a detector saw it there."""

    box: Box
    track_id: int
    detected: bool


@dataclass
class _Track:
    track_id: int
    label: str
    frames: list[int] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    #: Each of ``boxes`` as an array (x0, y0, x1, y1), made once: the tracker reads them on every frame.
    coords: list[np.ndarray] = field(default_factory=list)
    #: Width and height of each detection as the detector gave it (``boxes`` may have kept the size).
    found: list[tuple[float, float]] = field(default_factory=list)
    #: Where the track predicted the face on frames whose detection only distance joined to it.
    predicted: dict[int, np.ndarray] = field(default_factory=dict)
    #: Whether the second detection may be where the track really starts: a box cut by the frame's
    #: edge joined to a lone first one by distance (see `_Associator.push`).
    second_starts: bool = False
    #: A lone detection before the track's first (frame, box as an array, turn) that lies where the
    #: track's motion, carried back, puts it: the face first found weakly once (see `_Associator._lead`).
    lead: tuple[int, np.ndarray, float] | None = None

    def predict(self, frame: int) -> np.ndarray:
        return self.coords[-1] + self.velocity * (frame - self.frames[-1])

    def add(self, frame: int, box: Box, found: Box | None = None) -> None:
        """``box`` as the track covers it; ``found``: as the detector gave it, where that differs."""
        seen = box if found is None else found
        coords = _arr(box)
        self.found.append((seen.x1 - seen.x0, seen.y1 - seen.y0))
        if self.frames:
            step = frame - self.frames[-1]
            observed = (coords - self.coords[-1]) / step
            # Smoothed: one jittery detection should not fling the extrapolation.
            self.velocity = observed if len(self.frames) == 1 else 0.5 * self.velocity + 0.5 * observed
        self.frames.append(frame)
        self.boxes.append(box)
        self.coords.append(coords)


def _arr(box: Box) -> np.ndarray:
    return np.array([box.x0, box.y0, box.x1, box.y1], dtype=np.float64)


def _overlapping(predicted: Sequence[np.ndarray], labels: Sequence[str], found: Sequence[np.ndarray],
                 boxes: Sequence[Box], unmatched: Sequence[int], threshold: float) -> list[tuple[float, int, int]]:
    """(IoU, track, box) of each track's prediction and each unmatched box of its label that overlap
    by ``threshold`` or more, best first: intersection over union of every pair at once. A crowd puts a hundred
    tracks beside a hundred boxes in every frame, and pair by pair the tracker took 30 % of a 720p
    job's time (84 faces, 75 frames: 4.6 s of 15.5)."""
    if not predicted or not unmatched:
        return []
    a = np.array(predicted)[:, None, :]
    b = np.array([found[i] for i in unmatched])[None, :, :]
    ix = np.maximum(0.0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]))
    iy = np.maximum(0.0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]))
    inter = ix * iy
    union = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]) - inter
    scores = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    same = np.array(labels)[:, None] == np.array([boxes[i].label for i in unmatched])[None, :]
    tis, ks = np.nonzero(same & (scores >= threshold))
    return sorted(((float(scores[ti, k]), int(ti), unmatched[int(k)]) for ti, k in zip(tis, ks, strict=True)), reverse=True)


def _centre_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Centre distance in units of the predicted box's size: matches small fast boxes IoU misses."""
    size = max(a[2] - a[0], a[3] - a[1], 1.0)
    return float(np.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2) / size)


class _Associator:
    """Greedy association of detections into tracks by IoU with each track's motion prediction.

    Causal: what happens at frame ``f`` depends only on frames up to ``f``, so it runs as the
    detections arrive. ``step`` is the number of frames between detector runs.
    """

    def __init__(self, cfg: Tracking, step: int, frame_size: tuple[int, int] | None = None) -> None:
        self.cfg = cfg
        self.frame_size = frame_size
        self.reach = _reach(cfg, step)
        self.tracks: list[_Track] = []
        self.active: list[_Track] = []

    def push(self, frame: int, boxes: Sequence[Box] | None) -> None:
        """Detections of ``frame`` (``None``: the detector did not run on it)."""
        if boxes is None:
            return
        cfg = self.cfg
        self.active = [t for t in self.active if frame - t.frames[-1] <= self.reach]
        unmatched = list(range(len(boxes)))
        free = list(self.active)
        # A box cut by the frame's edge has lost size to it: only the distance says it is the same object.
        cut = [self._cut(b) for b in boxes]

        found = [_arr(b) for b in boxes]
        for by_distance in (False, True):
            predicted = [t.predict(frame) for t in free]
            if by_distance:
                pairs = sorted(
                    (
                        (_neg_distance(predicted[ti], found[i], cut[i]), ti, i)
                        for ti, t in enumerate(free)
                        for i in unmatched
                        if t.label == boxes[i].label
                    ),
                    reverse=True,
                )
                pairs = [p for p in pairs if p[0] > -MAX_CENTRE_DISTANCE]
            else:
                pairs = _overlapping(predicted, [t.label for t in free], found, boxes, unmatched, cfg.iou_threshold)
            used_t: set[int] = set()
            used_d: set[int] = set()
            for _, ti, i in pairs:
                if ti in used_t or i in used_d:
                    continue
                if by_distance and len(free[ti].frames) == 1 and any(cut[i]):
                    # A lone box has no motion to predict from, and a box cut by the edge is
                    # joined to it by distance alone, whatever its size: it may be another
                    # object's (a false box below a face coming in through the top edge took the
                    # face's track, and its backward extension went off the face). The track is
                    # also extended backwards from this one (`fill_tracks`).
                    free[ti].second_starts = True
                if by_distance and not any(cut[i]) and len(free[ti].frames) > 1 and boxes[i].label == "face":
                    # Distance alone may have joined another object's box to the track (a weak
                    # false box beside a rotated face the pass missed took its track, and the
                    # face showed: held-out rotated15-45, 720p): where the face was predicted is
                    # covered too, on this frame.
                    free[ti].predicted[frame] = predicted[ti]
                free[ti].add(frame, _as_whole(boxes[i], free[ti], frame, self.frame_size), boxes[i])
                used_t.add(ti)
                used_d.add(i)
            free = [t for ti, t in enumerate(free) if ti not in used_t]
            unmatched = [i for i in unmatched if i not in used_d]
        for track in self.active:
            if len(track.frames) == 2 and track.frames[-1] == frame:
                # With motion to go by, the lead is the one that lies along it; a lone box paired
                # with the first by distance alone (`_pair`) stays where none does: only ever more cover.
                track.lead = self._lead(track) or track.lead
        for i in unmatched:
            track = _Track(len(self.tracks) + 1, boxes[i].label)
            track.add(frame, boxes[i])
            track.lead = self._pair(track, cut[i])
            self.tracks.append(track)
            self.active.append(track)

    def _cut(self, box: Box) -> tuple[bool, bool]:
        """Whether the frame's edge cuts ``box`` across and down (neither, with no frame size)."""
        return (False, False) if self.frame_size is None else _cut(box, self.frame_size)

    def _pair(self, track: _Track, cut: tuple[bool, bool]) -> tuple[int, np.ndarray, float] | None:
        """For a face's track just started by a lone box (cut by the frame's edge as ``cut`` says):
        the nearest lone face box found on its own at least two frames and at most ``max_gap`` + 1
        frames before, as big, that the face would have left at most MAX_PAIR_SPEED box sizes a
        frame to reach this one, or None. It becomes the track's lead (see `_lead`).

        A small face found weakly now and then is found where it has moved on: farther from where
        it was found before than distance lets a track take a box (MAX_CENTRE_DISTANCE box sizes),
        so each box is held where it was found and the face moves out of both. A 35 px face tilted
        ~20 degrees, crossing gravel at 14 px a frame, was found with 0.16 on frame 10 and 0.10 on
        frame 16 only, 89 px (1.9 box sizes) apart, and was left untouched on frames 0-6 and 19-25
        (drawn held-out set 72, "small", 720p). Paired, the frames between the two are covered along
        the way from one to the other, and the extensions run on along that way both ends (`_lead`,
        `fill_tracks`). Faces only: the text detector's lone false boxes on foliage are common, and
        print does not move that fast."""
        if track.label != "face":
            return None
        frame, coords = track.frames[0], track.coords[0]

        def closeness(lone: _Track) -> float:
            near = _neg_distance(lone.coords[0], coords, cut)
            return near if near >= -MAX_PAIR_SPEED * (frame - lone.frames[0]) else -np.inf

        return self._nearest_lone(track.label, frame, frame - 1, closeness, self.cfg.max_gap + 1)

    def _lead(self, track: _Track) -> tuple[int, np.ndarray, float] | None:
        """For a track that has just taken its second detection: the nearest lone detection (a track
        of one) found before its first, at most `_lead_reach` frames before its second (twice
        ``max_gap`` + 1), where its motion carried back puts it (the distance match of `push`), or None.

        A weak face may be found once, then missed for several frames: with one detection there is
        no motion, so its track stays where it was found, and when the face is found again it has
        moved too far for that track to take it. The later track's backward extension then starts
        from where it was found again, and the frames before the lone detection are covered only
        where the face was then, not where it came from: a 37 px face moving 15 px a frame was
        found with 0.14 on frame 3 and again from frame 9, and was left untouched on frame 0 and
        partly covered on frame 1 (drawn held-out set 32, "small", 1080p). With its lead, the track
        is also drawn from the lone detection over the gap, and extended backwards from it along
        the motion between the two (`fill_tracks`).

        Such a gap can be longer than a track bridges: a 35 px face in shade moving 14 px a frame
        was found with 0.19 on frame 1, then on frames 18-20 only before it left through the bottom
        edge, and was left untouched on frames 3-12 (drawn held-out set 4, "shade", 1080p). Its
        motion over frames 18-19, carried back 17 frames, put it 0.9 box sizes from the lone box."""
        if track.second_starts:
            return None  # its first box may not be the object's (see `push`)
        (f0, f1), (c0, c1) = track.frames, track.coords
        # The centre's motion only: two boxes of a small face differ in size by the detector's
        # jitter, and carried back six frames that shrank a 32 px box to 20 (as `_extend`).
        moves = ((c1[:2] + c1[2:]) - (c0[:2] + c0[2:])) / 2 / (f1 - f0)

        def closeness(lone: _Track) -> float:
            back = c0 - np.tile(moves, 2) * (f0 - lone.frames[0])
            near = _neg_distance(back, lone.coords[0], self._cut(lone.boxes[0]))
            return near if near > -MAX_CENTRE_DISTANCE else -np.inf

        return self._nearest_lone(track.label, f1, f0, closeness, _lead_reach(self.cfg))

    def _nearest_lone(self, label: str, frame: int, before: int, closeness: Callable[[_Track], float], reach: int
                      ) -> tuple[int, np.ndarray, float] | None:
        """The lone detection (a track of one) of ``label`` made before frame ``before`` and at
        most ``reach`` frames before ``frame`` that ``closeness`` rates highest (-inf: not near
        enough), as a lead (`_lead`, `_pair`), or None."""
        best: tuple[float, _Track] | None = None
        for lone in reversed(self.tracks):
            start = lone.frames[0]
            if frame - start > reach:
                break  # tracks are made in frame order
            if start >= before or len(lone.frames) != 1 or lone.label != label:
                continue
            near = closeness(lone)
            if near > -np.inf and (best is None or near > best[0]):
                best = (near, lone)
        if best is None:
            return None
        lone = best[1]
        return lone.frames[0], lone.coords[0], lone.boxes[0].turn


def _as_whole(box: Box, track: _Track, frame: int, frame_size: tuple[int, int] | None) -> Box:
    """A detection as the whole face its track follows: one inside the frame that boxed part of
    the face (`_part`), or one cut by the frame's edge, at the size its track had inside the frame.

    As a face leaves the picture the detector sees less of it and its box shrinks towards the
    edge, while the face itself keeps its size: the box keeps the track's last size, anchored
    on its side inside the frame, so the part still showing stays covered and the track's motion
    is the face's, not the shrinking box's.

    Along the edge the sliver's box is only some part of the face (an eye, the brow), wherever
    the detector fired: the face stays where its track's last box was, moved only as far as it
    must to hold that part. Centred on the part, a face leaving through the left edge drifted up
    after boxes on its brow and its chin showed for five frames (held-out edge-exit, 1080p, with
    the cheap pass); moved along the track's motion, the box drifted on its own earlier drift.
    """
    if frame_size is None or not track.boxes:
        return box
    if _within(box, frame_size):
        return _part(box, track, frame, frame_size)
    width, height = frame_size
    last = track.boxes[-1]
    x0, x1 = _keep_size(box.x0, box.x1, last.x0, last.x1, width)
    y0, y1 = _keep_size(box.y0, box.y1, last.y0, last.y1, height)
    return replace(box, x0=x0, y0=y0, x1=x1, y1=y1)


def _part(box: Box, track: _Track, frame: int, frame_size: tuple[int, int]) -> Box:
    """A face's detection inside the frame that lost a quarter or more of its width or height
    from one frame to the next, at the size its track predicts, as near that prediction as holds
    the detection: the detector boxed part of the face.

    Faces do not shrink that fast, but their boxes do: looked at coarsely (the cheap pass of
    ``most_changed: cheap``), a 102 px face coming in through the right edge of a circling camera's
    picture was boxed 40-60 px wide around its right half on 7 of 13 frames, and its left half
    showed (held-out pan-edges, 720p). Compared with the largest detection within VELOCITY_SPAN
    frames, a face that really is smaller now (a cut, a zoom) is covered at its own size again
    that many frames later. Only ever more cover; text boxes, whose size changes with what the
    detector joins into one line, are left as they are.
    """
    if box.label != "face":
        return box
    recent = []
    for f, wh in zip(reversed(track.frames), reversed(track.found), strict=True):  # a long track: its end only
        if frame - f > VELOCITY_SPAN:
            break
        recent.append(wh)
    if not recent:
        return box
    width, height = max(w for w, _ in recent), max(h for _, h in recent)
    narrow, low = box.x1 - box.x0 < SHRINK * width, box.y1 - box.y0 < SHRINK * height
    if not (narrow or low):
        return box
    pred = track.predict(frame)
    x0, x1 = _keep_size(box.x0, box.x1, pred[0], pred[2], frame_size[0]) if narrow else (box.x0, box.x1)
    y0, y1 = _keep_size(box.y0, box.y1, pred[1], pred[3], frame_size[1]) if low else (box.y0, box.y1)
    return replace(box, x0=x0, y0=y0, x1=x1, y1=y1)


def _keep_size(lo: float, hi: float, last_lo: float, last_hi: float, limit: int) -> tuple[float, float]:
    """One axis of `_as_whole`: at least as long as the track's last box, anchored on the side
    inside the frame; on an axis the edge does not cut, as near the last box as holds ``lo``..``hi``."""
    size = last_hi - last_lo
    if hi - lo >= size:
        return lo, hi
    if lo <= 0 < hi < limit:
        return hi - size, hi
    if 0 < lo < limit <= hi:
        return lo, lo + size
    start = min(max(last_lo, hi - size), lo)
    return start, start + size


def associate(
    detections: Sequence[Sequence[Box] | None], cfg: Tracking, frame_size: tuple[int, int] | None = None
) -> list[_Track]:
    """The tracks of a whole clip with at least ``min_track_hits`` detections (see `_Associator`).

    ``None`` marks a frame that was not run through the detector (detect every k-th frame).
    """
    assoc = _Associator(cfg, _detect_step(detections), frame_size)
    for frame, boxes in enumerate(detections):
        assoc.push(frame, boxes)
    return [t for t in assoc.tracks if len(t.frames) >= cfg.min_track_hits]


def _within(box: Box, frame_size: tuple[int, int]) -> bool:
    return not any(_cut(box, frame_size))


def _cut(box: Box, frame_size: tuple[int, int]) -> tuple[bool, bool]:
    """Whether the frame's edge cuts ``box`` across (left or right) and down (top or bottom)."""
    width, height = frame_size
    return box.x0 <= 0 or box.x1 >= width, box.y0 <= 0 or box.y1 >= height


def _neg_distance(a: np.ndarray, b: np.ndarray, cut: tuple[bool, bool] = (False, False)) -> float:
    """Closeness for the second-chance match of prediction ``a`` and box ``b``; ``cut``: whether
    the frame's edge cuts ``b`` across and down.

    A whole box (not cut) of another size is another object, however near (a false text box
    beside a plate leaving the frame took over the plate's track, and the plate's last frames
    went uncovered). A cut box may be any part of the object, but along the edge that cuts it
    that part lies where the track has the whole object (a false box beside a face's brow,
    taken for it, pulled the face's box off its chin). Across the edge the face may have slowed,
    and the prediction run on past the box towards the edge; but a box between the prediction and
    the edge, clear of it, would have the object jump out faster than its track moves, and is
    another's. A second box around a real face at the top edge (which had its own track too) was
    taken for a 530x280 false face on a coffee cup 120 px below it, whose box then jumped up to
    the edge and was carried on out of the picture at 110 px a frame, 780 px up five frames on
    (held-out pan-edges, 720p, visual-default); a 20 px sliver at the left edge, joined to a
    lone 412x393 false face 200 px in, became a 412 px box reaching 357 px out of the picture and
    was filled between (held-out texture, 720p, visual-thorough).
    """
    if not any(cut):
        for lo, hi in ((0, 2), (1, 3)):
            sa, sb = max(a[hi] - a[lo], 1.0), max(b[hi] - b[lo], 1.0)
            if max(sa, sb) > MAX_SIZE_RATIO * min(sa, sb):
                return -np.inf
    across, down = cut
    if across != down:
        lo, hi = (1, 3) if across else (0, 2)  # the axis along the edge
        if min(a[hi], b[hi]) <= max(a[lo], b[lo]):
            return -np.inf
    for edge_cut, lo, hi in ((across, 0, 2), (down, 1, 3)):
        # The box at the low edge (left, top) wholly before the prediction, or at the high one after it.
        if edge_cut and (b[hi] <= a[lo] if b[lo] <= 0 else b[lo] >= a[hi]):
            return -np.inf
    return -_centre_distance(a, b)


def _detect_step(detections: Sequence[Sequence[Box] | None]) -> int:
    """Frames between detector runs (1 when every frame was detected)."""
    for i, boxes in enumerate(detections[1:], start=1):
        if boxes is not None:
            return i
    return 1


def _grown(coords: np.ndarray, frames_away: int) -> np.ndarray:
    g = min(MAX_GROWTH, GROWTH_PER_FRAME * frames_away) / 2
    w, h = coords[2] - coords[0], coords[3] - coords[1]
    return coords + np.array([-w * g, -h * g, w * g, h * g])


def _padded(coords: np.ndarray, pad: float) -> tuple[float, float, float, float]:
    """The box grown by ``pad``; it may reach past the frame: a face leaving the picture keeps
    its whole shape (an ellipse drawn in its visible part alone left its cut side sharp)."""
    w, h = coords[2] - coords[0], coords[3] - coords[1]
    return coords[0] - w * pad / 2, coords[1] - h * pad / 2, coords[2] + w * pad / 2, coords[3] + h * pad / 2


def _lead_reach(cfg: Tracking) -> int:
    """Frames before a track's second detection that its lead may lie (`_Associator._lead`): FAR_RUNS
    times what a track bridges (``max_gap`` + 1), as far as an extension along a motion measured
    over many frames runs."""
    return FAR_RUNS * (cfg.max_gap + 1)


def _reach(cfg: Tracking, step: int) -> int:
    """Frames a track may go undetected and still take the next detection."""
    return cfg.max_gap + 1 + step


#: Along a motion measured over many frames (`_whole_motion`, `_entry_motion`, `_exit_motion`), an
#: extension at the edge may run this many times `_edge_extend` (see `_extend`).
FAR_RUNS = 2


def _window(cfg: Tracking, step: int) -> tuple[int, int, int]:
    """(max_gap, extend, behind) with detection every ``step`` frames: gaps up to ``max_gap`` are
    bridged, tracks extended ``extend`` frames (up to `_edge_extend` where the box is cut by the
    frame's edge, twice that along a motion measured over many frames), and a detection at frame
    k puts boxes into frames k - 2 × `_edge_extend` .. k + behind - 1 (a gap it closes, or its
    extension and hold)."""
    max_gap = max(cfg.max_gap, step - 1)
    extend = max(cfg.extend_frames, step - 1)
    return max_gap, extend, max(max_gap, FAR_RUNS * _edge_extend(max_gap, extend) + cfg.hold_frames) + 1


def _edge_extend(max_gap: int, extend: int) -> int:
    """Frames an extension may run on while its box is cut by the frame's edge (see `_extend`)."""
    return max(max_gap, extend) if extend else 0


def tracking_lag(cfg: Tracking, step: int = 1) -> int:
    """Frames after which a frame's boxes can no longer change (see `StreamTracker`)."""
    max_gap, extend, _ = _window(cfg, step)
    # A track extended backwards also takes its motion from detections up to VELOCITY_SPAN on
    # (ENTRY_SPAN for a face coming in through the edge), and may reach twice the edge run back;
    # a lone detection becomes a later track's lead (`_Associator._lead`) within `_lead_reach` frames
    # of its second detection (`_Associator._pair`: within ``max_gap`` + 1 of its first), and is
    # extended back from at most the edge run; the track is confirmed up to ``min_track_hits`` - 2
    # reaches after its second.
    return max(max_gap, FAR_RUNS * _edge_extend(max_gap, extend)
               + max(cfg.min_track_hits * _reach(cfg, step), VELOCITY_SPAN, ENTRY_SPAN),
               _lead_reach(cfg) + _edge_extend(max_gap, extend) + max(0, cfg.min_track_hits - 2) * _reach(cfg, step))


def fill_tracks(
    tracks: Sequence[_Track], lo: int, hi: int, cfg: Tracking, width: int, height: int, detect_step: int = 1
) -> list[list[TrackedBox]]:
    """For frames ``lo``..``hi``-1, every box to obscure: detected, interpolated, extended, held; padded.

    Only the detections that can reach the range are visited, so filling a clip a few frames at a
    time costs no more than filling it at once.
    """
    out: list[list[TrackedBox]] = [[] for _ in range(lo, hi)]
    max_gap, extend, behind = _window(cfg, detect_step)
    edge = _edge_extend(max_gap, extend)
    ahead = FAR_RUNS * edge + 1
    ext = _Extension(extend, edge, (width, height), cfg.pad)

    def put(frame: int, coords: np.ndarray, track: _Track, score: float, detected: bool, turn: float) -> None:
        if lo <= frame < hi:
            x0, y0, x1, y1 = _padded(coords, cfg.pad)
            if x1 > max(0.0, x0) and y1 > max(0.0, y0) and x0 < min(float(width), x1) and y0 < min(float(height), y1):
                out[frame - lo].append(
                    TrackedBox(Box(x0, y0, x1, y1, score, track.label, turn), track.track_id, detected))

    for track in tracks:
        first, last = track.frames[0] if track.lead is None else track.lead[0], track.frames[-1]
        if first - ahead >= hi or last + behind < lo:
            continue
        if track.lead is not None:
            _lead(put, track, track.lead, ext, (lo, hi))
        # One detection either side to spare: a gap or a piece boundary is handled from its left end.
        k_lo = max(0, bisect.bisect_left(track.frames, lo - behind) - 1)
        k_hi = min(len(track.frames), bisect.bisect_right(track.frames, hi + ahead) + 1)
        for k in range(k_lo, k_hi):
            frame = track.frames[k]
            coords = track.coords[k]
            turn = track.boxes[k].turn
            put(frame, coords, track, track.boxes[k].score, True, turn)
            if frame in track.predicted:
                put(frame, track.predicted[frame], track, 0.0, False, turn)
            if k == 1 and track.second_starts:
                # Only ever more cover: the track may start here rather than at its first box.
                _extend(put, track, frame, coords, _velocity(track, k, -1), -1, ext, 0, turn, (lo, hi))
            if k + 1 < len(track.frames):
                nxt = track.frames[k + 1]
                following = track.coords[k + 1]
                gap = nxt - frame - 1
                if 0 < gap <= max_gap:
                    # The turn of whichever detection turned further: the larger back-of-head cover.
                    _bridge(put, track, frame, nxt, coords, following, max(turn, track.boxes[k + 1].turn, key=abs),
                            (lo, hi))
                elif gap > max_gap:
                    # Too long to bridge safely: treat as the end of one piece and the start of
                    # the next, each extended and held.
                    _leave(put, track, k, ext, max_gap, cfg.hold_frames, (lo, hi))
                    _enter(put, track, k + 1, ext, max_gap, (lo, hi))
        _enter(put, track, 0, ext, max_gap, (lo, hi))
        _leave(put, track, len(track.frames) - 1, ext, max_gap, cfg.hold_frames, (lo, hi))
    return out


def _lead(put: _Put, track: _Track, lead: tuple[int, np.ndarray, float], ext: _Extension, frames: tuple[int, int]
          ) -> None:
    """A track's lead (`_Associator._lead`): its box, the frames between it and the track's first
    detection filled, and an extension backwards from it along the motion between the two. The
    lone detection keeps its own track as well: only ever more cover."""
    start, coords, turn = lead
    first, following = track.frames[0], track.coords[0]
    put(start, coords, track, 0.0, False, turn)
    _bridge(put, track, start, first, coords, following, turn, frames)
    _extend(put, track, start, coords, _lead_motion(track, lead), -1, ext, 0, turn, frames)


def _lead_motion(track: _Track, lead: tuple[int, np.ndarray, float]) -> np.ndarray:
    """The motion a frame from a track's lead to its first detection."""
    return (track.coords[0] - lead[1]) / (track.frames[0] - lead[0])


def _bridge(put: _Put, track: _Track, frame: int, nxt: int, coords: np.ndarray, following: np.ndarray, turn: float,
            frames: tuple[int, int]) -> None:
    """The frames between a box at ``frame`` and the next at ``nxt`` (``following``), interpolated;
    of those in ``frames`` (lo..hi-1) only: the tracker fills a frame or two at a time."""
    lo, hi = frames
    gap = nxt - frame - 1
    for j in range(max(1, lo - frame), min(gap, hi - 1 - frame) + 1):
        t = j / (gap + 1)
        put(frame + j, (1 - t) * coords + t * following, track, 0.0, False, turn)


def _leave(put: _Put, track: _Track, k: int, ext: _Extension, max_gap: int, hold: int, frames: tuple[int, int]
           ) -> None:
    """`_extend` forwards from detection ``k``, where the track (or a piece of it) ends; where
    that box is cut by the frame's edge, also along the motion the face had while it was last
    whole in the picture (`_whole_motion`), or, where it never was, along its boxes' inner side
    (`_exit_motion`); and where distance alone joined that box to the track, also from where
    the track predicted the face, along the motion it had before. Only ever more cover: every
    extension is drawn.

    The last: drawn held-out set 9, "edges", 720p. A 156 px face leaving through the top edge
    at 5.5 px a frame was last found on frame 37 with 57 px of it in the picture; on frame 38 a
    false 0.23 box 90 px below and to its left was joined to its track by distance and became
    its end, and the extension ran from there down and away. The face's last 43 to 11 px were
    left untouched on frames 39-45."""
    frame, coords, turn = track.frames[k], track.coords[k], track.boxes[k].turn
    if _steps(frame, +1, ext, hold, frames, far=True) is None:
        return  # the tracker fills a frame or two at a time: walking back along a long track is not free
    short = _velocity(track, k, +1)
    _extend(put, track, frame, coords, short, +1, ext, hold, turn, frames)
    whole = _whole_motion(track, k, ext, max_gap)
    if whole is not None and not np.allclose(whole, short):
        _extend(put, track, frame, coords, whole, +1, ext, hold, turn, frames, far=True)
    elif whole is None and (inner := _exit_motion(track, k, ext, max_gap)) is not None \
            and not np.allclose(inner, short):
        _extend(put, track, frame, coords, inner, +1, ext, hold, turn, frames, far=True)
    if frame in track.predicted and k > 0:
        _extend(put, track, frame, track.predicted[frame], _velocity(track, k - 1, +1), +1, ext, hold,
                track.boxes[k - 1].turn, frames)
    if (steady := _steady_motion(track, k, ext, max_gap)) is not None:
        _extend(put, track, frame, coords, steady, +1, replace(ext, extend=ext.edge), hold, turn, frames, far=True)
    if k == 0 and track.lead is not None:
        # A first box paired with a lone one before it (`_Associator._pair`): on along the way between them.
        _extend(put, track, frame, coords, _lead_motion(track, track.lead), +1, ext, hold, turn, frames)


def _enter(put: _Put, track: _Track, k: int, ext: _Extension, max_gap: int, frames: tuple[int, int]) -> None:
    """`_extend` backwards from detection ``k``, where the track (or a piece of it) starts; where
    that box is cut by the frame's edge, also along the motion of its inner side (`_entry_motion`),
    as far as twice the edge run; where the piece moves steadily from there (`_steady_motion`),
    also an edge run back along its line (twice that while the edge cuts the box, as any run
    along a motion measured over many frames). Only ever more cover: all are drawn.

    A face coming in slowly through the edge is found only once a good part of it shows, and its
    first boxes stay put while more of it comes in: the cameraman's real turned head, 220 px wide
    at 720p, coming in through the right edge at 4 px a frame, was first found with 90 px of it in
    the picture, on frame 35; his boxes there moved less than a pixel a frame over the next four,
    so the extension stayed where he was found, and his first 10 to 66 px showed, untouched, on
    frames 15-29. Over the next fifteen frames the boxes' inner side moved in with him, 4 px a
    frame."""
    frame, coords, turn = track.frames[k], track.coords[k], track.boxes[k].turn
    if _steps(frame, -1, ext, 0, frames, far=True) is None:
        return
    short = _velocity(track, k, -1)
    _extend(put, track, frame, coords, short, -1, ext, 0, turn, frames)
    entry = _entry_motion(track, k, ext, max_gap)
    if entry is not None and not np.allclose(entry, short):
        _extend(put, track, frame, coords, entry, -1, ext, 0, turn, frames, far=True)
    if (steady := _steady_motion(track, k, ext, max_gap, -1)) is not None:
        _extend(put, track, frame, coords, steady, -1, replace(ext, extend=ext.edge), 0, turn, frames, far=True)


#: A face coming in through the edge: its motion is measured over this many frames (`_entry_motion`).
ENTRY_SPAN = 15


def _entry_motion(track: _Track, k: int, ext: _Extension, max_gap: int) -> np.ndarray | None:
    """Where detection ``k`` starts a piece of the track and is cut by the frame's edge: the
    motion, as a translation, of the side of its boxes away from that edge (fitted over the
    piece's detections within ENTRY_SPAN frames, three at least over a third of it), where it
    comes in through that edge; else None. What the detector boxes of a face coming in is what
    shows of it: the side at the edge stays there, and the inner side moves in with the face."""
    return _edge_motion(track, k, ext, max_gap, -1)


def _exit_motion(track: _Track, k: int, ext: _Extension, max_gap: int) -> np.ndarray | None:
    """`_entry_motion` the other way: where detection ``k`` ends a piece of the track and is cut
    by the frame's edge, the motion of its boxes' inner side over the piece's detections within
    ENTRY_SPAN frames before it, where that leaves through the edge; else None.

    For a face that was never whole in the picture while its track ran (`_whole_motion` has
    nothing to go by): a 39 px face leaving through the top edge at 1 px a frame, whole against
    it when the clip began, was boxed whole with the mirrored pad, its box's centre held at the
    edge by its mirror image, and last found on frame 19 with 27 px of it in the picture; the
    extension stayed where it was found, and its last 16 to 8 px were left untouched on frames
    30-38 (drawn held-out set 41, "edges", 720p)."""
    return _edge_motion(track, k, ext, max_gap, +1)


def _edge_motion(track: _Track, k: int, ext: _Extension, max_gap: int, direction: int) -> np.ndarray | None:
    """`_entry_motion` (``direction`` -1: fitted over the detections after ``k``) or `_exit_motion`
    (+1: before it)."""
    box = track.coords[k]
    if not ext.cut(box):
        return None
    lo, hi = _span(track, k, -direction, max_gap)
    times = np.array(track.frames[lo:hi], dtype=float)
    if len(times) < 3 or times[-1] - times[0] < ENTRY_SPAN / 3:
        return None
    slope = np.polyfit(times, np.array(track.coords[lo:hi]), 1)[0]  # per coordinate
    left, top, right, bottom = ext.sides(box)

    def shared(a: float, b: float) -> float:
        """What two sides' motions agree on: the boxes also grow as more of the face comes in (and
        shrink as it leaves)."""
        return 0.0 if a * b <= 0 else float(min(a, b, key=abs))

    # The inner side where one edge cuts the box; else what both sides share.
    vx = slope[2] if left and not right else slope[0] if right and not left else shared(slope[0], slope[2])
    vy = slope[3] if top and not bottom else slope[1] if bottom and not top else shared(slope[1], slope[3])
    motion = np.array([vx, vy, vx, vy])
    return motion if ext.heads_out(box, motion, direction) else None


def _span(track: _Track, k: int, step: int, max_gap: int) -> tuple[int, int]:
    """The detections (lo..hi-1) of detection ``k``'s piece of the track within ENTRY_SPAN frames
    of it, walking ``step`` (-1: before it, +1: after it) while no gap is over ``max_gap``."""
    j = k
    while (0 <= j + step < len(track.frames) and abs(track.frames[j + step] - track.frames[k]) <= ENTRY_SPAN
           and abs(track.frames[j + step] - track.frames[j]) - 1 <= max_gap):
        j += step
    return min(j, k), max(j, k) + 1


def _whole_motion(track: _Track, k: int, ext: _Extension, max_gap: int) -> np.ndarray | None:
    """The motion at the track's last detection before ``k`` that the frame's edge did not cut,
    within the same piece (no gap over ``max_gap``), where detection ``k`` is cut by the edge and
    that motion heads out through an edge that cuts it; else None.

    A face leaving the picture slowly is boxed, once the edge cuts it, around what the detector
    still makes of it, and those boxes lag the face: the cameraman's real turned head, 160 px
    wide at 720p, sliding out through the right edge at 4 px a frame, was boxed moving 3.5 px a
    frame while whole, then 1-2 px a frame once cut, and last found on frame 44 with its box
    5 px back from where it was 8 frames before. Carried along that, its box stayed put and its
    last 20 to 8 px showed on frames 55-58, after the usual five frames and five held. While
    whole, its boxes moved with it."""
    if not ext.cut(track.coords[k]):
        return None
    j = k
    while j > 0 and ext.cut(track.coords[j]) and track.frames[j] - track.frames[j - 1] - 1 <= max_gap:
        j -= 1
    if j == 0 or ext.cut(track.coords[j]):
        return None  # never whole in this piece (or no motion to measure at its first detection)
    velocity = _velocity(track, j, +1)
    return velocity if ext.heads_out(track.coords[k], velocity, +1) else None


#: A face's track moving this steadily (the centres' RMS distance from a straight line at a steady
#: pace, in box sizes) is carried on along that line at its end (`_steady_motion`).
STEADY = 0.25


def _steady_motion(track: _Track, k: int, ext: _Extension, max_gap: int, direction: int = +1
                   ) -> np.ndarray | None:
    """Where detection ``k`` ends a piece of a face's track (``direction`` +1; -1: starts one):
    the motion, as a translation, of its centres fitted over the piece's detections within
    ENTRY_SPAN frames before it (after it, for -1; four at least, over half of it), where they lie
    within STEADY box sizes of that line and it carries the box half its size or more over an edge
    run (``ext.edge`` frames); else None. `_leave` then carries the track that far along it, not
    ``ext.extend`` frames only, and `_enter` as far back.

    A small face moving steadily can fade from the detector before it leaves, and the extension's
    five frames and five held then end where it was last found while it moves on: a 24 px face
    tracked over 27 frames at 14 px a frame, last found on frame 26, was left untouched on frames
    33-46 until it had left through the bottom edge (drawn held-out set 69, "small", 720p); a 39 px
    face drifting out through the left edge at 3.4 px a frame, last found on frame 27, showed on
    frames 38-47 (set 62, "small", 720p): its extension ended 8 px short of the edge, so it was
    not carried out. Along a line many detections agree on, the face is most likely where the
    line goes; where it stopped instead, the short extension and the hold still cover that: only
    ever more cover.

    The same holds backwards: a small face moving steadily can reach the detector only some frames
    after it came into view. Held-out face24-tilted-fast, 720p: a 24 px face tilted 45 degrees,
    moving 14 px a frame, was first found on frame 12 and tracked steadily from there; the five
    frames extended back left frames 0-6 untouched."""
    if track.label != "face":
        return None
    if ext.cut(track.coords[k]):
        return None  # the edge's own motions (`_whole_motion`, `_exit_motion`, `_entry_motion`) take it
    lo, hi = _span(track, k, -direction, max_gap)
    times = np.array(track.frames[lo:hi], dtype=float)
    if len(times) < 4 or times[-1] - times[0] < ENTRY_SPAN / 2:
        return None
    boxes = np.array(track.coords[lo:hi])
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    slope, offset = np.polyfit(times, centres, 1)
    size = float(np.median(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])))
    off_line = np.sqrt(np.mean(np.sum((centres - (np.outer(times, slope) + offset)) ** 2, axis=1)))
    if off_line > STEADY * size or np.hypot(*slope) * ext.edge < size / 2:
        return None
    return np.array([slope[0], slope[1], slope[0], slope[1]])


#: An extension's motion is measured over up to this many frames (see `_velocity`).
VELOCITY_SPAN = 4


def _velocity(track: _Track, k: int, direction: int) -> np.ndarray:
    """Per-frame motion at detection ``k`` towards the side being extended: from the detection
    farthest from it on the other side within VELOCITY_SPAN frames, or the nearest one where none
    is that close. Over one frame the detector's own jitter reads as fast motion: two boxes of a
    face leaving through the bottom edge, a frame apart and 70 px apart, carried its box out of
    the picture a frame later while a sliver of the face was still in it for five (held-out,
    1080p); over four frames the same jitter counts a quarter as much."""
    way = 1 if direction < 0 else -1
    j = k + way
    if not 0 <= j < len(track.frames):
        return np.zeros(4)
    while 0 <= j + way < len(track.frames) and abs(track.frames[j + way] - track.frames[k]) <= VELOCITY_SPAN:
        j += way
    # Forward-time velocity whichever neighbour is used: numerator and denominator flip together.
    return (track.coords[k] - track.coords[j]) / (track.frames[k] - track.frames[j])


_Put = Callable[[int, np.ndarray, "_Track", float, bool, float], None]


@dataclass(frozen=True)
class _Extension:
    """How far `_extend` carries a track: ``extend`` frames, and on up to ``edge`` while the
    carried box, as drawn (grown, padded by ``pad``), is cut by the edge of a frame of ``size``
    (width, height)."""

    extend: int
    edge: int
    size: tuple[int, int]
    pad: float

    def run(self, far: bool) -> int:
        """Frames an extension may run on at the edge: ``edge``, or FAR_RUNS times that (``far``)."""
        return FAR_RUNS * self.edge if far else self.edge

    def heads_out(self, pos: np.ndarray, velocity: np.ndarray, direction: int) -> bool:
        """``velocity`` (forward in time), followed in ``direction``, carries ``pos`` out through
        an edge that cuts it."""
        left, top, right, bottom = self.sides(pos)
        cx, cy = direction * (velocity[0] + velocity[2]) / 2, direction * (velocity[1] + velocity[3]) / 2
        return bool((left and cx < 0) or (right and cx > 0) or (top and cy < 0) or (bottom and cy > 0))

    def shows(self, pos: np.ndarray) -> bool:
        """Some of ``pos`` (x0, y0, x1, y1) is inside the frame."""
        w, h = self.size
        return bool(pos[0] < w and pos[1] < h and pos[2] > 0 and pos[3] > 0)

    def cut(self, pos: np.ndarray) -> bool:
        """``pos`` is partly inside the frame and partly outside it."""
        return self.shows(pos) and any(self.sides(pos))

    def sides(self, pos: np.ndarray) -> tuple[bool, bool, bool, bool]:
        """Which of the frame's edges (left, top, right, bottom) ``pos`` reaches past."""
        w, h = self.size
        return bool(pos[0] < 0), bool(pos[1] < 0), bool(pos[2] > w), bool(pos[3] > h)

    def beyond(self, pos: np.ndarray, sides: tuple[bool, bool, bool, bool]) -> bool:
        """``pos`` lies wholly past one of the frame's edges that ``sides`` (left, top, right,
        bottom) picks."""
        w, h = self.size
        left, top, right, bottom = sides
        return bool((left and pos[2] <= 0) or (top and pos[3] <= 0) or (right and pos[0] >= w) or (bottom and pos[1] >= h))


def _steps(frame: int, direction: int, ext: _Extension, hold: int, frames: tuple[int, int], far: bool = False
           ) -> tuple[int, int] | None:
    """The first and last step from ``frame`` in ``direction`` that land in ``frames`` (lo..hi-1),
    or None where no step an extension (``far``: one allowed twice the edge run) and its hold can
    take does (the tracker asks for a frame or two at a time)."""
    lo, hi = frames
    first, last = (lo - frame, hi - 1 - frame) if direction > 0 else (frame - hi + 1, frame - lo)
    if last < 1 or max(1, first) > ext.run(far) + hold:  # ext.edge >= ext.extend
        return None
    return first, last


def _extend(put: _Put, track: _Track, frame: int, coords: np.ndarray, velocity: np.ndarray, direction: int,
            ext: _Extension, hold: int, turn: float, frames: tuple[int, int], far: bool = False) -> None:
    """Cover ``ext.extend`` frames along the motion from ``frame`` in ``direction``, then ``hold``
    more in place, of those in ``frames`` (lo..hi-1: the tracker fills a frame or two at a time, so
    most are not).

    The centre follows the motion; the size follows it only where it grows: an extrapolated box is
    never smaller than the detection it comes from. Two boxes of a small face a frame apart differ
    by a few pixels of the detector's own jitter, and carried on over five frames that shrank a
    24 px face's box by half just as it left through the frame's edge (held-out, 1080p).

    A box still cut by the frame's edge where the extension ends, and carried out of the picture
    by the motion within twice ``ext.edge`` frames, is carried on until it has left, ``ext.edge``
    frames at most: a face coming in through the edge shows a sliver for some frames before the
    detector finds it. A slow one may need more than ``ext.edge`` frames to leave (a 90 px face
    with a 4.7 px a frame pan needed 16 of 15, held-out pan-subpixel, 1080p): it is covered as far
    as ``ext.edge``. A 116 px face
    coming up through the bottom edge of a circling camera's picture was first found with 48 px
    of it in the frame, and its first 8 and 15 px showed for the two frames before the
    extension's five (held-out pan-edges, 720p). Held frames then stay at the last step still in
    the picture, not out of it. Out of the picture means as drawn (grown for the frames since, and
    padded), or, where that growth reaches back faster than the motion carries the box out and
    the drawn box never leaves, the box itself: a 285 px tall face leaving through the bottom edge
    at 10 px a frame grew ~5 px a frame at its top, padding aside, and its last 65 to 16 px were
    left uncovered on the 6 frames after the usual five and five held (drawn held-out set 23,
    "edges", 1080p). Along a motion measured over many frames (``far``: `_whole_motion`,
    `_entry_motion`, `_exit_motion`), the run may reach twice ``ext.edge``: the cameraman's real
    turned head, 220 px wide at 720p, needed 21 frames to leave at 4 px a frame, and 20 to come
    in; and all of it where that motion carries the box out too slowly to leave in time. A box
    the motion does not take out of the picture (a still one: mostly something at the mirrored
    border taken for a face) is not: run on for as long, such boxes obscured 7.5 points more of
    the picture on a held-out clip.
    """
    steps = _steps(frame, direction, ext, hold, frames, far)
    if steps is None:
        return
    first, last = steps
    edge = ext.run(far)
    centre, size = (coords[:2] + coords[2:]) / 2, coords[2:] - coords[:2]
    moves, grows = (velocity[:2] + velocity[2:]) / 2, velocity[2:] - velocity[:2]
    if track.label == "text":
        # Print does not swell from one frame to the next, but the text detector's false boxes do:
        # two boxes of people walking side by side on real footage (vtest.avi), 2 frames apart
        # and 44 px a frame wider, were carried into a box over 62 % of the picture. The
        # extension's own growth (`_grown`) still allows for print coming nearer.
        grows = np.zeros(2)

    def at(i: int) -> np.ndarray:
        step = i * direction
        c, half = centre + moves * step, np.maximum(size, size + grows * step) / 2
        return np.concatenate([c - half, c + half])

    def drawn(i: int) -> np.ndarray:
        return np.array(_padded(_grown(at(i), i), ext.pad))

    def gone(start: int, sides: tuple[bool, bool, bool, bool]) -> int | None:
        """The first step from ``start`` on, within twice ``ext.edge``, where the box as drawn has
        left the picture through one of the edges ``sides`` picks (those that cut it), or through
        another while the box itself still reaches past one of those (a face cut by the bottom
        edge, carried out through the left one by a pan); or, where its growth outruns the motion
        and it never does, where the box itself (as the motion carries it) has. One that would
        leave through another edge after coming wholly into the picture crosses it: that is no
        face leaving, but boxes that jumped (a cat's face found on four frames, 90 px a frame
        apart, swept a 540x800 blur across a whole 720p picture for 15 frames)."""
        steps = range(start, 2 * ext.edge + 1)
        # Up to which step the box, as the motion carries it, still reaches past an edge that cut it.
        along = next((m for m in steps if not any(a and b for a, b in zip(sides, ext.sides(at(m))))), steps.stop)

        def left(pos: np.ndarray, n: int) -> bool:
            return ext.beyond(pos, sides) or (n <= along and not ext.shows(pos))

        return next((n for n in steps if left(drawn(n), n)), None) or next((n for n in steps if left(at(n), n)), None)

    extend = ext.extend
    if extend and ext.cut(drawn(extend)):
        # To the last step still in the picture, `ext.edge` at most (twice that for ``far``): a face
        # leaving is then held there, at the edge. The motion must take it out within twice ``ext.edge``.
        out = gone(extend + 1, ext.sides(drawn(extend)))
        if out is None and far:
            # A motion measured over many frames that heads out through the edge, too slowly for
            # the box to leave in time: run it all the way (see `_enter`).
            out = edge + 1
        if out is not None:
            extend = max(extend, min(out - 1, edge))
    # A face cut by the edge that the motion takes out of the picture: its boxes' motion is the
    # detector's guess at a part of a face (a box widening as the face comes in moved 15 px a
    # frame where the face moved 6), but what shows of it lies between where it was found and
    # that edge. So the extension's first ``ext.extend`` frames also cover where it was found
    # (beyond those, and held, that strip showed background more often than face: over all of
    # an extension at the edge, held-out edge-exit had 2.2 points more of its picture obscured).
    padded = np.array(_padded(coords, ext.pad))
    outwards = ext.cut(padded) and gone(1, ext.sides(padded)) is not None
    for i in range(max(1, first), min(extend + hold, last) + 1):
        # Held frames stay where the extension ended.
        pos = at(min(i, extend)) if extend else coords
        if outwards and i <= ext.extend:
            pos = np.concatenate([np.minimum(pos[:2], coords[:2]), np.maximum(pos[2:], coords[2:])])
        put(frame + direction * i, _grown(pos, i), track, 0.0, False, turn)


class StreamTracker:
    """Tracking as the detections arrive: each frame's boxes are handed out once nothing can change them.

    Offline tracking looks into the future, but not far: a frame's boxes depend on detections at
    most `lag` frames later (a gap closes within ``max_gap`` frames; a track extended backwards
    takes its motion from its next detections, at most ``reach`` frames on (or VELOCITY_SPAN, where
    that is more); a track's hit count is
    settled ``min_track_hits`` × ``reach`` frames after it starts; a lone detection becomes a later
    track's lead up to `_lead_reach` frames before that track's second detection: see
    `tracking_lag`). So frame ``f`` is final once
    frame ``f + lag`` is in, and the boxes are the same as if the whole clip had been seen first.
    """

    def __init__(self, cfg: Tracking, width: int, height: int, step: int = 1) -> None:
        self.cfg, self.width, self.height, self.step = cfg, width, height, step
        self._assoc = _Associator(cfg, step, (width, height))
        self.lag = tracking_lag(cfg, step)
        self._behind = _window(cfg, step)[2]
        # Tracks that may still put a box into a frame not handed out yet, in creation order.
        self._live: list[_Track] = []
        self._seen = 0
        self.pushed = 0
        self.emitted = 0

    def push(self, boxes: Sequence[Box] | None) -> list[list[TrackedBox]]:
        """The next frame's detections (``None``: not detected); returns the frames now final, in order."""
        self._assoc.push(self.pushed, boxes)
        self.pushed += 1
        return self._emit(self.pushed - self.lag)

    def finish(self) -> list[list[TrackedBox]]:
        """The end of the clip: every frame not handed out yet."""
        return self._emit(self.pushed)

    def _emit(self, hi: int) -> list[list[TrackedBox]]:
        lo = self.emitted
        if hi <= lo:
            return []
        tracks = self._assoc.tracks
        self._live.extend(tracks[self._seen :])
        self._seen = len(tracks)
        # A track that can take no more detections and reaches no frame from ``lo`` on is done with.
        self._live = [t for t in self._live
                      if self.pushed - 1 - t.frames[-1] <= self._assoc.reach or t.frames[-1] + self._behind >= lo]
        confirmed = [t for t in self._live if len(t.frames) >= self.cfg.min_track_hits]
        out = fill_tracks(confirmed, lo, hi, self.cfg, self.width, self.height, self.step)
        self.emitted = hi
        return out


def track_boxes(
    detections: Sequence[Sequence[Box] | None], cfg: Tracking, width: int, height: int
) -> list[list[TrackedBox]]:
    """Detections per frame in, boxes to obscure per frame out (see the module docstring)."""
    tracker = StreamTracker(cfg, width, height, _detect_step(detections))
    out = [frame for boxes in detections for frame in tracker.push(boxes)]
    return out + tracker.finish()
