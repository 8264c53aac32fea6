"""Tests for `redactd redact` and `redactd preview`, run as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from tests.conftest import TEST_POLICIES, tmpfs
from tests.visual import synth
from tests.visual.conftest import REPO


def redactd(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "daemon")}
    return subprocess.run([sys.executable, "-m", "redactd", *args], capture_output=True, text=True,
                          check=False, timeout=120, env=env, cwd=cwd)


def run_on_terminal(argv: list[str], columns: int = 120) -> str:
    """Everything ``argv`` writes to a pseudo-terminal of ``columns`` columns (tqdm draws nothing
    on a terminal of width 0, which is what a new pty reports until it is given a size)."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(REPO / "daemon")}
    proc = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower, env=env, cwd=REPO)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child has exited and the terminal is drained
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    screen = b"".join(chunks).decode(errors="replace")
    assert proc.wait(timeout=120) == 0, screen[-2000:]
    return screen


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> synth.Clip:
    path = tmp_path_factory.mktemp("cli") / "in.mp4"
    return synth.make_clip(path, 320, 240, 10, [synth.astronaut(50, 100, 40, vx=2)],
                           stills=[(synth.plate(scale=0.8), 150, 180)])


class TestRedactCommand:
    def test_redacts_with_a_policy_id_and_prints_a_summary(self, tmp_path: Path, clip: synth.Clip) -> None:
        out, side = tmp_path / "out.mp4", tmp_path / "out.json"
        proc = redactd("redact", str(clip.path), "-o", str(out), "--policy", "visual-default",
                       "--sidecar", str(side))
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout)
        assert summary["frames"] == 10 and summary["size"] == "320x240" and summary["tracks"]["face"] >= 1
        assert set(summary["seconds"]) == {"wall", "decode", "detect", "track", "obscure", "encode"}
        fed = summary["model_input"]
        assert set(fed) == {"centerface-int8", "ppocrv4-det"}
        assert all(m["calls"] > 0 and m["mpx_per_frame"] > 0 for m in fed.values())
        assert out.stat().st_size > 0 and json.loads(side.read_text())["format"] == "redactd-detections"

    def test_a_dim_clip_is_looked_at_by_the_fp32_model_and_says_so(self, tmp_path: Path) -> None:
        from tests.visual import heldout_drawn

        dim = next(c for c in heldout_drawn.cases(101) if c.name.endswith("-dim")).build(tmp_path / "in.mp4", 720, 8)
        out, side = tmp_path / "out.mp4", tmp_path / "out.json"
        proc = redactd("redact", str(dim.path), "-o", str(out), "--policy", "visual-default", "--sidecar", str(side))
        assert proc.returncode == 0, proc.stderr
        fed = json.loads(proc.stdout)["model_input"]
        assert fed["centerface"]["calls"] > 0 and fed["centerface-int8"]["calls"] == 0
        assert {"centerface", "centerface-int8"} <= {m["name"] for m in json.loads(side.read_text())["models"]}

    def test_shows_a_progress_bar_in_frames_on_a_terminal(self, tmp_path: Path, clip: synth.Clip) -> None:
        out = tmp_path / "out.mp4"
        screen = run_on_terminal([sys.executable, "-m", "redactd", "redact", str(clip.path), "-o", str(out),
                                  "--policy", "visual-default"])
        bars = [line for line in screen.replace("\r", "\n").splitlines() if line.startswith("redact:")]
        # (tqdm gives the rate as s/frame below one frame a second: a loaded machine.)
        assert bars and "10/10" in bars[-1] and ("frame/s" in bars[-1] or "s/frame" in bars[-1]), screen[-500:]
        assert all("/20 " not in line for line in bars)  # frames, not frames times passes

    def test_accepts_a_policy_file_path(self, tmp_path: Path, clip: synth.Clip) -> None:
        proc = redactd("redact", str(clip.path), "-o", str(tmp_path / "o.mp4"),
                       "--policy", str(TEST_POLICIES / "visual-default.yaml"), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr

    def test_unknown_policy_is_a_config_error(self, tmp_path: Path, clip: synth.Clip) -> None:
        proc = redactd("redact", str(clip.path), "-o", str(tmp_path / "o.mp4"), "--policy", "nope")
        assert proc.returncode == 2 and "unknown redaction policy 'nope'" in proc.stderr

    def test_missing_input_is_an_input_error(self, tmp_path: Path) -> None:
        proc = redactd("redact", str(tmp_path / "none.mp4"), "-o", str(tmp_path / "o.mp4"))
        assert proc.returncode == 3 and "input file not found" in proc.stderr

    def test_refuses_to_overwrite_its_input(self, clip: synth.Clip) -> None:
        proc = redactd("redact", str(clip.path), "-o", str(clip.path))
        assert proc.returncode == 2 and "overwrite the input" in proc.stderr

    @pytest.mark.parametrize("sidecar_is", ["input", "output"])
    def test_refuses_a_sidecar_that_would_overwrite_the_input_or_the_output(
            self, tmp_path: Path, clip: synth.Clip, sidecar_is: str) -> None:
        src = tmp_path / "in.mp4"
        src.write_bytes(clip.path.read_bytes())
        out = tmp_path / "out.mp4"
        side = src if sidecar_is == "input" else out
        proc = redactd("redact", str(src), "-o", str(out), "--sidecar", str(side))
        assert proc.returncode == 2 and f"the sidecar would overwrite the {sidecar_is}" in proc.stderr
        assert src.read_bytes() == clip.path.read_bytes() and not out.exists()

    def test_replaces_an_existing_output_only_with_force(self, tmp_path: Path, clip: synth.Clip) -> None:
        out = tmp_path / "out.mp4"
        out.write_bytes(b"keep me")
        proc = redactd("redact", str(clip.path), "-o", str(out))
        assert proc.returncode == 2 and "already exists (use --force" in proc.stderr
        assert out.read_bytes() == b"keep me"
        proc = redactd("redact", str(clip.path), "-o", str(out), "--force")
        assert proc.returncode == 0, proc.stderr
        assert out.read_bytes()[4:8] == b"ftyp"

    @pytest.mark.parametrize("kind", ["directory", "fifo", "device"])
    def test_never_replaces_an_output_that_is_not_a_regular_file(self, tmp_path: Path, clip: synth.Clip,
                                                                 kind: str) -> None:
        # As root, os.replace onto /dev/null swapped the device node for a regular file.
        out = {"directory": tmp_path / "out.mp4", "fifo": tmp_path / "out.mp4", "device": Path("/dev/null")}[kind]
        if kind == "directory":
            out.mkdir()
        elif kind == "fifo":
            os.mkfifo(out)
        proc = redactd("redact", str(clip.path), "-o", str(out), "--force")
        described = {"directory": "a directory", "fifo": "a named pipe", "device": "a character device"}[kind]
        assert proc.returncode == 2 and f"the output path is {described}" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
        assert Path("/dev/null").is_char_device()

    @pytest.mark.parametrize("kind", ["directory", "fifo"])
    def test_an_input_that_is_not_a_file_is_named_for_what_it_is(self, tmp_path: Path, kind: str) -> None:
        src = tmp_path / "in.mp4"
        if kind == "directory":
            src.mkdir()
        else:
            os.mkfifo(src)
        proc = redactd("redact", str(src), "-o", str(tmp_path / "o.mp4"))
        assert proc.returncode == 3 and "not a video file" in proc.stderr and "not found" not in proc.stderr

    def test_a_read_only_output_folder_is_a_one_line_error(self, tmp_path: Path, clip: synth.Clip) -> None:
        with tmpfs(tmp_path / "ro", "ro,size=64k") as folder:
            proc = redactd("redact", str(clip.path), "-o", str(folder / "o.mp4"))
        assert proc.returncode == 4 and "Read-only file system" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr

    @pytest.mark.parametrize(("name", "policy", "message"), [
        ("o.webm", "visual-default", "name the output .mp4 or .mkv"),
        ("o", "visual-default", "name the output .mp4 or .mkv"),
        ("o.mkv", "visual-default", "policy 'visual-default' writes MP4 (output.container): name the output .mp4"),
    ])
    def test_an_output_name_must_match_the_container_written(self, tmp_path: Path, clip: synth.Clip,
                                                             name: str, policy: str, message: str) -> None:
        proc = redactd("redact", str(clip.path), "-o", str(tmp_path / name), "--policy", policy)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert not (tmp_path / name).exists()

    def test_not_a_video_is_an_input_error(self, tmp_path: Path) -> None:
        bogus = tmp_path / "x.mp4"
        bogus.write_bytes(b"\x00" * 1000)
        proc = redactd("redact", str(bogus), "-o", str(tmp_path / "o.mp4"))
        assert proc.returncode == 3 and "not a readable media file" in proc.stderr


class TestPreviewCommand:
    def test_a_policy_id_resolves_outside_a_checkout_from_the_shipped_examples(self, tmp_path: Path,
                                                                              clip: synth.Clip) -> None:
        png = tmp_path / "frame.png"
        proc = redactd("preview", str(clip.path), "--at", "0.2s", "-o", str(png), cwd=tmp_path)  # no ./policies here
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["boxes"]["face"] == 1

    def test_writes_the_frame_with_boxes_drawn(self, tmp_path: Path, clip: synth.Clip) -> None:
        png = tmp_path / "frame.png"
        proc = redactd("preview", str(clip.path), "--at", "0.2s", "-o", str(png))
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["boxes"]["face"] == 1
        image = cv2.imread(str(png))
        assert image.shape == (240, 320, 3)
        green = (image[:, :, 1] > 200) & (image[:, :, 0] < 60) & (image[:, :, 2] < 60)
        assert green.sum() > 50  # the face box outline

    @pytest.mark.parametrize("container", ["mp4", "ts"])
    def test_the_time_counts_from_the_first_frame_as_in_the_output(self, tmp_path: Path, container: str) -> None:
        # Each frame a shade brighter; MPEG-TS starts its clock at about 1.4 s, and --at 0.2s
        # used to give its first frame, 0.2 s being "before" 1.4.
        src = tmp_path / f"ramp.{container}"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                        "color=black:s=160x120:r=25:d=0.4,format=yuv420p,geq=lum='40+N*15':cb=128:cr=128",
                        "-c:v", "libx264", "-qp", "0", str(src)], check=True, timeout=60)
        png = tmp_path / "f.png"
        proc = redactd("preview", str(src), "--at", "0.2s", "-o", str(png))
        assert proc.returncode == 0, proc.stderr
        grey = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE).astype(float)
        # Frame 5 (0.2 s at 25 fps): luma 40 + 5 × 15 = 115 (studio range, read back as ~116 in RGB).
        assert abs(grey.mean() - (40 + 5 * 15 - 16) * 255 / 219) < 5, grey.mean()

    def test_a_time_past_the_end_is_an_input_error(self, tmp_path: Path, clip: synth.Clip) -> None:
        proc = redactd("preview", str(clip.path), "--at", "12.5s", "-o", str(tmp_path / "f.png"))
        assert proc.returncode == 3 and "past the end" in proc.stderr

    def test_a_malformed_time_is_a_usage_error(self, tmp_path: Path, clip: synth.Clip) -> None:
        proc = redactd("preview", str(clip.path), "--at", "soon", "-o", str(tmp_path / "f.png"))
        assert proc.returncode == 2 and "is not a time" in proc.stderr

    def test_refuses_a_non_image_output_name(self, tmp_path: Path, clip: synth.Clip) -> None:
        proc = redactd("preview", str(clip.path), "-o", str(tmp_path / "f.mp4"))
        assert proc.returncode == 2 and ".png or .jpg" in proc.stderr


class TestParseTime:
    @pytest.mark.parametrize(("text", "seconds"), [("12.5s", 12.5), ("12.5", 12.5), ("1:02.5", 62.5),
                                                   ("1:00:02", 3602.0)])
    def test_reads_seconds_and_clock_times(self, text: str, seconds: float) -> None:
        from redactd.commands.visual_cmd import parse_time

        assert parse_time(text) == seconds
