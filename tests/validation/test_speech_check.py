"""The audio half of validation: with mute_speech, speech the VAD still hears in the output sends the job to review."""

from __future__ import annotations

from pathlib import Path

import pytest

from redactd.jobflow.pipeline import JobSpec, run_job
from redactd.policy import AudioValidation, RedactionPolicy, Speech, resolve_policy
from redactd.validation.speech import check_speech
from tests.conftest import TEST_POLICIES
from tests.visual import speechclips
from tests.visual.conftest import tweak


@pytest.fixture(scope="module")
def policy() -> RedactionPolicy:
    return resolve_policy(str(TEST_POLICIES / "visual-default.yaml"))


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> speechclips.SpeechClip:
    return speechclips.make_clip(tmp_path_factory.mktemp("talk") / "talk.mov", "stereo", seconds=6.0, at=1.0)


def muting(policy: RedactionPolicy, **changes: object) -> RedactionPolicy:
    return tweak(policy, **{"audio": "mute_speech", "validation.sample_every_n_frames": 20, **changes})


class TestCheckSpeech:
    def test_hears_speech_left_in_a_file(self, talk: speechclips.SpeechClip) -> None:
        report = check_speech(talk.path, AudioValidation(), Speech())
        assert report.verdict == "review"
        assert report.reason is not None and "still hears" in report.reason
        assert report.speech_s > 2.0
        ((a, b),) = report.segments
        assert a == pytest.approx(talk.speech[0], abs=0.3) and b == pytest.approx(talk.speech[1], abs=0.5)

    def test_tolerates_what_the_policy_allows(self, talk: speechclips.SpeechClip) -> None:
        report = check_speech(talk.path, AudioValidation(max_speech_s=60.0), Speech())
        assert (report.verdict, report.reason) == ("publish", None)


@pytest.mark.slow
class TestPipelineListens:
    def test_publishes_a_muted_output_and_records_what_it_heard(self, talk: speechclips.SpeechClip, tmp_path: Path,
                                                               policy: RedactionPolicy) -> None:
        result = run_job(JobSpec("job-muted", talk.path, tmp_path / "scratch", muting(policy)))
        assert (result.verdict, result.reason) == ("publish", None)
        side = result.sidecar
        assert side["audio"] == "mute_speech"
        assert side["validation"]["audio"]["verdict"] == "publish"
        assert side["validation"]["audio"]["speech_s"] == 0
        assert side["detections"]["audio"]["mode"] == "mute_speech"
        assert len(side["detections"]["audio"]["speech"]) == 1
        assert "silero-vad" in side["models"]

    def test_sends_speech_the_render_left_to_review(self, tmp_path: Path, policy: RedactionPolicy) -> None:
        # A render that takes speech only where the model is all but certain misses a whisper
        # (Silero gives most of espeak's whisper 0.5-0.99); validation listens at the usual threshold.
        whisper = speechclips.make_clip(tmp_path / "whisper.mov", "stereo", seconds=6.0, at=1.0,
                                        voice="en-us+whisper")
        careless = muting(policy, **{"speech.threshold": 0.998})
        result = run_job(JobSpec("job-whisper", whisper.path, tmp_path / "scratch", careless))
        assert result.verdict == "review"
        assert result.reason is not None and "still hears" in result.reason
        heard = result.sidecar["validation"]["audio"]
        assert heard["verdict"] == "review" and heard["speech_s"] > 0.5

    def test_boxes_approved_before_blurring_render_with_the_speech_muted(
            self, talk: speechclips.SpeechClip, tmp_path: Path, policy: RedactionPolicy) -> None:
        import json

        held = muting(policy, **{"validation.review_before_blur": True})
        first = run_job(JobSpec("job-held", talk.path, tmp_path / "held", held))
        assert first.verdict == "review" and first.output_path.suffix == ".png"
        approval = tmp_path / "approval.json"
        approval.write_text(json.dumps({"approved_by": "reviewer", "approved_at": "2026-12-02T00:00:00Z",
                                        "detections": first.sidecar["detections"]}))
        result = run_job(JobSpec("job-held", talk.path, tmp_path / "render", held, approved_detections=approval))
        assert (result.verdict, result.reason) == ("publish", None)
        audio = result.sidecar["detections"]["audio"]
        assert audio["mode"] == "mute_speech" and len(audio["speech"]) == 1
        a, b = talk.speech
        level = speechclips.rms(speechclips.decode(result.output_path)[:, round(a * 48000):round(b * 48000)])
        assert level == pytest.approx(speechclips.BED_RMS, rel=0.25)
        assert "silero-vad" in result.sidecar["models"]
