"""One thing the verifier found in a file that is not plain structure, and where it sits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """What was found, where, by which check, and whether it is known to carry personal data.

    ``personal`` False means "not recognised": it still fails the file closed, but an operator can
    tell a gap in the allow-list (a new structural element) from a privacy failure.
    """

    element: str  # e.g. "UserData:GPSCoordinates", "box 'XMP_'", "SEI NAL unit(s)"
    where: str  # a box path ("moov/trak[1]/udta"), a Matroska element path, or a stream
    personal: bool
    check: str  # "exiftool", "ffprobe", "box tree", "matroska", "bitstream"
    detail: str = ""

    @property
    def verdict(self) -> str:
        return "personal" if self.personal else "unknown"

    def __str__(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.verdict}: {self.element} in {self.where}{detail} [{self.check}]"
