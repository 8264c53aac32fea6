"""List the personal metadata a media file carries, grouped by where it sits."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from redactd.media.probe import probe
from redactd.metadata import bitstream, boxes, matroska
from redactd.metadata.verify import exiftool_tags, ffprobe_findings, tag_finding, tag_problem


def inspect_file(path: Path) -> dict[str, list[str]]:
    """Everything that is not structure, by location: container, streams, boxes, elements, in-frame
    data (by stream), tags. Each line says whether it is personal or merely unknown."""
    info = probe(path)
    groups: dict[str, list[str]] = defaultdict(list)
    video, audio = len(info.video), len(info.audio)
    for f in ffprobe_findings(path, expect_video=video, expect_audio=audio, info=info):
        groups["streams and container (ffprobe)"].append(f"{f.verdict}: {f.element} in {f.where}")
    for f in boxes.findings(path) + matroska.findings(path):
        detail = f" ({f.detail})" if f.detail else ""
        groups["MP4/QuickTime boxes" if f.check == "box tree" else "Matroska elements"].append(
            f"{f.verdict}: {f.element} at {f.where}{detail}")
    for where, kinds in bitstream.inventory(path).items():
        groups[f"in-frame data: {where}"] += [f"{n} x {kind}" for kind, n in sorted(kinds.items())]
    container = "matroska" if matroska.is_matroska(path) else "mp4"
    for group, tag, value in exiftool_tags(path):
        why = tag_problem(group, tag, value)
        if why is not None:
            f = tag_finding(group, tag, value, why, container)
            groups[f"exiftool {group} ({f.where})"].append(f"{f.verdict}: {tag}: {value}{why}")
    return dict(groups)
