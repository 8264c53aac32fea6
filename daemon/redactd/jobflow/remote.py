"""`redactd worker`: take jobs from Redis and run them, each in a child process, on this host.

A worker reads the raw file and writes into the job's scratch directory on shared storage; it
never opens the job store, the custody log or clean storage. It runs the same ``run_job`` through
the same ``ChildRunner`` as the local executor, after checking the message's signature, the raw
file's SHA-256 and the policy's hash, and answers on the results queue with signed messages.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from pathlib import Path
from types import FrameType
from typing import Any

from redactd import log
from redactd.config import WorkerConfig
from redactd.fsutil import sha256_file
from redactd.jobflow import broker as brokers
from redactd.jobflow.pipeline import JobSpec
from redactd.jobflow.signing import Credentials, Forged, seal, unseal, worker_name
from redactd.jobflow.workers import ChildRunner, Ending, Outcome, Processor
from redactd.policy import RedactionPolicy, policy_hash

#: Progress messages are sent at most this often (the daemon writes progress once a second).
PROGRESS_EVERY_S = 2.0
#: How long a result may keep failing to send (Redis restarting) before the job is given back.
SEND_PATIENCE_S = 300.0


class RemoteWorker:
    """The job actor and what it needs: settings, key, a child runner, a stop flag."""

    def __init__(self, cfg: WorkerConfig, creds: Credentials, processor: Processor) -> None:
        self.cfg, self.creds = cfg, creds
        self.runner = ChildRunner(processor, cfg.log_level)
        self.stop_now = threading.Event()
        self.name = worker_name()
        self.broker: Any = None
        self.log = log.get_logger()

    def send(self, job: dict[str, Any], kind: str, **fields: Any) -> None:
        body = {"v": 1, "kind": kind, "dispatch": job["dispatch"], "job_id": job["job_id"],
                "attempt": job["attempt"], "worker": self.name, "sent_at": time.time(), **fields}
        msg = brokers.message(self.cfg.results_queue, brokers.RESULT_ACTOR, seal(self.creds.hmac_key, body))
        give_up = time.monotonic() + SEND_PATIENCE_S
        pause = 0.5
        while True:
            try:
                self.broker.enqueue(msg)
                return
            except brokers.broker_errors() as exc:
                if time.monotonic() > give_up:
                    raise
                self.log.warning("broker_unreachable", error=f"{type(exc).__name__}: {exc}", retry_in_s=pause)
                time.sleep(pause)
                pause = min(pause * 2, 10.0)

    def handle(self, body: Any = None, sig: Any = None) -> None:
        """The job actor. Returning acknowledges the message; the result went out before."""
        try:
            job = unseal(self.creds.hmac_key, body, sig)
        except (Forged, ValueError) as exc:
            self.log.warning("job_rejected", reason=str(exc))
            return
        job_id = str(job["job_id"])
        self.log.info("job_received", job_id=job_id, attempt=job["attempt"])
        self.send(job, "started")
        outcome = self._run(job)
        if outcome.ending is Ending.RESULT:
            result = outcome.result
            scratch = self.cfg.to_worker(Path(job["scratch_dir"]))
            self.send(job, Ending.RESULT.value, result={
                "output": str(result.output_path.relative_to(scratch)),
                "output_sha256": result.output_sha256,
                "sidecar": json.dumps(result.sidecar, sort_keys=True),
                "verdict": result.verdict,
                "reason": result.reason,
            })
        else:
            self.send(job, outcome.ending.value, message=outcome.message)
        self.log.info("job_answered", job_id=job_id, attempt=job["attempt"], ending=outcome.ending.value)

    def _run(self, job: dict[str, Any]) -> Outcome:
        raw = self.cfg.to_worker(Path(job["raw_path"]))
        scratch = self.cfg.to_worker(Path(job["scratch_dir"]))
        self.log.info("job_paths", job_id=job["job_id"], raw=str(raw), scratch=str(scratch))
        if not raw.is_file():
            return Outcome(Ending.ERROR, message=f"the raw file {raw} is not there on this worker (is the raw store "
                           "mounted, and does path_map cover it?)")
        digest = sha256_file(raw)
        if job.get("raw_sha256") and digest != job["raw_sha256"]:
            return Outcome(Ending.ERROR, message=f"the raw file {raw} has SHA-256 {digest} on this worker, "
                           f"{job['raw_sha256']} at admission; refusing to process other bytes")
        try:
            policy = RedactionPolicy.model_validate(job["policy"])
        except ValueError as exc:
            return Outcome(Ending.ERROR, message=f"this worker cannot read the job's policy (another redactd "
                           f"version?): {exc}")
        if policy_hash(policy) != job["policy_sha256"]:
            return Outcome(Ending.ERROR, message="the policy's hash differs on this worker (another redactd "
                           "version?); refusing to run a policy other than the daemon's")
        # A directory of this delivery's own: if the broker hands the job to a second worker while the
        # first is still alive, neither overwrites the other's output.
        delivery = scratch / f"w-{uuid.uuid4().hex[:12]}"
        try:
            delivery.mkdir(parents=True, mode=0o700)
        except OSError as exc:
            return Outcome(Ending.ERROR, message=f"cannot write the scratch directory {delivery}: {exc}")
        approved = None
        if job.get("approved_detections"):
            approved = delivery / "approved.json"
            approved.write_text(job["approved_detections"], encoding="utf-8")
        spec = JobSpec(str(job["job_id"]), raw, delivery, policy, approved, raw_sha256=digest,
                       device=self.cfg.device)
        last = [0.0]

        def progress(fraction: float) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_S:
                last[0] = now
                self.send(job, "progress", progress=round(float(fraction), 4))

        try:
            return self.runner.run(spec, spec.job_id, int(job["attempt"]), float(job["timeout"]),
                                   on_start=lambda pid: None, on_progress=progress, stop_now=self.stop_now)
        except OSError as exc:
            return Outcome(Ending.ERROR, message=f"could not start a worker process: {exc}")


def serve(cfg: WorkerConfig, creds: Credentials, processor: Processor) -> int:
    """Run until SIGTERM/SIGINT: the first finishes the jobs in hand, a second stops them now
    (each is handed back to the daemon, which sends it to another worker)."""
    if cfg.device != "cpu":
        from redactd.visual.detect import use_device

        use_device(cfg.device)  # a clear error now rather than on the first job
    dramatiq, _ = brokers.dramatiq_modules()
    worker = RemoteWorker(cfg, creds, processor)
    worker.broker = brokers.connect(cfg, creds)
    dramatiq.actor(worker.handle, broker=worker.broker, actor_name=brokers.JOB_ACTOR, queue_name=cfg.queue)
    consumer = dramatiq.Worker(worker.broker, queues={cfg.queue}, worker_threads=cfg.concurrency,
                               worker_timeout=1000)
    # Take only as many jobs as there are threads to run them: a prefetched video job would wait
    # here while another worker sits idle.
    consumer.queue_prefetch = cfg.concurrency
    signals = [0]

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signals[0] += 1
        if signals[0] >= 2:
            worker.stop_now.set()

    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, on_signal)
    consumer.start()
    log.get_logger().info("worker_started", worker=worker.name, queue=cfg.queue, concurrency=cfg.concurrency,
                          device=cfg.device)
    try:
        while signals[0] == 0:
            time.sleep(0.2)
        log.get_logger().info("worker_stopping", note="a second SIGTERM stops the jobs in hand now")
        consumer.stop(timeout=24 * 3600 * 1000)
    finally:
        worker.broker.close()
    log.get_logger().info("worker_stopped", worker=worker.name)
    return 0
