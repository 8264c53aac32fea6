"""Run each job in its own child process, so a crash (even a segfault) kills the job, not the daemon.

Children come from a forkserver that has the processing code imported already: starting one
costs a fork, not an interpreter start, and no child inherits the daemon's threads or locks.
The processing function is injected (``Processor``); the composition root passes the pipeline.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from multiprocessing.connection import Connection
from typing import Any, Protocol

from redactd import log
from redactd.errors import ConfigError, InputError, StageError
from redactd.space import is_out_of_space

_PR_SET_PDEATHSIG = 1


class Processor(Protocol):
    """What a worker runs: ``redactd.jobflow.pipeline.run_job`` in production. Must be a module-level name."""

    def __call__(self, spec: Any, progress: Callable[[float], None] | None = None) -> Any: ...


class Ending(str, Enum):
    RESULT = "result"  # the processor returned a result
    REFUSED = "refused"  # it raised an error that will not go away on a retry (bad input, policy)
    ERROR = "error"  # it raised something that might (I/O, memory, a bug): retry
    CRASHED = "crashed"  # the child died without reporting (signal, os._exit)
    TIMED_OUT = "timed_out"
    STOPPED = "stopped"  # the daemon is stopping now; the job resumes at the next start
    NO_SPACE = "no_space"  # a disk filled up (ENOSPC, EDQUOT): not the file's fault; it waits for space


@dataclass(frozen=True)
class Outcome:
    ending: Ending
    result: Any = None
    message: str = ""


def classify(exc: BaseException) -> Ending:
    """A full disk waits, whatever wrapped it (a tool failing on ENOSPC is not a damaged file); errors
    about the input or the policy fail at once; anything else may be transient."""
    if is_out_of_space(exc):
        return Ending.NO_SPACE
    return Ending.REFUSED if isinstance(exc, InputError | StageError | ConfigError) else Ending.ERROR


def _die_with_parent() -> None:
    # If the forkserver (and so the daemon) dies, stop too: an orphan must not keep writing into a
    # scratch directory the next daemon will reuse.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        os._exit(70)


def _child_main(processor: Processor, spec: Any, conn: Connection, log_level: str, job_id: str) -> None:
    # A terminal's Ctrl-C goes to the whole foreground process group; the daemon decides what a
    # child does on shutdown, so leave that group and ignore SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    _die_with_parent()
    log.configure(level=log_level, json=True)
    import structlog

    structlog.contextvars.bind_contextvars(job_id=job_id, worker_pid=os.getpid())

    def progress(fraction: float) -> None:
        conn.send(("progress", float(fraction)))

    try:
        result = processor(spec, progress)
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the daemon as a message
        ending = classify(exc)
        conn.send((ending.value, f"{type(exc).__name__}: {exc}"))
    else:
        conn.send((Ending.RESULT.value, result))
    conn.close()


class Executor(Protocol):
    """Runs one job somewhere and says how it ended; the job runner calls nothing else.

    ``ChildRunner`` (executor ``local``) runs it in a child process here;
    ``redactd.jobflow.distributed.DramatiqRunner`` (executor ``dramatiq``) on a worker host.
    """

    def start(self) -> None: ...

    def close(self) -> None: ...

    def run(self, spec: Any, job_id: str, attempt: int, timeout: float, on_start: Callable[[int], None],
            on_progress: Callable[[float], None], stop_now: threading.Event) -> Outcome: ...


class ChildRunner:
    """Starts one child per job and waits for it, relaying progress: the ``local`` executor."""

    def __init__(self, processor: Processor, log_level: str = "info") -> None:
        self.processor = processor
        self.log_level = log_level
        self._ctx = multiprocessing.get_context("forkserver")
        modules = ["redactd.jobflow.workers"]
        if getattr(processor, "__module__", None):
            modules.append(processor.__module__)
        self._ctx.set_forkserver_preload(modules)

    def start(self) -> None:
        """Nothing to connect to: children start per job."""

    def close(self) -> None:
        """Nothing held between jobs."""

    def run(
        self,
        spec: Any,
        job_id: str,
        attempt: int,
        timeout: float,
        on_start: Callable[[int], None],
        on_progress: Callable[[float], None],
        stop_now: threading.Event,
    ) -> Outcome:
        parent, child = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(target=_child_main, args=(self.processor, spec, child, self.log_level, job_id),
                                 name=f"redactd-job-{job_id}", daemon=False)
        proc.start()
        child.close()
        assert proc.pid is not None
        on_start(proc.pid)
        deadline = time.monotonic() + timeout
        outcome: Outcome | None = None
        try:
            while outcome is None:
                if stop_now.is_set():
                    proc.kill()
                    outcome = Outcome(Ending.STOPPED, message="daemon stopped while the job ran")
                    break
                if time.monotonic() > deadline:
                    proc.kill()
                    outcome = Outcome(Ending.TIMED_OUT, message=f"job ran longer than {timeout:.0f} s "
                                      "(limits.job_timeout_seconds) and was killed")
                    break
                try:
                    if not parent.poll(0.2):
                        continue
                    kind, payload = parent.recv()
                except (EOFError, OSError):
                    proc.join(5)
                    outcome = Outcome(Ending.CRASHED, message=_death(proc.exitcode))
                    break
                if kind == "progress":
                    on_progress(payload)
                elif kind == Ending.RESULT.value:
                    outcome = Outcome(Ending.RESULT, result=payload)
                else:
                    outcome = Outcome(Ending(kind), message=payload)
        finally:
            parent.close()
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
            proc.close()
        return outcome


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the worker process died from {name}"
    return f"the worker process exited with status {exitcode} without reporting a result"


class WorkerPool:
    """N threads, each taking the next due job and running it to an end, one child at a time."""

    def __init__(self, size: int, take: Callable[[], Any], execute: Callable[[Any], None],
                 wake: threading.Condition) -> None:
        self._take, self._execute, self._wake = take, execute, wake
        self.draining = threading.Event()  # finish current jobs, take no new ones
        self._threads = [threading.Thread(target=self._loop, name=f"worker-{i}", daemon=True) for i in range(size)]
        self._busy = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        for t in self._threads:
            t.start()

    @property
    def busy(self) -> int:
        with self._lock:
            return self._busy

    def alive(self) -> bool:
        return all(t.is_alive() for t in self._threads)

    def _loop(self) -> None:
        logger = log.get_logger()
        while not self.draining.is_set():
            try:
                job = self._take()
            except Exception:
                logger.exception("job_claim_failed")
                job = None
            if job is None:
                with self._wake:
                    self._wake.wait(timeout=1.0)
                continue
            with self._lock:
                self._busy += 1
            try:
                self._execute(job)
            except Exception:
                logger.exception("job_handling_failed", job_id=getattr(job, "id", None))
            finally:
                with self._lock:
                    self._busy -= 1

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every thread to finish; True when all did."""
        end = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if end is None else max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)
