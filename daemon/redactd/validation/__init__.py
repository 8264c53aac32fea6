"""Red-team validation of redacted outputs: a second, independent detector decides publish or review."""

from redactd.validation.check import FlaggedFrame, Original, ValidationReport, Validator, validate_output

__all__ = ["FlaggedFrame", "Original", "ValidationReport", "Validator", "validate_output"]
