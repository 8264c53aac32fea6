"""Figures for the audio privacy modes: speech found, speech left after mute_speech, voices after anonymize.

    .venv-bench/bin/python bench/audio.py [--snr 20 10 5 0 -5] [--draws 3]

(`make bench-venv` builds .venv-bench: redactd, silero-vad, and for this bench only resemblyzer
with torch CPU and the useful-moonshine-onnx wheel, for the real recording it ships.)

Speech: espeak-ng voices (Debian's) and one real recording, the reading in
useful-moonshine-onnx's wheel (moonshine_onnx/assets/beckett.wav, 10 s, one speaker). Backgrounds:
synthetic and seeded (a low rumble, traffic far off; pink noise; a 50 Hz machine hum with hiss;
white noise), and two made of the recorded sounds pygame's wheel ships in its examples (11 kHz):
"music", its house-music loop, and "impacts", its car door, punch, boom and whiff over the rumble. Every figure runs the code the daemon runs: the speech pass (`find_speech`
on a clip file) and the converter with its speech editor, as the writer uses them, before AAC.

Prints, per background and SNR (speech power while speaking over background power):
  - VAD recall: share of spoken 32 ms chunks (clean-speech energy within 26 dB of the utterance's
    loudest) inside the speech segments, raw and with the policy's padding (what mute_speech
    replaces);
  - false alarms: share of background-only time (more than 0.5 s from any speech) inside raw
    segments;
  - after mute_speech (matched noise): the clean speech's energy left in the output (dB below
    the original), and the seconds of speech Silero still hears in it (validation's measure).
Then, for anonymize, the speaker-verification similarity (resemblyzer's cosine similarity, an
independent speaker encoder) between a speaker's original speech and anonymised speech of other
words, for the old whole-track pitch shift and the McAdams warp at several coefficients.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "daemon"), str(REPO)]

import av
import numpy as np
from scipy.signal import resample_poly
from tests.visual import speechclips

from redactd import log
from redactd.policy import Limits, Speech
from redactd.visual.audio import AudioConverter, frame_samples
from redactd.visual.codec import FramePlan, VideoReader, probe
from redactd.visual.speech import SpeechEditor, SpeechPlan, find_speech
from redactd.visual.vad import CHUNK, VAD_RATE, SegmentRule, VoiceActivity, speech_chunks

RATE = 48000
SENTENCES = [
    "Please meet me at the station at five, and bring the blue folder with you.",
    "The weather turned cold last night, so the roads were closed until noon.",
]
VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb-scotland"]


# --------------------------------------------------------------------------- material


def backgrounds(n: int, seed: int = 11) -> dict[str, np.ndarray]:
    """Each background at unit RMS."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    spectrum = np.fft.rfft(rng.normal(0, 1, n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[1:] /= np.sqrt(f[1:])
    spectrum[0] = 0
    hum = sum(np.sin(2 * np.pi * 50 * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 8))
    hum = hum * (1 + 0.1 * np.sin(2 * np.pi * 0.3 * t)) + 0.3 * rng.normal(0, 1, n)
    out = {
        "rumble": speechclips.noise_bed(1, n, seed)[0],
        "pink": np.fft.irfft(spectrum, n),
        "hum": hum,
        "white": rng.normal(0, 1, n),
    }
    return {k: v / np.sqrt(np.mean(v**2)) for k, v in out.items()}


