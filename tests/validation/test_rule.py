"""The leak rule on hand-made findings: coverage, size, persistence and agreement between families."""

from __future__ import annotations

import pytest

from redactd.policy import Obscure, Validation, ValidationDetectors
from redactd.validation.check import (
    centre_obscured,
    covered_share,
    decide,
    is_covered,
    obscured_regions,
    sample_indices,
)
from redactd.validation.detectors import Finding
from redactd.visual.detect import Box
from redactd.visual.obscure import Region


def face(frame: int, x: float, y: float, size: float = 40, family: str = "haar", score: float = 1.0) -> Finding:
    return Finding(frame, Box(x, y, x + size, y + size, score, "face"), f"{family}-test", family)


class TestCoverage:
    def test_a_finding_inside_a_rectangle_is_fully_covered(self) -> None:
        assert covered_share(Box(10, 10, 30, 30, 1, "face"), [Region(0, 0, 50, 50, False)]) == 1.0

    def test_a_finding_beside_every_region_is_not_covered(self) -> None:
        assert covered_share(Box(100, 100, 140, 140, 1, "face"), [Region(0, 0, 50, 50, True)]) == 0.0

    def test_ellipse_corners_do_not_count_as_covered(self) -> None:
        # The corner square of an ellipse's bounding box lies mostly outside the ellipse.
        share = covered_share(Box(0, 0, 20, 20, 1, "face"), [Region(0, 0, 100, 100, True)])
        assert share < 0.2

    def test_a_box_larger_than_the_blob_but_centred_on_it_is_covered(self) -> None:
        # CenterFace at a low threshold answers a blurred face with a box larger than the blur.
        regions = [Region(40, 40, 80, 90, True)]
        big = Box(20, 30, 100, 110, 0.1, "face")
        assert covered_share(big, regions) < 0.5
        assert centre_obscured(big, regions)
        assert is_covered(big, regions, 0.5)

    def test_a_person_counts_as_covered_when_the_head_is(self) -> None:
        person = Box(100, 50, 160, 230, 0.9, "person")  # head: top fifth, middle half
        assert is_covered(person, [Region(110, 45, 150, 90, True)], 0.5)
        assert not is_covered(person, [Region(100, 150, 160, 230, False)], 0.5)

    def test_regions_come_from_the_sidecar_with_the_rendered_shape(self) -> None:
        doc = {"frames": [{"i": 3, "boxes": [
            {"x0": 1.2, "y0": 2.5, "x1": 20.1, "y1": 30.0, "class": "face"},
            {"x0": 5, "y0": 5, "x1": 60, "y1": 15, "class": "text"}]}]}
        regions = obscured_regions(doc, Obscure(shape="ellipse", cover="face"))
        assert regions == {3: [Region(1, 2, 21, 30, True), Region(5, 5, 60, 15, False)]}

    def test_regions_are_the_rendered_heads_and_edge_cuts(self) -> None:
        # As the render draws them: a face grown to its head, a rectangle where the frame cuts it.
        doc = {"video": {"width": 100, "height": 80}, "frames": [{"i": 0, "boxes": [
            {"x0": 40, "y0": 40, "x1": 60, "y1": 60, "class": "face"},
            {"x0": -10, "y0": 40, "x1": 10, "y1": 60, "class": "face"}]}]}
        regions = obscured_regions(doc, Obscure(shape="ellipse"))
        assert regions == {0: [Region(36, 31, 64, 62, True), Region(-14, 31, 14, 62, False)]}

    def test_a_turned_face_in_the_sidecar_is_checked_against_its_head_grown_backwards(self) -> None:
        # The render grew it towards the back of the head: the check must look at the same region.
        doc = {"frames": [{"i": 0, "boxes": [{"x0": 40, "y0": 40, "x1": 60, "y1": 60, "class": "face", "turn": 0.15}]}]}
        (turned,) = obscured_regions(doc, Obscure(shape="ellipse"))[0]
        assert (turned.x0, turned.x1) == (28, 64)  # 0.4 box widths (8 px) more on the left: the nose points right


