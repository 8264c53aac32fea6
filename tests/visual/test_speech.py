"""Speech found (Silero VAD), muted (mute_speech) or anonymised (McAdams), everything else left as it was."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from redactd.errors import ConfigError
from redactd.policy import Limits, RedactionPolicy, Speech
from redactd.visual import redact_video, vad
from redactd.visual.codec import FramePlan, VideoReader, probe
from redactd.visual.detect import CompositeDetector
from redactd.visual.mcadams import McAdams
from redactd.visual.speech import SpeechEditor, SpeechPlan, find_speech, speech_in_file
from redactd.visual.vad import CHUNK, VAD_RATE, SegmentRule, VoiceActivity, speech_chunks
from tests.conftest import TEST_POLICIES
from tests.visual import speechclips
from tests.visual.conftest import tweak
from tests.visual.speechclips import RATE, SpeechClip, decode, rms
from tests.visual.test_codec import audio_end

RULE = SegmentRule(0.5, 0.064, 0.3)


def vad_probs(x: np.ndarray, rate: int = RATE) -> list[float]:
    """Silero's chunk probabilities for mono ``x`` (resampled to 16 kHz by taking every n-th sample of a
    low-passed copy: enough for a test)."""
    from scipy.signal import resample_poly

    v = VoiceActivity()
    v.push(resample_poly(x, VAD_RATE, rate).astype(np.float32))
    v.finish()
    return v.probs


class TestSpeechChunks:
    def test_a_segment_runs_from_the_first_loud_chunk_to_the_start_of_a_long_enough_quiet(self) -> None:
        probs = [0.1, 0.9, 0.9, 0.2, 0.9, 0.9] + [0.05] * 12 + [0.9] * 3
        assert speech_chunks(probs, SegmentRule(0.5, 0.0, 0.3)) == [(1, 6), (18, 21)]

    def test_a_dip_into_the_hysteresis_band_does_not_end_a_segment(self) -> None:
        probs = [0.9] * 3 + [0.4] * 20 + [0.9] * 2 + [0.0] * 10
        assert speech_chunks(probs, SegmentRule(0.5, 0.0, 0.1)) == [(0, 25)]

    def test_bursts_shorter_than_min_speech_are_dropped(self) -> None:
        probs = [0.0] * 5 + [0.9] + [0.0] * 20 + [0.9] * 5 + [0.0] * 20
        assert speech_chunks(probs, SegmentRule(0.5, 0.1, 0.2)) == [(26, 31)]


class TestSileroModel:
    def test_hears_espeak_speech_and_not_the_noise_bed(self) -> None:
        bed = speechclips.noise_bed(1, 3 * RATE)[0]
        voice = speechclips.spoken()
        probs = vad_probs(np.concatenate([bed, voice + speechclips.noise_bed(1, len(voice), 3)[0], bed]))
        chunk = CHUNK * RATE // VAD_RATE
        quiet = len(bed) // chunk
        assert max(probs[: quiet - 2]) < 0.2
        spoken = probs[quiet + 2: quiet + len(voice) // chunk - 2]
        assert np.mean(np.array(spoken) > 0.5) > 0.8

    def test_a_model_file_with_another_checksum_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        vad.silero_model.cache_clear()
        monkeypatch.setattr(vad, "SILERO_VAD_SHA256", "0" * 64)
        try:
            with pytest.raises(ConfigError, match="refusing an unknown model"):
                vad.silero_model()
        finally:
            vad.silero_model.cache_clear()

    def test_is_found_without_importing_torch(self) -> None:
        import subprocess
        import sys

        code = "import sys; from redactd.visual.vad import silero_model; silero_model(); print('torch' in sys.modules)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
        assert out.stdout.strip() == "False"


def plan_for(segments: list[tuple[int, int]], channels: int = 2, samples: int = 4 * RATE,
             noise: np.ndarray | None = None) -> SpeechPlan:
    return SpeechPlan(RATE, "stereo" if channels == 2 else "mono", channels, samples, 0, tuple(segments), noise,
                      vad.vad_info())


def run_editor(editor: SpeechEditor, x: np.ndarray, block: int) -> np.ndarray:
    parts = [editor.push(x[:, i:i + block]) for i in range(0, x.shape[1], block)]
    return np.concatenate([*parts, editor.finish()], axis=1)


class TestSpeechEditor:
    X = np.random.default_rng(3).normal(0, 0.1, (2, 4 * RATE))
    SEGMENT = (RATE, 2 * RATE)

    @pytest.mark.parametrize("kind", ["mute", "anonymize"])
    def test_leaves_every_sample_outside_the_segments_bit_exact_and_the_length_as_it_was(self, kind: str) -> None:
        editor = SpeechEditor(plan_for([self.SEGMENT]), kind, Speech(fill="silence"))  # type: ignore[arg-type]
        out = run_editor(editor, self.X, 1024)
        assert out.shape == self.X.shape
        x32 = self.X.astype(np.float32)
        assert np.array_equal(out[:, : self.SEGMENT[0]], x32[:, : self.SEGMENT[0]])
        assert np.array_equal(out[:, self.SEGMENT[1]:], x32[:, self.SEGMENT[1]:])

    def test_silence_fill_is_silent_inside_and_fades_at_the_edges(self) -> None:
        cfg = Speech(fill="silence", crossfade_ms=50)
        out = run_editor(SpeechEditor(plan_for([self.SEGMENT]), "mute", cfg), self.X, 1000)
        fade = round(0.05 * RATE)
        a, b = self.SEGMENT
        assert not out[:, a + fade:b - fade].any()
        ramp = np.abs(out[0, a:a + fade]) / np.maximum(np.abs(self.X[0, a:a + fade]), 1e-9)
        assert ramp[0] > 0.99 and ramp[-1] < 0.01 and np.all(np.diff(ramp) <= 1e-6)

    def test_noise_fill_keeps_the_level_of_the_measured_background(self) -> None:
        from redactd.visual.speech import NoiseProfile

        profile = NoiseProfile(RATE, 2)
        profile.add(self.X[:, : RATE])
        spectrum = profile.spectrum()
        assert spectrum is not None
        loud = self.X.copy()
        loud[:, self.SEGMENT[0]:self.SEGMENT[1]] *= 10  # a voice, ten times the background
        out = run_editor(SpeechEditor(plan_for([self.SEGMENT], noise=spectrum), "mute", Speech()), loud, 777)
        inside = out[:, self.SEGMENT[0] + 5000:self.SEGMENT[1] - 5000]
        assert rms(inside) == pytest.approx(0.1, rel=0.1)

    def test_the_mcadams_warp_is_the_same_whatever_the_block_sizes(self) -> None:
        cfg = Speech(mcadams_alpha=(0.8, 0.8))
        whole = run_editor(SpeechEditor(plan_for([self.SEGMENT]), "anonymize", cfg), self.X, self.X.shape[1])
        pieces = run_editor(SpeechEditor(plan_for([self.SEGMENT]), "anonymize", cfg), self.X, 333)
        assert np.allclose(whole, pieces, atol=1e-6)
        inside = slice(self.SEGMENT[0] + 4800, self.SEGMENT[1] - 4800)
        assert not np.allclose(whole[:, inside], self.X[:, inside], atol=1e-3)


class TestMcAdams:
    def test_alpha_one_gives_back_the_input(self) -> None:
        voice = speechclips.spoken()
        warp = McAdams(RATE, 1.0)
        out = np.zeros(len(voice) + warp.win)
        for k in range(0, len(voice) - warp.win, warp.hop):
            out[k:k + warp.win] += warp.frame(voice[k:k + warp.win])
        core = slice(warp.win, len(voice) - 2 * warp.win)
        # Near, not exact: poles on the unit circle are pulled just inside, and each frame keeps its loudness.
        assert rms(out[core] - voice[core]) < 0.01 * rms(voice[core])

    def test_warps_angles_on_the_16_khz_scale_below_8_khz_only(self) -> None:
        warp = McAdams(48000, 0.8)
        # 1 kHz at 16 kHz is 2*pi/16 rad; the baseline moves it to (2*pi/16) ** 0.8.
        one_khz = np.array([2 * np.pi * 1000 / 48000, 2 * np.pi * 12000 / 48000])
        moved = warp.warp_angles(one_khz)
        assert moved[0] * 48000 / (2 * np.pi) == pytest.approx(16000 / (2 * np.pi) * (2 * np.pi / 16) ** 0.8)
        assert moved[1] == one_khz[1]

    def test_moves_the_spectral_envelope_of_speech(self) -> None:
        """The spectral centroid of voiced speech moves: formants are what the warp changes."""
        voice = speechclips.spoken()
        warp = McAdams(RATE, 0.7)
        out = np.zeros(len(voice) + warp.win)
        for k in range(0, len(voice) - warp.win, warp.hop):
            out[k:k + warp.win] += warp.frame(voice[k:k + warp.win])
        freqs = np.fft.rfftfreq(len(voice), 1 / RATE)

        def centroid(x: np.ndarray) -> float:
            power = np.abs(np.fft.rfft(x[: len(voice)])) ** 2
            band = freqs < 4000
            return float((freqs[band] * power[band]).sum() / power[band].sum())

        assert abs(centroid(out) - centroid(voice)) > 100
        assert rms(out) == pytest.approx(rms(voice), rel=0.25)


def found_in(clip: SpeechClip, cfg: Speech, noise: bool = False) -> SpeechPlan | None:
    plan = FramePlan.from_limits(probe(clip.path), Limits())
    with VideoReader(clip.path, plan, with_audio=True) as reader:
        return find_speech(reader, cfg, noise)


@pytest.fixture(scope="module")
def stereo(tmp_path_factory: pytest.TempPathFactory) -> SpeechClip:
    return speechclips.make_clip(tmp_path_factory.mktemp("speech") / "talk.mov", "stereo")


class TestFindSpeech:
    def test_covers_the_spoken_sentence_with_the_padding(self, stereo: SpeechClip) -> None:
        plan = found_in(stereo, Speech(pad_ms=300))
        assert plan is not None and plan.samples == stereo.mix.shape[1]
        (a, b), = plan.times()
        assert a <= stereo.speech[0] - 0.2 and b >= stereo.speech[1] + 0.2
        assert a >= stereo.speech[0] - 0.6 and b <= stereo.speech[1] + 0.6

    def test_measures_the_background_away_from_speech(self, stereo: SpeechClip) -> None:
        plan = found_in(stereo, Speech(), noise=True)
        assert plan is not None and plan.noise is not None
        assert plan.noise.shape[0] == 2


def redacted(clip: SpeechClip, out: Path, policy: RedactionPolicy, detector: CompositeDetector,
             **changes: object) -> tuple[np.ndarray, dict[str, object]]:
    side = out.with_suffix(".json")
    redact_video(clip.path, out, tweak(policy, **changes), sidecar_path=side, detector=detector)  # type: ignore[arg-type]
    return decode(out), json.loads(side.read_bytes())


def span(x: np.ndarray, a: float, b: float) -> np.ndarray:
    return x[:, round(a * RATE):round(b * RATE)]


@pytest.mark.slow
class TestMuteSpeech:
    @pytest.mark.parametrize(("layout", "speech_channels"), [("mono", None), ("stereo", None), ("5.1", (2,))])
    def test_speech_over_a_noise_bed_comes_out_silent_and_the_rest_as_kept(
            self, tmp_path: Path, policy: RedactionPolicy, detector: CompositeDetector, layout: str,
            speech_channels: tuple[int, ...] | None) -> None:
        clip = speechclips.make_clip(tmp_path / "in.mov", layout, speech_channels=speech_channels)
        keep, _ = redacted(clip, tmp_path / "keep.mp4", policy, detector, audio="keep")
        muted, side = redacted(clip, tmp_path / "muted.mp4", policy, detector,
                               **{"audio": "mute_speech", "speech.fill": "silence"})
        # Every channel, every sample: as long as `keep` gives, which is the input's length padded
        # to a whole AAC frame (the MP4 records no end trim).
        assert muted.shape == keep.shape
        assert muted.shape[0] == clip.mix.shape[0] and 0 <= muted.shape[1] - clip.mix.shape[1] < 1024
        assert audio_end(tmp_path / "muted.mp4") == pytest.approx(audio_end(clip.path), abs=1024 / RATE)
        a, b = clip.speech
        # Silent where the voice was (AAC leaves a trace of quantisation noise, far below the bed)...
        assert rms(span(muted, a, b)) < 0.05 * speechclips.BED_RMS
        voiced = (speech_channels or (0,))[0]
        assert rms(span(keep, a, b)[voiced]) > 2 * speechclips.BED_RMS
        # ...and before it, bit for bit what `keep` gives. After it the encoder gets the same samples
        # (TestSpeechEditor shows that before encoding), but AAC's rate control remembers the
        # silence: it codes the bed with other quantisation, so the same sound, in the same place,
        # not the same bits (noise like this bed has no bit-near AAC coding even from `keep`).
        assert np.array_equal(span(muted, 0, a - 0.7), span(keep, 0, a - 0.7))
        after, kept = span(muted, b + 0.8, 8.0), span(keep, b + 0.8, 8.0)
        assert rms(after) == pytest.approx(rms(kept), rel=0.1)
        assert min(float(np.corrcoef(x, y)[0, 1]) for x, y in zip(after, kept, strict=True)) > 0.85
        audio = side["audio"]
        assert isinstance(audio, dict)
        assert (audio["mode"], audio["method"], audio["fill"]) == ("mute_speech", "mute", "silence")
        ((start, end),) = audio["speech"]
        assert start <= a and end >= b

    def test_matched_noise_leaves_nothing_the_vad_calls_speech(self, tmp_path: Path, policy: RedactionPolicy,
                                                               detector: CompositeDetector) -> None:
        clip = speechclips.make_clip(tmp_path / "in.mov", "stereo")
        muted, side = redacted(clip, tmp_path / "muted.mp4", policy, detector, audio="mute_speech")
        assert side["audio"]["fill"] == "noise"  # type: ignore[index]
        a, b = clip.speech
        level = rms(span(muted, a, b))
        assert level == pytest.approx(speechclips.BED_RMS, rel=0.25)  # within 2 dB of the bed
        heard = speech_in_file(tmp_path / "muted.mp4", RULE)
        assert heard is not None and heard[0] == []
        assert speech_in_file(clip.path, RULE)[0] != []  # type: ignore[index]

    def test_a_track_without_speech_passes_through(self, tmp_path: Path, policy: RedactionPolicy,
                                                   detector: CompositeDetector) -> None:
        from tests.visual.test_codec import audio_packets

        clip = speechclips.make_clip(tmp_path / "in.mov", "stereo", at=None)
        _, side = redacted(clip, tmp_path / "muted.mp4", policy, detector, audio="mute_speech")
        redacted(clip, tmp_path / "keep.mp4", policy, detector, audio="keep")
        assert side["audio"]["speech"] == []  # type: ignore[index]
        assert audio_packets(tmp_path / "muted.mp4") == audio_packets(tmp_path / "keep.mp4")


@pytest.mark.slow
class TestAnonymizeSpeech:
    def test_mcadams_changes_the_speech_only(self, tmp_path: Path, policy: RedactionPolicy,
                                             detector: CompositeDetector) -> None:
        clip = speechclips.make_clip(tmp_path / "in.mov", "stereo")
        keep, _ = redacted(clip, tmp_path / "keep.mp4", policy, detector, audio="keep")
        warped, side = redacted(clip, tmp_path / "anon.mp4", policy, detector, audio="anonymize")
        a, b = clip.speech
        assert warped.shape == keep.shape
        assert np.array_equal(span(warped, 0, a - 0.7), span(keep, 0, a - 0.7))
        inside_keep, inside = span(keep, a + 0.2, b - 0.2), span(warped, a + 0.2, b - 0.2)
        assert rms(inside) == pytest.approx(rms(inside_keep), rel=0.3)  # as loud...
        corr = float(np.corrcoef(inside[0], inside_keep[0])[0, 1])
        assert corr < 0.7  # ...but not the same waveform
        audio = side["audio"]
        assert (audio["mode"], audio["method"]) == ("anonymize", "mcadams")  # type: ignore[index]
        assert "alpha" not in json.dumps(side)  # the per-job coefficient is never recorded

    def test_the_older_pitch_shift_is_still_there_by_name(self, tmp_path: Path, policy: RedactionPolicy,
                                                          detector: CompositeDetector) -> None:
        clip = speechclips.make_clip(tmp_path / "in.mov", "mono", seconds=3.0, at=0.5)
        _, side = redacted(clip, tmp_path / "anon.mp4", policy, detector,
                           **{"audio": "anonymize", "speech.anonymizer": "pitch_shift"})
        assert side["audio"] == {"mode": "anonymize", "method": "pitch_shift"}


class TestSpeechPolicy:
    def test_mute_speech_needs_the_visual_mode(self, policy: RedactionPolicy) -> None:
        with pytest.raises(ValueError, match="re-encodes audio"):
            tweak(policy, mode="metadata-only", audio="mute_speech")

    def test_a_crossfade_longer_than_the_padding_is_refused(self) -> None:
        with pytest.raises(ValueError, match="crossfade_ms must not exceed pad_ms"):
            Speech(pad_ms=20, crossfade_ms=50)


@pytest.mark.slow
class TestRedactCommand:
    def test_mutes_speech_from_a_policy_file_and_says_how_much(self, tmp_path: Path) -> None:
        import subprocess
        import sys

        from tests.visual.conftest import REPO

        clip = speechclips.make_clip(tmp_path / "talk.mov", "stereo", seconds=6.0, at=1.0)
        text = (TEST_POLICIES / "visual-default.yaml").read_text()
        policy = tmp_path / "muted.yaml"
        policy.write_text(text.replace("id: visual-default", "id: muted")
                          .replace("audio: drop ", "audio: mute_speech "))
        out, side = tmp_path / "out.mp4", tmp_path / "out.json"
        proc = subprocess.run([sys.executable, "-m", "redactd", "redact", str(clip.path), "-o", str(out),
                               "--policy", str(policy), "--sidecar", str(side)],
                              check=False, capture_output=True, text=True, timeout=600, cwd=REPO)
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout)
        assert summary["audio"] == "mute_speech"
        assert summary["speech"]["segments"] == 1 and summary["speech"]["seconds"] > 3.0
        a, b = clip.speech
        assert rms(span(decode(out), a, b)) == pytest.approx(speechclips.BED_RMS, rel=0.25)
        assert json.loads(side.read_text())["audio"]["speech"][0][0] <= a
