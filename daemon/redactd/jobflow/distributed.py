"""The `dramatiq` executor, daemon side: send a job through Redis, wait for its signed result.

Each dispatch of a job gets its own id. Workers answer on the results queue with messages that
name it (started, progress, then one ending); a result whose dispatch nobody waits for any more
(an older attempt, a job that already ended, a duplicate delivery) is logged and dropped, and so
is one without a valid signature. SQLite stays the source of truth: if the broker loses a job
(a flushed or restored Redis), the waiting thread notices that the broker no longer holds it and
sends it again; if the daemon itself restarts, recovery re-runs the job with a new dispatch.

The daemon checks a worker's output before anything else sees it: the file in the shared scratch
directory must have the SHA-256 the worker reported and pass the same metadata verification.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redactd import log
from redactd.config import DramatiqExecutor
from redactd.errors import RedactdError
from redactd.fsutil import sha256_file
from redactd.jobflow import broker as brokers
from redactd.jobflow.pipeline import JobResult, JobSpec
from redactd.jobflow.signing import Credentials, Forged, seal, unseal
from redactd.jobflow.workers import Ending, Outcome
from redactd.policy import policy_hash

#: Message kinds a worker sends back; the last five end a dispatch.
ENDINGS = {Ending.RESULT.value, Ending.REFUSED.value, Ending.ERROR.value, Ending.CRASHED.value,
           Ending.TIMED_OUT.value}
WIRE_VERSION = 1


def job_body(spec: JobSpec, job_id: str, attempt: int, dispatch: str, timeout: float) -> dict[str, Any]:
    """What a worker needs to run the job, and nothing it would have to look up in SQLite."""
    approved = spec.approved_detections.read_text(encoding="utf-8") if spec.approved_detections else None
    return {
        "v": WIRE_VERSION,
        "kind": "job",
        "dispatch": dispatch,
        "job_id": job_id,
        "attempt": attempt,
        "raw_path": str(spec.raw_path),
        "raw_sha256": spec.raw_sha256,
        "scratch_dir": str(spec.scratch_dir),
        "policy": spec.policy.model_dump(mode="json"),
        "policy_sha256": policy_hash(spec.policy),
        "approved_detections": approved,
        "timeout": timeout,
        "sent_at": time.time(),
    }


class ResultRouter:
    """Hands each verified result message to the thread waiting for its dispatch."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._waiting: dict[str, queue.SimpleQueue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.log = log.get_logger()

    def register(self, dispatch: str) -> queue.SimpleQueue[dict[str, Any]]:
        inbox: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        with self._lock:
            self._waiting[dispatch] = inbox
        return inbox

    def forget(self, dispatch: str) -> None:
        with self._lock:
            self._waiting.pop(dispatch, None)

    def deliver(self, body: Any = None, sig: Any = None) -> None:
        """The results actor: called by Dramatiq for every message on the results queue."""
        try:
            doc = unseal(self._key, body, sig)
        except (Forged, ValueError) as exc:
            self.log.warning("result_rejected", reason=str(exc))
            return
        dispatch = str(doc.get("dispatch"))
        with self._lock:
            inbox = self._waiting.get(dispatch)
        if inbox is None:
            if doc.get("kind") in ENDINGS:
                self.log.warning("result_ignored", job_id=doc.get("job_id"), attempt=doc.get("attempt"),
                                 kind=doc.get("kind"), worker=doc.get("worker"),
                                 reason="no attempt waits for it (an older attempt, or the job already ended)")
            return
        inbox.put(doc)


