"""Visual redaction: find faces and text, track them, obscure them, re-encode without metadata."""

from redactd.visual.render import PhaseTimes, RedactResult, preview_frame, redact_video

__all__ = ["PhaseTimes", "RedactResult", "preview_frame", "redact_video"]
