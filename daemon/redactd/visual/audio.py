"""Audio that is kept, anonymised or has its speech muted: fitted, as decoded, to what the AAC encoder takes.

Frames are converted by an FFmpeg filter graph built from the frames themselves (stream headers
can be wrong), with channels given positions where the input states none, side surrounds moved
to AAC's back ones, more than eight channels downmixed, and then either the whole track's pitch
and formants shifted together by a factor drawn per job (``anonymizer: pitch_shift``), or its
speech segments rewritten by a `redactd.visual.speech.SpeechEditor` (muted, or McAdams-warped).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import re
import secrets
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np

if TYPE_CHECKING:
    from redactd.visual.speech import SpeechEditor

#: Channel layouts FFmpeg's AAC encoder takes: its standard ones and those it writes with a program
#: config element (PCE); none has more than eight channels.
AAC_LAYOUTS = {
    "mono", "stereo", "2.1", "3.0", "3.0(back)", "4.0", "quad", "quad(side)", "3.1", "5.0", "5.0(side)",
    "4.1", "5.1", "5.1(side)", "6.0", "6.0(front)", "hexagonal", "6.1", "6.1(back)", "6.1(front)", "7.0",
    "7.0(front)", "7.1", "7.1(wide)", "7.1(wide-side)", "octagonal",
}
#: Side-surround layouts AAC can carry only with a PCE, which decoders read back as channels in no
#: order: written with back surrounds instead, as AAC's standard layouts have them (swresample
#: moves side channels to the back ones unchanged).
AAC_SIDE_TO_BACK = {"quad(side)": "quad", "5.0(side)": "5.0", "5.1(side)": "5.1"}


def aac_rate(rate: int) -> int:
    """``rate`` when AAC codes it, else the next rate up that it does (at most 96 kHz)."""
    rates = sorted(av.codec.Codec("aac", "w").audio_rates or (48000,))
    return next((r for r in rates if r >= rate), rates[-1])


@functools.cache
def _speaker_bits() -> dict[str, int]:
    """FFmpeg's bit for each speaker position in its native layouts (FL 0, FR 1, FC 2…)."""
    bits = {}
    for bit in range(64):
        with contextlib.suppress(ValueError):
            bits[av.AudioLayout(f"0x{1 << bit:x}").channels[0].name] = bit
    return bits


def _speaker_mask(layout: av.AudioLayout) -> int | None:
    """The speaker positions of ``layout`` as an FFmpeg channel mask, which swresample can mix from.

    Channels in no stated order (PCM in AVI or Matroska says only "2 channels") get FFmpeg's
    default layout for as many channels, which is what ffmpeg itself assumes. None when there is
    none (9, 11, 13, 15 or over 16 channels). A layout named by its channels ("10 channels
    (FL+FR+…)") is turned back into a mask because FFmpeg reads such a name as a custom order,
    which swresample refuses.
    """
    bits = _speaker_bits()
    positions = [bits.get(ch.name, -1) for ch in layout.channels]
    if positions and min(positions) >= 0 and positions == sorted(set(positions)):
        return sum(1 << bit for bit in positions)
    try:
        default = av.AudioLayout(f"{layout.nb_channels}c")
    except ValueError:
        return None
    return sum(1 << bits[ch.name] for ch in default.channels)


@functools.cache
def _mixable(mask: int) -> bool:
    """Whether swresample mixes from these positions: it refuses lopsided ones (a left side
    speaker without a right one), which some muxers write for channels that are not speakers."""
    graph = av.filter.Graph()
    chain = [graph.add("abuffer", sample_fmt="fltp", sample_rate="48000", channel_layout=f"0x{mask:x}"),
             graph.add("aformat", "channel_layouts=stereo"), graph.add("abuffersink")]
    for a, b in itertools.pairwise(chain):
        a.link_to(b)
    try:
        graph.configure()
    except av.error.FFmpegError:
        return False
    return True


#: How FFmpeg names a layout it has no name for: "10 channels (FL+FR+…)".
_LISTED = re.compile(r"\d+ channels \((.+)\)")


