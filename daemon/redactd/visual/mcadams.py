"""Voice anonymisation by the McAdams coefficient: the VoicePrivacy Challenge's signal-processing baseline.

Per frame (20 ms, 10 ms hop, square-root Hann windows that overlap-add to one), the spectral
envelope is modelled by linear prediction; the frame is inverse-filtered to its residual (the
excitation: pitch and voicing) and filtered again through the envelope with every complex pole's
angle ``phi`` moved to ``phi ** alpha``. Formants, which carry much of what identifies a speaker,
move (low ones up, high ones down) while the timing, pitch and words stay. ``alpha`` is drawn per
job and never recorded (Patino et al., "Speaker anonymisation using the McAdams coefficient",
Interspeech 2021; the challenge's 2022 baseline B2 draws it from 0.5-0.9).

The baseline works on 16 kHz audio with 20 poles. Here the angles are warped on the 16 kHz scale
whatever the rate (a pole at f Hz below 8 kHz goes where the baseline would put it; poles above
stay), and the order grows with the rate so the envelope below 8 kHz keeps about 20 poles.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_toeplitz
from scipy.signal import lfilter, sosfilt

_BASE_RATE = 16000
_BASE_ORDER = 20
_MAX_RADIUS = 0.9995  # poles pushed onto or past the unit circle by rounding are pulled back inside


class McAdams:
    """Frame-by-frame McAdams warp of one channel at ``rate`` with coefficient ``alpha``.

    `hop` and `win` give the framing; `frame` takes ``win`` samples (not yet windowed) and gives
    back the warped, synthesis-windowed frame to overlap-add at a ``hop`` spacing.
    """

    def __init__(self, rate: int, alpha: float) -> None:
        self.rate = rate
        self.alpha = alpha
        self.hop = max(1, round(rate * 0.010))
        self.win = 2 * self.hop
        # Periodic Hann sums to one at half overlap; its square root is applied on the way in and out.
        self.window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(self.win) / self.win))
        self.order = min(max(_BASE_ORDER, round(_BASE_ORDER * rate / _BASE_RATE)), 64)
        self.scale = rate / _BASE_RATE  # angle at this rate -> angle at 16 kHz

    def frame(self, samples: np.ndarray) -> np.ndarray:
        x = samples * self.window
        energy = float(np.dot(x, x))
        if energy < 1e-12:
            return x * self.window  # digital silence: nothing to model
        r = np.correlate(x, x, "full")[self.win - 1:self.win + self.order]
        r[0] *= 1.0 + 1e-6  # a little white noise keeps the normal equations well conditioned
        try:
            a = np.concatenate([[1.0], solve_toeplitz(r[:self.order], -r[1:self.order + 1])])
        except (np.linalg.LinAlgError, ValueError):
            return x * self.window
        if not np.all(np.isfinite(a)):
            return x * self.window
        residual = lfilter(a, [1.0], x)
        sos = self._warped_sections(np.roots(a))
        y = sosfilt(sos, residual)
        out_energy = float(np.dot(y, y))
        if not np.isfinite(out_energy) or out_energy <= 0:
            return x * self.window
        y *= min(10.0, np.sqrt(energy / out_energy))  # the frame keeps its loudness
        return y * self.window

    def warp_angles(self, angles: np.ndarray) -> np.ndarray:
        """Pole angles (radians at this rate, 0..pi) after the warp; those above 8 kHz unchanged."""
        base = angles * self.scale
        low = base < np.pi
        out = angles.copy()
        out[low] = np.clip(base[low] ** self.alpha, 0.0, np.pi) / self.scale
        return out

    def _warped_sections(self, poles: np.ndarray) -> np.ndarray:
        """The all-pole synthesis filter with warped angles, as second-order sections.

        Sections instead of one polynomial: at 48 kHz the order is 60, and a direct-form filter
        that high loses its poles to rounding.
        """
        radius = np.minimum(np.abs(poles), _MAX_RADIUS)
        upper = poles.imag > 1e-9
        sections = []
        angles = self.warp_angles(np.angle(poles[upper]))
        for rad, ang in zip(radius[upper], angles, strict=True):
            sections.append([1.0, 0.0, 0.0, 1.0, -2.0 * rad * np.cos(ang), rad * rad])
        real = (np.sign(poles.real[np.abs(poles.imag) <= 1e-9]) * radius[np.abs(poles.imag) <= 1e-9]).tolist()
        while len(real) >= 2:
            p, q = real.pop(), real.pop()
            sections.append([1.0, 0.0, 0.0, 1.0, -(p + q), p * q])
        if real:
            sections.append([1.0, 0.0, 0.0, 1.0, -real[0], 0.0])
        return np.asarray(sections, np.float64)
