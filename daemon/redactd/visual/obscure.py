"""Obscure boxes in place in a planar YUV frame: blur, pixelate or fill, as an ellipse or a rectangle.

Working on the Y, U and V planes directly skips two colour conversions per frame (3–5 ms each in
swscale). Strength scales with the box: a box is reduced to ``blocks_across`` samples across its
width before being smoothed back up, so a 400 px face is as unrecognisable as a 40 px one, and
the cost stays a fraction of a millisecond whatever the size (a huge Gaussian kernel would not).

Minimum strength: the policy cannot ask for more than 8 samples across a box
(`Obscure.blocks_across` ≤ 8, also the default; 12 let a face recogniser identify faces), nor for samples smaller than 4 px
(`Obscure.min_block_px`, default 8): whichever is stronger wins, so a 30 px face gets ~3 samples
across, not 8 samples of 4 px that still show eyes and mouth as shading. With the default 20 %
padding and the head growth the face itself gets at most ~5 samples across, below the ~16 px at
which face recognisers and people start to identify faces; blur adds a Gaussian low-pass of about
one sample on top, so the result is smooth and carries less information than a 6×6 thumbnail.
bench/strength.py measures it with dlib's face recogniser: no better than chance at 24-160 px with
the default, above chance with the weakest the schema allows (``cover: face`` and 12 samples).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from redactd.policy import Obscure

#: Labels always obscured as rectangles: an ellipse inscribed in a line of text leaves its ends.
RECTANGULAR_LABELS = frozenset({"text", "plate"})

#: Pixel formats the obscurer edits directly (planar YUV): chroma subsampling (log2 x, log2 y) and
#: bits per sample. Anything else is converted to 8-bit 4:2:0 for obscuring and back.
PLANAR_YUV = {
    "yuv420p": (1, 1, 8), "yuvj420p": (1, 1, 8), "yuv422p": (1, 0, 8), "yuvj422p": (1, 0, 8),
    "yuv444p": (0, 0, 8), "yuvj444p": (0, 0, 8),
    # Phone HDR and pro cameras: obscured at full depth, so the rest of the picture keeps it.
    "yuv420p10le": (1, 1, 10), "yuv422p10le": (1, 0, 10), "yuv444p10le": (0, 0, 10),
    "yuv420p12le": (1, 1, 12), "yuv422p12le": (1, 0, 12), "yuv444p12le": (0, 0, 12),
}


@dataclass(frozen=True)
class Region:
    """An integer pixel rectangle to obscure (x1, y1 exclusive) and the shape to use inside it."""

    x0: int
    y0: int
    x1: int
    y1: int
    ellipse: bool


def bgr_to_yuv(color: tuple[int, int, int]) -> tuple[int, int, int]:
    """A BGR colour in limited-range BT.601 YUV, which is what x264's 4:2:0 input usually is."""
    px = np.array([[color]], np.uint8)
    y, u, v = (int(c) for c in cv2.cvtColor(px, cv2.COLOR_BGR2YCrCb)[0, 0][[0, 2, 1]])
    return int(16 + y * 219 / 255), int(16 + u * 224 / 255), int(16 + v * 224 / 255)


