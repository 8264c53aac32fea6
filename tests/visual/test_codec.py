"""Tests for redactd.visual.codec through redact_video: sizes, formats, rates, audio and metadata."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from redactd.errors import InputError, UnsupportedMediaError
from redactd.policy import Limits, RedactionPolicy
from redactd.visual import redact_video, render
from redactd.visual.audio import AAC_LAYOUTS, AAC_SIDE_TO_BACK, decoder_layout, native_decoder_layout
from redactd.visual.codec import FramePlan, VideoInfo, probe, to_bgr
from redactd.visual.detect import CompositeDetector
from tests.visual import synth
from tests.visual.conftest import tweak
from tests.visual.probe import ffprobe, h264_nal_types, non_structural_tags, top_level_boxes


def small_clip(path: Path, width: int = 320, height: int = 240, frames: int = 6, fps: int = 25,
               **kw: object) -> synth.Clip:
    return synth.make_clip(path, width, height, frames, [synth.astronaut(40, width // 3, height // 4)],
                           fps=fps, **kw)  # type: ignore[arg-type]


def first_channel(frame: av.AudioFrame) -> np.ndarray:
    if frame.format.name == "fltp":
        # PyAV 18.1 lists one plane too many for 8-channel planar audio, and to_ndarray() then
        # reads a pointer that is not there (a segfault): take the first plane alone.
        return np.frombuffer(memoryview(frame.planes[0]), np.float32)[: frame.samples]
    return frame.to_ndarray()[0]


def dominant_hz(path: Path) -> float:
    with av.open(str(path)) as c:
        samples = np.concatenate([first_channel(f) for f in c.decode(audio=0)])
        rate = c.streams.audio[0].codec_context.sample_rate
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=120, capture_output=True)


def tone_clip(path: Path, audio: str = "", rate: int = 48000, seconds: float = 1.0, mix: str = "",
              delay: float = 0.0) -> Path:
    """A 160x120 test pattern with a 440 Hz tone, both ``seconds`` long, made by the ffmpeg CLI.

    ``audio`` is more ffmpeg arguments (codec, channels), ``mix`` a filter graph from the tone to
    the audio written, ``delay`` how much later the tone starts; the video codec follows the
    container: MJPEG in AVI, MPEG-2 in MPEG-TS, WMV in ASF, x264 (ultrafast) elsewhere.
    """
    video = {".avi": ["mjpeg"], ".ts": ["mpeg2video"], ".wmv": ["wmv2"]}.get(path.suffix,
                                                                           ["libx264", "-preset", "ultrafast"])
    sound = ["-filter_complex", f"[1:a]{mix}[a]", "-map", "[a]"] if mix else ["-map", "1:a"]
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s=160x120:r=25:d={seconds}",
           "-itsoffset", str(delay), "-f", "lavfi", "-i", f"sine=f=440:r={rate}:d={seconds}",
           "-map", "0:v", *sound, "-c:v", *video, *audio.split(), str(path))
    return path


def audio_end(path: Path) -> float:
    """When the first audio stream's last decoded sample ends, in seconds after the first video frame.

    Compared between input and output it checks length and place against the picture together
    (the output starts at zero where an MPEG-TS input starts at 1.4 s), and it does not count the
    AAC encoder's priming, which an MP4 cannot cut when the audio does not start at zero.
    """
    end = 0.0
    with av.open(str(path)) as c:
        first_frame = next(c.decode(video=0)).time or 0.0
    with av.open(str(path)) as c:
        native_decoder_layout(c.streams.audio[0], path)  # PyAV aborts on some layouts (7.1 PCM in MOV)
        for f in c.decode(audio=0):  # a frame without a time (WMA's last) follows the one before
            end = (float(f.time) if f.time is not None else end) + f.samples / f.sample_rate
    return end - first_frame


def audio_packets(path: Path) -> tuple[str, list[bytes]]:
    """The first audio stream's codec and the payload of each of its packets.

    ADTS headers (AAC in MPEG-TS has them) are left out: MP4 and Matroska carry AAC without.
    """
    def payload(data: bytes) -> bytes:
        if data[:1] == b"\xff" and data[1] & 0xF6 == 0xF0:  # ADTS sync word, layer 0
            return data[7 if data[1] & 1 else 9:]
        return data

    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        return stream.codec_context.codec.canonical_name, [payload(bytes(p)) for p in c.demux(stream) if p.size]


def decode_errors(path: Path) -> str:
    """What the ffmpeg CLI says when it decodes every stream of ``path`` (nothing when clean)."""
    out = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
                         check=True, capture_output=True, text=True, timeout=60)
    return out.stderr.strip()


def pattern(rate: int = 25, seconds: float = 0.4, size: str = "160x120") -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=s={size}:r={rate}:d={seconds}"]


def frame_times(path: Path) -> list[float]:
    """Every video frame's presentation time in seconds, as ffprobe reads them."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, timeout=30, check=True)
    return [float(line.strip(",")) for line in out.stdout.split()]


def video_stream(path: Path) -> dict[str, object]:
    (video,) = [s for s in ffprobe(path)["streams"] if s["codec_type"] == "video"]
    return video


def audio_lead(path: Path) -> float:
    """Seconds from the first video frame to the first audible sample (a tone's onset)."""
    with av.open(str(path)) as c:
        first_frame = next(c.decode(video=0)).time
    with av.open(str(path)) as c:
        for frame in c.decode(audio=0):
            loud = np.nonzero(np.abs(frame.to_ndarray().reshape(-1, frame.samples)[0]) > 0.05)[0]
            if len(loud):
                return frame.time + loud[0] / frame.sample_rate - first_frame
    raise AssertionError(f"{path.name}: no audible audio")


