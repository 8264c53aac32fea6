"""What detectors look at: upright pictures (phone footage is stored sideways with a display
rotation; boxes are mapped back) and whole fields (an interlaced frame holds two moments).

Detectors are trained on upright faces and text; a portrait phone clip is coded landscape with a
display matrix saying "turn me 90°". The frames are obscured and encoded in their coded
orientation (the output keeps the same rotation), but every detector looks at them upright.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from redactd.visual.detect import Box


def quarter_turns(rotation: float | None) -> int:
    """Counter-clockwise quarter turns that make a frame with this display rotation upright."""
    return round((rotation or 0) / 90) % 4


def upright(image: np.ndarray, turns: int) -> np.ndarray:
    """The picture as a viewer sees it (a view, no copy)."""
    return np.rot90(image, turns) if turns else image


def to_coded(box: Box, turns: int, width: int, height: int) -> Box:
    """A box found on the upright picture, in the coded frame's pixels (``width`` × ``height``)."""
    if turns == 0:
        return box
    if turns == 1:  # upright (x, y) = coded (W - y, x)
        return replace(box, x0=width - box.y1, y0=box.x0, x1=width - box.y0, y1=box.x1)
    if turns == 2:
        return replace(box, x0=width - box.x1, y0=height - box.y1, x1=width - box.x0, y1=height - box.y0)
    return replace(box, x0=box.y0, y0=height - box.x1, x1=box.y1, y1=height - box.x0)  # coded (y, H - x)


def fields(image: np.ndarray) -> list[np.ndarray]:
    """An interlaced frame's two fields, each stretched back to the frame's height.

    The fields of a moving picture are a moment apart, so a face sits in two places, combed
    together; CenterFace missed a 48 px face moving 14 px a field in all 30 combed frames of a
    test clip, and found it in every progressive frame of the same motion. Each field is a whole picture of one moment:
    boxes found in either cover the face where that field shows it, and both are obscured.
    """
    height, width = image.shape[:2]
    return [cv2.resize(image[parity::2], (width, height), interpolation=cv2.INTER_LINEAR) for parity in (0, 1)]
