"""Speech in a kept audio track: where it is (a pass over the audio before the render), and what replaces it.

`find_speech` decodes the audio once, converted exactly as the render converts it (same rate,
layout and sample count), runs Silero VAD on a 16 kHz mono mix, and measures the background's
spectrum per channel on stretches the VAD calls speech-free. The result, a `SpeechPlan`, holds the
speech segments in output samples, padded and merged. During the render a `SpeechEditor` rewrites
the converted samples inside those segments only:

- ``mute``: noise with the background's spectrum and level (or silence), crossfaded with equal
  power so neither a gap nor a bump marks the cut;
- ``anonymize``: the McAdams warp of the same samples (`redactd.visual.mcadams`), crossfaded.

Every sample outside the segments is passed through untouched, and the editor gives back exactly
as many samples as it took, so timing and length are those of the input.
"""

from __future__ import annotations

import bisect
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import av
import numpy as np

from redactd import log
from redactd.errors import InputError
from redactd.policy import Speech
from redactd.visual.audio import AudioConverter, encoder_format, frame_samples, native_decoder_layout
from redactd.visual.detect import ModelInfo
from redactd.visual.vad import CHUNK, VAD_RATE, SegmentRule, VoiceActivity, speech_chunks, vad_info

if TYPE_CHECKING:
    from redactd.visual.codec import VideoReader
    from redactd.visual.mcadams import McAdams

EditKind = Literal["mute", "anonymize"]


# --------------------------------------------------------------------------- the background's noise


def _noise_size(rate: int) -> int:
    """FFT size for the background's spectrum: about 40 ms, a power of two."""
    return int(2 ** round(np.log2(rate * 0.04)))


class NoiseProfile:
    """Per-channel mean power spectrum of the stretches with no speech (square-root Hann frames, half overlap)."""

    def __init__(self, rate: int, channels: int) -> None:
        self.size = _noise_size(rate)
        self.window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(self.size) / self.size))
        self.power = np.zeros((channels, self.size // 2 + 1))
        self.frames = 0
        self.run: np.ndarray | None = None  # the current stretch's samples not yet in a whole frame

    def add(self, block: np.ndarray) -> None:
        """The next samples (channels, n) of a speech-free stretch; `gap` ends the stretch."""
        run = np.concatenate([self.run, block], axis=1) if self.run is not None else block
        hop = self.size // 2
        done = 0
        for k in range(0, run.shape[1] - self.size + 1, hop):
            spectrum = np.fft.rfft(run[:, k:k + self.size] * self.window, axis=1)
            self.power += np.abs(spectrum) ** 2
            self.frames += 1
            done = k + hop
        self.run = run[:, done:]

    def gap(self) -> None:
        """Speech (or its padding) came between: the next stretch is not continuous with the last."""
        self.run = None

    def spectrum(self) -> np.ndarray | None:
        """The mean power spectrum, or None when no speech-free stretch was long enough to measure."""
        return self.power / self.frames if self.frames >= 4 else None


class NoiseSource:
    """Endless noise with a given per-channel power spectrum: random phases, overlap-added.

    With square-root Hann windows in and out at half overlap, a spectrum measured by
    `NoiseProfile` and played back with twice its power gives noise at the measured level.
    """

    def __init__(self, power: np.ndarray, size: int) -> None:
        self.magnitude = np.sqrt(2.0 * power)
        self.size = size
        self.hop = size // 2
        self.window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(size) / size))
        self.tail = np.zeros((power.shape[0], self.hop))
        self.ready = np.zeros((power.shape[0], 0))
        self.rng = np.random.default_rng(secrets.randbits(64))

    def take(self, n: int) -> np.ndarray:
        while self.ready.shape[1] < n:
            phase = self.rng.uniform(0, 2 * np.pi, self.magnitude.shape)
            frame = np.fft.irfft(self.magnitude * np.exp(1j * phase), self.size, axis=1) * self.window
            frame[:, : self.hop] += self.tail
            self.tail = frame[:, self.hop:]
            self.ready = np.concatenate([self.ready, frame[:, : self.hop]], axis=1)
        out, self.ready = self.ready[:, :n], self.ready[:, n:]
        return out


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class SpeechPlan:
    """Where the speech is in one audio track, in samples of the converted (output) audio."""

    rate: int
    layout: str
    channels: int
    samples: int  # converted samples in the track
    start: int  # output-timeline sample where the track starts
    segments: tuple[tuple[int, int], ...]  # padded and merged, [first, end) in converted samples
    noise: np.ndarray | None  # the background's power spectrum per channel (None: not measured)
    model: ModelInfo

    def times(self) -> list[list[float]]:
        """The segments as [start, end] seconds on the output's timeline (for the sidecar)."""
        return [[round((self.start + a) / self.rate, 3), round((self.start + b) / self.rate, 3)]
                for a, b in self.segments]

    @property
    def speech_s(self) -> float:
        return sum(b - a for a, b in self.segments) / self.rate