def _smooth(roi: np.ndarray, blocks_x: int, blocks_y: int, method: str) -> np.ndarray:
    small = cv2.resize(roi, (blocks_x, blocks_y), interpolation=cv2.INTER_AREA)
    if method == "pixelate":
        return cv2.resize(small, (roi.shape[1], roi.shape[0]), interpolation=cv2.INTER_NEAREST)
    # A one-sample Gaussian on the thumbnail is the "blur whose strength scales with the box":
    # equivalent to a Gaussian of sigma ≈ box width / blocks on the full-size region.
    small = cv2.GaussianBlur(small, (3, 3), 0.8, borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(small, (roi.shape[1], roi.shape[0]), interpolation=cv2.INTER_CUBIC)


def _ellipse_mask(width: int, height: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (width // 2, height // 2), (max(1, width // 2), max(1, height // 2)), 0, 0, 360, 255, -1)
    return mask.astype(bool)


def obscure_planes(
    planes: Sequence[np.ndarray],
    regions: Sequence[Region],
    cfg: Obscure,
    chroma_shift: tuple[int, int] = (1, 1),
    bits: int = 8,
) -> None:
    """Obscure every region in all three planes of one frame (modified in place).

    ``chroma_shift`` is (log2 horizontal, log2 vertical) chroma subsampling: (1, 1) for 4:2:0.
    ``bits`` is the sample depth: 8 for uint8 planes, 10 or 12 for uint16 planes, which are
    obscured at their own precision (OpenCV's resize and blur take 16-bit samples as they are).
    Regions are first snapped outwards to the chroma grid so luma and chroma cover the same pixels.
    """
    sx, sy = chroma_shift
    fill = tuple(v << (bits - 8) for v in bgr_to_yuv(cfg.fill_color))
    height, width = planes[0].shape
    for region in regions:
        gx, gy = 1 << sx, 1 << sy
        # Snapped outwards to the chroma grid, then cut to the frame; an ellipse keeps the shape
        # of the whole region (a head half outside the frame is covered up to the edge).
        rx0, ry0 = region.x0 // gx * gx, region.y0 // gy * gy
        rx1, ry1 = -(-region.x1 // gx) * gx, -(-region.y1 // gy) * gy
        x0, y0, x1, y1 = max(0, rx0), max(0, ry0), min(width, rx1), min(height, ry1)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        # Samples across the region: at most blocks_across, and none smaller than min_block_px.
        blocks_x = max(1, min(cfg.blocks_across, (rx1 - rx0) // cfg.min_block_px))
        blocks_y = max(1, min(round(blocks_x * (ry1 - ry0) / (rx1 - rx0)), (ry1 - ry0) // cfg.min_block_px))
        # The visible part keeps its share of the samples.
        vis_x = max(1, round(blocks_x * (x1 - x0) / (rx1 - rx0)))
        vis_y = max(1, round(blocks_y * (y1 - y0) / (ry1 - ry0)))
        for index, plane in enumerate(planes[:3]):
            fx, fy = (0, 0) if index == 0 else (sx, sy)
            px0, py0, px1, py1 = x0 >> fx, y0 >> fy, -(-x1 >> fx), -(-y1 >> fy)
            roi = plane[py0:py1, px0:px1]
            rh, rw = roi.shape
            if rw < 1 or rh < 1:
                continue
            if cfg.method == "fill":
                new = np.full_like(roi, fill[index])
            else:
                new = _smooth(roi, min(rw, vis_x), min(rh, vis_y), cfg.method)
            if region.ellipse:
                full = _ellipse_mask(-(-(rx1 - rx0) >> fx), -(-(ry1 - ry0) >> fy))
                ox, oy = (x0 - rx0) >> fx, (y0 - ry0) >> fy
                mask = full[oy : oy + rh, ox : ox + rw]
                roi[mask] = new[mask]
            else:
                roi[:] = new


#: How far a face's box is grown to cover the head, in the box's width (sides) and height (top,
#: bottom): hair above the brow, the ears, and a little of the chin and neck.
HEAD_GROWTH = {"side": 0.2, "top": 0.45, "bottom": 0.1}
#: A turned face's box holds the face from cheek to nose, and the head reaches much further back:
#: a head is ~1.3 times as long (nose to back of the skull) as it is broad, and on the cameraman
#: (scikit-image's ``camera``, a real head turned ~70°) the back of his hair lies 0.6 box widths
#: behind his face box, where HEAD_GROWTH and the tracker's pad reach 0.34. So the side away from
#: the nose grows by up to this many more box widths...
PROFILE_BACK = 0.4
#: ...in proportion to the turn (`Box.turn`: nose off the eyes' midpoint, in box widths) between
#: these two: CenterFace puts frontal faces within ±0.04 (the astronaut, 40-120 px; blurry LFW
#: faces up to ±0.12), and a head turned ~70° at 0.12-0.15 (the cameraman, both ways). Its
#: landmarks on a turned face stay close together, so the ramp is short; a face the ramp mistakes
#: for turned only costs a little background beside it.
FRONTAL_TURN = 0.05
PROFILE_TURN = 0.13


def head(x0: float, y0: float, x1: float, y1: float, turn: float = 0.0) -> tuple[float, float, float, float]:
    """The head around a face box (see `HEAD_GROWTH`), reaching further back for a turned face."""
    w, h = x1 - x0, y1 - y0
    side = HEAD_GROWTH["side"] * w
    back = PROFILE_BACK * w * min(1.0, max(0.0, (abs(turn) - FRONTAL_TURN) / (PROFILE_TURN - FRONTAL_TURN)))
    # The nose points right (turn > 0): the back of the head is on the left.
    left, right = (side + back, side) if turn > 0 else (side, side + back)
    return x0 - left, y0 - HEAD_GROWTH["top"] * h, x1 + right, y1 + HEAD_GROWTH["bottom"] * h


def regions_for(
    boxes: Sequence[tuple[float, float, float, float, str] | tuple[float, float, float, float, str, float]],
    cfg: Obscure,
    frame: tuple[int, int] | None = None,
) -> list[Region]:
    """Integer regions (rounded outwards) for (x0, y0, x1, y1, label[, turn]) boxes; a face's
    region is its head (turned: see `head`) unless the policy asks for the face only (``cover: face``).

    With the ``frame`` size (width, height), a region cut by the frame's edge is a rectangle: what
    shows of a face leaving the picture is a strip along the edge, and an ellipse's far side is
    narrowest exactly there (it left the strip's top and bottom sharp).
    """
    ellipse = cfg.shape == "ellipse"
    out = []
    for x0, y0, x1, y1, label, *turn in boxes:
        if label == "face" and cfg.cover == "head":
            x0, y0, x1, y1 = head(x0, y0, x1, y1, turn[0] if turn else 0.0)
        cut = frame is not None and (x0 < 0 or y0 < 0 or x1 > frame[0] or y1 > frame[1])
        out.append(Region(int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1)),
                          ellipse and label not in RECTANGULAR_LABELS and not cut))
    return out