class DramatiqRunner:
    """The executor the job runner calls when `executor.kind` is `dramatiq`."""

    #: How long a send may keep failing (Redis down, restarting) before the attempt counts as failed.
    SEND_PATIENCE_S = 300.0

    def __init__(self, settings: DramatiqExecutor, creds: Credentials) -> None:
        self.settings, self.creds = settings, creds
        self.router = ResultRouter(creds.hmac_key)
        self.log = log.get_logger()
        self.broker: Any = None
        self._worker: Any = None

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Connect and start consuming the results queue (a Dramatiq worker of two threads)."""
        dramatiq, _ = brokers.dramatiq_modules()
        self.broker = brokers.connect(self.settings, self.creds)
        dramatiq.actor(self.router.deliver, broker=self.broker, actor_name=brokers.RESULT_ACTOR,
                       queue_name=self.settings.results_queue)
        self._worker = dramatiq.Worker(self.broker, queues={self.settings.results_queue}, worker_threads=2,
                                       worker_timeout=500)
        self._worker.start()
        self.log.info("executor_started", executor="dramatiq", queue=self.settings.queue,
                      results_queue=self.settings.results_queue)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop(timeout=5000)
            self._worker = None
        if self.broker is not None:
            self.broker.close()

    # ------------------------------------------------------------------ one job

    def run(self, spec: JobSpec, job_id: str, attempt: int, timeout: float, on_start: Callable[[int], None],
            on_progress: Callable[[float], None], stop_now: threading.Event) -> Outcome:
        dispatch = uuid.uuid4().hex
        inbox = self.router.register(dispatch)
        try:
            body = job_body(spec, job_id, attempt, dispatch, timeout)
            msg = self._send(brokers.message(self.settings.queue, brokers.JOB_ACTOR, seal(self.creds.hmac_key, body)),
                             stop_now)
            if msg is None:
                return self._unsent(stop_now)
            self.log.info("job_dispatched", job_id=job_id, attempt=attempt, dispatch=dispatch)
            return self._wait(spec, job_id, attempt, msg, inbox, timeout, on_progress, stop_now)
        finally:
            self.router.forget(dispatch)

    def _unsent(self, stop_now: threading.Event) -> Outcome:
        if stop_now.is_set():
            return Outcome(Ending.STOPPED, message="daemon stopped before the job reached the broker")
        return Outcome(Ending.ERROR, message=f"the broker at {self.settings.broker_url} did not take the job "
                       f"for {self.SEND_PATIENCE_S:.0f} s")

    def _send(self, msg: Any, stop_now: threading.Event) -> Any:
        """Enqueue, retrying while the broker is unreachable. Returns the message as the broker holds
        it (under a Redis id of its own), or None if the broker never took it."""
        give_up = time.monotonic() + self.SEND_PATIENCE_S
        pause = 0.5
        while True:
            try:
                return self.broker.enqueue(msg)
            except brokers.broker_errors() as exc:
                if stop_now.is_set() or time.monotonic() > give_up:
                    return None
                self.log.warning("broker_unreachable", error=f"{type(exc).__name__}: {exc}", retry_in_s=pause)
                stop_now.wait(pause)
                pause = min(pause * 2, 10.0)

    def _still_held(self, msg: Any) -> bool:
        try:
            return brokers.holds(self.broker, self.settings.queue, msg)
        except brokers.broker_errors() as exc:  # down: it may come back with the message; ask later
            self.log.warning("broker_unreachable", error=f"{type(exc).__name__}: {exc}")
            return True

    def _wait(self, spec: JobSpec, job_id: str, attempt: int, msg: Any,
              inbox: queue.SimpleQueue[dict[str, Any]], timeout: float, on_progress: Callable[[float], None],
              stop_now: threading.Event) -> Outcome:
        deadline: float | None = None  # the job's time limit runs from its start on a worker
        heard = time.monotonic()
        lost_after = self.settings.lost_after_seconds
        while True:
            if stop_now.is_set():
                return Outcome(Ending.STOPPED, message="daemon stopped while the job ran")
            now = time.monotonic()
            if deadline is not None and now > deadline:
                return Outcome(Ending.TIMED_OUT, message=f"job ran longer than {timeout:.0f} s "
                               "(limits.job_timeout_seconds) on its worker")
            try:
                doc = inbox.get(timeout=0.5)
            except queue.Empty:
                if now - heard > lost_after:
                    heard = now
                    if not self._still_held(msg):
                        # The broker lost it (flushed, restored from an old dump): SQLite says the job
                        # is running, so send it again under the same dispatch.
                        self.log.warning("job_redispatched", job_id=job_id, attempt=attempt,
                                         reason="the broker no longer holds the job")
                        msg = self._send(msg, stop_now)
                        if msg is None:
                            return self._unsent(stop_now)
                continue
            heard = time.monotonic()
            kind = doc.get("kind")
            if kind == "started":
                deadline = heard + timeout
                on_progress(0.0)
                self.log.info("job_started_remotely", job_id=job_id, attempt=attempt, worker=doc.get("worker"))
            elif kind == "progress":
                on_progress(float(doc.get("progress", 0.0)))
            elif kind == Ending.STOPPED.value:
                # The worker shut down mid-job and gave the job back: the next worker takes it.
                self.log.info("job_handed_back", job_id=job_id, attempt=attempt, worker=doc.get("worker"))
                deadline = None
                msg = self._send(msg, stop_now)
                if msg is None:
                    return self._unsent(stop_now)
            elif kind == Ending.RESULT.value:
                return self._checked(spec, doc)
            elif kind in ENDINGS:
                return Outcome(Ending(kind), message=f"{doc.get('message', '')} (worker {doc.get('worker')})")

    def _checked(self, spec: JobSpec, doc: dict[str, Any]) -> Outcome:
        """The worker's output, trusted only after the daemon has hashed and verified it itself."""
        result = doc.get("result") or {}
        name = str(result.get("output", ""))
        out = (spec.scratch_dir / name).resolve()
        if not name or spec.scratch_dir.resolve() not in out.parents or not out.is_file():
            return Outcome(Ending.ERROR, message=f"worker {doc.get('worker')} reported an output the daemon "
                           f"cannot find in the job's scratch directory ({name!r})")
        digest = sha256_file(out)
        if digest != result.get("output_sha256"):
            return Outcome(Ending.ERROR, message=f"output from worker {doc.get('worker')} has SHA-256 {digest}, "
                           f"the worker reported {result.get('output_sha256')}")
        verdict = result.get("verdict")
        if verdict not in ("publish", "review"):
            return Outcome(Ending.ERROR, message=f"worker {doc.get('worker')} sent an unknown verdict {verdict!r}")
        sidecar = json.loads(result.get("sidecar") or "{}")
        if verdict == "publish":
            try:
                _verify_again(out, sidecar)
            except RedactdError as exc:
                return Outcome(Ending.REFUSED, message=f"output from worker {doc.get('worker')} failed the "
                               f"daemon's own check: {exc}")
        return Outcome(Ending.RESULT, result=JobResult(out, digest, sidecar, verdict, result.get("reason")))


def _verify_again(out: Path, sidecar: dict[str, Any]) -> None:
    """The metadata verification the pipeline ran on the worker, run again on the daemon's side."""
    from redactd.metadata.verify import verify_clean

    streams = sidecar.get("streams")
    if isinstance(streams, dict):  # metadata-only: the stream counts the remux kept
        expect_video, expect_audio = int(streams.get("video", 1)), int(streams.get("audio", 0))
    else:
        expect_video = 1
        expect_audio = int(sidecar.get("audio") not in (None, "none", "drop"))
    verify_clean(out, expect_video=expect_video, expect_audio=expect_audio)