def decoder_layout(channels: int, described: str) -> str | None:
    """The channel layout ffprobe reads for a stream (``channels``, ``described`` as ffprobe
    names it), in FFmpeg's native order, for the decoder to take in place of the one the demuxer
    gives; FFmpeg's default for as many channels where ffprobe's is in no native order either.
    None where ffprobe states no positions (PCM in Matroska) or nothing fits.

    PyAV 17 and 18 free a custom-order layout's channel map twice and abort the process at the
    first frame decoded. FFmpeg 8's MOV demuxer gives such a layout to PCM described speaker by
    speaker when the speakers are not in FFmpeg's order (7.1 with side surrounds before the back
    ones, as cameras write it); FFmpeg 5 (ffprobe here) reads the same track as plain 7.1. A
    native layout has no map to free, and where the stream's was native already it is the same.
    """
    if channels <= 0 or not described:
        return None
    listed = _LISTED.fullmatch(described)
    try:
        layout = av.AudioLayout(listed.group(1) if listed else described)
    except ValueError:
        return None
    bits = _speaker_bits()
    positions = [bits.get(ch.name, -1) for ch in layout.channels]
    if layout.nb_channels != channels:
        return None
    if min(positions) >= 0 and positions == sorted(set(positions)):
        return f"0x{sum(1 << bit for bit in positions):x}"
    try:
        default = av.AudioLayout(f"{channels}c")
    except ValueError:
        return None
    return f"{channels}c" if default.nb_channels == channels else None


def native_decoder_layout(stream: Any, path: Path) -> None:
    """Give audio ``stream``'s decoder (of the file at ``path``), before anything reads its layout,
    the one ffprobe reads for it in FFmpeg's native order (`decoder_layout`)."""
    from redactd.media.probe import probe

    described = next((s.raw for s in probe(path).audio if s.index == stream.index), None)
    if described is None:
        return
    name = decoder_layout(int(described.get("channels") or 0), str(described.get("channel_layout") or ""))
    if name is not None:
        stream.codec_context.layout = name  # replaces the stream's without reading it


def aac_layout(layout: av.AudioLayout) -> str:
    """The channel layout AAC output gets for input in ``layout``.

    The input's when AAC takes it (side surrounds moved to the back, see `AAC_SIDE_TO_BACK`);
    any other layout of up to eight channels becomes the default layout for its channel count.
    AAC has no layout above eight channels: more are downmixed to 7.1 by swresample's matrix when
    their positions are known, and averaged into mono when they are not (or swresample cannot
    mix from them).
    """
    if not layout.nb_channels:
        return "stereo"  # no channel count in the header: the converter fits the frames to stereo
    mask = _speaker_mask(layout)
    if mask is None or not _mixable(mask):
        return "mono"
    name = av.AudioLayout(f"0x{mask:x}").name
    name = AAC_SIDE_TO_BACK.get(name, name)
    if name in AAC_LAYOUTS:
        return name
    return str(av.AudioLayout(f"{layout.nb_channels}c").name) if layout.nb_channels <= 8 else "7.1"


def encoder_format(ctx: Any) -> tuple[int, str]:
    """The AAC encoder's sample rate and channel layout for audio decoded by codec context ``ctx``."""
    return aac_rate(ctx.sample_rate or 48000), aac_layout(ctx.layout)


def voice_shift_factor() -> float:
    """A pitch factor from 0.78-0.85 or 1.18-1.25, drawn per job and never recorded: a known
    constant shift would be trivial to invert."""
    return (0.78 + secrets.randbelow(8) / 100) if secrets.randbelow(2) else (1.18 + secrets.randbelow(8) / 100)



def frame_samples(frame: av.AudioFrame) -> np.ndarray:
    """A planar float frame's samples as a (channels, samples) float32 array (a copy).

    Plane by plane: PyAV 18 lists one plane too many for 8-channel planar audio, and reading
    that one (as ``to_ndarray`` does) reads memory that is not there.
    """
    channels = frame.layout.nb_channels
    return np.stack([np.frombuffer(memoryview(frame.planes[c]), np.float32)[: frame.samples].copy()
                     for c in range(channels)])


