"""The second opinion on real renders: a face left unobscured is caught, a right redaction passes."""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import asdict, replace
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import skimage.data

from redactd.errors import ConfigError, InputError
from redactd.policy import RedactionPolicy, Validation, ValidationDetectors
from redactd.validation import Original, Validator, validate_output
from redactd.validation.check import Finding, decide, obscured_regions, sample_indices
from redactd.validation.detectors import MTCNN_SHA256, MtcnnFaces, build_second_opinion
from redactd.visual.codec import to_bgr
from tests.validation import scenes
from tests.validation.conftest import Rendered
from tests.visual import heldout, synth
from tests.visual.onnxbuild import tiny_yolo


def uncovered_findings(validator: Validator, rendered: Rendered, policy: RedactionPolicy) -> list[Finding]:
    """What the second opinion found on the sampled frames of ``rendered`` outside its obscured
    regions: the findings its rules then weigh (`redactd.validation.check.decide`)."""
    cfg = policy.validation
    frames = sample_indices(int(rendered.detections["counts"]["frames"]), cfg.sample_every_n_frames, cfg.max_samples)
    findings: list[Finding] = []
    with av.open(str(rendered.output)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in frames:
                findings.extend(validator.look(index, to_bgr(frame)))
    return decide(frames, findings, obscured_regions(rendered.detections, policy.obscure), cfg)[2]


def overlaps(box: dict[str, float], gt: tuple[int, int, int, int]) -> bool:
    return box["x0"] < gt[2] and gt[0] < box["x1"] and box["y0"] < gt[3] and gt[1] < box["y1"]


class TestValidator:
    def test_sends_an_output_with_one_unobscured_track_to_review(self, under: Rendered, validator: Validator,
                                                                 faces_policy: RedactionPolicy) -> None:
        report = validator.check(under.output, under.detections, faces_policy.obscure)
        assert report.verdict == "review"
        assert report.leak_frames == report.sampled_frames == 4  # frames 0, 5, 10, 15
        assert report.reason is not None and "left visible" in report.reason
        # Every flagged box sits on the face that was left unobscured, none on the obscured one.
        for flagged in report.flagged:
            hidden = under.clip.faces[flagged.frame][0]
            other = under.clip.faces[flagged.frame][1]
            for box in report.figures()["flagged"][report.flagged.index(flagged)]["boxes"]:
                assert overlaps(box, hidden) and not overlaps(box, other)

    def test_publishes_a_correctly_redacted_output(self, correct: Rendered, validator: Validator,
                                                   faces_policy: RedactionPolicy) -> None:
        report = validator.check(correct.output, correct.detections, faces_policy.obscure)
        assert (report.verdict, report.reason, report.leak_frames) == ("publish", None, 0)
        # Nothing uncovered on a face reached the rule (Haar, the former default, fired on blurred
        # faces). MTCNN may take the astronaut's dark suit collar for a face on one sample (it did
        # with the int8 face model's slightly different boxes): the persistence rule leaves that.
        candidates = uncovered_findings(validator, correct, faces_policy)
        assert report.candidates == len(candidates) <= 1
        assert not any(overlaps(asdict(c.box), gt) for c in candidates for gt in correct.clip.faces[c.frame])

    def test_figures_name_every_model_with_its_sha256(self, correct: Rendered, validator: Validator,
                                                      faces_policy: RedactionPolicy) -> None:
        figures = validator.check(correct.output, correct.detections, faces_policy.obscure).figures()
        names = {m["name"] for m in figures["models"]}
        assert names == {"mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet", "centerface-strong"}
        assert all(len(m["sha256"]) == 64 for m in figures["models"])
        assert figures["leak_score"] == 0.0 and figures["sampled_frames"] == 4

    def test_a_tolerant_policy_publishes_what_a_strict_one_holds_back(self, under: Rendered,
                                                                     faces_policy: RedactionPolicy) -> None:
        tolerant = Validation.model_validate({"sample_every_n_frames": 5,
                                              "thresholds": {"max_leak_frames": 10, "max_leak_share": 1.0}})
        report = validate_output(under.output, under.detections, tolerant, faces_policy.obscure)
        assert report.verdict == "publish" and report.leak_frames == 4

    def test_an_undecodable_output_is_an_input_error(self, tmp_path: Path, correct: Rendered,
                                                     validator: Validator, faces_policy: RedactionPolicy) -> None:
        (tmp_path / "broken.mp4").write_bytes(b"not a video")
        with pytest.raises(InputError, match="cannot be decoded for validation"):
            validator.check(tmp_path / "broken.mp4", correct.detections, faces_policy.obscure)


class TestInterlacedOutput:
    def test_a_fast_face_left_in_both_fields_is_caught(self, tmp_path: Path) -> None:
        # An interlaced input's output is flagged progressive but keeps both fields: combed, a
        # face moving 14 px a field was flagged in 0 of 12 frames; looked at field by field, in most.
        clip = synth.make_clip(tmp_path / "p50.mp4", 1280, 720, 24,
                               [synth.astronaut(80, 100, 200, 12, 0), synth.lfw_face(9, 48, 300, 500, 14, -2)],
                               fps=50, crf=12)
        woven = tmp_path / "woven.mp4"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(clip.path), "-vf",
                        "tinterlace=interleave_top,setfield=tff", "-c:v", "libx264", "-crf", "12", str(woven)],
                       check=True, timeout=60)
        policy = scenes.faces_policy(sample_every_n_frames=1)
        unredacted = {"counts": {"frames": 12}, "frames": [], "video": {"interlaced": True}}

        def fast_face(n: int) -> tuple[int, int, int, int]:  # where either field shows it
            a, b = clip.faces[2 * n][1], clip.faces[2 * n + 1][1]
            return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])

        with Validator(policy.validation) as validator:
            report = validator.check(woven, unredacted, policy.obscure)
        figures = report.figures()["flagged"]
        caught = {f.frame for f, fig in zip(report.flagged, figures, strict=True)
                  if any(overlaps(box, fast_face(f.frame)) for box in fig["boxes"])}
        assert report.verdict == "review" and len(caught) >= 8, sorted(caught)


