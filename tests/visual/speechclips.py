"""Real speech over a noise bed, in mono, stereo or 5.1 clips: espeak-ng's voice, mixed where the test says.

espeak-ng (Debian's, in the Makefile's APT_PKGS) speaks a sentence to a WAV; the bed is steady
low-passed noise, different in every channel. The clip is a small test pattern with the mix as
PCM audio (which every audio mode but drop re-encodes to AAC), so input and output can be
compared sample for sample.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
from scipy.signal import lfilter, lfilter_zi

from redactd.visual.audio import frame_samples

RATE = 48000
SENTENCE = "Please meet me at the station at five, and bring the blue folder with you."
BED_RMS = 0.02


@dataclass(frozen=True)
class SpeechClip:
    path: Path
    mix: np.ndarray  # (channels, samples) as written
    bed: np.ndarray  # the noise alone
    speech: tuple[float, float]  # seconds where the voice is audible (first to last loud sample)
    layout: str


@lru_cache(maxsize=4)
def spoken(text: str = SENTENCE, voice: str = "en-us", rate: int = RATE) -> np.ndarray:
    """``text`` spoken by espeak-ng, mono float at ``rate``, peak 0.5, silence trimmed."""
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "--stdout", text], check=True,
                         capture_output=True, timeout=60).stdout
    import io

    with av.open(io.BytesIO(wav)) as c:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        x = np.concatenate([f.to_ndarray().ravel() for fr in c.decode(audio=0) for f in resampler.resample(fr)])
    loud = np.nonzero(np.abs(x) > 0.01 * np.abs(x).max())[0]
    x = x[loud[0]:loud[-1] + 1]
    return (0.5 * x / np.abs(x).max()).astype(np.float64)


def noise_bed(channels: int, samples: int, seed: int = 7) -> np.ndarray:
    """Steady low-passed noise (a rumble, like traffic far off) at `BED_RMS`, independent per channel."""
    rng = np.random.default_rng(seed)
    white = rng.normal(0, 1, (channels, samples))
    b, a = [0.1], [1, -0.9]
    zi = lfilter_zi(b, a)
    bed = np.stack([lfilter(b, a, w, zi=zi * w[0])[0] for w in white])
    return bed / bed.std(axis=1, keepdims=True) * BED_RMS


def decode(path: Path) -> np.ndarray:
    """The first audio track of ``path``, decoded, as (channels, samples) float32."""
    with av.open(str(path)) as c:
        return np.concatenate([frame_samples(f) for f in c.decode(audio=0)], axis=1)


def make_clip(path: Path, layout: str = "stereo", seconds: float = 8.0, at: float | None = 1.5,
              speech_channels: tuple[int, ...] | None = None, voice: str = "en-us") -> SpeechClip:
    """A ``seconds`` long clip: the bed everywhere, the sentence from ``at`` seconds (None: no speech)
    in ``speech_channels`` (default all; for 5.1 say (2,) for the centre, as films mix dialogue)."""
    channels = av.AudioLayout(layout).nb_channels
    n = round(seconds * RATE)
    bed = noise_bed(channels, n)
    mix = bed.copy()
    span = (0.0, 0.0)
    if at is not None:
        said = spoken(voice=voice)
        first = round(at * RATE)
        for c in speech_channels if speech_channels is not None else range(channels):
            mix[c, first:first + len(said)] += said[: n - first]
        span = (at, min(seconds, at + len(said) / RATE))
    wav = path.with_suffix(".wav")
    with av.open(str(wav), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=RATE)
        stream.layout = layout
        pcm = (np.clip(mix, -1, 1) * 32767).astype(np.int16)
        for i in range(0, n, 1024):
            frame = av.AudioFrame.from_ndarray(pcm[:, i:i + 1024].T.reshape(1, -1).copy(), format="s16",
                                               layout=layout)
            frame.sample_rate, frame.pts = RATE, i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=s=160x120:r=10:d={seconds}", "-i", str(wav), "-map", "0:v", "-map", "1:a",
                    "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "pcm_s16le", str(path)],
                   check=True, capture_output=True, timeout=120)
    wav.unlink()
    written = (np.clip(mix, -1, 1) * 32767).astype(np.int16) / 32767.0
    return SpeechClip(path, written, bed, span, layout)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
