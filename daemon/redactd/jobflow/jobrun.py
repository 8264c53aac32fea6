"""Carry one admitted job through a worker process to published, review, failed, or back to the queue."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from redactd import log
from redactd.admit import move_aside
from redactd.errors import ConfigError
from redactd.fsutil import sha256_file
from redactd.jobflow.jobstore import Job, JobState, JobStore
from redactd.jobflow.pipeline import JobResult, JobSpec
from redactd.jobflow.publish import Queues, output_name, safe_suffix
from redactd.jobflow.workers import Ending, Executor, Outcome
from redactd.policy import PolicySet, RedactionPolicy, policy_hash
from redactd.space import is_out_of_space

_ADVICE = {
    Ending.REFUSED: "the file is not something this policy can process (see the reason); check the original, "
    "or fix the policy, then run `redactd jobs retry {id}`",
    Ending.ERROR: "processing kept failing; fix the cause in the reason (disk space, permissions), then run "
    "`redactd jobs retry {id}`",
    Ending.CRASHED: "this file crashes the worker; keep it out of the pipeline, or report it with the log "
    "lines for job {id}",
    Ending.TIMED_OUT: "the job takes longer than limits.job_timeout_seconds; raise it or split the footage, "
    "then run `redactd jobs retry {id}`",
}


#: How a job waiting for disk space says so in its last error (``status`` and the console show it).
WAITING_FOR_SPACE = "waiting for disk space"

#: While the state volume is full, a job-store write that must land is tried again after this
#: many seconds, doubling up to the second figure.
STORE_FULL_RETRY_S = (1.0, 30.0)

T = TypeVar("T")


@dataclass(frozen=True)
class RunLimits:
    timeout: float
    max_attempts: int
    backoff: float  # first retry after this many seconds, doubling each time

    def delay(self, attempts: int) -> float:
        return min(self.backoff * 2 ** max(0, attempts - 1), 3600.0)


class JobExecutor:
    """What a worker thread does with a job it claimed. Owns no state beyond its settings."""

    def __init__(
        self,
        stores: Callable[[], JobStore],
        runner: Executor,
        queues: Queues,
        scratch_root: Path,
        policies: Callable[[], PolicySet],
        limits: Callable[[], RunLimits],
        stop_now: threading.Event,
        custody_blocked: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.stores, self.runner, self.queues = stores, runner, queues
        #: Why the custody log cannot be written now (None when it can): then nothing is delivered.
        self.custody_blocked = custody_blocked
        self.scratch_root, self.policies, self.limits, self.stop_now = scratch_root, policies, limits, stop_now
        self.log = log.get_logger()

    # ------------------------------------------------------------------ one job

    def execute(self, job: Job) -> None:
        store = self.stores()
        try:
            policy = self.policies().get_redaction(job.policy_id)
        except ConfigError as exc:
            self.fail(job, f"its policy cannot be used: {exc}", _ADVICE[Ending.REFUSED], count=False)
            return
        self._stored(job, lambda: store.set_policy(job.id, policy.version, policy_hash(policy)))
        job = store.get(job.id)
        if job.raw_path is None or not job.raw_path.is_file():
            self.fail(job, f"the raw file is missing from the raw store ({job.raw_path})",
                      "restore the raw file from backup, then run `redactd jobs retry {id}`", count=False)
            return
        scratch = self.scratch_root / job.id
        shutil.rmtree(scratch, ignore_errors=True)  # a previous attempt's leftovers
        try:
            scratch.mkdir(mode=0o700, parents=True)
        except OSError as exc:
            if not is_out_of_space(exc):
                raise
            self.wait_for_space(store, job, f"scratch: {exc.strerror}")
            return
        started = time.monotonic()
        self.log.info("job_started", job_id=job.id, attempt=job.attempts + 1, policy=policy.id)
        last_saved = [0.0]

        def on_progress(fraction: float) -> None:
            now = time.monotonic()
            if now - last_saved[0] >= 1.0 or fraction >= 1.0:
                last_saved[0] = now
                self._best_effort(lambda: store.set_running(job.id, progress=max(0.0, min(1.0, fraction))))

        try:
            try:
                spec = JobSpec(job.id, job.raw_path, scratch, policy, self.queues.approved_boxes(job.id),
                               raw_sha256=job.raw_sha256)
                outcome = self.runner.run(
                    spec, job.id, job.attempts + 1, self.limits().timeout,
                    on_start=lambda pid: self._best_effort(lambda: store.set_running(job.id, worker_pid=pid)),
                    on_progress=on_progress,
                    stop_now=self.stop_now,
                )
            except OSError as exc:  # no child at all (fork failed: out of memory or processes)
                outcome = Outcome(Ending.ERROR, message=f"could not start a worker process: {exc}")
            self._conclude(store, job, policy, outcome, time.monotonic() - started)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _conclude(self, store: JobStore, job: Job, policy: RedactionPolicy, outcome: Outcome,
                  seconds: float) -> None:
        if outcome.ending is Ending.STOPPED:
            self.log.warning("job_interrupted", job_id=job.id, note="resumes at the next start")
            return
        if outcome.ending is Ending.RESULT:
            result: JobResult = outcome.result
            blocked = self.custody_blocked()
            if blocked:  # nothing reaches clean storage while its custody entry cannot be written
                self._stored(job, lambda: store.requeue(job.id, f"not published: {blocked}",
                                                        time.time() + self.limits().delay(1), count_attempt=False))
                self.log.error("job_not_published", job_id=job.id, reason=blocked)
                return
            try:
                self._deliver(store, job, policy, result)
            except OSError as exc:
                # Clean storage full or unwritable: the output is lost with the scratch directory,
                # the raw file is untouched, so a later attempt simply runs again.
                if is_out_of_space(exc):
                    self.wait_for_space(store, job, f"publishing: {exc.strerror or exc}")
                else:
                    self._retry_or_fail(store, job, Ending.ERROR, f"publishing failed: {exc}")
                return
            self.log.info("job_finished", job_id=job.id, verdict=result.verdict, seconds=round(seconds, 3),
                          output_sha256=result.output_sha256)
            return
        if outcome.ending is Ending.NO_SPACE:
            self.wait_for_space(store, job, outcome.message)
            return
        if outcome.ending is Ending.REFUSED:
            self.fail(job, outcome.message, _ADVICE[Ending.REFUSED], count=True)
            return
        self._retry_or_fail(store, job, outcome.ending, outcome.message)

    def wait_for_space(self, store: JobStore, job: Job, message: str) -> None:
        """A disk filled up under the job: back to the queue, no attempt counted, nothing blamed on the file.

        Workers take it again once the space check passes (``redactd.space``), so it resumes by
        itself when space returns; the short delay only spaces out tries where the floor is too low.
        """
        delay = min(max(self.limits().backoff, 1.0), 60.0)
        self._stored(job, lambda: store.requeue(job.id, f"{WAITING_FOR_SPACE}: {message}", time.time() + delay,
                                                count_attempt=False))
        self.log.warning("job_waiting_for_space", job_id=job.id, retry_in_s=delay, error=message,
                         note="a full disk is not the file's fault; the job resumes when space returns")

    def _deliver(self, store: JobStore, job: Job, policy: RedactionPolicy, result: JobResult) -> None:
        suffix = safe_suffix(result.output_path.name)
        sidecar: dict[str, Any] = {
            **result.sidecar,
            "job_id": job.id,
            "output_sha256": result.output_sha256,
            "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if result.verdict == "review":
            reason = result.reason or "no reason given"
            # No name to plan: the review folder is the job's own, so a rerun just rewrites it.
            where = self.queues.to_review(job, result.output_path, suffix, sidecar, reason)
            self._stored(job, lambda: store.mark_review(job.id, where, reason, result.output_sha256))
            return
        name = output_name(policy.output.naming, job, result.output_sha256, suffix)
        sidecar["output_name"] = name
        # Written down first: after a crash, recovery finds this name in clean storage and
        # records the publish instead of running the job again.
        self._stored(job, lambda: store.plan_output(job.id, name, result.output_sha256))
        published = self.queues.publish(result.output_path, name, sidecar)
        self._stored(job, lambda: store.mark_published(job.id, published))
        # Boxes approved before blurring have been rendered: the review folder has served its turn.
        shutil.rmtree(self.queues.review_dir / job.id, ignore_errors=True)

    def _stored(self, job: Job, write: Callable[[], T]) -> T:
        """``write()`` to the job store, which must land: while the state volume is full, wait and
        try again (a job left ``processing`` would wait for the next start). A stop request ends
        the wait with the error: start-up recovery then finishes the job (`recover`)."""
        delay, most = STORE_FULL_RETRY_S
        while True:
            try:
                return write()
            except sqlite3.Error as exc:
                if not is_out_of_space(exc) or self.stop_now.is_set():
                    raise
                self.log.warning("job_store_full", job_id=job.id, retry_in_s=delay, error=str(exc),
                                 note="the state volume is full; the job's outcome is recorded once space returns")
            self.stop_now.wait(delay)
            delay = min(delay * 2, most)

    def _best_effort(self, write: Callable[[], None]) -> None:
        """A job-store write that only reports (progress, worker pid): skipped while the state volume is full."""
        try:
            write()
        except sqlite3.Error as exc:
            if not is_out_of_space(exc):
                raise

    def _retry_or_fail(self, store: JobStore, job: Job, ending: Ending, message: str) -> None:
        limits = self.limits()
        attempts = job.attempts + 1
        if attempts >= limits.max_attempts:
            self.fail(job, f"{message} (gave up after {attempts} attempts)", _ADVICE[ending], count=True)
            return
        delay = limits.delay(attempts)
        self._stored(job, lambda: store.requeue(job.id, message, time.time() + delay, count_attempt=True))
        self.log.warning("job_requeued", job_id=job.id, attempts=attempts, retry_in_s=delay, error=message)

    def fail(self, job: Job, reason: str, advice: str, count: bool) -> Job:
        """Move the raw file beside a reason file in the failed queue; it is never deleted."""
        store = self.stores()
        folder = self.queues.folder(self.queues.failed_dir, job.id)
        kept = job.raw_path
        if job.raw_path is not None and os.path.lexists(job.raw_path):
            target = folder / f"raw{safe_suffix(job.raw_path.name)}"
            try:
                if move_aside(job.raw_path, target):
                    kept = target
            except OSError as exc:
                self.log.error("raw_not_moved", job_id=job.id, error=str(exc))
        # The reason file first: a failed job must never lack one, even after a crash right here.
        draft = replace(job, state=JobState.FAILED, last_error=reason, raw_path=kept,
                        attempts=job.attempts + (1 if count else 0))
        try:
            self.queues.write_reason(folder, draft, "this file could not be processed", reason,
                                     advice.format(id=job.id))
        except OSError as exc:  # a full disk must not keep the job out of failed
            self.log.error("reason_not_written", job_id=job.id, error=str(exc))
        failed = self._stored(job, lambda: store.mark_failed(job.id, reason, kept, count_attempt=count))
        self.log.error("job_failed", job_id=job.id, attempts=failed.attempts, reason=reason)
        return failed

    # ------------------------------------------------------------------ start-up

    def recover(self) -> None:
        """Jobs a previous run left in ``processing``: finish their publish, or run them again."""
        store = self.stores()
        for job in store.jobs({JobState.PROCESSING}):
            if job.output_name and job.output_sha256:
                published = self.queues.clean_dir / job.output_name
                if published.is_file() and sha256_file(published) == job.output_sha256:
                    store.mark_published(job.id, published)
                    self.log.info("publish_recovered", job_id=job.id)
                    continue
            failed_copy = self.queues.failed_dir / job.id / f"raw{safe_suffix(job.raw_path.name if job.raw_path else '')}"
            if job.raw_path is not None and not job.raw_path.exists() and failed_copy.is_file():
                self.fail(job, job.last_error or "the daemon stopped while failing this job",
                          _ADVICE[Ending.ERROR], count=False)
                continue
            store.requeue(job.id, "the daemon stopped while this job ran; running it again", 0.0,
                          count_attempt=False)
            self.log.info("job_resumed", job_id=job.id)
        with contextlib.suppress(FileNotFoundError):
            for entry in self.scratch_root.iterdir():
                shutil.rmtree(entry, ignore_errors=True)
