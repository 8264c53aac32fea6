"""redactd: make raw video footage safe for AI training."""

__version__ = "0.1.0"