class TestFramePlan:
    INFO = VideoInfo(1920, 1080, "yuv420p", Fraction(60), 600, 10.0, None)

    def test_without_caps_keeps_size_and_rate(self) -> None:
        plan = FramePlan.from_limits(self.INFO, Limits())
        assert (plan.width, plan.height, plan.max_fps, plan.frames) == (1920, 1080, None, 600)

    def test_height_cap_keeps_the_aspect_ratio_in_even_sizes(self) -> None:
        plan = FramePlan.from_limits(self.INFO, Limits(max_height=721))
        assert (plan.width, plan.height) == (1280, 720)

    @pytest.mark.parametrize(("size", "capped"), [
        ((1080, 1920), (1080, 1920)),  # portrait-coded 1080p: already at the cap
        ((2160, 3840), (1080, 1920)),  # portrait-coded 4K
        ((1920, 1080), (1920, 1080)),
        ((3840, 2160), (1920, 1080)),
        ((1440, 1440), (1080, 1080)),
    ])
    def test_height_cap_is_on_the_shorter_side_so_portrait_coded_video_is_capped_like_landscape(
            self, size: tuple[int, int], capped: tuple[int, int]) -> None:
        info = VideoInfo(*size, "yuv420p", Fraction(30), 30, 1.0, None)
        plan = FramePlan.from_limits(info, Limits(max_height=1080))
        assert (plan.width, plan.height) == capped

    def test_rate_cap_applies_only_above_the_cap(self) -> None:
        assert FramePlan.from_limits(self.INFO, Limits(max_fps=30)).frames == 300
        assert FramePlan.from_limits(self.INFO, Limits(max_fps=120)).max_fps is None


class TestToBgr:
    @pytest.mark.parametrize("size", [(320, 240), (480, 270), (426, 240), (482, 270)])
    def test_matches_ffmpegs_conversion_whatever_the_chroma_rows(self, size: tuple[int, int]) -> None:
        from skimage import data

        width, height = size
        rgb = np.ascontiguousarray(data.astronaut()[:height, :width])
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        ours = to_bgr(frame).astype(int)
        assert ours.shape == (height, width, 3)
        assert np.abs(ours - frame.to_ndarray(format="bgr24").astype(int)).max() <= 4
        assert np.abs(ours[..., ::-1] - rgb).mean() < 2


class TestMainVideoStream:
    def test_the_largest_picture_is_redacted_whatever_its_stream_order(
            self, tmp_path: Path, policy: RedactionPolicy, detector: CompositeDetector) -> None:
        main = small_clip(tmp_path / "main.mp4", 320, 240, frames=4)
        thumb = tmp_path / "thumb.mp4"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "color=red:s=160x120:r=25:d=0.16",
                        "-c:v", "libx264", str(thumb)], check=True, timeout=60)
        both = tmp_path / "both.mkv"  # the small stream first, as a preview track would be
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(thumb), "-i", str(main.path),
                        "-map", "0:v", "-map", "1:v", "-c", "copy", str(both)], check=True, timeout=60)
        info = probe(both)
        assert (info.width, info.height, info.other_video) == (320, 240, 1)
        result = redact_video(both, tmp_path / "out.mp4", policy, detector=detector)
        assert (result.width, result.height, result.frames) == (320, 240, 4)
        assert result.boxes_detected > 0  # the face in the main picture was found


class TestProbe:
    def test_rejects_audio_only_files(self, tmp_path: Path) -> None:
        path = tmp_path / "a.m4a"
        with av.open(str(path), "w") as out:
            synth.write_tone(out, synth._tone_stream(out), 440, 0.2)
        with pytest.raises(UnsupportedMediaError, match="no video stream"):
            probe(path)


