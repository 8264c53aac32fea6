"""`redactd redact` and `redactd preview`: visual redaction of one file, and a policy-tuning preview."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from redactd.commands._common import check_file_paths
from redactd.errors import ConfigError, InputError
from redactd.fsutil import atomic_write
from redactd.policy import default_policies_dir, resolve_policy

_TIME = re.compile(r"^(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d+)?)s?$")


def parse_time(text: str) -> float:
    """Seconds from '12.5', '12.5s', '1:02.5' or '1:00:02'."""
    m = _TIME.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"'{text}' is not a time (examples: 12.5s, 1:02.5)")
    parts = [p for p in m.groups() if p is not None]
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + float(part)
    return seconds


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    r = sub.add_parser("redact", help="obscure faces and text in one video (detect, track, re-encode)")
    r.add_argument("input", type=Path, help="video to redact")
    r.add_argument("-o", "--output", type=Path, required=True, help="output video (.mp4 or .mkv)")
    _policy_args(r)
    r.add_argument("--sidecar", type=Path, default=None, help="write the detections sidecar (JSON) here")
    r.add_argument("--force", action="store_true", help="replace OUTPUT (and the sidecar) if they exist")
    r.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    r.set_defaults(func=run_redact)

    p = sub.add_parser("preview", help="one frame with the detected boxes drawn, for tuning a policy")
    p.add_argument("input", type=Path, help="video to look at")
    p.add_argument("--at", type=parse_time, default=0.0, help="time of the frame (e.g. 12.5s, 1:02)")
    p.add_argument("-o", "--output", type=Path, required=True, help="image to write (.png or .jpg)")
    _policy_args(p)
    p.set_defaults(func=run_preview)


def _policy_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy", default="visual-default", help="redaction policy: a YAML file or an id (default: %(default)s)"
    )
    parser.add_argument(
        "--policies-dir", type=Path, default=None,
        help="where policy ids are looked up (default: ./policies if there is one, else the examples "
        "shipped with redactd)",
    )


def run_redact(args: argparse.Namespace) -> int:
    from redactd.visual import redact_video  # OpenCV, PyAV, onnxruntime: loaded by the commands that use them

    check_file_paths(args.input, args.output, args.force, (("sidecar", args.sidecar),))
    policy = resolve_policy(args.policy, args.policies_dir or default_policies_dir())
    show_bar = not args.no_progress and sys.stderr.isatty()
    bar = None
    progress = None
    if show_bar:
        from tqdm import tqdm

        bar = tqdm(total=0, unit="frame", dynamic_ncols=True, desc="redact")

        def progress(done: int, total: int) -> None:
            assert bar is not None
            if bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

    try:
        result = redact_video(args.input, args.output, policy, progress=progress, sidecar_path=args.sidecar)
    finally:
        if bar is not None:
            bar.close()
    t = result.times
    print(json.dumps({
        "output": str(args.output),
        "frames": result.frames,
        "size": f"{result.width}x{result.height}",
        "fps": round(result.fps, 2),
        "boxes_detected": result.boxes_detected,
        "boxes_filled": result.boxes_filled,
        "tracks": result.tracks,
        "audio": result.audio,
        **({"speech": {"segments": len(result.speech["speech"]), "seconds": result.speech["speech_s"]}}
           if "speech_s" in result.speech else {}),
        # What each model was fed: the same on every run of a clip, unlike the seconds below.
        "model_input": {name: {"calls": calls, "mpx_per_frame": result.model_mpx_per_frame[name]}
                        for name, (calls, _) in result.model_input.items()},
        "seconds": {"wall": round(t.wall, 2), "decode": round(t.decode, 2), "detect": round(t.detect, 2),
                    "track": round(t.track, 3), "obscure": round(t.obscure, 2), "encode": round(t.encode, 2)},
    }))
    return 0


def run_preview(args: argparse.Namespace) -> int:
    import cv2

    from redactd.visual import preview_frame

    check_file_paths(args.input, args.output, force=True)  # a preview image is cheap to replace
    if args.output.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ConfigError(f"{args.output}: the preview is an image: use a .png or .jpg name")
    policy = resolve_policy(args.policy, args.policies_dir or default_policies_dir())
    canvas, boxes = preview_frame(args.input, args.at, policy)
    ok, data = cv2.imencode(args.output.suffix.lower(), canvas)
    if not ok:
        raise InputError(f"{args.output}: could not encode the preview image")
    atomic_write(args.output, data.tobytes())
    counts: dict[str, int] = {}
    for box in boxes:
        counts[box.label] = counts.get(box.label, 0) + 1
    print(json.dumps({"output": str(args.output), "at_s": args.at, "boxes": counts}))
    return 0
