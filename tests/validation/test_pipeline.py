"""The visual stage of `run_job`: render, verify, validate; verdict and sidecar."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from redactd.jobflow.pipeline import JobSpec, run_job
from redactd.metadata.verify import verify_clean
from redactd.policy import RedactionPolicy, policy_hash
from tests.validation import scenes


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory, scene: scenes.synth.Clip) -> Path:
    # A personal-looking name: it must not reach the sidecar.
    path = tmp_path_factory.mktemp("raw") / "maria-garcia-birthday.mp4"
    shutil.copyfile(scene.path, path)
    return path


def careless(policy: RedactionPolicy) -> RedactionPolicy:
    """A policy that looks for text only: every face stays visible."""
    data = policy.model_dump(mode="json")
    data["id"] = "careless"
    data["detect"]["faces"]["enabled"] = False
    data["detect"]["text"]["enabled"] = True
    return RedactionPolicy.model_validate(data)


class TestVisualStage:
    @pytest.mark.slow
    def test_publishes_a_correct_redaction_with_a_complete_sidecar(self, raw: Path, tmp_path: Path,
                                                                   faces_policy: RedactionPolicy,
                                                                   scene: scenes.synth.Clip) -> None:
        progress: list[float] = []
        result = run_job(JobSpec("job-ok", raw, tmp_path / "scratch", faces_policy), progress.append)
        assert (result.verdict, result.reason) == ("publish", None)
        assert result.output_path == tmp_path / "scratch" / "output.mp4"
        verify_clean(result.output_path, expect_video=1, expect_audio=0)
        side = result.sidecar
        assert side["policy"] == {"id": faces_policy.id, "version": faces_policy.version,
                                  "sha256": policy_hash(faces_policy)}
        walker, still = scenes.face_tracks(side["detections"], scene)  # each face one track, all along
        assert len(walker) == len(still) == 1 and walker != still
        assert side["validation"]["verdict"] == "publish" and side["validation"]["sampled_frames"] == 4
        primary = "centerface-int8" if faces_policy.detect.faces.int8 else "centerface"
        assert set(side["models"]) == {primary, "mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet", "centerface-strong"}
        assert "maria" not in json.dumps(side) and str(raw.parent) not in json.dumps(side)
        assert progress[-1] == pytest.approx(1.0) and progress == sorted(progress)

    @pytest.mark.slow
    def test_holds_back_an_output_that_left_faces_visible(self, raw: Path, tmp_path: Path,
                                                          faces_policy: RedactionPolicy) -> None:
        result = run_job(JobSpec("job-leaky", raw, tmp_path / "scratch", careless(faces_policy)))
        assert result.verdict == "review"
        assert result.reason is not None and "4 of 4 sampled frames" in result.reason
        assert result.sidecar["validation"]["leak_score"] == 1.0
        # The faces were looked for in the raw input too (rule 4), and are there.
        assert (result.sidecar["validation"]["original"], result.sidecar["validation"]["not_in_original"]) == (
            "checked", 0)
        assert result.sidecar["detections"]["counts"]["tracks"] == {}

    def test_skips_validation_only_when_the_policy_says_so(self, raw: Path, tmp_path: Path,
                                                           faces_policy: RedactionPolicy) -> None:
        data = careless(faces_policy).model_dump(mode="json")
        data["validation"] = {"enabled": False}
        result = run_job(JobSpec("job-unchecked", raw, tmp_path / "scratch", RedactionPolicy.model_validate(data)))
        assert result.verdict == "publish"
        assert result.sidecar["validation"]["verdict"] == "skipped"


class TestValidationPolicy:
    def test_unknown_keys_are_refused(self, faces_policy: RedactionPolicy) -> None:
        data = faces_policy.model_dump(mode="json")
        data["validation"]["thresholds"]["max_leaks"] = 3
        with pytest.raises(ValueError, match="max_leaks"):
            RedactionPolicy.model_validate(data)

    def test_defaults_hold_back_any_leak(self, faces_policy: RedactionPolicy) -> None:
        th = faces_policy.validation.thresholds
        assert (faces_policy.validation.enabled, th.max_leak_frames, th.max_leak_share) == (True, 0, 0.0)