class TestOutputFile:
    @pytest.mark.parametrize("size", [(640, 360), (854, 480), (480, 270)])  # 270: odd chroma rows
    def test_frame_size_and_pixel_format_equal_the_input(self, tmp_path: Path, policy: RedactionPolicy,
                                                         detector: CompositeDetector, size: tuple[int, int]) -> None:
        clip = small_clip(tmp_path / "in.mp4", *size, frames=3)
        redact_video(clip.path, tmp_path / "out.mp4", policy, detector=detector)
        (video,) = [s for s in ffprobe(tmp_path / "out.mp4")["streams"] if s["codec_type"] == "video"]
        assert (video["width"], video["height"], video["pix_fmt"]) == (*size, "yuv420p")
        assert (video["coded_width"], video["coded_height"]) == size  # no 1088-style padding

    def test_1080p_stays_1080_lines(self, tmp_path: Path, policy: RedactionPolicy,
                                    detector: CompositeDetector) -> None:
        clip = small_clip(tmp_path / "in.mp4", 1920, 1080, frames=3)
        result = redact_video(clip.path, tmp_path / "out.mp4", policy, detector=detector)
        (video,) = ffprobe(tmp_path / "out.mp4")["streams"]
        assert (video["width"], video["height"], result.width, result.height) == (1920, 1080, 1920, 1080)

    def test_an_odd_sized_frame_keeps_its_size_in_444(self, tmp_path: Path, policy: RedactionPolicy,
                                                      detector: CompositeDetector) -> None:
        # VP9 can code 4:2:0 at 321x241; x264 cannot, so the output moves to 4:4:4, not to 320x240.
        clip = small_clip(tmp_path / "in.mp4", frames=3)
        odd = tmp_path / "odd.webm"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(clip.path), "-vf", "scale=321:241",
                        "-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", str(odd)],
                       check=True, timeout=60, capture_output=True)
        redact_video(odd, tmp_path / "out.mp4", policy, detector=detector)
        (video,) = ffprobe(tmp_path / "out.mp4")["streams"]
        assert (video["width"], video["height"], video["pix_fmt"]) == (321, 241, "yuv444p")

    def test_keeps_a_444_pixel_format(self, tmp_path: Path, policy: RedactionPolicy,
                                      detector: CompositeDetector) -> None:
        clip = small_clip(tmp_path / "in.mp4", pix_fmt="yuv444p", frames=3)
        redact_video(clip.path, tmp_path / "out.mp4", policy, detector=detector)
        assert ffprobe(tmp_path / "out.mp4")["streams"][0]["pix_fmt"] == "yuv444p"
        leaked, _, _ = synth.leaked_face_frames(synth.decode_gray(clip.path),
                                                synth.decode_gray(tmp_path / "out.mp4"), clip.faces)
        assert leaked == 0

    def test_carries_no_metadata_sei_or_extra_streams(self, tmp_path: Path, policy: RedactionPolicy,
                                                      detector: CompositeDetector) -> None:
        clip = small_clip(tmp_path / "in.mp4", audio_hz=440.0)
        assert 6 in h264_nal_types(clip.path)  # x264 put its SEI banner in the input...
        tagged = tmp_path / "tagged.mp4"
        with av.open(str(clip.path)) as src, av.open(str(tagged), "w") as dst:
            dst.metadata.update({"title": "Jane at home", "location": "+52.3740+004.8897/",
                                 "creation_time": "2024-05-01T10:00:00Z", "comment": "serial 12345"})
            streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
            for packet in src.demux():
                if packet.dts is not None:
                    packet.stream = streams[packet.stream.index]
                    dst.mux(packet)
        keep = tweak(policy, audio="keep")
        redact_video(tagged, tmp_path / "out.mp4", keep, detector=detector)
        info = ffprobe(tmp_path / "out.mp4")
        assert non_structural_tags(info) == {}
        assert info["chapters"] == []
        assert sorted(s["codec_type"] for s in info["streams"]) == ["audio", "video"]
        assert 6 not in h264_nal_types(tmp_path / "out.mp4")  # ...and it is gone from the output
        raw = (tmp_path / "out.mp4").read_bytes()
        assert b"x264" not in raw and b"Lavf" not in raw and b"Jane" not in raw

    def test_mp4_has_faststart(self, tmp_path: Path, policy: RedactionPolicy, detector: CompositeDetector) -> None:
        clip = small_clip(tmp_path / "in.mp4")
        redact_video(clip.path, tmp_path / "out.mp4", policy, detector=detector)
        boxes = top_level_boxes(tmp_path / "out.mp4")
        assert boxes.index("moov") < boxes.index("mdat")

    def test_encoder_and_crf_come_from_the_policy(self, tmp_path: Path, policy: RedactionPolicy,
                                                  detector: CompositeDetector) -> None:
        clip = small_clip(tmp_path / "in.mp4", frames=4)
        sizes = {}
        for crf in (10, 40):
            pol = tweak(policy, **{"encode.crf": crf, "encode.preset": "ultrafast"})
            redact_video(clip.path, tmp_path / f"{crf}.mp4", pol, detector=detector)
            sizes[crf] = (tmp_path / f"{crf}.mp4").stat().st_size
        assert sizes[10] > 2 * sizes[40]

    def test_writes_matroska_for_an_mkv_name(self, tmp_path: Path, policy: RedactionPolicy,
                                             detector: CompositeDetector) -> None:
        clip = small_clip(tmp_path / "in.mp4", frames=3)
        redact_video(clip.path, tmp_path / "out.mkv", tweak(policy, **{"output.container": "auto"}),
                     detector=detector)
        info = ffprobe(tmp_path / "out.mkv")
        assert "matroska" in info["format"]["format_name"]
        # Matroska always writes its WritingApp element ("Lavf" alone under bitexact: no version)
        # and a per-stream DURATION; neither says anything about the footage.
        assert non_structural_tags(info) == {"encoder": "Lavf", "stream0:DURATION": "00:00:00.120000000"}


