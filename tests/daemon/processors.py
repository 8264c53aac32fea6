"""Processors the daemon tests inject at the composition-root seam instead of the real pipeline.

Each is a module-level function (worker children import it by name). They exist to control
timing (hold a job open so a test can kill its worker or stop the daemon), to crash the way a
native library does, or to take the media tools out of a test about the daemon's bookkeeping.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from redactd.jobflow.pipeline import JobResult, JobSpec, run_job

GATE_ENV = "REDACTD_TEST_GATE"


def _gate() -> Path:
    return Path(os.environ[GATE_ENV])


def gated(spec: JobSpec, progress: Callable[[float], None] | None = None, gate: Path | None = None) -> JobResult:
    """Announce the job (``<gate>/<job>.<pid>.started``), wait until ``<gate>/open`` exists, then run
    the real pipeline."""
    gate = gate or _gate()
    (gate / f"{spec.job_id}.{os.getpid()}.started").touch()
    end = time.monotonic() + 120
    while not (gate / "open").exists() and time.monotonic() < end:
        if progress:
            progress(0.25)
        time.sleep(0.05)
    return run_job(spec, progress)


def gated_beside_raw(spec: JobSpec, progress: Callable[[float], None] | None = None) -> JobResult:
    """`gated`, with the gate the folder ``gate`` beside the raw store's: in-process executor tests
    share one forkserver, whose children keep the environment of the test that started it."""
    return gated(spec, progress, spec.raw_path.parent.parent / "gate")


def segfault(spec: JobSpec, progress: Callable[[float], None] | None = None) -> JobResult:
    """Crash the way a native library does: a real SIGSEGV from reading address 0."""
    import ctypes

    ctypes.string_at(0)
    raise AssertionError("unreachable")


def echo(spec: JobSpec, progress: Callable[[float], None] | None = None) -> dict[str, int | str]:
    """Report progress, then return where it ran (pid, process group, SIGINT disposition)."""
    import signal

    if progress:
        progress(0.5)
    return {"job_id": spec.job_id, "pid": os.getpid(), "pgid": os.getpgid(0),
            "sigint_ignored": int(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)}


def refuse(spec: JobSpec, progress: Callable[[float], None] | None = None) -> JobResult:
    from redactd.errors import InputError

    raise InputError("not a video: the file is text")


def io_error(spec: JobSpec, progress: Callable[[float], None] | None = None) -> JobResult:
    raise OSError(5, "Input/output error")


def disk_full(spec: JobSpec, progress: Callable[[float], None] | None = None) -> JobResult:
    """A full disk the way a tool reports it: wrapped in an input error, as the remux used to."""
    from redactd.errors import InputError

    try:
        raise OSError(28, "No space left on device")
    except OSError as exc:
        raise InputError(f"remux failed, the file is damaged: {exc.strerror}") from exc


def sleeper(spec: JobSpec, progress: Callable[[float], None] | None = None) -> JobResult:
    (spec.scratch_dir / f"{os.getpid()}.pid").touch()
    time.sleep(60)
    raise AssertionError("should have been killed")


def passthrough(spec: JobSpec, progress: Callable[[float], None] | None = None) -> JobResult:
    """The raw file as the output: the executor's bookkeeping without the media tools."""
    import shutil

    from redactd.fsutil import sha256_file

    out = spec.scratch_dir / "output.mp4"
    shutil.copyfile(spec.raw_path, out)
    return JobResult(out, sha256_file(out), {"job_id": spec.job_id, "policy": {"id": spec.policy.id}}, "publish")


def doubtful(spec: JobSpec, progress: Callable[[float], None] | None = None) -> JobResult:
    """The real pipeline, with the verdict a validation stage gives when it finds something."""
    from dataclasses import replace

    return replace(run_job(spec, progress), verdict="review", reason="second detector found 1 face")
