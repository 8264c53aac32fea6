"""List the personal metadata a media file carries, grouped by where it sits."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from redactd.media.probe import probe
from redactd.metadata import bitstream, boxes
from redactd.metadata.verify import exiftool_tags, ffprobe_findings, tag_problem


def inspect_file(path: Path) -> dict[str, list[str]]:
    """Everything that is not structure, by location: container, streams, boxes, bitstream, tags."""
    info = probe(path)
    groups: dict[str, list[str]] = defaultdict(list)
    video, audio = len(info.video), len(info.audio)
    for line in ffprobe_findings(path, expect_video=video, expect_audio=audio, info=info):
        groups["streams and container (ffprobe)"].append(line.removeprefix("ffprobe: "))
    for line in boxes.findings(path):
        groups["MP4/QuickTime boxes"].append(line.removeprefix("box: "))
    for line in bitstream.findings(path):
        groups["coded video (SEI user data)"].append(line.removeprefix("bitstream: "))
    for group, tag, value in exiftool_tags(path):
        why = tag_problem(group, tag, value)
        if why is not None:
            groups[f"exiftool {group}"].append(f"{tag}: {value}{why}")
    return dict(groups)