class TestAudio:
    @pytest.fixture()
    def clip(self, tmp_path: Path) -> synth.Clip:
        return small_clip(tmp_path / "in.mp4", frames=25, audio_hz=440.0)

    def test_drop_removes_the_audio_stream(self, tmp_path: Path, clip: synth.Clip, policy: RedactionPolicy,
                                           detector: CompositeDetector) -> None:
        redact_video(clip.path, tmp_path / "out.mp4", tweak(policy, audio="drop"), detector=detector)
        assert [s["codec_type"] for s in ffprobe(tmp_path / "out.mp4")["streams"]] == ["video"]

    def test_keep_copies_the_audio_unchanged(self, tmp_path: Path, clip: synth.Clip, policy: RedactionPolicy,
                                             detector: CompositeDetector) -> None:
        redact_video(clip.path, tmp_path / "out.mp4", tweak(policy, audio="keep"), detector=detector)
        audio = [s for s in ffprobe(tmp_path / "out.mp4")["streams"] if s["codec_type"] == "audio"]
        assert len(audio) == 1 and audio[0]["codec_name"] == "aac"
        assert abs(dominant_hz(tmp_path / "out.mp4") - 440) < 3

    def test_anonymize_by_pitch_shift_shifts_the_pitch_and_keeps_the_length(self, tmp_path: Path, clip: synth.Clip,
                                                             policy: RedactionPolicy,
                                                             detector: CompositeDetector) -> None:
        redact_video(clip.path, tmp_path / "out.mp4",
                     tweak(policy, **{"audio": "anonymize", "speech.anonymizer": "pitch_shift"}), detector=detector)
        hz = dominant_hz(tmp_path / "out.mp4")
        # the factor is drawn from 0.78-0.85 or 1.18-1.25: at least 15 % (2.8 semitones) away, less
        # FFT bin noise; 12 % keeps the test off that edge
        assert abs(hz - 440) > 440 * 0.12
        info = ffprobe(tmp_path / "out.mp4")
        (audio,) = [s for s in info["streams"] if s["codec_type"] == "audio"]
        assert abs(float(audio["duration"]) - 1.0) < 0.1

    @pytest.mark.parametrize("audio", ["keep", "anonymize"])
    def test_an_audio_track_without_frames_is_reported_as_no_audio(
            self, tmp_path: Path, policy: RedactionPolicy, detector: CompositeDetector, audio: str) -> None:
        from redactd.metadata.verify import verify_clean

        # The MP4 muxer leaves an empty track out; the daemon then expected one audio stream
        # and failed the job with "0 audio stream(s), expected 1".
        src = tmp_path / "in.mkv"
        ffmpeg(*pattern(), "-f", "lavfi", "-i", "sine=d=0.4", "-map", "0:v", "-map", "1:a", "-c:v", "libx264",
               "-c:a", "aac", "-frames:a", "0", str(src))
        assert probe(src).audio_codec == "aac"
        result = redact_video(src, tmp_path / "out.mp4", tweak(policy, audio=audio), detector=detector)
        assert result.audio == "none"
        verify_clean(tmp_path / "out.mp4", expect_video=1, expect_audio=0)

    @pytest.mark.parametrize("audio", ["keep", "anonymize"])
    @pytest.mark.parametrize(("delay", "codec", "ext"), [
        pytest.param("0.5", "pcm_s16le", "mov", id="pcm-in-mov"),  # re-encoded to AAC either way
        pytest.param("0.3", "aac", "mp4", id="aac-in-mp4"),  # copied by keep
        pytest.param("0", "aac", "ts", id="mpeg-ts"),  # starts at 1.4 s, the audio a little before the video
    ])
    def test_keeps_its_offset_from_the_video(self, tmp_path: Path, policy: RedactionPolicy,
                                             detector: CompositeDetector, delay: str, codec: str, ext: str,
                                             audio: str) -> None:
        src = tmp_path / f"in.{ext}"
        ffmpeg(*pattern(seconds=1), "-itsoffset", delay, "-f", "lavfi", "-i", "sine=f=440:r=48000:d=1",
               "-c:v", "libx264", "-c:a", codec, str(src))
        redact_video(src, tmp_path / "out.mp4", tweak(policy, audio=audio), detector=detector)
        # Within half an AAC frame (21 ms): re-encoded audio used to start at zero whatever its offset.
        assert audio_lead(tmp_path / "out.mp4") == pytest.approx(audio_lead(src), abs=0.01)
        starts = [float(s["start_time"]) for s in ffprobe(tmp_path / "out.mp4")["streams"]]
        assert min(starts) == 0 and max(starts) < float(delay) + 0.03


def _spread(channels: int) -> str:
    """A filter graph putting the mono tone on ``channels`` channels."""
    return f"asplit={channels}" + "".join(f"[c{i}]" for i in range(channels)) + ";" + \
        "".join(f"[c{i}]" for i in range(channels)) + f"amerge=inputs={channels}"


def _mp2_that_changes_mid_stream(folder: Path) -> Path:
    """MP2 in Matroska whose first half is mono at 48 kHz and second half stereo at 44.1 kHz:
    two MP2 streams joined byte for byte, as broadcast recordings switch programmes."""
    halves = []
    for channels, rate in ((1, 48000), (2, 44100)):
        half = folder / f"{channels}.mp2"
        ffmpeg("-f", "lavfi", "-i", f"sine=f=440:r={rate}:d=0.5", "-ac", str(channels), "-c:a", "mp2", str(half))
        halves.append(half.read_bytes())
    joined = folder / "joined.mp2"
    joined.write_bytes(b"".join(halves))
    path = folder / "in.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=1", "-i", str(joined),
           "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "copy", str(path))
    return path


