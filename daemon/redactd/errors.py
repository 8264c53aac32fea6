"""The one exception tree of redactd, with an exit code per error type.

    RedactdError                      exit 1
     ├── ConfigError                  exit 2   a config or policy file is wrong (no traceback)
     ├── InputError                   exit 3   the input file is not something we can process
     │    └── UnsupportedMediaError   exit 3   a real video, but not one this path can handle
     ├── StageError                   exit 4   a pipeline stage failed
     │    ├── ToolError               exit 4   an external program (ffmpeg, exiftool) failed
     │    ├── EncodeError             exit 4
     │    ├── DetectError             exit 4
     │    ├── VerifyError             exit 5   the output still carries metadata: fail closed
     │    └── ValidationFailed        exit 6   the second detector doubts the output
     ├── CustodyError                 exit 7
     │    ├── ChainBroken             exit 7
     │    ├── BadSignature            exit 7
     │    ├── EntryRefused            exit 7   one entry's fields break a rule; a safe form is recorded
     │    ├── LogBusy                 exit 7   another process (the daemon) holds the custody log
     │    └── NotInLog                exit 7   what was asked about is not in the log (no traceback)
     ├── RetentionError               exit 8
     ├── JobStoreError (jobstore.py)  exit 1   no such job, or not in the state an action needs
     └── InstallError (install.py)    exit 1   the system cannot be set up as asked

Each error carries its own exit code; user errors (config, input) print one clear message.
A custody error inside the writer is worth a traceback in the log; a broken chain or bad
signature found by `custody verify` is a finding, fully said by its message.
"""

from __future__ import annotations


class RedactdError(Exception):
    """Base of every error redactd raises on purpose."""

    exit_code = 1
    #: Whether the CLI should show a traceback: only for errors that mean a bug or tampering.
    traceback = False


class ConfigError(RedactdError):
    exit_code = 2


class InputError(RedactdError):
    exit_code = 3


class UnsupportedMediaError(InputError):
    """A real video, but not one this path can handle (e.g. a codec that cannot be remuxed)."""


class StageError(RedactdError):
    exit_code = 4


class ToolError(StageError):
    """An external program failed; the message includes its captured stderr."""


class EncodeError(StageError):
    """The encoder could not be set up or failed while writing the output."""


class DetectError(StageError):
    """A detector model is missing, altered (SHA-256) or failed on a frame."""


class VerifyError(StageError):
    """The output still carries something it must not: fail closed."""

    exit_code = 5

    def __init__(self, message: str, findings: list[str] | None = None) -> None:
        self.findings = list(findings or [])
        if self.findings:
            message = message + "\n" + "\n".join(f"  - {f}" for f in self.findings)
        super().__init__(message)


class ValidationFailed(StageError):
    exit_code = 6


class CustodyError(RedactdError):
    exit_code = 7
    traceback = True


class ChainBroken(CustodyError):
    # A finding of `custody verify`, reported in full by its message: a traceback is noise.
    traceback = False


class BadSignature(CustodyError):
    traceback = False


class EntryRefused(CustodyError):
    """A caller's fields for one entry break a rule of the entry format. ``field`` names the
    offending field; the message never repeats its value (it may be personal data)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class LogBusy(CustodyError):
    """Another process holds the custody log's writer lock; ``pid`` is its process id, if known."""

    traceback = False

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid

class NotInLog(CustodyError):
    """What an officer asked about (a SHA-256, a job) is not in the log: an answer, not a fault."""

    traceback = False


class RetentionError(RedactdError):
    exit_code = 8