def needs_speech(policy_audio: str, cfg: Speech) -> EditKind | None:
    """What the audio mode does to speech: ``mute``, ``anonymize`` (McAdams), or None (no VAD needed)."""
    if policy_audio == "mute_speech":
        return "mute"
    if policy_audio == "anonymize" and cfg.anonymizer == "mcadams":
        return "anonymize"
    return None


def _padded(chunks: list[tuple[int, int]], rate: int, total: int, pad_s: float) -> list[tuple[int, int]]:
    """Chunk ranges as sample ranges at ``rate``, grown by ``pad_s`` on both sides, merged, within the track."""
    pad = round(pad_s * rate)
    per_chunk = CHUNK * rate / VAD_RATE
    out: list[tuple[int, int]] = []
    for a, b in chunks:
        first, end = max(0, int(a * per_chunk) - pad), min(total, int(np.ceil(b * per_chunk)) + pad)
        if end <= first:
            continue
        if out and first <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((first, end))
    return out


def _decoded(reader: VideoReader) -> Iterator[av.AudioFrame]:
    """Every frame of the reader's audio stream, decoded as the writer decodes it."""
    stream = reader.audio
    assert stream is not None
    ctx = stream.codec_context
    try:
        for packet in reader.container.demux(stream):
            if packet.dts is None:
                continue
            yield from ctx.decode(packet)
        yield from ctx.decode(None)
    except av.error.FFmpegError as exc:
        raise InputError(f"{reader.path.name}: audio decoding failed ({exc})") from exc


def find_speech(reader: VideoReader, cfg: Speech, measure_noise: bool) -> SpeechPlan | None:
    """Speech segments of ``reader``'s audio track (None when it has none), and the background's spectrum.

    ``reader`` must be a fresh reader of the file the render will read, opened with audio.
    """
    if reader.audio is None:
        return None
    rate, layout = encoder_format(reader.audio.codec_context)
    channels = av.AudioLayout(layout).nb_channels
    converter = AudioConverter(rate, layout, None)
    mono = av.AudioResampler(format="flt", layout="mono", rate=VAD_RATE)
    vad = VoiceActivity()
    noise = NoiseProfile(rate, channels) if measure_noise else None
    quiet = _QuietStretches(rate, cfg, noise)
    total = 0

    def take(frames: list[av.AudioFrame]) -> None:
        nonlocal total
        for frame in frames:
            if noise is not None:
                quiet.hold(total, frame_samples(frame))
            total += frame.samples
            for m in mono.resample(frame):
                vad.push(np.frombuffer(memoryview(m.planes[0]), np.float32)[: m.samples])
            quiet.settle(vad.probs)

    for frame in _decoded(reader):
        take(converter.convert(frame))
    take(converter.convert(None))
    for m in mono.resample(None):
        vad.push(np.frombuffer(memoryview(m.planes[0]), np.float32)[: m.samples])
    vad.finish()
    quiet.settle(vad.probs, final=True)
    if total == 0:
        return None
    rule = SegmentRule(cfg.threshold, cfg.min_speech_ms / 1000, cfg.min_silence_ms / 1000)
    segments = _padded(speech_chunks(vad.probs, rule), rate, total, cfg.pad_ms / 1000)
    start = (converter.start or 0) - round(reader.start * rate)
    plan = SpeechPlan(rate, layout, channels, total, start, tuple(segments),
                      noise.spectrum() if noise is not None else None, vad_info())
    log.get_logger().info("speech_found", segments=len(segments), speech_s=round(plan.speech_s, 2),
                          audio_s=round(total / rate, 2), background_measured=plan.noise is not None)
    return plan