#: Inputs whose audio must be re-encoded to AAC: name, how to make it in a folder, and the
#: channels, layout and rate the output should have.
REENCODED: dict[str, tuple[Callable[[Path], Path], int, str, int]] = {
    # PCM in AVI states a channel count but no positions ("2 channels"): AAC needs a layout.
    "pcm-stereo-avi": (lambda d: tone_clip(d / "in.avi", "-c:a pcm_s16le -ac 2"), 2, "stereo", 48000),
    "pcm-mono-avi": (lambda d: tone_clip(d / "in.avi", "-c:a pcm_s16le -ac 1"), 1, "mono", 48000),
    # WMA, also without positions, keeps its last frame in the decoder until told the stream ended.
    "wma-asf": (lambda d: tone_clip(d / "in.wmv", "-c:a wmav2 -ac 2"), 2, "stereo", 48000),
    # MP2 in MPEG-TS is announced as fltp and decodes to s16p.
    "mp2-ts": (lambda d: tone_clip(d / "in.ts", "-c:a mp2"), 1, "mono", 48000),
    "pcm-8khz-mkv": (lambda d: tone_clip(d / "in.mkv", "-c:a pcm_s16le", rate=8000), 1, "mono", 8000),
    # AAC stops at 96 kHz.
    "pcm-192khz-mkv": (lambda d: tone_clip(d / "in.mkv", "-c:a pcm_s16le", rate=192000), 1, "mono", 96000),
    # 5.1 with side surrounds (AC-3's) needs a PCE in AAC, which decoders read back without positions.
    "ac3-5.1side-mkv": (lambda d: tone_clip(d / "in.mkv", "-c:a ac3 -ac 6"), 6, "5.1", 48000),
    # More channels than AAC carries (PCM in Matroska keeps no positions): 16 are taken as
    # FFmpeg's 16-channel layout and downmixed to 7.1; 9 have no such layout and become mono.
    "pcm-16ch-mkv": (lambda d: tone_clip(d / "in.mkv", "-c:a pcm_s16le", mix=_spread(16)), 8, "7.1", 48000),
    "pcm-9ch-mkv": (lambda d: tone_clip(d / "in.mkv", "-c:a pcm_s16le", mix=_spread(9)), 1, "mono", 48000),
    # AVI keeps the positions amerge gives 10 channels, a left side speaker without a right one,
    # which swresample refuses to mix from: mono too.
    "pcm-10ch-lopsided-avi": (lambda d: tone_clip(d / "in.avi", "-c:a pcm_s16le", mix=_spread(10)),
                              1, "mono", 48000),
    # 7.1 PCM in MOV, side surrounds before back ones as cameras write it: FFmpeg 8 gives it a
    # custom-order layout, on which PyAV 17-18 aborted the process (double free) at the first frame.
    "pcm-7.1-mov": (lambda d: tone_clip(d / "in.mov", "-c:a pcm_s16le", mix="pan=7.1|" + "|".join(
        f"c{i}=c0" for i in range(8))), 8, "7.1", 48000),
    # Audio half a second behind the video start stays there.
    "pcm-starts-late-mov": (lambda d: tone_clip(d / "in.mov", "-c:a pcm_s16le", delay=0.5), 1, "mono", 48000),
    # The output is set up from the header (mono, 48 kHz); the stereo 44.1 kHz half is fitted to it.
    "mp2-changes-mid-stream-mkv": (_mp2_that_changes_mid_stream, 1, "mono", 48000),
}


