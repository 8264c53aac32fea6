"""Speed and leaks of `redactd redact` next to the `deface` CLI on the same generated clips, same run.

    PYTHONPATH=daemon .venv/bin/python bench/visual.py [--frames 75] [--repeats 3] [--sizes 720,1080]
                                                     [--deface PATH] [--every-k 2] [--faces-only]
                                                     [--heldout [CASE,...]] [--policy NAME ...]

Clips are built from real photographs scikit-image ships (tests/visual/synth.py): faces from 36 px
up moving across a background, one face touching a larger picture (a case CenterFace scores low),
one zig-zagging, one shown for five frames only, one for a single odd frame, a small (36 px at
720p) real face, a licence plate and a document. For each tool: median frames per second and realtime factor over
the repeats (run round-robin, so load from other work hits every tool alike), median CPU time per
frame (less sensitive to a shared machine than wall time), the share of ground-truth
face-frames it leaked, scored by the same SSIM scorer the tests use, and the text-frames (plate,
page) whose print it left legible (deface does not look for text: it leaks them all). For redactd,
where the time went (decode / detect / track / obscure / encode) and what each model was fed
(megapixels a frame, and calls: the same on every run, whatever the machine's load).
``--every-k 2`` adds a redactd run detecting on every 2nd frame only, to see whether it leaks more;
``--faces-only`` adds one with text detection off: the same work deface does.

``--heldout`` scores the held-out cases instead (tests/visual/heldout.py: 24/30/40 px faces slow
and fast, rotated, turned, edge-exit, other faces, a panning camera, close-ups, a crowd, a texture clip with
no face or text), one clip
per case and size, one run per tool: per case the face-frames leaked (SSIM ≥ 0.55), untouched
(≥ 0.85), partly covered (between), the longest leak run of one face, the share of the picture
obscured (the over-redaction measure on the texture clip), frames per second and CPU ms per frame
(the process's user + system time: less sensitive to a shared machine), and the megapixels a frame
fed to the face and text models (the work asked for: the same on every run, whatever the machine's
load; the bench clip's runs print it too). ``--policy``
names more shipped policies (policies/NAME.yaml) to run beside the default one (on the bench clip
too). ``--split`` only times each detection pass alone (faces at full resolution with and without
the edge pad, the cheap face pass, text) on one frame, by CPU time on one thread.
``--heldout --seed N`` scores cases drawn from seed N instead of the fixed ones
(tests/visual/heldout_drawn.py: other faces, sizes, motions, edges and backgrounds each seed, and
small faces filmed in dim light, out of focus, noisy and compressed hard: "dim"; small faces in
shade in a lit picture: "shade");
``--seed 1-11 --heldout small`` scores one kind of case over many seeds, with totals at the end.
``--identity`` (held-out only; run it with .venv-bench/bin/python, which has dlib: `make
bench-venv`) asks a face recogniser about the face-frames SSIM calls leaked: dlib's descriptor of
the output face against the same face in the input, aligned on the input (bench/recognise.py, as
bench/strength.py does). The table then also gives how many of those asked dlib still calls the
same person (distance under 0.6; "same person" N/asked) and their median distance, with a row for
the input only re-encoded ("none"): what the recogniser says when nothing is obscured. It asks only
about faces wholly inside the picture: a face cut by the edge is boxed by its visible part, and a
sliver's chip is no face to recognise.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.visual.synth: clip builder and leak scorer

from machine import describe as describe_cpu  # bench/machine.py
from tests.visual import heldout, heldout_drawn, synth

TIMEOUT_S = 1800
FPS = 25


def gray_frames(path: Path, width: int, height: int) -> list[np.ndarray]:
    """Frames as luma at the input size (deface's writer pads 1080 to 1088: scale it back)."""
    frames = synth.decode_gray(path)
    return [f if f.shape == (height, width) else cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA)
            for f in frames]


