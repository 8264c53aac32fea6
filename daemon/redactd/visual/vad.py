"""Find speech in audio: Silero VAD's ONNX model, as the `silero-vad` wheel ships it, on onnxruntime.

The model file is located inside the installed wheel without importing the package (its
``__init__`` imports torch, which redactd never loads) and its SHA-256 checked, as the CenterFace
model is (see `redactd.visual.detect`). Nothing is downloaded. The model sees 16 kHz mono audio in
chunks of 512 samples (32 ms) and answers each with the probability that it holds speech.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from redactd.errors import ConfigError
from redactd.visual.detect import ModelInfo, onnx_session

#: The 16 kHz-only export (opset 15) of Silero VAD v6, as silero-vad 6.2.3 ships it. A different
#: file is a different model with unknown behaviour: refused, like the other models.
SILERO_VAD_FILE = "silero_vad_16k_op15.onnx"
SILERO_VAD_SHA256 = "7ed98ddbad84ccac4cd0aeb3099049280713df825c610a8ed34543318f1b2c49"
VAD_RATE = 16000
CHUNK = 512  # samples the model takes at a time at 16 kHz
CHUNK_S = CHUNK / VAD_RATE
_CONTEXT = 64  # samples of the previous chunk the v5/v6 model expects in front of each chunk
#: Silero's own rule: a segment ends once the probability falls below the threshold less this.
_HYSTERESIS = 0.15


@functools.cache
def silero_model() -> tuple[Path, bytes]:
    """The Silero VAD model file inside the installed `silero-vad` wheel, checked against its SHA-256."""
    spec = importlib.util.find_spec("silero_vad")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the speech detector needs the 'silero-vad' package, which ships its model: "
                          "pip install --no-deps silero-vad==6.2.3 (`make venv` does)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / SILERO_VAD_FILE
    if not path.is_file():
        raise ConfigError(f"model {SILERO_VAD_FILE} not found in package 'silero-vad' (reinstall it)")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SILERO_VAD_SHA256:
        raise ConfigError(f"model {SILERO_VAD_FILE} in package 'silero-vad' has SHA-256 {digest}, expected "
                          f"{SILERO_VAD_SHA256}: refusing an unknown model")
    return path, data


def vad_info() -> ModelInfo:
    """What the sidecar and custody log record about the speech detector."""
    path, _ = silero_model()
    return ModelInfo("silero-vad", path.name, SILERO_VAD_SHA256, "onnxruntime")


class VoiceActivity:
    """Streaming Silero VAD: 16 kHz mono float samples in, one speech probability per 32 ms chunk out.

    The model carries a recurrent state from chunk to chunk, so chunks go through one at a time,
    in order; one instance follows one audio track.
    """

    def __init__(self) -> None:
        _, data = silero_model()
        self.session: Any = onnx_session(data, threads=1)
        self.state = np.zeros((2, 1, 128), np.float32)
        self.context = np.zeros((1, _CONTEXT), np.float32)
        self.pending = np.zeros(0, np.float32)
        self.sr = np.array(VAD_RATE, np.int64)
        self.probs: list[float] = []

    def push(self, samples: np.ndarray) -> list[float]:
        """The probabilities of the whole chunks now complete (all of them are also kept in ``probs``)."""
        buf = np.concatenate([self.pending, np.asarray(samples, np.float32).ravel()])
        whole = len(buf) // CHUNK * CHUNK
        self.pending = buf[whole:]
        found = [self._chunk(buf[i:i + CHUNK]) for i in range(0, whole, CHUNK)]
        self.probs.extend(found)
        return found

    def finish(self) -> list[float]:
        """The last, partial chunk, padded with silence."""
        if not len(self.pending):
            return []
        tail = np.zeros(CHUNK - len(self.pending), np.float32)
        return self.push(tail)

    def _chunk(self, chunk: np.ndarray) -> float:
        x = np.concatenate([self.context, chunk[None, :]], axis=1)
        out, self.state = self.session.run(None, {"input": x, "state": self.state, "sr": self.sr})
        self.context = x[:, -_CONTEXT:]
        return float(out[0, 0])


@dataclass(frozen=True)
class SegmentRule:
    """How chunk probabilities become speech segments (Silero's ``get_speech_timestamps`` rule)."""

    threshold: float
    min_speech_s: float
    min_silence_s: float


def speech_chunks(probs: list[float], rule: SegmentRule) -> list[tuple[int, int]]:
    """Speech segments as chunk ranges ``[first, end)``.

    A segment starts at the first chunk at or above the threshold and ends once the probability
    stayed below ``threshold - 0.15`` for ``min_silence_s``; segments shorter than
    ``min_speech_s`` are dropped.
    """
    low = max(0.01, rule.threshold - _HYSTERESIS)
    min_silence = max(1, round(rule.min_silence_s / CHUNK_S))
    min_speech = max(1, round(rule.min_speech_s / CHUNK_S))
    out: list[tuple[int, int]] = []
    start: int | None = None
    quiet_from: int | None = None
    for i, p in enumerate(probs):
        if p >= rule.threshold:
            quiet_from = None
            if start is None:
                start = i
        elif start is not None and p < low:
            if quiet_from is None:
                quiet_from = i
            if i + 1 - quiet_from >= min_silence:
                out.append((start, quiet_from))
                start, quiet_from = None, None
    if start is not None:
        out.append((start, quiet_from if quiet_from is not None else len(probs)))
    return [(a, b) for a, b in out if b - a >= min_speech]