@pytest.fixture(scope="module")
def reencoded_input(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """The `REENCODED` input of that name, made once for the module."""
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            made[name] = REENCODED[name][0](tmp_path_factory.mktemp(name))
        return made[name]

    return get


class TestDecoderLayout:
    """The layout a decoder is given in place of its stream's (PyAV aborts on custom orders)."""

    @pytest.mark.parametrize(("channels", "described", "expected"), [
        (8, "7.1", "7.1"),
        (6, "5.1(side)", "5.1(side)"),
        (1, "mono", "mono"),
        # native but unnamed: the same positions, so the lopsided stays lopsided (and mono later)
        (10, "10 channels (FL+FR+FC+LFE+BL+BR+FLC+FRC+BC+SL)", "10 channels (FL+FR+FC+LFE+BL+BR+FLC+FRC+BC+SL)"),
        # in no native order for ffprobe either: FFmpeg's default for two channels
        (2, "2 channels (FR+FL)", "stereo"),
    ])
    def test_is_native_and_keeps_the_positions_ffprobe_reads(self, channels: int, described: str,
                                                             expected: str) -> None:
        name = decoder_layout(channels, described)
        assert name is not None
        assert av.AudioLayout(name).name == expected

    @pytest.mark.parametrize(("channels", "described"), [(9, ""), (2, "bogus"), (0, "stereo"), (6, "stereo")])
    def test_is_none_without_positions_or_with_a_wrong_count(self, channels: int, described: str) -> None:
        assert decoder_layout(channels, described) is None


class TestAudioInputs:
    """Audio from hostile or unusual inputs comes out decodable, with a layout and rate AAC carries."""

    @pytest.mark.parametrize(("name", "mode"), [
        *[(name, mode) for name in REENCODED for mode in ("keep", "anonymize") if name != "ac3-5.1side-mkv"],
        ("ac3-5.1side-mkv", "anonymize"),  # kept, AC-3 is copied
        # The speech pass decodes the audio on its own first: it must see the same frames.
        *[(name, "mute_speech") for name in ("pcm-16ch-mkv", "pcm-starts-late-mov", "mp2-changes-mid-stream-mkv",
                                              "pcm-7.1-mov")],
    ])
    def test_is_reencoded_to_aac_it_can_carry(self, tmp_path: Path, policy: RedactionPolicy,
                                              detector: CompositeDetector, reencoded_input: Callable[[str], Path],
                                              name: str, mode: str) -> None:
        src = reencoded_input(name)
        _, channels, layout, rate = REENCODED[name]
        out = tmp_path / "out.mp4"
        # anonymize as the whole-track pitch shift: a tone holds no speech for McAdams to warp
        redact_video(src, out, tweak(policy, **{"audio": mode, "speech.anonymizer": "pitch_shift"}), detector=detector)
        assert decode_errors(out) == ""
        (audio,) = [s for s in ffprobe(out)["streams"] if s["codec_type"] == "audio"]
        assert (audio["codec_name"], audio["channels"], int(audio["sample_rate"])) == ("aac", channels, rate)
        assert b"Lavc" not in out.read_bytes()  # no encoder banner in the first AAC packet
        with av.open(str(out)) as c:
            assert c.streams.audio[0].codec_context.layout.name == layout  # read back with positions
        hz = dominant_hz(out)
        assert abs(hz - 440) > 440 * 0.12 if mode == "anonymize" else abs(hz - 440) < 3  # a tone is no speech
        assert abs(audio_end(out) - audio_end(src)) <= 1024 / rate  # one AAC frame, in step with the video

    @pytest.mark.parametrize(("name", "audio"), [
        ("in.mp4", "-c:a libmp3lame"),  # PyAV decodes it with "mp3float", which is still MP3
        ("in.mkv", "-c:a ac3"),
        ("in.mkv", "-c:a libopus"),
        ("in.mkv", "-c:a flac"),
    ])
    def test_keep_copies_audio_an_mp4_holds(self, tmp_path: Path, policy: RedactionPolicy,
                                            detector: CompositeDetector, name: str, audio: str) -> None:
        src = tone_clip(tmp_path / name, audio)
        out = tmp_path / "out.mp4"
        redact_video(src, out, tweak(policy, audio="keep"), detector=detector)
        assert decode_errors(out) == ""
        assert audio_packets(out) == audio_packets(src)

    def test_keep_into_matroska_reencodes_what_matroska_cannot_hold(
            self, tmp_path: Path, policy: RedactionPolicy, detector: CompositeDetector) -> None:
        src = tone_clip(tmp_path / "in.mov", "-c:a pcm_mulaw")
        out = tmp_path / "out.mkv"
        redact_video(src, out, tweak(policy, **{"audio": "keep", "output.container": "auto"}), detector=detector)
        assert decode_errors(out) == ""
        (audio,) = [s for s in ffprobe(out)["streams"] if s["codec_type"] == "audio"]
        assert audio["codec_name"] == "aac"
        assert abs(dominant_hz(out) - 440) < 3

    def test_audio_that_does_not_decode_is_an_input_error(self, tmp_path: Path, policy: RedactionPolicy,
                                                           detector: CompositeDetector) -> None:
        clip = tone_clip(tmp_path / "in.mkv", "-c:a aac -ac 6")
        broken = tmp_path / "broken.mkv"
        noise = np.random.default_rng(1)
        with av.open(str(clip)) as src, av.open(str(broken), "w") as dst:
            streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
            audio = 0
            for packet in src.demux():
                if packet.dts is None:
                    continue
                out = streams[packet.stream.index]
                if packet.stream.type == "audio":
                    audio += 1
                    if 10 <= audio < 14:  # four AAC packets of random bytes
                        garbage = av.Packet(noise.bytes(packet.size))
                        garbage.pts, garbage.dts, garbage.time_base = packet.pts, packet.dts, packet.time_base
                        packet = garbage
                packet.stream = out
                dst.mux(packet)
        with pytest.raises(InputError, match="broken.mkv: audio decoding failed"):
            redact_video(broken, tmp_path / "out.mp4", tweak(policy, audio="anonymize"), detector=detector)
        assert not (tmp_path / "out.mp4").exists()

    def test_every_layout_it_writes_opens_the_aac_encoder(self) -> None:
        for layout in sorted(AAC_LAYOUTS | set(AAC_SIDE_TO_BACK.values())):
            ctx = av.codec.CodecContext.create("aac", "w")
            ctx.sample_rate, ctx.layout, ctx.format, ctx.time_base = 48000, layout, "fltp", Fraction(1, 48000)
            ctx.open()  # raises for a layout FFmpeg's AAC encoder does not take


class TestFrameRateCap:
    def test_halves_a_50fps_clip_to_25_before_detection(self, tmp_path: Path, policy: RedactionPolicy,
                                                        detector: CompositeDetector) -> None:
        clip = small_clip(tmp_path / "in.mp4", frames=50, fps=50)
        capped = tweak(policy, **{"limits.max_fps": 25})
        result = redact_video(clip.path, tmp_path / "out.mp4", capped, detector=detector)
        assert result.frames == 25  # the detector only saw the kept frames
        (video,) = ffprobe(tmp_path / "out.mp4")["streams"]
        assert video["avg_frame_rate"] == "25/1" and int(video["nb_frames"]) == 25
        assert abs(float(video["duration"]) - 1.0) < 0.05

    @pytest.mark.parametrize("size", ["320x240", "321x241"])
    def test_rgb_footage_keeps_its_colours(self, tmp_path: Path, policy: RedactionPolicy,
                                           detector: CompositeDetector, size: str) -> None:
        # Lossless RGB, as a screen recorder writes it, tagged with the "GBR" matrix. That tag
        # used to be copied onto the YUV output, so an odd-sized clip decoded in false colours
        # (13 dB); chroma was also resampled bilinearly (-3 dB on colour bars).
        src = tmp_path / "rgb.mkv"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", f"smptehdbars=s={size}:r=25:d=0.12",
                        "-f", "lavfi", "-i", f"rgbtestsrc=s={size}:r=25:d=0.12", "-filter_complex",
                        "[0][1]blend=all_mode=average,format=bgr0", "-c:v", "ffv1", str(src)], check=True, timeout=60)
        assert ffprobe(src)["streams"][0]["color_space"] == "gbr"
        out = tmp_path / "out.mp4"
        result = redact_video(src, out, tweak(policy, **{"encode.crf": 0}), detector=detector)
        assert result.boxes_detected == 0
        with av.open(str(src)) as a, av.open(str(out)) as b:
            want = next(a.decode(video=0)).to_ndarray(format="rgb24").astype(float)
            got = next(b.decode(video=0)).to_ndarray(format="rgb24").astype(float)
        psnr = 10 * np.log10(255**2 / ((got - want) ** 2).mean())
        assert psnr > 43, psnr

    @pytest.mark.parametrize(("bitstream", "container", "sar"), [
        ("4/3", None, "4:3"),  # in the H.264 stream itself, as DV or MPEG-2 carry it
        (None, "16:9", "4:3"),  # only in the container (`-aspect`): the container's wins, as in FFmpeg
        ("12/11", "4:3", "1:1"),  # H.263's stream says 12:11 where the 3GP around it says square
    ])
    def test_non_square_pixels_keep_their_aspect_ratio(self, tmp_path: Path, policy: RedactionPolicy,
                                                       detector: CompositeDetector, bitstream: str | None,
                                                       container: str | None, sar: str) -> None:
        coded, src = tmp_path / "coded.mp4", tmp_path / "sar.mp4"
        setsar = ["-vf", f"setsar={bitstream}"] if bitstream else []
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "color=gray:s=480x360:r=25:d=0.2",
                        *setsar, "-c:v", "libx264", str(coded)], check=True, timeout=60)
        aspect = ["-aspect", container] if container else []
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(coded), "-c", "copy", *aspect, str(src)],
                       check=True, timeout=60)
        assert ffprobe(src)["streams"][0]["sample_aspect_ratio"] == sar
        redact_video(src, tmp_path / "out.mp4", tweak(policy, **{"limits.max_height": 180}), detector=detector)
        (video,) = ffprobe(tmp_path / "out.mp4")["streams"]
        assert (video["width"], video["sample_aspect_ratio"]) == (240, sar)

    @pytest.mark.parametrize(("size", "capped"), [((640, 360), (426, 240)), ((360, 640), (240, 426))])
    def test_height_cap_scales_before_detection(self, tmp_path: Path, policy: RedactionPolicy,
                                                detector: CompositeDetector, size: tuple[int, int],
                                                capped: tuple[int, int]) -> None:
        clip = small_clip(tmp_path / "in.mp4", *size, frames=3)
        pol = tweak(policy, **{"limits.max_height": 240})
        result = redact_video(clip.path, tmp_path / "out.mp4", pol, detector=detector)
        (video,) = ffprobe(tmp_path / "out.mp4")["streams"]
        assert (video["width"], video["height"]) == (result.width, result.height) == capped


