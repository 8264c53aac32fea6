"""Lossless metadata removal and fail-closed verification."""

from redactd.metadata.clean import CleanResult, clean_metadata
from redactd.metadata.verify import verify_clean

__all__ = ["CleanResult", "clean_metadata", "verify_clean"]
