"""Figures for red-team validation: false alarms on right redactions, catches on wrong ones, time added.

    PYTHONPATH=daemon .venv/bin/python bench/validation.py [--size 320x240] [--frames 25] [--timing-size 1280x720]

Each scene is two real faces (scikit-image's astronaut walking, an LFW face) over one of
scikit-image's face-free photographs or textures. Each is redacted twice with the real primary
detector: correctly, and with one face forgotten in every frame (one track never obscured).
Validation then runs on both outputs with the shipped policy's settings, with and without the
original at hand (rule 4: a leak must be in the original frames too). Prints:
  - false-alarm share: correctly redacted clips sent to review (target 0), with and without rule 4;
  - catch share: under-redacted clips sent to review (target 1), with and without rule 4;
  - raw signal before the rule: how many uncovered findings each detector family made;
  - the time validation adds to a job, as seconds and as a share of the render, on a larger clip.

With --heldout [all|CASES] [--seed N-M] [--sizes 720,1080] it runs instead on the held-out cases of
bench/visual.py (real faces small, rotated, tilted, turned, leaving through the edges, under a
moving camera, over real photographs that include a cat's face): each is redacted correctly
(false alarms) and with its smallest face forgotten in every frame (catches: the hardest face for
the second opinion; --forget largest forgets the largest instead, --forget each every face in
turn, one render each), and validated with the original at hand, as in a job.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "daemon"), str(REPO)]

import av
from tests.validation import scenes
from tests.visual import heldout, heldout_drawn

from redactd import log
from redactd.policy import RedactionPolicy
from redactd.validation import Original, Validator
from redactd.validation.check import is_covered, obscured_regions, sample_indices
from redactd.visual import redact_video
from redactd.visual.codec import to_bgr
from visual import seeds as drawn_seeds  # bench/visual.py: the same --seed syntax


def size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def run_matrix(policy: RedactionPolicy, width: int, height: int, frames: int, work: Path) -> None:
    rows = []
    with Validator(policy.validation) as validator:
        for bg in scenes.BACKGROUNDS:
            for layout in (0, 1):
                clip = scenes.make_scene(work / f"{bg}-{layout}.mp4", bg, width, height, frames, layout)
                for hide in (None, 0, 1):
                    out = work / f"{bg}-{layout}-{hide}.out.mp4"
                    doc = scenes.render(clip, out, policy, hide_face=hide)
                    report = validator.check(out, doc, policy.obscure, original=Original(clip.path, policy.limits))
                    alone = validator.check(out, doc, policy.obscure)
                    uncovered = _uncovered_by_family(validator, out, doc, policy)
                    leaked, total, _ = scenes.synth.leaked_face_frames(
                        scenes.synth.decode_gray(clip.path), scenes.synth.decode_gray(out), clip.faces)
                    rows.append((bg, layout, hide, report, uncovered, alone))
                    print(f"{bg:<9} layout {layout} {'correct' if hide is None else f'face {hide} left':<11} "
                          f"-> {report.verdict:<7} (without the original: {alone.verdict:<7}) "
                          f"chains not in the original {report.not_in_original} "
                          f"leak frames {report.leak_frames}/{report.sampled_frames} "
                          f"findings {report.findings:>3} covered {report.covered:>3} candidates "
                          f"{report.candidates:>3}  uncovered by family {uncovered}; SSIM scorer: {leaked}/{total} "
                          "face-frames leaked", flush=True)
    good = [r for r in rows if r[2] is None]
    bad = [r for r in rows if r[2] is not None]
    print()
    for k, how in ((3, "with the original (rule 4)"), (5, "output alone")):
        false_alarms = sum(r[k].verdict == "review" for r in good)
        caught = sum(r[k].verdict == "review" for r in bad)
        print(f"{how}:")
        print(f"  false-alarm share (correct redactions sent to review): {false_alarms}/{len(good)} = "
              f"{false_alarms / len(good):.3f}")
        print(f"  catch share (under-redactions sent to review):         {caught}/{len(bad)} = "
              f"{caught / len(bad):.3f}")
    for fam in ("mtcnn", "haar", "centerface"):
        noisy = sum(r[4].get(fam, 0) > 0 for r in good)
        seen = sum(r[4].get(fam, 0) > 0 for r in bad)
        print(f"  {fam:<10} before rule 3 (persistence/agreement): uncovered findings on {noisy}/{len(good)} "
              f"correct and {seen}/{len(bad)} under-redacted outputs")


def _uncovered_by_family(validator: Validator, out: Path, doc: dict[str, Any],
                         policy: RedactionPolicy) -> dict[str, int]:
    """Signal before rule 3: findings per family neither covered nor too small, on the sampled frames."""
    regions = obscured_regions(doc, policy.obscure)
    th = policy.validation.thresholds
    wanted = set(sample_indices(doc["counts"]["frames"], policy.validation.sample_every_n_frames,
                                policy.validation.max_samples))
    counts: dict[str, int] = {}
    with av.open(str(out)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i not in wanted:
                continue
            for f in validator.look(i, to_bgr(frame)):
                big = min(f.box.width, f.box.height) >= th.min_size_px
                if big and not is_covered(f.box, regions.get(i, ()), th.covered_fraction):
                    counts[f.family] = counts.get(f.family, 0) + 1
    return counts


def run_heldout(policy: RedactionPolicy, which: str, seeds: list[int] | None, sizes: list[int], frames: int,
                work: Path, forget: str = "smallest") -> None:
    """False alarms and catches on the held-out cases (see the module docstring)."""
    pool = heldout.CASES if seeds is None else [c for seed in seeds for c in heldout_drawn.cases(seed)]
    cases = [c for c in pool if which == "all" or c.name in which.split(",")
             or c.name.split("-", 1)[-1] in which.split(",")]
    if not cases:
        raise SystemExit(f"no held-out case named {which!r} (known: {', '.join(c.name for c in pool)})")
    verdicts: dict[str, list[str]] = {"right": [], "forgotten": []}
    with Validator(policy.validation) as validator:
        for height in sizes:
            for case in cases:
                clip = case.build(work / f"{case.name}{height}.mp4", height, frames)
                widths: dict[int, list[int]] = {}
                for boxes, names in zip(clip.faces, scenes.face_ids(clip), strict=True):
                    for (x0, y0, x1, y1), k in zip(boxes, names, strict=True):
                        if min(x1 - x0, y1 - y0) >= policy.validation.thresholds.min_size_px:
                            widths.setdefault(k, []).append(min(x1 - x0, y1 - y0))
                # The faces in view, wide enough to be checked, on at least 40 % of the frames:
                # the smallest of them is forgotten, or the largest, or each in turn.
                shown = sorted((k for k, w in widths.items() if len(w) >= 0.4 * frames),
                               key=lambda k: (statistics.median(widths[k]), k))
                forgotten = shown if forget == "each" else shown[:1] if forget == "smallest" else shown[-1:]
                for how, hidden in [("right", None), *(("forgotten", k) for k in forgotten)]:
                    out = work / f"{case.name}{height}-{how}.mp4"
                    doc = scenes.render(clip, out, policy, hide_face=hidden)
                    report = validator.check(out, doc, policy.obscure, original=Original(clip.path, policy.limits))
                    verdicts[how].append(report.verdict)
                    face = f" (face {hidden}, {statistics.median(widths[hidden]):.0f} px)" if hidden is not None else ""
                    print(f"{case.name:16s} {height:5d} {how + face:26s} -> {report.verdict:7s} leak frames "
                          f"{report.leak_frames}/{report.sampled_frames} candidates {report.candidates:>3} "
                          f"set aside: not in the original {report.not_in_original}, CenterFace alone "
                          f"{report.centerface_alone}; findings by family {report.by_family}", flush=True)
    print()
    right, forgotten = verdicts["right"], verdicts["forgotten"]
    print(f"false-alarm share (right redactions sent to review): {right.count('review')}/{len(right)}")
    print(f"catch share (a face forgotten, sent to review):      {forgotten.count('review')}/{len(forgotten)}")


def run_timing(policy: RedactionPolicy, width: int, height: int, frames: int, work: Path, repeats: int) -> None:
    clip = scenes.make_scene(work / "timing.mp4", "coffee", width, height, frames)
    renders, checks = [], []
    with Validator(policy.validation) as validator:
        for k in range(repeats):
            out = work / f"timing-{k}.out.mp4"
            start = time.perf_counter()
            redact_video(clip.path, out, policy, sidecar_path=out.with_suffix(".json"))
            renders.append(time.perf_counter() - start)
            doc = json.loads(out.with_suffix(".json").read_text())
            start = time.perf_counter()
            validator.check(out, doc, policy.obscure, original=Original(clip.path, policy.limits))
            checks.append(time.perf_counter() - start)
    r, v = statistics.median(renders), statistics.median(checks)
    step = policy.validation.sample_every_n_frames
    print()
    print(f"time on a {width}x{height} clip of {frames} frames (median of {repeats}), validation every {step}th frame:")
    print(f"  render (detect, track, obscure, encode) {r:.2f} s;  validation {v:.2f} s "
          f"(+{100 * v / r:.0f} % of the render, {1000 * v / len(range(0, frames, step)):.0f} ms per sampled frame)")
    print("  (models loaded once per worker process and excluded: loading them costs about 1 s)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=size, default=(320, 240))
    ap.add_argument("--frames", type=int, default=25)
    ap.add_argument("--timing-size", type=size, default=(1280, 720))
    ap.add_argument("--timing-frames", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--skip-matrix", action="store_true")
    ap.add_argument("--heldout", nargs="?", const="all", default=None,
                    help="the held-out cases of bench/visual.py instead (all, or names/kinds, comma-separated)")
    ap.add_argument("--seed", type=drawn_seeds, default=None, help="with --heldout: the drawn sets (7, 1-3 or 1,4,9)")
    ap.add_argument("--sizes", default="720", help="with --heldout: frame heights (720,1080)")
    ap.add_argument("--forget", choices=("smallest", "largest", "each"), default="smallest",
                    help="with --heldout: which face the under-redacted render forgets (each: one render per face)")
    args = ap.parse_args()
    log.configure(level="warning", json=False)
    if args.heldout is not None:
        with tempfile.TemporaryDirectory(prefix="redactd-bench-") as tmp:
            run_heldout(scenes.faces_policy(), args.heldout, args.seed, [int(s) for s in args.sizes.split(",")],
                        75, Path(tmp), args.forget)
        return 0
    with tempfile.TemporaryDirectory(prefix="redactd-bench-") as tmp:
        if not args.skip_matrix:
            # 1 s clips: every 5th frame, so the 3-sample persistence rule has 5 samples to work on.
            run_matrix(scenes.faces_policy(sample_every_n_frames=5), *args.size, args.frames, Path(tmp))
        if not args.skip_timing:
            run_timing(scenes.faces_policy(), *args.timing_size, args.timing_frames, Path(tmp), args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
