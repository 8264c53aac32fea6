"""Clean every camera-shaped fixture class losslessly; print what happened and which canaries survived.

    PYTHONPATH=daemon:. .venv/bin/python bench/metadata_cameras.py

Prints one Markdown row per fixture class and output container: cleaned (bit-exact frames or
not), refused (the first finding), or unsupported (the message), and the canaries found in the
output's bytes. Run it with an older checkout's ``daemon`` first on PYTHONPATH to get "before".
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests import camerafactory as cf
from tests import mediafactory as mf

from redactd.errors import RedactdError, VerifyError
from redactd.metadata import clean_metadata


def outcome(src: Path, out: Path, audio: bool, canaries: list[str]) -> tuple[str, str]:
    try:
        clean_metadata(src, out, keep_audio=audio)
    except VerifyError as exc:
        return f"refused: {exc.findings[0]}" + (f" (+{len(exc.findings) - 1})" if len(exc.findings) > 1 else ""), "-"
    except RedactdError as exc:
        return f"{type(exc).__name__}: {str(exc).split(';')[0]}", "-"
    blob = out.read_bytes()
    found = [c for c in canaries if any(c.encode(e) in blob for e in ("utf-8", "utf-16-le", "utf-16-be"))]
    exact = mf.frame_md5s(out) == mf.frame_md5s(src)
    return "cleaned, " + ("frames bit-exact" if exact else "FRAMES DIFFER"), ", ".join(found) or "none"


def main() -> None:
    print("| fixture class | output | result | canaries found in output |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for n, kind in enumerate(cf.STRUCTURE_KINDS):
            work = tmp / f"s{n}"
            work.mkdir()
            src = cf.structure_fixture(kind, work)
            for suffix in (".mp4", ".mkv"):
                result, found = outcome(src, work / f"out{suffix}", False, [])
                print(f"| {kind} | {suffix} | {result} | {found} |")
        for n, (name, (build, keys, audio)) in enumerate(cf.CAMERAS.items()):
            work = tmp / f"c{n}"
            work.mkdir()
            canaries = cf.canaries(keys)
            src = build(work, canaries)
            for suffix in (".mp4", ".mkv"):
                result, found = outcome(src, work / f"out{suffix}", audio, list(canaries.values()))
                print(f"| {name} ({len(keys)} canaries) | {suffix} | {result} | {found} |")
        work = tmp / "dv"
        work.mkdir()
        result, found = outcome(cf.dv_clip(work), work / "out.mp4", False, [])
        print(f"| DV (recording date in VAUX) | .mp4 | {result} | {found} |")


if __name__ == "__main__":
    main()
