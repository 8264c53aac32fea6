"""`redactd clean-metadata` and `redactd inspect`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from redactd.commands._common import check_file_paths
from redactd.errors import RedactdError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("clean-metadata", help="losslessly strip all hidden metadata from a video")
    p.add_argument("input", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="output file (.mp4, .mkv or .webm); must not exist unless --force")
    p.add_argument("--keep-audio", action="store_true", help="keep the audio stream(s) (default: drop)")
    p.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")
    p.add_argument("--reencode-if-needed", action="store_true",
                   help="footage whose frames carry data that cannot be cut exactly (DV, ProRes): re-encode "
                        "it to H.264 instead of refusing (no longer lossless)")
    p.set_defaults(func=run_clean)

    i = sub.add_parser("inspect", help="show the metadata files carry, by location (in-frame data by stream)")
    i.add_argument("files", type=Path, nargs="+", metavar="FILE", help="one or more files (inspect var/clean/*.mp4)")
    i.set_defaults(func=run_inspect)


def run_clean(args: argparse.Namespace) -> int:
    from redactd.metadata.clean import clean_metadata  # PyAV: loaded by the commands that use it

    check_file_paths(args.input, args.output, args.force)
    result = clean_metadata(args.input, args.output, keep_audio=args.keep_audio,
                            fallback="reencode" if args.reencode_if_needed else "refuse")
    if result.reencoded:
        print(f"{args.output}: re-encoded, not lossless ({result.reencoded})")
    print(f"{args.output}: clean ({result.container}, {result.video_streams} video, "
          f"{result.audio_streams} audio stream(s); removed: {', '.join(result.dropped) or 'nothing'}; "
          f"verified with exiftool, ffprobe, box tree, Matroska elements and in-frame data scan; "
          f"{result.seconds:.2f} s)")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    """Each file in turn; one that cannot be read is reported and the others are still inspected."""
    from redactd.metadata.inspect import inspect_file

    rc = 0
    for n, path in enumerate(args.files):
        if n:
            print()
        try:
            groups = inspect_file(path)
        except RedactdError as exc:
            text = str(exc)
            print(f"redactd: error: {text if str(path) in text else f'{path}: {text}'}", file=sys.stderr)
            rc = rc or exc.exit_code
            continue
        if not groups:
            print(f"{path}: no metadata beyond structure")
            continue
        if len(args.files) > 1:
            print(f"== {path}")
        for where, items in groups.items():
            print(f"{where}:")
            for item in items:
                print(f"  {item}")
    return rc