class TestSampling:
    def test_samples_every_nth_frame_from_the_first(self) -> None:
        assert sample_indices(23, 5, 100) == [0, 5, 10, 15, 20]

    def test_spreads_samples_when_a_long_clip_would_exceed_the_cap(self) -> None:
        picked = sample_indices(10_000, 5, 100)
        assert len(picked) == 100 and picked[1] == 100

    def test_an_empty_clip_has_no_samples(self) -> None:
        assert sample_indices(0, 5, 100) == []


class TestDecide:
    cfg = Validation()  # min_persistence 3, min_size_px 12, covered_fraction 0.5
    frames = (0, 5, 10, 15, 20)

    def leaks(self, findings: list[Finding], regions: dict[int, list[Region]] | None = None) -> int:
        _, chains, _ = decide(self.frames, findings, regions or {}, self.cfg)
        return len(chains)

    def test_haar_alone_on_two_samples_is_noise(self) -> None:
        assert self.leaks([face(0, 50, 50), face(5, 52, 50)]) == 0

    def test_haar_alone_on_three_consecutive_samples_is_a_leak(self) -> None:
        assert self.leaks([face(0, 50, 50), face(5, 52, 50), face(10, 55, 51)]) == 1

    def test_findings_that_jump_around_do_not_chain(self) -> None:
        assert self.leaks([face(0, 10, 10), face(5, 150, 10), face(10, 10, 150)]) == 0

    def test_a_small_face_under_a_panning_camera_chains_along_its_motion(self) -> None:
        # Held-out pan-subpixel at 1080p: a 33 px face moving 47 px (and 6 up) between samples,
        # found by one family on every sample: each find lies 1.4 sizes from the one before.
        moving = [face(f, 485 - 47 * k, 329 - 6 * k, size=33, family="mtcnn") for k, f in enumerate(self.frames)]
        _, chains, _ = decide(self.frames, moving, {}, self.cfg)
        assert len(chains) == 1 and chains[0].samples == 5

    def test_after_a_move_the_next_find_must_follow_it(self) -> None:
        # Two spots of texture 60 px apart (1.5 sizes), flickering: A, B, then B again. The move
        # A -> B would carry a third find to 170 px; B standing still is not that motion.
        a, b = (50, 50), (110, 50)
        assert self.leaks([face(0, *a), face(5, *b), face(10, *b)]) == 0
        assert self.leaks([face(0, *a), face(5, *b), face(10, 170, 52)]) == 1

    def test_a_move_is_only_a_first_link(self) -> None:
        # Still for two samples, then 60 px away: a static chain does not jump.
        assert self.leaks([face(0, 50, 50), face(5, 52, 50), face(10, 112, 50)]) == 0

    def test_a_gap_between_samples_breaks_the_chain(self) -> None:
        assert self.leaks([face(0, 50, 50), face(5, 50, 50), face(15, 50, 50), face(20, 50, 50)]) == 0

    def test_two_families_agreeing_in_one_frame_are_a_leak_at_once(self) -> None:
        assert self.leaks([face(10, 50, 50, family="haar"), face(10, 53, 48, family="centerface")]) == 1

    def test_findings_inside_obscured_boxes_are_ignored(self) -> None:
        regions = {f: [Region(40, 40, 100, 100, True)] for f in self.frames}
        counts, chains, candidates = decide(self.frames, [face(f, 50, 50) for f in self.frames], regions, self.cfg)
        assert (counts["covered"], len(chains), candidates) == (5, 0, [])

    def test_findings_below_the_minimum_size_are_ignored(self) -> None:
        counts, chains, _ = decide(self.frames, [face(f, 50, 50, size=8) for f in self.frames], {}, self.cfg)
        assert (counts["too_small"], len(chains)) == (5, 0)

    def test_centerface_alone_below_its_alone_threshold_is_set_aside(self) -> None:
        # A cat's face: the strong CenterFace alone, 0.10-0.19, on every sample, 400 px wide.
        weak = [face(f, 300, 20, size=400, family="centerface", score=0.1 + f / 250) for f in self.frames]
        counts, chains, candidates = decide(self.frames, weak, {}, self.cfg)
        assert (len(chains), counts["centerface_alone"], len(candidates)) == (0, 5, 5)

    def test_centerface_alone_counts_from_its_alone_threshold(self) -> None:
        findings = [face(f, 300, 20, size=400, family="centerface", score=0.35) for f in self.frames]
        counts, chains, _ = decide(self.frames, findings, {}, self.cfg)
        assert (len(chains), counts["centerface_alone"]) == (0, 5)
        findings[2] = face(10, 300, 20, size=400, family="centerface", score=0.5)
        counts, chains, _ = decide(self.frames, findings, {}, self.cfg)
        assert (len(chains), counts["centerface_alone"]) == (1, 0)  # the whole chain, weak samples too

    def test_a_small_spot_centerface_alone_scores_low_is_set_aside_too(self) -> None:
        # A 16 px spot of the rocket photograph at 1080p: 0.10-0.18 on every sample.
        assert self.leaks([face(f, 6, 489, size=16, family="centerface", score=0.18) for f in self.frames]) == 0
        assert self.leaks([face(f, 6, 489, size=16, family="centerface", score=0.6) for f in self.frames]) == 1

    def test_a_weak_centerface_chain_that_mtcnn_agrees_with_is_a_leak(self) -> None:
        weak = [face(f, 300, 20, size=400, family="centerface", score=0.12) for f in self.frames]
        assert self.leaks([*weak, face(15, 310, 30, size=380, family="mtcnn", score=0.9)]) == 1

    def test_another_familys_finding_that_does_not_agree_counts_on_its_own(self) -> None:
        # A 12x20 px MTCNN spot beside the cat's face joins its chain once (centres close for a
        # 400 px box): the chain is the cat's weak findings and one spot, not a leak.
        weak = [face(f, 300, 20, size=400, family="centerface", score=0.12) for f in self.frames]
        counts, chains, _ = decide(self.frames, [*weak, face(20, 420, 150, size=16, family="mtcnn")], {}, self.cfg)
        assert (len(chains), counts["centerface_alone"]) == (0, 5)
        spots = [face(f, 420, 150, size=16, family="mtcnn") for f in self.frames]
        assert self.leaks([*weak, *spots]) == 1  # ...unless the spot itself persists

    def test_the_rule_is_centerfaces_only(self) -> None:
        assert self.leaks([face(f, 300, 20, size=400, family="mtcnn", score=0.12) for f in self.frames]) == 1

    def test_the_alone_threshold_is_not_below_the_finding_threshold(self) -> None:
        with pytest.raises(ValueError, match="centerface_alone_threshold"):
            ValidationDetectors(centerface_threshold=0.3, centerface_alone_threshold=0.2)
        assert ValidationDetectors().centerface_alone_threshold == 0.5

    def test_the_turned_passes_are_checked_when_the_policy_is_read(self) -> None:
        with pytest.raises(ValueError, match="centerface_tilt_angles must each"):
            ValidationDetectors(centerface_tilt_angles=(120,))
        with pytest.raises(ValueError, match="needs centerface: true"):
            ValidationDetectors(centerface=False, centerface_tilt_angles=(60,))
        assert ValidationDetectors().centerface_tilt_angles == ()  # off unless a policy asks

    @pytest.mark.parametrize("samples", [1, 2])
    def test_a_clip_shorter_than_the_persistence_needs_every_sample(self, samples: int) -> None:
        frames = self.frames[:samples]
        _, chains, _ = decide(frames, [face(f, 50, 50) for f in frames], {}, self.cfg)
        assert len(chains) == 1