class _QuietStretches:
    """Holds converted audio until the VAD has judged it, and hands speech-free stretches to a `NoiseProfile`.

    A stretch counts as speech-free when no chunk within the padding of it reached the VAD's
    lower (segment-ending) threshold: the background is measured away from speech and its edges.
    """

    def __init__(self, rate: int, cfg: Speech, profile: NoiseProfile | None) -> None:
        self.profile = profile
        self.per_chunk = CHUNK * rate / VAD_RATE
        self.margin = round(cfg.pad_ms / 1000 * rate)
        self.low = max(0.01, cfg.threshold - 0.15)
        self.held: list[tuple[int, np.ndarray]] = []

    def hold(self, first: int, block: np.ndarray) -> None:
        self.held.append((first, block))

    def settle(self, probs: list[float], final: bool = False) -> None:
        if self.profile is None:
            return
        judged = len(probs) * self.per_chunk  # converted samples the VAD has seen
        while self.held:
            first, block = self.held[0]
            end = first + block.shape[1]
            if not final and end + self.margin > judged:
                return
            self.held.pop(0)
            lo = max(0, int((first - self.margin) / self.per_chunk))
            hi = min(len(probs), int(np.ceil((end + self.margin) / self.per_chunk)))
            if hi > lo and max(probs[lo:hi]) < self.low:
                self.profile.add(block)
            else:
                self.profile.gap()


# --------------------------------------------------------------------------- the editor


