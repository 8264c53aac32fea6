"""The default policy on held-out cases (tests/visual/heldout.py): small faces, faces leaving the frame,
tilted and turned heads, textures.

Each clip is real photographs moved over a real background, redacted end to end with the shipped
default policy, and scored per face-frame by the same scorer bench/visual.py uses.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from redactd.policy import resolve_policy
from redactd.visual import redact_video
from redactd.visual.detect import dim_picture
from tests.conftest import TEST_POLICIES
from tests.visual import heldout, heldout_drawn, synth

pytestmark = pytest.mark.slow


def _case(name: str) -> heldout.Case:
    return next(c for c in heldout.CASES if c.name == name)


def _redacted(tmp_path: Path, name: str, height: int, frames: int, policy_name: str = "visual-default"
              ) -> tuple[synth.Clip, heldout.Score]:
    clip = _case(name).build(tmp_path / f"{name}.mp4", height, frames)
    policy = resolve_policy(str(TEST_POLICIES / f"{policy_name}.yaml"))
    out = tmp_path / "out.mp4"
    redact_video(clip.path, out, policy)
    return clip, heldout.score(synth.decode_gray(clip.path), synth.decode_gray(out), clip)


class TestSmallFaces:
    def test_every_24px_face_in_a_1080p_frame_is_covered(self, tmp_path: Path) -> None:
        # At 960 px input a 24 px face reaches the model at 12 px: missed in 52 of 60 frames.
        _, score = _redacted(tmp_path, "face24-slow", 1080, 12)
        assert score.face_frames == 60
        assert score.longest_run <= 1, score
        assert score.leaked <= 2, score

    def test_every_30px_face_moving_fast_at_1080p_is_covered(self, tmp_path: Path) -> None:
        _, score = _redacted(tmp_path, "face30-fast", 1080, 12)
        assert score.longest_run <= 1, score
        assert score.untouched == 0, score


class TestEdgeFaces:
    def test_faces_sliding_out_of_the_frame_are_covered_while_any_of_them_shows(self, tmp_path: Path) -> None:
        # Out through the right, left and bottom edges over 40 frames, and one cut by the top edge
        # all along: every frame where 8 px or more of a face is still inside is scored. (Faster
        # exits still leave the last 9-15 px sliver partly covered for a frame or two: README.)
        _, score = _redacted(tmp_path, "edge-exit", 720, 40)
        assert score.face_frames >= 120
        assert score.leaked == 0, score

    def test_with_the_cadence_a_face_leaving_at_1080p_keeps_its_chin_covered(self, tmp_path: Path) -> None:
        # visual-fast: between full passes the 640 px pass finds bits of a face on the sliver left
        # (brow, eye, near its top); its box followed them up and the chin showed for 5 frames.
        _, score = _redacted(tmp_path, "edge-exit", 1080, 40, "visual-fast")
        assert score.untouched == 0, score
        assert score.longest_run <= 1, score


class TestTiltedAndTurnedHeads:
    def test_heads_tilted_45_to_60_degrees_are_covered_in_every_frame(self, tmp_path: Path) -> None:
        # Five real faces tilted 45-60° each way, 44-110 px at 720p (one the cameraman's turned head
        # looking down): the upright pass alone left one of them untouched in all 24 frames.
        _, score = _redacted(tmp_path, "tilted60", 720, 24)
        assert score.face_frames == 120
        assert score.leaked == 0, score

    def test_tilted_heads_moving_fast_are_followed_between_the_rotated_passes(self, tmp_path: Path) -> None:
        # Six real faces tilted 50-65° each way, 45-100 px, moving 4-8 px a frame. The rotated
        # passes run on every 6th frame; with them alone, one face (a 70 px LFW face at 58°) was
        # left untouched on 13 frames running (36 frames), as its finds 6 frames apart did not join up.
        _, score = _redacted(tmp_path, "tilted-fast", 720, 36)
        assert score.face_frames == 6 * 36
        assert score.leaked == 0, score

    @pytest.mark.parametrize("height", [720, 1080])
    def test_small_faces_tilted_up_to_45_degrees_are_covered(self, tmp_path: Path, height: int) -> None:
        # Five real 24 px faces tilted 15-45° each way. The two at 45° were left untouched on
        # every frame (the upright pass scores them under its threshold, the rotated passes see
        # them at 12-18 px): the unsure look finds them, turned ±45° and scaled up.
        _, score = _redacted(tmp_path, "face24-tilted", height, 24)
        assert score.face_frames == 5 * 24
        assert score.leaked == 0, score

    def test_a_real_turned_head_is_covered_to_the_back_of_the_head(self, tmp_path: Path) -> None:
        # The cameraman's head turned ~70°, 40-150 px, both ways, scored over his whole head: with
        # the frontal head's growth his hair and ear stayed sharp (25 of 96 head-frames partly covered).
        _, score = _redacted(tmp_path, "profile", 720, 24)
        assert score.face_frames == 96
        assert score.leaked == 0, score


class TestMovingCamera:
    def test_a_handheld_camera_that_wanders_rolls_and_zooms_leaves_no_face_uncovered(self, tmp_path: Path) -> None:
        # Every pixel changes on every frame, by subpixel steps: the frames between full passes
        # are compared with the full pass's frame moved as the camera moved (follow_camera), and
        # every face-frame is covered.
        _, score = _redacted(tmp_path, "handheld", 720, 24)
        assert score.face_frames == 5 * 24
        assert score.leaked == 0, score

    def test_faces_walking_across_a_panned_street_are_covered(self, tmp_path: Path) -> None:
        # Six real 24-56 px faces moving 1-4 px a frame on their own over grass, gravel and brick
        # while the camera pans: what the camera's motion does not explain is looked at again.
        _, score = _redacted(tmp_path, "pan-walkers", 720, 24)
        assert score.face_frames >= 7 * 24
        assert score.leaked == 0, score

    @pytest.mark.parametrize("policy", ["visual-default", "visual-fast"])
    def test_a_grey_face_on_a_cat_is_covered_while_the_camera_pans(self, tmp_path: Path, policy: str) -> None:
        # A 36 px black-and-white face on the cat's fur, the camera panning: in colour CenterFace
        # scored it 0.02 (75 of 75 frames untouched at 720p before `alternate_grey`, in each policy).
        _, score = _redacted(tmp_path, "pan", 720, 24, policy)
        assert score.face_frames >= 3 * 24
        assert score.leaked == 0, score


class TestCloseUps:
    def test_a_face_filling_the_frame_is_covered_brow_to_chin(self, tmp_path: Path) -> None:
        # The astronaut's face 720 px wide at 1080p: at full resolution alone its boxes sat on the
        # brow, and up to half of the face (mouth and chin) was left as it was on 10 of 75 frames.
        clip = _case("close-up").build(tmp_path / "close-up.mp4", 1080, FRAMES_CLOSE_UP)
        out = tmp_path / "out.mp4"
        redact_video(clip.path, out, resolve_policy(str(TEST_POLICIES / "visual-default.yaml")))
        left = [_left_as_is(a, b, faces[0]) for a, b, faces in
                zip(synth.decode_gray(clip.path), synth.decode_gray(out), clip.faces, strict=True)]
        assert max(left) < 0.1, [round(v, 2) for v in left]


#: Frames of the close-up case the test redacts: the base code's first frames with the chin out.
FRAMES_CLOSE_UP = 40


def _left_as_is(original: np.ndarray, redacted: np.ndarray, box: synth.GtBox) -> float:
    """Share of the face box (cut to the frame) whose pixels are as they were, within codec noise
    (the two frames smoothed, then within 3 levels): a fully blurred face keeps ~4 % of its flat
    skin so."""
    h, w = original.shape
    x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])
    a = cv2.GaussianBlur(original[y0:y1, x0:x1], (5, 5), 0).astype(np.int16)
    b = cv2.GaussianBlur(redacted[y0:y1, x0:x1], (5, 5), 0).astype(np.int16)
    return float((np.abs(a - b) < 3).mean())


class TestOverRedaction:
    def test_texture_without_faces_or_text_is_left_alone(self, tmp_path: Path) -> None:
        # Grass, gravel, brick, a cat and a coffee cup, panned: nothing to obscure.
        _, score = _redacted(tmp_path, "texture", 720, 15)
        assert score.obscured_share < 0.01, score


class TestGroundTruth:
    def test_a_face_hidden_behind_a_later_picture_is_not_in_the_ground_truth(self, tmp_path: Path) -> None:
        # Drawn sets let pictures cross: a small face under a large one shows the large one's
        # suit, which no tool should obscure; counting it called a correct output a leak.
        small = synth.astronaut(40, -20, 150, vx=50.0)
        large = synth.astronaut(120, 150, 60)
        clip = synth.make_clip(tmp_path / "cross.mp4", 640, 360, 6, [small, large])
        ids = [set(f) for f in clip.face_ids]
        x0, y0 = large.at(0)
        h, w = large.image.shape[:2]
        for frame, (sx, sy) in ((k, small.at(k)) for k in range(6)):
            fx0, fy0, fx1, fy1 = small.face
            box = (sx + fx0, sy + fy0, sx + fx1, sy + fy1)
            hidden = x0 <= box[0] and box[2] <= x0 + w and y0 <= box[1] and box[3] <= y0 + h
            assert (0 in ids[frame]) != hidden, (frame, box)
            assert 1 in ids[frame]
        assert any(0 in f for f in ids) and not all(0 in f for f in ids)

    def test_a_face_partly_under_a_later_picture_is_scored_on_the_part_that_shows(self, tmp_path: Path) -> None:
        # The large face's right third lies under a later picture: its ground truth ends where
        # that picture starts (scoring the picture called a correctly blurred face partly covered).
        face = synth.astronaut(120, 100, 60)
        fx0, fy0, fx1, fy1 = face.face
        x0, y0 = face.at(0)
        cut = int(x0 + fx0 + (fx1 - fx0) * 2 / 3)
        over = synth.Sprite(np.full((400, 200, 3), 90, np.uint8), (0, 0, 0, 0), cut, 0)  # no face of its own
        clip = synth.make_clip(tmp_path / "under.mp4", 640, 360, 2, [face, over])
        assert clip.face_ids[0] == [0]
        assert clip.faces[0] == [(x0 + fx0, y0 + fy0, cut, y0 + fy1)]
        # Nothing hides it: the whole box.
        alone = synth.make_clip(tmp_path / "alone.mp4", 640, 360, 2, [face])
        assert alone.faces[0] == [(x0 + fx0, y0 + fy0, x0 + fx1, y0 + fy1)]

    def test_a_camera_clip_moves_the_ground_truth_with_the_camera(self, tmp_path: Path) -> None:
        # The scene under each pose, resampled; a face's box follows the pose, clipped to the frame.
        scene = heldout.real_background(400, 200)
        face = synth.astronaut(40, 0, 0)
        synth.paste(scene, face.image, 100, 50)
        box = (100 + face.face[0], 50 + face.face[1], 100 + face.face[2], 50 + face.face[3])
        poses = [np.array([[1, 0, -12.5 * i], [0, 1, -3.0 * i]]) for i in range(4)]
        poses.append(cv2.getRotationMatrix2D((160, 90), 90, 1.0))
        clip = synth.camera_clip(tmp_path / "cam.mp4", scene, [box], poses, 320, 180)
        assert clip.frames == 5 and len(synth.decode_gray(clip.path)) == 5
        for i in range(4):
            x0, y0, x1, y1 = box
            assert clip.faces[i] == [(math.floor(x0 - 12.5 * i), y0 - 3 * i, math.ceil(x1 - 12.5 * i), y1 - 3 * i)]
        # Turned a quarter (anticlockwise) about the frame's middle (160, 90): scene (x, y) lands at
        # (y + 70, 250 - x), so the box's rows become columns, clipped to the 320×180 frame.
        x0, y0, x1, y1 = box
        assert clip.faces[4] == [(y0 + 70, max(0, 250 - x1), y1 + 70, min(180, 250 - x0))]
        assert clip.face_ids == [[0]] * 5


class TestScorer:
    def test_each_leaked_face_frame_is_listed_with_its_frame_and_box(self, tmp_path: Path) -> None:
        # bench/visual.py --identity hands exactly these crops to a face recogniser.
        clip = synth.make_clip(tmp_path / "two.mp4", 640, 360, 4,
                               [synth.astronaut(90, 40, 60, vx=20.0), synth.astronaut(60, 380, 200)])
        original = synth.decode_gray(clip.path)
        redacted = [f.copy() for f in original]
        x0, y0, x1, y1 = clip.faces[2][0]
        redacted[2][y0:y1, x0:x1] = 128  # one face-frame filled flat
        score = heldout.score(original, redacted, clip)
        every = [(i, box) for i, boxes in enumerate(clip.faces) for box in boxes]
        assert score.face_frames == len(every) == 8
        assert score.leaked == len(score.leaks) == 7
        assert list(score.leaks) == [leak for leak in every if leak != (2, clip.faces[2][0])]

    def test_a_dim_clip_is_scored_on_the_range_its_picture_spans(self, tmp_path: Path) -> None:
        # Drawn "dim" clips are dimmed to 25-50 %: scored against 255, SSIM's constants swamp a
        # dim face's contrast, and faces pixelated 8 blocks across read as leaked.
        clip = next(c for c in heldout_drawn.cases(1) if c.name.endswith("-dim")).build(tmp_path / "dim.mp4", 720, 6)
        assert 255 * 0.25 <= clip.data_range <= 255 * 0.5
        original = synth.decode_gray(clip.path)
        covered = [f.copy() for f in original]
        for frame, boxes in zip(covered, clip.faces, strict=True):
            for x0, y0, x1, y1 in boxes:
                face = frame[y0:y1, x0:x1]
                blocks = cv2.resize(face, ((x1 - x0) // 8 or 1, (y1 - y0) // 8 or 1), interpolation=cv2.INTER_AREA)
                frame[y0:y1, x0:x1] = cv2.resize(blocks, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
        assert sum(map(len, clip.faces)) == 36
        assert heldout.score(original, covered, clip).leaked == 0
        assert heldout.score(original, covered, replace(clip, data_range=255.0)).leaked > 0
        # Re-encoded alone, every face still reads untouched on its own range.
        again = tmp_path / "again.mp4"
        synth.write_h264(again, (cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) for f in original), clip.width, clip.height,
                         crf=20)
        assert heldout.score(original, synth.decode_gray(again), clip).untouched == 36

    def test_a_shade_clip_has_dark_faces_in_a_lit_picture(self, tmp_path: Path) -> None:
        # "shade": the frame is judged lit (so int8 runs on it), each face lies under half the range.
        clip = next(c for c in heldout_drawn.cases(1) if c.name.endswith("-shade")).build(tmp_path / "s.mp4", 720, 4)
        assert 255 * 0.25 <= clip.data_range <= 255 * 0.5
        frames = synth.decode_gray(clip.path)
        for frame, boxes in zip(frames, clip.faces, strict=True):
            assert not dim_picture(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
            assert len(boxes) == 6
            for x0, y0, x1, y1 in boxes:
                assert np.percentile(frame[y0:y1, x0:x1], 90) < 128
        # Re-encoded alone, every face reads untouched and nothing of the lit scene obscured.
        again = tmp_path / "again.mp4"
        synth.write_h264(again, (cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) for f in frames), clip.width, clip.height,
                         crf=20)
        score = heldout.score(frames, synth.decode_gray(again), clip)
        assert score.untouched == score.face_frames == 24
        assert score.obscured_share < 0.01
