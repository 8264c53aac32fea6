"""`redactd clean-metadata` and `redactd inspect`."""

from __future__ import annotations

import argparse
from pathlib import Path

from redactd.commands._common import check_file_paths


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("clean-metadata", help="losslessly strip all hidden metadata from a video")
    p.add_argument("input", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="output file (.mp4, .mkv or .webm); must not exist unless --force")
    p.add_argument("--keep-audio", action="store_true", help="keep the audio stream(s) (default: drop)")
    p.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")
    p.set_defaults(func=run_clean)

    i = sub.add_parser("inspect", help="show the personal metadata a file carries, by location")
    i.add_argument("file", type=Path)
    i.set_defaults(func=run_inspect)


def run_clean(args: argparse.Namespace) -> int:
    from redactd.metadata.clean import clean_metadata  # PyAV: loaded by the commands that use it

    check_file_paths(args.input, args.output, args.force)
    result = clean_metadata(args.input, args.output, keep_audio=args.keep_audio)
    print(f"{args.output}: clean ({result.container}, {result.video_streams} video, "
          f"{result.audio_streams} audio stream(s); removed: {', '.join(result.dropped) or 'nothing'}; "
          f"verified with exiftool, ffprobe, box tree and SEI scan; {result.seconds:.2f} s)")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from redactd.metadata.inspect import inspect_file

    groups = inspect_file(args.file)
    if not groups:
        print(f"{args.file}: no metadata beyond structure")
        return 0
    for where, items in groups.items():
        print(f"{where}:")
        for item in items:
            print(f"  {item}")
    return 0