class SpeechEditor:
    """Rewrites the converted samples inside a plan's segments; passes every other sample through.

    Samples go in and come out in order, as many out as in: `push` gives back those that are
    final (the McAdams warp needs one window of look-ahead), `finish` the rest.
    """

    def __init__(self, plan: SpeechPlan, kind: EditKind, cfg: Speech) -> None:
        self.plan = plan
        self.kind = kind
        self.starts = [a for a, _ in plan.segments]
        self.fade = round(cfg.crossfade_ms / 1000 * plan.rate)
        self.noise: NoiseSource | None = None
        if kind == "mute" and cfg.fill == "noise" and plan.noise is not None:
            self.noise = NoiseSource(plan.noise, _noise_size(plan.rate))
        self.warp: list[McAdams] = []
        self.lookahead = 0
        if kind == "anonymize":
            from redactd.visual.mcadams import McAdams  # imports scipy (~1 s): only when voices are warped

            lo, hi = cfg.mcadams_alpha
            alpha = lo + (hi - lo) * secrets.randbelow(1001) / 1000  # drawn per job, never recorded
            self.warp = [McAdams(plan.rate, alpha) for _ in range(plan.channels)]
            self.lookahead = self.warp[0].win
        self.buf = np.zeros((plan.channels, 0))
        self.buf_start = 0  # absolute sample index of buf[:, 0]
        self.acc = np.zeros((plan.channels, 0))  # overlap-added warp, aligned with buf
        self.next_frame = 0  # the next McAdams frame to compute (frame k starts at k * hop)
        self.received = 0

    @property
    def fill(self) -> str:
        """What replaced the speech: ``noise``, ``silence`` or ``mcadams``."""
        if self.kind == "anonymize":
            return "mcadams"
        return "noise" if self.noise is not None else "silence"

    def push(self, samples: np.ndarray) -> np.ndarray:
        self.buf = np.concatenate([self.buf, samples.astype(np.float64)], axis=1)
        self.acc = np.concatenate([self.acc, np.zeros_like(samples, np.float64)], axis=1)
        self.received += samples.shape[1]
        return self._emit(self._warp_until(self.received) if self.warp else self.received)

    def finish(self) -> np.ndarray:
        if self.warp:
            self._warp_until(self.received, final=True)
        return self._emit(self.received)

    def _warp_until(self, available: int, final: bool = False) -> int:
        """Warp every frame whose samples are all in (with ``final``, every frame left, zero-padded);
        returns up to where the warped signal is complete."""
        hop, win = self.warp[0].hop, self.warp[0].win
        while True:
            first = self.next_frame * hop
            if first >= available or (not final and first + win > available):
                break
            if self._touches_speech(first, first + win):
                lo = first - self.buf_start
                frame = self.buf[:, lo:lo + win]
                if frame.shape[1] < win:
                    frame = np.pad(frame, ((0, 0), (0, win - frame.shape[1])))
                    self.acc = np.pad(self.acc, ((0, 0), (0, lo + win - self.acc.shape[1])))
                for c, warp in enumerate(self.warp):
                    self.acc[c, lo:lo + win] += warp.frame(frame[c])
            self.next_frame += 1
        return available if final else min(available, self.next_frame * hop)

    def _touches_speech(self, first: int, end: int) -> bool:
        i = bisect.bisect_right(self.starts, end - 1) - 1
        return i >= 0 and self.plan.segments[i][1] > first

    def _emit(self, until: int) -> np.ndarray:
        n = until - self.buf_start
        if n <= 0:
            return np.zeros((self.plan.channels, 0), np.float32)
        x, self.buf = self.buf[:, :n], self.buf[:, n:]
        warped, self.acc = self.acc[:, :n], self.acc[:, n:]
        first = self.buf_start
        self.buf_start = until
        gain = self._gain(first, until)
        if not gain.any():
            return x.astype(np.float32)
        if self.kind == "anonymize":
            shaped = 0.5 - 0.5 * np.cos(np.pi * gain)
            out = x * (1 - shaped) + warped * shaped
        elif self.noise is not None:
            # Equal power: the original and the noise are unrelated, so their powers add.
            noise = np.zeros_like(x)
            live = np.nonzero(gain)[0]
            noise[:, live[0]:live[-1] + 1] = self.noise.take(live[-1] + 1 - live[0])
            out = x * np.cos(0.5 * np.pi * gain) + noise * np.sin(0.5 * np.pi * gain)
        else:
            out = x * (0.5 + 0.5 * np.cos(np.pi * gain))
        return out.astype(np.float32)

    def _gain(self, first: int, end: int) -> np.ndarray:
        """How far each sample in [first, end) is replaced: 0 outside segments, 1 inside, linear
        ramps of the crossfade's length just inside each segment's (padded) edges."""
        gain = np.zeros(end - first)
        i = max(0, bisect.bisect_right(self.starts, first) - 1)
        index = np.arange(first, end)
        for a, b in self.plan.segments[i:]:
            if a >= end:
                break
            if b <= first:
                continue
            fade = min(self.fade, (b - a) // 2)
            lo, hi = max(a, first), min(b, end)
            pos = index[lo - first:hi - first]
            if fade:
                ramp = np.minimum(np.minimum(pos - a + 1, b - pos) / fade, 1.0)
            else:
                ramp = np.ones(len(pos))
            gain[lo - first:hi - first] = np.maximum(gain[lo - first:hi - first], ramp)
        return gain


def editor_for(plan: SpeechPlan | None, policy_audio: str, cfg: Speech) -> SpeechEditor | None:
    """The editor a render needs for this plan and audio mode, or None when speech is left as it is."""
    kind = needs_speech(policy_audio, cfg)
    if plan is None or kind is None or not plan.segments:
        return None
    return SpeechEditor(plan, kind, cfg)


def audio_section(plan: SpeechPlan | None, policy_audio: str, cfg: Speech, had_audio: bool) -> dict[str, Any]:
    """The detections sidecar's ``audio`` section: the mode, the VAD and the speech segments, times only."""
    section: dict[str, Any] = {"mode": policy_audio}
    kind = needs_speech(policy_audio, cfg)
    if kind is None:
        if policy_audio == "anonymize":
            section["method"] = "pitch_shift"
        return section
    section["method"] = "mcadams" if kind == "anonymize" else "mute"
    if plan is None:
        section["speech"] = []
        section["track"] = "none" if not had_audio else "empty"
        return section
    if kind == "mute":
        section["fill"] = "noise" if cfg.fill == "noise" and plan.noise is not None else "silence"
    section.update({
        "vad": {"model": plan.model.name, "sha256": plan.model.sha256, "threshold": cfg.threshold},
        "pad_s": cfg.pad_ms / 1000,
        "crossfade_s": cfg.crossfade_ms / 1000,
        "speech_s": round(plan.speech_s, 3),
        "audio_s": round(plan.samples / plan.rate, 3),
        "speech": plan.times(),
    })
    return section


def speech_in_file(path: Path, rule: SegmentRule) -> tuple[list[tuple[float, float]], float] | None:
    """Speech segments (seconds from the track's first sample) Silero VAD finds in the first audio
    track of ``path``, and the track's length; None when it has no audio track."""
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise InputError(f"{path.name}: not a readable media file ({exc})") from exc
    with container:
        if not container.streams.audio:
            return None
        native_decoder_layout(container.streams.audio[0], path)
        mono = av.AudioResampler(format="flt", layout="mono", rate=VAD_RATE)
        vad = VoiceActivity()
        samples = 0.0
        try:
            for frame in container.decode(container.streams.audio[0]):
                samples += frame.samples * VAD_RATE / frame.sample_rate
                for m in mono.resample(frame):
                    vad.push(np.frombuffer(memoryview(m.planes[0]), np.float32)[: m.samples])
        except av.error.FFmpegError as exc:
            raise InputError(f"{path.name}: audio decoding failed ({exc})") from exc
        for m in mono.resample(None):
            vad.push(np.frombuffer(memoryview(m.planes[0]), np.float32)[: m.samples])
        vad.finish()
    chunk_s = CHUNK / VAD_RATE
    return [(a * chunk_s, b * chunk_s) for a, b in speech_chunks(vad.probs, rule)], samples / VAD_RATE