def run(argv: list[str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system, all threads) and stdout of one tool run."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "daemon")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, env=env, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def summary_of(stdout: str) -> dict[str, Any]:
    """`redactd redact`'s JSON summary: the last line it prints."""
    return dict(json.loads(stdout.strip().splitlines()[-1]))


def input_mpx(stdout: str) -> tuple[str, str]:
    """From `redactd redact`'s summary: the megapixels a frame the face and the text models were fed
    (the face model's int8 and fp32 forms together: a dim picture goes to fp32)."""
    fed = summary_of(stdout)["model_input"]

    def of(prefix: str) -> str:
        mpx = [m["mpx_per_frame"] for model, m in fed.items() if model.startswith(prefix)]
        return f"{sum(mpx):.3f}" if mpx else "-"

    return of("centerface"), of("ppocr")


def policy_variant(tmp: Path, name: str, every_k: int = 1, text: bool = True) -> Path:
    """The default policy with detection every k-th frame and/or text detection off."""
    doc = yaml.safe_load((REPO / "policies" / "visual-default.yaml").read_text())
    doc["id"] = name
    doc["detect"]["every_k_frames"] = every_k
    doc["detect"]["text"]["enabled"] = text
    faces, text_cfg = doc["detect"]["faces"], doc["detect"]["text"]
    # The cadences count detected frames: keep the gap between passes within what tracking bridges
    # (the whole-frame ones only where the frames between get no pass: not with between: changed).
    bridged = min(doc["tracking"]["max_gap"], doc["tracking"]["extend_frames"]) + 1
    for cfg, key in ((faces, "tilt_every"), (faces, "full_pass_every"), (text_cfg, "every_n_frames")):
        if key in cfg and not (key != "tilt_every" and cfg.get("between") == "changed"):
            cfg[key] = max(1, min(cfg[key], bridged // every_k))
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def seeds(text: str) -> list[int]:
    """``7``, ``1-11`` or ``1,4,9``: the drawn held-out sets to score."""
    try:
        if "-" in text:
            lo, hi = (int(p) for p in text.split("-", 1))
            return list(range(lo, hi + 1))
        return [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a seed, a range (1-11) or a list (1,4,9)") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=75)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", default="720,1080")
    ap.add_argument("--deface", default=shutil.which("deface") or str(Path(sys.executable).parent / "deface"))
    ap.add_argument("--every-k", type=int, default=None, help="also run redactd detecting every k-th frame")
    ap.add_argument("--faces-only", action="store_true", help="also run redactd with text detection off")
    ap.add_argument("--heldout", nargs="?", const="all", default=None,
                    help="score the held-out cases (comma-separated names, or all)")
    ap.add_argument("--seed", type=seeds, default=None,
                    help="held-out cases only: score sets drawn from these seeds (tests/visual/heldout_drawn.py) "
                         "instead of the fixed cases: N, A-B or A,B,C; --heldout may then name kinds "
                         "(small, edges, mixed) for every seed")
    ap.add_argument("--policy", action="append", default=[], help="also run redactd with policies/NAME.yaml")
    ap.add_argument("--no-deface", action="store_true",
                    help="held-out cases only: leave deface out (its figures do not change with redactd's code)")
    ap.add_argument("--no-default", action="store_true",
                    help="held-out cases only: run only the --policy ones (another version's default, say)")
    ap.add_argument("--identity", action="store_true",
                    help="held-out cases only: ask dlib's face recogniser whether leaked face-frames are still "
                         "the same person (needs .venv-bench/bin/python)")
    ap.add_argument("--split", action="store_true",
                    help="only time each detection pass alone on one frame of the bench clip (CPU ms, 1 thread)")
    args = ap.parse_args()
    print(describe_cpu(), flush=True)
    if args.heldout:
        heldout_bench(args)
        return
    if args.split:
        split_bench(args)
        return
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        tools: dict[str, list[str]] = {
            "redactd": [sys.executable, "-m", "redactd", "--log-level", "warning", "redact", "{in}", "-o", "{out}",
                        "--force", "--policy", str(REPO / "policies" / "visual-default.yaml")],
            # Its faster backend, named so the baseline does not depend on what else is installed
            # (with "auto" it falls back to OpenCV DNN, ~1.3x slower here, when `onnx` is missing).
            "deface": [args.deface, "{in}", "-o", "{out}", "--backend", "onnxrt"],
        }
        if args.faces_only:
            # Like for like: deface only looks for faces.
            tools["redactd faces"] = [*tools["redactd"][:-1], str(policy_variant(tmp, "bench-faces", text=False))]
        for name in args.policy:
            tools[f"redactd {name.removeprefix('visual-')}"] = [
                *tools["redactd"][:-1], str(REPO / "policies" / f"{name}.yaml")]
        if args.every_k:
            tools[f"redactd k={args.every_k}"] = [
                *tools["redactd"][:-1], str(policy_variant(tmp, f"bench-k{args.every_k}", every_k=args.every_k))
            ]
        for height in (int(s) for s in args.sizes.split(",")):
            clip = synth.bench_scene(tmp / f"clip{height}.mp4", height, args.frames, fps=FPS)
            original = synth.decode_gray(clip.path)
            seconds = clip.frames / FPS
            print(f"\n{clip.width}x{clip.height}, {clip.frames} frames ({seconds:.1f} s), "
                  f"{sum(len(f) for f in clip.faces)} face-frames; median of {args.repeats} runs")
            walls: dict[str, list[float]] = {name: [] for name in tools}
            cpus: dict[str, list[float]] = {name: [] for name in tools}
            phases: dict[str, list[dict[str, float]]] = {name: [] for name in tools}
            fed: dict[str, dict[str, dict[str, float]]] = {}  # what each model was fed: the same every repeat
            outs = {name: tmp / f"{name.replace(' ', '_').replace('=', '')}_{height}.mp4" for name in tools}
            # Round-robin over the tools, so a change in the machine's load hits them alike.
            for _ in range(args.repeats):
                for name, template in tools.items():
                    outs[name].unlink(missing_ok=True)
                    argv = [a.replace("{in}", str(clip.path)).replace("{out}", str(outs[name])) for a in template]
                    wall, cpu, stdout = run(argv)
                    walls[name].append(wall)
                    cpus[name].append(cpu)
                    if name.startswith("redactd"):
                        summary = summary_of(stdout)
                        phases[name].append(summary["seconds"])
                        fed[name] = summary["model_input"]
            results = {}
            for name in tools:
                redacted = gray_frames(outs[name], clip.width, clip.height)
                leaked, total, _ = synth.leaked_face_frames(original, redacted, clip.faces)
                text_leaked, text_total, _ = synth.leaked_text_frames(original, redacted, clip)
                wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
                results[name] = (wall, cpu)
                print(f"  {name:12s} {clip.frames / wall:6.2f} fps  realtime x{seconds / wall:5.2f}  "
                      f"wall {wall:6.2f} s  cpu {1000 * cpu / clip.frames:6.1f} ms/frame  "
                      f"leaked {leaked}/{total} face-frames ({100 * leaked / total:.1f} %), "
                      f"{text_leaked}/{text_total} text-frames")
                if phases[name]:
                    med = {k: statistics.median(p[k] for p in phases[name]) for k in phases[name][0]}
                    busy = sum(v for k, v in med.items() if k != "wall")
                    split = "  ".join(f"{k} {100 * v / busy:.0f}%" for k, v in med.items() if k != "wall")
                    print(f"  {'':12s} time in: {split}  (of {busy:.2f} s busy; decode runs beside)")
                    print(f"  {'':12s} model input: " + ", ".join(
                        f"{model} {m['mpx_per_frame']:.3f} Mpx/frame in {m['calls']} calls" for model, m in fed[name].items()))
            for name in (n for n in tools if n.startswith("redactd")):
                print(f"  speed {name}/deface: {results['deface'][0] / results[name][0]:.2f}x by wall time, "
                      f"{results['deface'][1] / results[name][1]:.2f}x by CPU time")


def split_bench(args: argparse.Namespace) -> None:
    """Where detection time goes: each pass alone on the bench clip's first frame, median CPU ms."""
    sys.path.insert(0, str(REPO / "daemon"))
    from redactd.policy import FaceDetection, TextDetection
    from redactd.visual.detect import CenterFaceDetector, TextDetector

    def cpu_ms(fn: Callable[[], object], repeats: int) -> float:
        fn()  # first call: session warm-up
        times = []
        for _ in range(repeats):
            start = time.process_time()
            fn()
            times.append(1000 * (time.process_time() - start))
        return statistics.median(times)

    passes = {
        "faces full resolution + edge pad": (FaceDetection(), 0),
        "faces full resolution, no pad": (FaceDetection(edge_pad=0), 0),
        "faces cheap (960 px) + edge pad": (FaceDetection(full_pass_every=2, roi=False), 1),
        "faces cheap (640 px) + edge pad": (FaceDetection(full_pass_every=2, cheap_input_width=640, roi=False), 1),
        "text (default)": (TextDetection(), 0),
    }
    with tempfile.TemporaryDirectory() as tmpdir:
        for height in (int(s) for s in args.sizes.split(",")):
            clip = synth.bench_scene(Path(tmpdir) / f"clip{height}.mp4", height, 2, fps=FPS)
            frame = cv2.cvtColor(synth.decode_gray(clip.path)[0], cv2.COLOR_GRAY2BGR)
            print(f"\n{clip.width}x{clip.height}: CPU ms per call, median of {args.repeats}, one thread")
            for name, (cfg, index) in passes.items():
                det = CenterFaceDetector(cfg, 1) if isinstance(cfg, FaceDetection) else TextDetector(cfg, 1)
                print(f"  {name:34s} {cpu_ms(partial(det.at(index), frame), args.repeats):7.1f}", flush=True)


def heldout_bench(args: argparse.Namespace) -> None:
    """One run per tool on each held-out case and size; a table row per case and tool."""
    wanted = None if args.heldout == "all" else set(args.heldout.split(","))
    pool = heldout.CASES if args.seed is None else [c for seed in args.seed for c in heldout_drawn.cases(seed)]
    # A drawn case is "drawn<seed>-<kind>": name it whole, or by its kind for every seed.
    cases = [c for c in pool if wanted is None or c.name in wanted or c.name.split("-", 1)[-1] in wanted]
    if not cases:
        raise SystemExit(f"no held-out case named {args.heldout!r} (known: {', '.join(c.name for c in pool)})")
    tools: dict[str, list[str]] = {}
    for name in [*([] if args.no_default else ["visual-default"]), *args.policy]:
        tools[f"redactd {name.removeprefix('visual-')}"] = [
            sys.executable, "-m", "redactd", "--log-level", "warning", "redact", "{in}", "-o", "{out}", "--force",
            "--policy", str(REPO / "policies" / f"{name}.yaml")]
    if not args.no_deface:
        tools["deface"] = [args.deface, "{in}", "-o", "{out}", "--backend", "onnxrt"]
    recogniser = None
    if args.identity:
        from recognise import Recogniser  # dlib: the bench venv only

        recogniser = Recogniser()
        # Nothing obscured, re-encoded as redactd does: what the recogniser says of a face left as it is.
        tools["none"] = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", "{in}", "-c:v", "libx264",
                         "-crf", "20", "-pix_fmt", "yuv420p", "{out}"]
    totals: dict[str, list[int]] = {name: [0, 0, 0, 0, 0] for name in tools}
    print(f"{'case':14s} {'size':>5s} {'tool':18s} {'face-frames':>11s} {'leaked':>7s} {'untouched':>9s} "
          f"{'partly':>6s} {'run':>4s} {'obscured':>8s} {'fps':>6s} {'cpu ms/f':>8s} {'face Mpx':>8s} {'text Mpx':>8s}"
          + (f" {'same person':>11s} {'median d':>8s}" if recogniser else ""))
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for height in (int(s) for s in args.sizes.split(",")):
            for case in cases:
                clip = case.build(tmp / f"{case.name}{height}.mp4", height, args.frames)
                original = synth.decode_gray(clip.path)
                aligned: dict[tuple[int, synth.GtBox], object] = {}  # the input's landmarks, for every tool
                for name, template in tools.items():
                    out = tmp / f"out_{name.replace(' ', '_')}.mp4"
                    out.unlink(missing_ok=True)
                    wall, cpu, stdout = run([a.replace("{in}", str(clip.path)).replace("{out}", str(out))
                                             for a in template])
                    face_mpx, text_mpx = input_mpx(stdout) if name.startswith("redactd") else ("-", "-")
                    redacted = gray_frames(out, clip.width, clip.height)
                    sc = heldout.score(original, redacted, clip)
                    asked, same, median_d = (identity(recogniser, original, redacted, sc.leaks, aligned)
                                             if recogniser else (0, 0, None))
                    for k, v in enumerate((sc.face_frames, sc.leaked, sc.untouched, asked, same)):
                        totals[name][k] += v
                    def pct(n: int, total: int = sc.face_frames) -> str:
                        return f"{100 * n / total:5.1f}%" if total else "    -"

                    print(f"{case.name:14s} {height:5d} {name:18s} {sc.face_frames:11d} {pct(sc.leaked):>7s} "
                          f"{pct(sc.untouched):>9s} {pct(sc.partly):>6s} {sc.longest_run:4d} "
                          f"{100 * sc.obscured_share:7.1f}% {clip.frames / wall:6.2f} {1000 * cpu / clip.frames:8.0f} "
                          f"{face_mpx:>8s} {text_mpx:>8s}"
                          + (f" {f'{same}/{asked}':>11s} {'-' if median_d is None else f'{median_d:.3f}':>8s}"
                             if recogniser else ""),
                          flush=True)
    for name, (total, leaked, untouched, asked, same) in totals.items():
        print(f"all cases: {name:18s} leaked {leaked}/{total} ({100 * leaked / max(1, total):.1f} %), "
              f"untouched {untouched} ({100 * untouched / max(1, total):.1f} %)"
              + (f"; of the {asked} leaked face-frames inside the picture, dlib calls {same} the same person"
                 if recogniser else ""))


def identity(recogniser: Any, original: list[np.ndarray], redacted: list[np.ndarray],
             leaks: tuple[tuple[int, synth.GtBox], ...], aligned: dict[tuple[int, synth.GtBox], object]
             ) -> tuple[int, int, float | None]:
    """Of the leaked face-frames whose face lies wholly inside the picture: how many were asked,
    how many dlib still calls the same person as the input's face there (descriptor distance under
    0.6), and the median distance. Both chips are cut with the landmarks found on the input (the
    best alignment an attacker could hope for); the faces are scored in grey, as the SSIM scorer
    does. A face cut by the frame's edge is not asked: its box is the part inside, and a chip of a
    sliver is no face to recognise."""
    from recognise import SAME_PERSON

    height, width = original[0].shape[:2] if original else (0, 0)
    inside = [(i, box) for i, box in leaks if box[0] > 0 and box[1] > 0 and box[2] < width and box[3] < height]
    if not inside:
        return 0, 0, None
    before, after = [], []
    for i, box in inside:
        src = cv2.cvtColor(original[i], cv2.COLOR_GRAY2RGB)
        if (i, box) not in aligned:
            aligned[i, box] = recogniser.align(src, box)
        shape = aligned[i, box]
        before.append(recogniser.chip(src, box, shape))
        after.append(recogniser.chip(cv2.cvtColor(redacted[i], cv2.COLOR_GRAY2RGB), box, shape))
    d = np.linalg.norm(recogniser.embed(after) - recogniser.embed(before), axis=1)
    return len(inside), int((d < SAME_PERSON).sum()), float(np.median(d))


if __name__ == "__main__":
    main()