class TestSecondOpinionDetectors:
    def test_haar_and_hog_ship_with_opencv(self) -> None:
        detectors = build_second_opinion(
            ValidationDetectors(mtcnn=False, haar=True, centerface=False, hog_people=True), 12)
        assert [d.family for d in detectors] == ["haar", "hog"]

    def test_the_scale_floor_reaches_both_families_that_scale_frames(self) -> None:
        detectors = build_second_opinion(ValidationDetectors(min_scale=0.5), 12)
        assert {d.family: getattr(d, "min_scale", None) for d in detectors} == {"mtcnn": 0.5, "centerface": 0.5}
        assert ValidationDetectors().min_scale == 1.0
        with pytest.raises(ValueError, match="min_scale"):
            ValidationDetectors(min_scale=1.5)

    def test_no_detector_at_all_is_a_configuration_error(self) -> None:
        with pytest.raises(ConfigError, match="names no detector"):
            build_second_opinion(ValidationDetectors(mtcnn=False, haar=False, centerface=False), 12)


class TestMtcnn:
    """The red team's own family: finds small and turned real faces, not a dark collar."""

    @pytest.fixture(scope="class")
    @classmethod
    def mtcnn(cls) -> MtcnnFaces:
        return MtcnnFaces(1280, 12, threads=1)

    @pytest.mark.parametrize("sprite", [
        synth.astronaut(30, 100, 100),  # small: Haar at 640 px sees it at 15 px
        heldout.turned(synth.astronaut(80, 800, 100), 0.55),  # turned away (three-quarter)
        heldout.lfw_of_width(50, 40, 1000, 500),
    ], ids=["small", "turned", "lfw"])
    def test_finds_a_real_face(self, mtcnn: MtcnnFaces, sprite: synth.Sprite) -> None:
        frame = heldout.real_background(1280, 720)
        x, y = sprite.at(0)
        synth.paste(frame, sprite.image, x, y, sprite.mask)
        f = sprite.face
        gt = (x + f[0], y + f[1], x + f[2], y + f[3])
        found = mtcnn.detect(frame)
        assert any(overlaps({"x0": b.x0, "y0": b.y0, "x1": b.x1, "y1": b.y1}, gt) for b in found), found
        assert len(found) == 1  # one face, one box; nothing in the rocket, the cup or the cat

    def test_sees_a_1080p_frame_at_full_size(self) -> None:
        # Sixteen real LFW faces 18 px wide over real photographs in a 1080p frame. Scaled to
        # 1280 px wide they reach MTCNN at 12 px, its smallest window, and some are lost; at the
        # frame's own size (``min_scale`` 1, the default) every one is found, and nothing else.
        frame = heldout.real_background(1920, 1080)
        faces = []
        for i in range(16):
            sprite = heldout.lfw_of_width(3 * i, 18, 120 + (i % 8) * 220, 250 + (i // 8) * 450)
            x, y = sprite.at(0)
            synth.paste(frame, sprite.image, x, y, sprite.mask)
            faces.append((x + sprite.face[0], y + sprite.face[1], x + sprite.face[2], y + sprite.face[3]))

        def found(min_scale: float) -> tuple[int, int]:
            boxes = [{"x0": b.x0, "y0": b.y0, "x1": b.x1, "y1": b.y1}
                     for b in MtcnnFaces(1280, 12, threads=1, min_scale=min_scale).detect(frame)]
            return (sum(any(overlaps(b, gt) for b in boxes) for gt in faces),
                    sum(not any(overlaps(b, gt) for gt in faces) for b in boxes))

        assert found(ValidationDetectors().min_scale) == (16, 0)
        scaled, stray = found(0.0)
        assert scaled < 16 and stray == 0

    def test_takes_its_models_from_the_installed_package_checked(self, mtcnn: MtcnnFaces) -> None:
        assert {i.name: i.sha256 for i in mtcnn.infos} == {
            f"mtcnn-{name.split('.')[0]}": digest for name, digest in MTCNN_SHA256.items()}

    def test_does_not_flag_the_astronaut_whose_face_is_blurred(self, tmp_path: Path,
                                                                 faces_policy: RedactionPolicy) -> None:
        # Haar flagged her dark spacesuit collar in 9 of 10 sampled frames of a right redaction
        # (held-out report; not reproduced on this 512 px still, where Haar stays quiet too).
        photo = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
        clip = synth.make_clip(tmp_path / "astro.mp4", 512, 512, 10, [], stills=[(photo, 0, 0)])
        doc = scenes.render(clip, tmp_path / "out.mp4", faces_policy)
        cfg = Validation.model_validate({"sample_every_n_frames": 1,
                                         "detectors": {"mtcnn": True, "haar": False, "centerface": False}})
        report = validate_output(tmp_path / "out.mp4", doc, cfg, faces_policy.obscure)
        assert report.verdict == "publish" and report.leak_frames == 0
        assert report.candidates == 0  # nothing outside the obscured head, collar included


class TestYoloSecondOpinion:
    def test_configured_yolo_weights_catch_what_the_render_left_visible(
            self, tmp_path: Path, faces_policy: RedactionPolicy) -> None:
        # A tiny real ONNX model (the visual tests' builder) that reports red squares as class 0.
        weights = tmp_path / "tiny.onnx"
        weights.write_bytes(tiny_yolo(size=160))
        scene = np.full((240, 320, 3), 90, np.uint8)
        scene[90:150, 200:260] = (0, 0, 255)  # red in BGR, on grey
        clip = synth.make_clip(tmp_path / "in.mp4", 320, 240, 10, [], stills=[(scene, 0, 0)])
        doc = scenes.render(clip, tmp_path / "out.mp4", faces_policy)  # CenterFace leaves a red square alone
        cfg = Validation.model_validate({
            "sample_every_n_frames": 3,
            "detectors": {"mtcnn": False, "haar": False, "centerface": False,
                          "yolo": {"weights": str(weights), "classes": {0: "face"}, "input_size": 160}},
        })
        report = validate_output(tmp_path / "out.mp4", doc, cfg, faces_policy.obscure)
        assert report.verdict == "review" and report.leak_frames == report.sampled_frames == 4
        assert report.models[0].sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
        assert all(180 <= b.x0 and b.x1 <= 280 and 70 <= b.y0 and b.y1 <= 170
                   for f in report.flagged for b in f.boxes)


class TestOriginal:
    """Rule 4: a leak must be in the original frames too; obscuring cannot make a face."""

    def test_a_face_the_original_does_not_hold_is_set_aside(self, tmp_path: Path, validator: Validator,
                                                            faces_policy: RedactionPolicy) -> None:
        # The "output" holds a real face the original never had: what an artefact of the obscuring
        # is to the second opinion (a blurred head's edge that reads as a face), made certain here.
        photo = scenes.background("coffee", 320, 240)
        original = synth.make_clip(tmp_path / "raw.mp4", 320, 240, 10, [], stills=[(photo, 0, 0)])
        made = synth.make_clip(tmp_path / "out.mp4", 320, 240, 10, [synth.astronaut(50, 150, 60)],
                               stills=[(photo, 0, 0)])
        doc = {"counts": {"frames": 10}, "frames": [], "video": {"width": 320, "height": 240}}
        alone = validator.check(made.path, doc, faces_policy.obscure)
        assert alone.verdict == "review" and alone.original == "not given"
        report = validator.check(made.path, doc, faces_policy.obscure,
                                 original=Original(original.path, faces_policy.limits))
        assert (report.verdict, report.leak_frames, report.original) == ("publish", 0, "checked")
        assert report.not_in_original == 1 and report.candidates == alone.candidates  # set aside, still counted
        assert report.figures()["not_in_original"] == 1

    def test_a_face_the_render_missed_is_in_the_original_and_still_caught(
            self, under: Rendered, validator: Validator, faces_policy: RedactionPolicy) -> None:
        report = validator.check(under.output, under.detections, faces_policy.obscure,
                                 original=Original(under.clip.path, faces_policy.limits))
        assert (report.verdict, report.original, report.not_in_original) == ("review", "checked", 0)
        assert report.leak_frames == report.sampled_frames == 4

    def test_a_right_render_does_not_read_the_original(self, correct: Rendered, validator: Validator,
                                                       faces_policy: RedactionPolicy, tmp_path: Path) -> None:
        # No leak chain, nothing to compare: the original is not even opened.
        report = validator.check(correct.output, correct.detections, faces_policy.obscure,
                                 original=Original(tmp_path / "gone.mp4", faces_policy.limits))
        assert (report.verdict, report.original) == ("publish", "not needed")

    def test_an_unreadable_original_keeps_every_leak(self, tmp_path: Path, under: Rendered, validator: Validator,
                                                    faces_policy: RedactionPolicy) -> None:
        truncated = tmp_path / "truncated.mp4"
        truncated.write_bytes(under.clip.path.read_bytes()[:2000])
        smaller = faces_policy.limits.model_copy(update={"max_height": 160})  # another frame plan
        for original in (Original(tmp_path / "gone.mp4", faces_policy.limits),
                         Original(truncated, faces_policy.limits), Original(under.clip.path, smaller)):
            report = validator.check(under.output, under.detections, faces_policy.obscure, original=original)
            assert report.verdict == "review" and report.leak_frames == 4, original
            assert report.original.startswith("unreadable: ") and report.not_in_original == 0

    def test_the_original_is_read_through_the_render_frame_plan(self, tmp_path: Path) -> None:
        # A phone clip stored sideways at 50 fps, rendered at 25 fps and a third of its size, with
        # faces not looked for (every face left): each flagged face must be found in the original at
        # its place in the output frame. A frame or the rotation off, and the fast face is not.
        # The astronaut's face is 30 px wide in the output and moves 27 px an output frame; it comes
        # in through the top, so no frame holds it where the first one would (rule 4 keeps a chain
        # that is in the original in any one frame).
        upright_clip = synth.make_clip(tmp_path / "upright.mp4", 480, 864, 24,
                                       [synth.astronaut(90, 40, -150, vy=40), synth.lfw_face(3, 140, 300, 600)],
                                       fps=50)
        sideways = synth.stored_sideways(upright_clip.path, tmp_path / "phone.mp4")
        data = scenes.faces_policy(sample_every_n_frames=1).model_dump(mode="json")
        data["limits"] = {"max_fps": 25, "max_height": 160}
        data["detect"]["faces"]["enabled"] = False
        data["detect"]["text"]["enabled"] = True
        policy = RedactionPolicy.model_validate(data)
        out = tmp_path / "out.mp4"
        doc = scenes.render(replace(upright_clip, path=sideways), out, policy)
        assert (doc["video"]["width"], doc["video"]["height"], doc["counts"]["frames"]) == (288, 160, 12)
        with Validator(policy.validation) as validator:
            report = validator.check(out, doc, policy.obscure, original=Original(sideways, policy.limits))
        assert (report.verdict, report.original, report.not_in_original) == ("review", "checked", 0)
        assert report.leak_frames == report.sampled_frames == 12, report.figures()
        # Coded sideways, the astronaut runs along the top of the frame, the still face lies below it.
        moving = {f.frame for f in report.flagged for b in f.boxes if b.y1 < 80}
        assert len(moving) >= 8, report.figures()


class TestTiltedHeads:
    """The second opinion's CenterFace also looks at the frame turned ±60 degrees
    (``centerface_tilt_angles``): upright, neither it nor MTCNN finds a head tilted 60 degrees,
    and a render that missed one was published."""

    @pytest.fixture(scope="class")
    @classmethod
    def tilted_scene(cls, tmp_path_factory: pytest.TempPathFactory) -> synth.Clip:
        # Upright, the second opinion finds the astronaut tilted 60 degrees, but not a real LFW
        # face tilted 45 (held-out tilted60, 720p: 0 of its 8 samples, with the turned passes 7).
        faces = [heldout.rotated(heldout.lfw_of_width(71, 60, 200, 420, vx=3), -45),
                 heldout.rotated(heldout.mirrored(synth.astronaut(100, 800, 200, vx=-2, vy=1)), -60)]
        picture = heldout.real_background(1280, 720, ("grass", "brick", "gravel"))
        return synth.make_clip(tmp_path_factory.mktemp("tilted") / "tilted.mp4", 1280, 720, 20, faces, bg=picture,
                               crf=18)

    def test_a_tilted_head_the_render_left_visible_is_caught(
            self, tilted_scene: synth.Clip, validator: Validator, faces_policy: RedactionPolicy, tmp_path: Path) -> None:
        assert faces_policy.validation.detectors.centerface_tilt_angles == (60.0,)  # the shipped policy
        out = tmp_path / "out.mp4"
        doc = scenes.render(tilted_scene, out, faces_policy, hide_face=0)
        original = Original(tilted_scene.path, faces_policy.limits)
        report = validator.check(out, doc, faces_policy.obscure, original=original)
        assert (report.verdict, report.leak_frames) == ("review", 4), report.figures()
        hidden = [tilted_scene.faces[f.frame][0] for f in report.flagged]
        assert all(any(b.x0 < gt[2] and gt[0] < b.x1 and b.y0 < gt[3] and gt[1] < b.y1 for b in f.boxes)
                   for f, gt in zip(report.flagged, hidden, strict=True)), report.figures()["flagged"]
        # Without the turned passes the same output was published: nothing else finds that head.
        detectors = faces_policy.validation.detectors.model_copy(update={"centerface_tilt_angles": ()})
        with Validator(faces_policy.validation.model_copy(update={"detectors": detectors})) as upright:
            blind = upright.check(out, doc, faces_policy.obscure, original=original)
        assert blind.verdict == "publish", blind.figures()

    def test_a_right_render_of_tilted_heads_is_published(
            self, tilted_scene: synth.Clip, validator: Validator, faces_policy: RedactionPolicy, tmp_path: Path) -> None:
        out = tmp_path / "out.mp4"
        doc = scenes.render(tilted_scene, out, faces_policy)
        report = validator.check(out, doc, faces_policy.obscure, original=Original(tilted_scene.path, faces_policy.limits))
        assert (report.verdict, report.leak_frames) == ("publish", 0), report.figures()


class TestCenterFaceAlone:
    """Rule 3's weak findings on real pixels: the strong CenterFace takes chelsea the cat's face,
    filling a third of a 720p picture, for a face at 0.10-0.20 on every sample (the primary pass,
    at 0.2, rightly leaves it). Alone and below ``centerface_alone_threshold``, that chain is set
    aside; a face the render left visible over the same picture is still caught."""

    @pytest.fixture(scope="class")
    @classmethod
    def cat_scene(cls, tmp_path_factory: pytest.TempPathFactory) -> synth.Clip:
        # The held-out cases' background: rocket, coffee, and the cat filling the right third.
        picture = heldout.real_background(1280, 720)
        faces = [synth.astronaut(120, 560, 60, vy=4), synth.lfw_face(11, 180, 120, 400, vx=4)]
        return synth.make_clip(tmp_path_factory.mktemp("cat") / "cat.mp4", 1280, 720, 20, faces,
                               stills=[(picture, 0, 0)])

    def test_a_cats_face_alone_does_not_send_a_right_render_to_review(
            self, cat_scene: synth.Clip, validator: Validator, faces_policy: RedactionPolicy, tmp_path: Path) -> None:
        out = tmp_path / "out.mp4"
        doc = scenes.render(cat_scene, out, faces_policy)
        original = Original(cat_scene.path, faces_policy.limits)
        report = validator.check(out, doc, faces_policy.obscure, original=original)
        assert (report.verdict, report.leak_frames) == ("publish", 0), report.figures()
        assert report.centerface_alone == report.figures()["centerface_alone"] == report.sampled_frames == 4
        # The cat is there to be set aside: with the alone threshold at the finding threshold (the
        # rule off), the same output goes to review on the cat (a box on the right third). The turned
        # passes, whose findings count from the same threshold, are off here: at 0.1 they answer
        # more of the picture than the cat.
        detectors = faces_policy.validation.detectors.model_copy(
            update={"centerface_alone_threshold": 0.1, "centerface_tilt_angles": ()})
        with Validator(faces_policy.validation.model_copy(update={"detectors": detectors})) as strict:
            off = strict.check(out, doc, faces_policy.obscure, original=original)
        assert off.verdict == "review" and off.centerface_alone == 0
        assert all(b.x0 > 1280 * 0.55 for f in off.flagged for b in f.boxes), off.figures()["flagged"]

    def test_a_face_left_visible_over_the_cat_is_still_caught(
            self, cat_scene: synth.Clip, validator: Validator, faces_policy: RedactionPolicy, tmp_path: Path) -> None:
        out = tmp_path / "out.mp4"
        doc = scenes.render(cat_scene, out, faces_policy, hide_face=1)
        report = validator.check(out, doc, faces_policy.obscure, original=Original(cat_scene.path, faces_policy.limits))
        assert (report.verdict, report.leak_frames) == ("review", 4), report.figures()
        hidden = [cat_scene.faces[f.frame][1] for f in report.flagged]
        assert all(any(b.x0 < gt[2] and gt[0] < b.x1 for b in f.boxes) for f, gt in zip(report.flagged, hidden, strict=True))