def packaged_sounds(n: int, seed: int = 5) -> dict[str, np.ndarray]:
    """Backgrounds from the recordings in pygame's wheel (found without importing pygame), unit RMS."""
    spec = importlib.util.find_spec("pygame")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("bench/audio.py needs pygame's example sounds: run `make bench-venv`")
    data = Path(next(iter(spec.submodule_search_locations))) / "examples" / "data"
    music = load(data / "house_lo.wav", RATE)
    rng = np.random.default_rng(seed)
    impacts = speechclips.noise_bed(1, n, seed)[0] * 0.2
    hits = [load(data / f"{name}.wav", RATE) for name in ("car_door", "punch", "boom", "whiff")]
    for at in range(0, n - RATE, RATE // 2):
        hit = hits[rng.integers(len(hits))]
        impacts[at:at + len(hit)] += hit[: n - at] * rng.uniform(0.3, 1.0)
    out = {"music": np.resize(music, n), "impacts": impacts}
    return {k: v / np.sqrt(np.mean(v**2)) for k, v in out.items()}


def real_recording() -> tuple[np.ndarray, int]:
    """The reading shipped in useful-moonshine-onnx's wheel (found without importing the package)."""
    spec = importlib.util.find_spec("moonshine_onnx")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("bench/audio.py needs useful-moonshine-onnx (its WAV): run `make bench-venv`")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "beckett.wav"
    return load(path), 16000


def load(path: Path, rate: int = 16000) -> np.ndarray:
    with av.open(str(path)) as c:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        return np.concatenate([f.to_ndarray().ravel() for fr in c.decode(audio=0) for f in resampler.resample(fr)])


def clip(samples: np.ndarray, rate: int, folder: Path) -> Path:
    """A tiny Matroska clip (16x16 grey video, the samples as mono PCM) for the real speech pass."""
    path = folder / f"clip-{time.perf_counter_ns()}.mkv"
    seconds = len(samples) / rate
    with av.open(str(path), "w") as out:
        video = out.add_stream("ffv1", rate=1)
        video.width, video.height, video.pix_fmt = 16, 16, "yuv420p"
        audio = out.add_stream("pcm_s16le", rate=rate)
        audio.layout = "mono"
        for i in range(max(1, int(np.ceil(seconds)))):
            frame = av.VideoFrame(16, 16, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([128]) * plane.buffer_size)
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        for i in range(0, len(pcm), 1024):
            f = av.AudioFrame.from_ndarray(pcm[None, i:i + 1024].copy(), format="s16", layout="mono")
            f.sample_rate, f.pts = rate, i
            out.mux(audio.encode(f))
        out.mux(audio.encode(None))
    return path


def speech_plan(path: Path, cfg: Speech, noise: bool = False) -> SpeechPlan | None:
    with VideoReader(path, FramePlan.from_limits(probe(path), Limits()), with_audio=True) as reader:
        return find_speech(reader, cfg, noise)


def editor(plan: SpeechPlan | None, kind: str, cfg: Speech) -> SpeechEditor | None:
    return SpeechEditor(plan, kind, cfg) if plan is not None and plan.segments else None  # type: ignore[arg-type]


def rendered(path: Path, edit: SpeechEditor | None = None, shift: float | None = None) -> np.ndarray:
    """The clip's audio as the writer hands it to AAC: converted, then edited or pitch-shifted."""
    with VideoReader(path, FramePlan.from_limits(probe(path), Limits()), with_audio=True) as reader:
        assert reader.audio is not None
        ctx = reader.audio.codec_context
        converter = AudioConverter(ctx.sample_rate, "mono", shift, edit)
        frames = [f for packet in reader.container.demux(reader.audio) for fr in ctx.decode(packet)
                  for f in converter.convert(fr)]
        frames += converter.convert(None)
    return np.concatenate([frame_samples(f)[0] for f in frames])


# --------------------------------------------------------------------------- VAD and mute_speech


def chunk_rms(x: np.ndarray) -> np.ndarray:
    per = CHUNK * RATE // VAD_RATE
    n = len(x) // per
    return np.sqrt(np.mean(x[: n * per].reshape(n, per) ** 2, axis=1))


def heard_s(x: np.ndarray, rule: SegmentRule) -> float:
    vad = VoiceActivity()
    vad.push(resample_poly(x, VAD_RATE, RATE).astype(np.float32))
    vad.finish()
    return sum(b - a for a, b in speech_chunks(vad.probs, rule)) * CHUNK / VAD_RATE


def vad_figures(utterances: list[np.ndarray], snrs: list[float], folder: Path) -> None:
    gap = round(2.5 * RATE)
    speech = np.concatenate([np.zeros(gap)] + [np.concatenate([u, np.zeros(gap)]) for u in utterances])
    labels = np.zeros(len(chunk_rms(speech)), bool)
    pos = gap
    per = CHUNK * RATE // VAD_RATE
    for u in utterances:
        levels = chunk_rms(np.concatenate([np.zeros(pos % per), u]))
        first = pos // per
        labels[first:first + len(levels)] |= levels > levels.max() * 10 ** (-26 / 20)
        pos += len(u) + gap
    near = np.convolve(labels, np.ones(2 * round(0.5 * VAD_RATE / CHUNK) + 1), "same") > 0
    active = np.mean(np.concatenate(utterances) ** 2)
    beds = {**backgrounds(len(speech)), **packaged_sounds(len(speech))}
    cfg = Speech()
    raw_cfg = Speech(pad_ms=0, crossfade_ms=0)
    rule = SegmentRule(cfg.threshold, cfg.min_speech_ms / 1000, cfg.min_silence_ms / 1000)
    print(f"\nVAD and mute_speech ({len(utterances)} utterances, {labels.sum() * CHUNK / VAD_RATE:.0f} s spoken, "
          f"{(~near).sum() * CHUNK / VAD_RATE:.0f} s of background only per track; policy defaults: threshold "
          f"{cfg.threshold}, pad {cfg.pad_ms} ms, fill {cfg.fill})")
    print(f"{'background':10} {'SNR dB':>6} {'recall raw':>10} {'recall padded':>13} {'false alarm':>11} "
          f"{'speech left dB':>14} {'heard after s':>13} {'s/track':>7}")
    for name, bed in beds.items():
        for snr in snrs:
            mix = speech + bed * np.sqrt(active / 10 ** (snr / 10))
            scale = min(1.0, 0.99 / np.abs(mix).max())  # no clipping; speech and bed scaled alike
            path = clip(mix * scale, RATE, folder)
            started = time.perf_counter()
            recall = []
            for c in (raw_cfg, cfg):
                plan = speech_plan(path, c)
                covered = np.zeros(len(labels), bool)
                for a, b in plan.segments if plan is not None else ():
                    covered[a // per:-(-b // per)] = True
                recall.append(covered)
            raw, padded = recall
            muted = rendered(path, editor(speech_plan(path, cfg, noise=True), "mute", cfg))
            # The clean speech through the same segments, faded to silence: what of it the output keeps.
            left = rendered(clip(speech * scale, RATE, folder),
                            editor(speech_plan(path, cfg), "mute", Speech(fill="silence")))
            left_db = 10 * np.log10(max(1e-12, np.sum(left**2)) / np.sum((speech * scale) ** 2))
            print(f"{name:10} {snr:6.0f} {raw[labels].mean():10.1%} {padded[labels].mean():13.1%} "
                  f"{raw[~near].mean():11.1%} {left_db:14.1f} {heard_s(muted, rule):13.2f} "
                  f"{time.perf_counter() - started:7.1f}")


# --------------------------------------------------------------------------- anonymize


def speaker_figures(draws: int, folder: Path) -> None:
    from resemblyzer import VoiceEncoder, preprocess_wav

    encoder = VoiceEncoder("cpu", verbose=False)

    def embed(x: np.ndarray, rate: int) -> np.ndarray:
        x16 = resample_poly(x, 16000, rate) if rate != 16000 else x
        return encoder.embed_utterance(preprocess_wav(x16.astype(np.float32), source_sr=16000))

    # Pairs (enrolment, test): the same speaker saying other words.
    real, real_rate = real_recording()
    half = len(real) // 2
    pairs: dict[str, list[tuple[np.ndarray, np.ndarray, int]]] = {
        "real (beckett)": [(real[:half], real[half:], real_rate)],
        "espeak voices": [],
    }
    for voice in VOICES:
        a, b = (speechclips.spoken(s, voice, 22050) for s in SENTENCES)
        pairs["espeak voices"].append((a, b, 22050))
    impostor = [float(embed(pairs["espeak voices"][i][0], 22050) @ embed(pairs["espeak voices"][j][1], 22050))
                for i in range(len(VOICES)) for j in range(len(VOICES)) if i != j]

    methods: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {}

    def mcadams(lo: float, hi: float) -> Callable[[np.ndarray, int], np.ndarray]:
        cfg = Speech(mcadams_alpha=(lo, hi))

        def run(x: np.ndarray, rate: int) -> np.ndarray:
            path = clip(x, rate, folder)
            return rendered(path, editor(speech_plan(path, cfg), "anonymize", cfg))

        return run

    def shift(factor: float | None) -> Callable[[np.ndarray, int], np.ndarray]:
        from redactd.visual.audio import voice_shift_factor

        return lambda x, rate: rendered(clip(x, rate, folder), shift=factor or voice_shift_factor())

    methods["none (kept)"] = lambda x, rate: x
    methods["pitch shift x0.8 (today)"] = shift(0.8)
    methods["pitch shift x1.2 (today)"] = shift(1.2)
    methods["pitch shift, per-job draw"] = shift(None)
    for alpha in (0.9, 0.8, 0.7, 0.6):
        methods[f"McAdams alpha {alpha}"] = mcadams(alpha, alpha)
    default = Speech().mcadams_alpha
    methods[f"McAdams, per-job draw {default[0]}-{default[1]}"] = mcadams(*default)

    print(f"\nSpeaker similarity (resemblyzer cosine; enrolment: original speech; test: other words by the same "
          f"speaker, anonymised; mean of {draws} draws where the method draws)")
    print(f"  reference, different espeak voices (impostors): {statistics.mean(impostor):.3f} "
          f"(max {max(impostor):.3f})")
    print(f"{'method':34} " + " ".join(f"{k:>16}" for k in pairs) + f" {'s/run':>6}")
    enrol = {k: [embed(a, rate) for a, _, rate in v] for k, v in pairs.items()}
    for name, method in methods.items():
        started = time.perf_counter()
        runs = draws if "draw" in name else 1
        cols = []
        for k, v in pairs.items():
            sims = [float(e @ embed(method(b, rate), rate)) for _ in range(runs) for e, (_, b, rate) in
                    zip(enrol[k], v, strict=True)]
            cols.append(statistics.mean(sims))
        print(f"{name:34} " + " ".join(f"{c:16.3f}" for c in cols) + f" {time.perf_counter() - started:6.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--snr", type=float, nargs="+", default=[20, 10, 5, 0, -5])
    ap.add_argument("--draws", type=int, default=3, help="runs of each method that draws its factor per job")
    ap.add_argument("--skip-speakers", action="store_true", help="VAD and mute_speech figures only")
    args = ap.parse_args()
    log.configure(level="warning")
    real, real_rate = real_recording()
    utterances = [speechclips.spoken(s, v) for v in VOICES for s in SENTENCES]
    utterances.append(resample_poly(real, RATE, real_rate) * 0.5 / np.abs(real).max())
    with tempfile.TemporaryDirectory() as tmp:
        vad_figures(utterances, args.snr, Path(tmp))
        if not args.skip_speakers:
            speaker_figures(args.draws, Path(tmp))


if __name__ == "__main__":
    main()