class TestTiming:
    """The output keeps the input's frame timing, from zero, whatever the container says or omits."""

    @pytest.mark.parametrize(("codec", "ext"), [
        # MPEG-TS starts at 1.4 s, MPEG-PS at 0.5 s: the output used to carry that as empty time.
        pytest.param(["-c:v", "mpeg2video", "-f", "mpegts"], "ts", id="mpeg-ts"),
        pytest.param(["-c:v", "mpeg2video", "-f", "vob"], "mpg", id="mpeg-ps"),
        pytest.param(["-c:v", "libx264", "-output_ts_offset", "3"], "mkv", id="ts-offset"),
        # Annex B elementary streams carry no timestamps: every frame came out at 0.
        pytest.param(["-c:v", "libx264", "-f", "h264"], "h264", id="raw-h264"),
        pytest.param(["-c:v", "libx265", "-x265-params", "log-level=error", "-f", "hevc"], "hevc", id="raw-hevc"),
        # Ogg gives no average rate: the clip was forced onto the 30 fps cap's grid.
        pytest.param(["-c:v", "libtheora"], "ogv", id="theora"),
    ])
    def test_first_frame_is_at_zero_and_every_frame_keeps_its_time(
            self, tmp_path: Path, policy: RedactionPolicy, detector: CompositeDetector, codec: list[str],
            ext: str) -> None:
        src = tmp_path / f"in.{ext}"
        ffmpeg(*pattern(), *codec, str(src))  # 10 frames at 25 fps
        result = redact_video(src, tmp_path / "out.mp4", policy, detector=detector)  # capped at 30 fps
        video = video_stream(tmp_path / "out.mp4")
        assert result.frames == 10
        assert float(video["start_time"]) == 0
        assert float(video["duration"]) == pytest.approx(0.4, abs=1e-3)
        assert frame_times(tmp_path / "out.mp4") == pytest.approx([i / 25 for i in range(10)], abs=1e-3)

    def test_dv_keeps_its_25_fps(self, tmp_path: Path, policy: RedactionPolicy, detector: CompositeDetector) -> None:
        # FFmpeg reports DV's average rate as 60000, which put it on the cap's grid. DV codes
        # 720x576 only: five frames keep the test short.
        src = tmp_path / "in.dv"
        ffmpeg(*pattern(seconds=0.2, size="720x576"), "-pix_fmt", "yuv420p", "-c:v", "dvvideo", str(src))
        result = redact_video(src, tmp_path / "out.mp4", policy, detector=detector)
        assert result.frames == 5
        assert float(video_stream(tmp_path / "out.mp4")["duration"]) == pytest.approx(0.2, abs=1e-3)
        assert frame_times(tmp_path / "out.mp4") == pytest.approx([i / 25 for i in range(5)], abs=1e-3)

    def test_rate_cap_applies_to_a_raw_stream(self, tmp_path: Path, policy: RedactionPolicy,
                                              detector: CompositeDetector) -> None:
        src = tmp_path / "in.h264"
        ffmpeg(*pattern(rate=60, seconds=0.5), "-c:v", "libx264", "-f", "h264", str(src))
        result = redact_video(src, tmp_path / "out.mp4", policy, detector=detector)  # capped at 30 fps
        assert result.frames == 15
        assert float(video_stream(tmp_path / "out.mp4")["duration"]) == pytest.approx(0.5, abs=1e-3)
        assert frame_times(tmp_path / "out.mp4") == pytest.approx([i / 30 for i in range(15)], abs=1e-3)

    @staticmethod
    def vfr_concat(tmp_path: Path, container: str) -> Path:
        """0.4 s at 25 fps, then 0.25 s at 60 fps: two frames closer than 1/average rate."""
        for rate, seconds in ((25, 0.4), (60, 0.25)):
            ffmpeg(*pattern(rate, seconds), "-c:v", "libx264", str(tmp_path / f"p{rate}.ts"))
        (tmp_path / "list.txt").write_text("file p25.ts\nfile p60.ts\n")
        src = tmp_path / f"vfr.{container}"
        ffmpeg("-f", "concat", "-safe", "0", "-i", str(tmp_path / "list.txt"), "-c", "copy", str(src))
        return src

    @staticmethod
    def vfr_jitter(tmp_path: Path, container: str) -> Path:
        """25 fps with each frame up to 60 ms late, in milliseconds: frames 1 ms apart happen."""
        src = tmp_path / f"jitter.{container}"
        ffmpeg(*pattern(seconds=1), "-vf", "settb=1/1000,setpts='(N/25+random(0)*0.06)/TB'", "-vsync", "vfr",
               "-enc_time_base", "1/1000", "-c:v", "libx264", "-bf", "0", str(src))
        return src

    @pytest.mark.parametrize("passes", [1, 2])
    @pytest.mark.parametrize(("build", "container"), [("vfr_concat", "mkv"), ("vfr_jitter", "mp4")])
    def test_variable_frame_rate_keeps_every_frames_time(
            self, tmp_path: Path, policy: RedactionPolicy, detector: CompositeDetector,
            monkeypatch: pytest.MonkeyPatch, build: str, container: str, passes: int) -> None:
        src = getattr(self, build)(tmp_path, container)
        if passes == 2:
            monkeypatch.setattr(render, "MAX_HELD_BYTES", 0)  # as a policy holding too many frames would
        uncapped = tweak(policy, **{"limits.max_fps": None})
        result = redact_video(src, tmp_path / "out.mp4", uncapped, detector=detector)
        before, after = frame_times(src), frame_times(tmp_path / "out.mp4")
        assert result.frames == len(after) == len(before)
        assert after == pytest.approx([t - before[0] for t in before], abs=1e-4)
        last = float(video_stream(tmp_path / "out.mp4")["duration"])
        assert last == pytest.approx(float(ffprobe(src)["format"]["duration"]), abs=0.041)  # mkv: 40 ms frames

    @pytest.mark.parametrize("passes", [1, 2])
    def test_rate_cap_thins_the_fast_part_of_variable_rate_footage(
            self, tmp_path: Path, policy: RedactionPolicy, detector: CompositeDetector,
            monkeypatch: pytest.MonkeyPatch, passes: int) -> None:
        src = self.vfr_concat(tmp_path, "mp4")  # 36 fps on average: capped
        if passes == 2:
            monkeypatch.setattr(render, "MAX_HELD_BYTES", 0)
        result = redact_video(src, tmp_path / "out.mp4", policy, detector=detector)  # capped at 30 fps
        before, after = frame_times(src), frame_times(tmp_path / "out.mp4")
        assert result.frames == len(after)
        assert after[:10] == pytest.approx(before[:10], abs=1e-4)  # 25 fps: every frame stays...
        assert after[10:] == pytest.approx(before[10::2], abs=1e-4)  # ...60 fps: every other one
        assert min(b - a for a, b in itertools.pairwise(after)) == pytest.approx(1 / 30, abs=1e-4)