def samples_frame(samples: np.ndarray, layout: str, rate: int) -> av.AudioFrame:
    """A planar float frame holding ``samples`` (channels, n)."""
    frame = av.AudioFrame(format="fltp", layout=layout, samples=samples.shape[1])
    frame.sample_rate = rate
    for c in range(samples.shape[0]):
        np.frombuffer(memoryview(frame.planes[c]), np.float32)[: samples.shape[1]] = samples[c]
    return frame


class AudioConverter:
    """Decoded audio frames in; planar float frames at the encoder's rate and layout out.

    The filter graph is built from the frames actually decoded, not from what the stream header
    says (MP2 in MPEG-TS is announced as ``fltp`` and decodes to ``s16p``), and built again when
    they change mid-stream (broadcast recordings switch between mono and stereo, or sample rates).
    """

    def __init__(self, rate: int, layout: str, voice_shift: float | None, edit: SpeechEditor | None = None) -> None:
        self.rate = rate
        self.layout = layout
        self.voice_shift = voice_shift
        self.edit = edit
        self.graph: Any = None
        self.source: tuple[str, int, str] | None = None
        self.start: int | None = None  # where the audio starts, in output samples
        self.taken = Fraction(0)  # input so far, in output samples
        self.given = 0  # output samples so far

    def convert(self, frame: av.AudioFrame | None) -> list[av.AudioFrame]:
        """The frames ready for the encoder; ``None`` flushes what the filters still hold."""
        if frame is None:
            return self._stamp(self._edited(self._fit_length(self._drain()), final=True))
        if self.start is None:
            start = frame.pts * frame.time_base if frame.pts is not None and frame.time_base else 0
            self.start = round(start * self.rate)
        self.taken += Fraction(frame.samples * self.rate, frame.sample_rate)
        out = []
        source = (frame.format.name, frame.sample_rate, frame.layout.name)
        if source != self.source:
            out = self._drain()  # the graph for the earlier frames gives up what it still holds
            self.graph = _audio_graph(frame, self.rate, self.layout, self.voice_shift)
            self.source = source
        self.graph.push(frame)
        return self._stamp(self._edited(out + self._pull()))

    def _edited(self, frames: list[av.AudioFrame], final: bool = False) -> list[av.AudioFrame]:
        """The frames after the speech editor, which holds back a few milliseconds (McAdams' look-ahead)
        and gives back, in the end, exactly as many samples as it took."""
        if self.edit is None:
            return frames
        held = [self.edit.push(frame_samples(f)) for f in frames]
        if final:
            held.append(self.edit.finish())
        samples = np.concatenate(held, axis=1) if held else np.zeros((0, 0), np.float32)
        return [samples_frame(samples[:, i:i + _EDITED_FRAME], self.layout, self.rate)
                for i in range(0, samples.shape[1], _EDITED_FRAME)]

    def _stamp(self, frames: list[av.AudioFrame]) -> list[av.AudioFrame]:
        """Voice-shifted and edited frames are timed by counting samples on from where the audio started.

        ``asetrate`` scales timestamps by the shift factor: kept, they would put the audio off
        the video by the factor (1.4 s of MPEG-TS start becoming 1.1 or 1.8 s) and give the
        factor away. Without any, the encoder would start at zero and the priming it adds would
        not be cut. Edited frames are new frames, cut where the editor let them go. Other frames
        keep the input's timestamps.
        """
        for f in frames:
            if self.voice_shift is not None or self.edit is not None:
                f.pts, f.time_base = (self.start or 0) + self.given, Fraction(1, self.rate)
            self.given += f.samples
        return frames

    def _fit_length(self, tail: list[av.AudioFrame]) -> list[av.AudioFrame]:
        """The last voice-shifted frames cut, or followed by silence, to as many samples as went in.

        ``asetrate`` and ``atempo`` add or lose a few hundred samples at the ends (more than a
        thousand on silence), which with the encoder's padding put the length off by more than
        an AAC frame.
        """
        if self.voice_shift is None:
            return tail
        excess = self.given + sum(f.samples for f in tail) - round(self.taken)
        if excess < 0:
            return tail + _filtered([("anullsrc", f"r={self.rate}:cl={self.layout}"),
                                     ("atrim", f"end_sample={-excess}"), ("aformat", "sample_fmts=fltp")])
        while excess > 0 and tail:
            last = tail.pop()
            if last.samples > excess:
                source = f"sample_fmt=fltp:sample_rate={self.rate}:channel_layout={self.layout}"
                tail += _filtered([("abuffer", source), ("atrim", f"end_sample={last.samples - excess}")], last)
            excess -= last.samples
        return tail  # what is still over (the tail was shorter) is within the encoder's padding

    def _drain(self) -> list[av.AudioFrame]:
        if self.graph is None:
            return []
        self.graph.push(None)
        frames = _pull_all(self.graph)
        self.graph, self.source = None, None
        return frames

    def _pull(self) -> list[av.AudioFrame]:
        return _pull_all(self.graph)