class TestMetadataVerification:
    """The output passes the foundation's fail-closed verifier (exiftool, ffprobe, boxes, SEI)."""

    @pytest.mark.parametrize(("audio", "name", "codec"), [
        ("drop", "out.mp4", "libx264"), ("keep", "out.mp4", "libx264"), ("anonymize", "out.mp4", "libx264"),
        ("keep", "out.mkv", "libx264"), ("drop", "out.mp4", "libx265"),
    ])
    def test_output_passes_verify_clean(self, tmp_path: Path, policy: RedactionPolicy,
                                        detector: CompositeDetector, audio: str, name: str, codec: str) -> None:
        from redactd.metadata.verify import verify_clean

        clip = small_clip(tmp_path / "in.mp4", frames=4, audio_hz=440.0)
        pol = tweak(policy, **{"audio": audio, "output.container": "auto", "encode.codec": codec})
        redact_video(clip.path, tmp_path / name, pol, detector=detector)
        verify_clean(tmp_path / name, expect_video=1, expect_audio=0 if audio == "drop" else 1)

    @pytest.mark.parametrize(("name", "audio", "out"), [
        ("in.mp4", "-c:a alac", "out.mp4"),  # ALAC's configuration box
        ("in.ts", "-c:a aac", "out.mkv"),  # AAC from MPEG-TS in Matroska: an output sampling rate
    ])
    def test_copied_audio_passes_verify_clean(self, tmp_path: Path, policy: RedactionPolicy,
                                              detector: CompositeDetector, name: str, audio: str,
                                              out: str) -> None:
        from redactd.metadata.verify import verify_clean

        src = tone_clip(tmp_path / name, audio, seconds=0.2)
        redact_video(src, tmp_path / out, tweak(policy, **{"audio": "keep", "output.container": "auto"}),
                     detector=detector)
        assert audio_packets(tmp_path / out) == audio_packets(src)  # copied, not re-encoded
        verify_clean(tmp_path / out, expect_video=1, expect_audio=1)