#: Samples per frame the speech editor's output is cut into (AAC takes 1024 at a time).
_EDITED_FRAME = 1024


def _pull_all(graph: Any) -> list[av.AudioFrame]:
    """What a filter graph has ready."""
    frames = []
    while True:
        try:
            frames.append(graph.pull())
        except (av.error.BlockingIOError, av.error.EOFError):
            return frames


def _filtered(chain: list[tuple[str, str]], frame: av.AudioFrame | None = None) -> list[av.AudioFrame]:
    """All that a chain of filters gives for one frame, or from its source filter alone."""
    graph = av.filter.Graph()
    filters = [graph.add(name, args) for name, args in chain] + [graph.add("abuffersink")]
    for a, b in itertools.pairwise(filters):
        a.link_to(b)
    graph.configure()
    if frame is not None:
        graph.push(frame)
        graph.push(None)
    return _pull_all(graph)


def _audio_graph(frame: av.AudioFrame, rate: int, layout: str, factor: float | None) -> Any:
    """An FFmpeg filter graph from frames like ``frame`` to planar float at ``rate`` and ``layout``;
    with a ``factor``, one that also shifts pitch and formants together, keeping tempo.

    ``asetrate`` resamples the voice (pitch and formants move together, which hides the speaker
    better than a formant-preserving pitch shift), ``aresample`` restores the sample rate and
    ``atempo`` restores the duration.
    """
    graph = av.filter.Graph()
    channels = frame.layout.nb_channels
    mask = _speaker_mask(frame.layout)
    # abuffer takes frames whose channels have no stated order for a layout of as many channels:
    # that is how they get the default positions. Without one, only their number is known.
    where = {"channel_layout": f"0x{mask:x}"} if mask is not None else {"channels": str(channels)}
    chain = [graph.add("abuffer", sample_fmt=frame.format.name, sample_rate=str(frame.sample_rate),
                       time_base=str(frame.time_base or Fraction(1, frame.sample_rate)), **where)]
    if mask is None or not _mixable(mask):
        # Nothing to downmix by position: every channel gets the same weight in a mono mix.
        chain.append(graph.add("pan", "mono|c0<" + "+".join(f"c{i}" for i in range(channels))))
    if factor is not None:
        chain += [
            graph.add("asetrate", f"{int(frame.sample_rate * factor)}"),
            graph.add("aresample", f"{rate}"),
            graph.add("atempo", f"{1 / factor:.6f}"),
        ]
    chain += [
        graph.add("aformat", f"sample_fmts=fltp:sample_rates={rate}:channel_layouts={layout}"),
        graph.add("abuffersink"),
    ]
    for a, b in itertools.pairwise(chain):
        a.link_to(b)
    graph.configure()
    return graph
