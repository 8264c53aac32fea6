"""The daemon's composition root: wire watch → admit → job store → workers → publish, and run the loop.

Threads, each with one job: the main thread owns the watchers, the stability tracker, signals
and systemd notifications; one admission thread moves ready files into the raw store (hashing a
large file must not stall the loop); N worker threads each drive one child process at a time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import signal
import statistics
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from redactd import log, space
from redactd.admit import Admitter, OutOfSpace, Route, StabilityTracker, is_junk, walk
from redactd.config import CACHE_ENV, DaemonConfig, DramatiqExecutor, check_config
from redactd.custody import CustodyLog, policy_ref
from redactd.custody.keeper import CustodyKeeper, read_state
from redactd.custody.keys import check_custody_config, read_passphrase
from redactd.errors import ConfigError, LogBusy, RedactdError
from redactd.fsutil import NETWORK_FILESYSTEMS, filesystem_type
from redactd.jobflow.jobrun import WAITING_FOR_SPACE, JobExecutor, RunLimits
from redactd.jobflow.jobstore import Job, JobState, JobStore, JobStoreError, TransitionSink, iso
from redactd.jobflow.outbox import custody_lag
from redactd.jobflow.publish import Queues, sweep_temps
from redactd.jobflow.workers import ChildRunner, Executor, Processor, WorkerPool
from redactd.notify import SystemdNotifier
from redactd.policy import PolicySet, policy_hash
from redactd.private import secure_layout
from redactd.receipts import write_receipt
from redactd.retention.service import log_missed_runs, run_retention
from redactd.retention.snapshots import warn_about_snapshots
from redactd.retention.store import open_refusals
from redactd.scheduler import DaemonScheduler, Tasks, Timetable
from redactd.space import SpaceWatch
from redactd.watch import InboxWatcher, Sighting

if TYPE_CHECKING:
    from redactd.web.server import ConsoleThread

STORE_FILE = "jobs.sqlite3"
LOCK_FILE = "redactd.lock"
SCRATCH_DIR = "scratch"
#: Models made at load (int8 and graph-edited ones) kept between jobs, unless $REDACTD_CACHE_DIR names another place.
CACHE_DIR = "cache"

#: Fields that name a person's file: kept out of the ordinary log (the custody log may hold them).
PERSONAL_FIELDS = frozenset({"original_name"})


def store_path(cfg: DaemonConfig) -> Path:
    return cfg.state_dir / STORE_FILE


def space_paths(cfg: DaemonConfig) -> dict[str, Path]:
    return space.paths(cfg.state_dir, cfg.raw_store, cfg.clean_dir)


def log_transition(event: str, **fields: Any) -> None:
    """The default transition sink until the custody log is connected: a log line, no personal data."""
    log.get_logger().debug("transition_recorded", transition=event,
                           **{k: v for k, v in fields.items() if k not in PERSONAL_FIELDS})


def serialized(sink: TransitionSink) -> TransitionSink:
    """Transitions come from several threads; the sink sees them one at a time."""
    lock = threading.Lock()

    def call(event: str, **fields: Any) -> None:
        with lock:
            sink(event, **fields)

    return call


def scratch_root(cfg: DaemonConfig) -> Path:
    """Where jobs write: the state directory here, or storage every worker mounts."""
    if isinstance(cfg.executor, DramatiqExecutor):
        return cfg.executor.scratch_dir
    return cfg.state_dir / SCRATCH_DIR


def make_executor(cfg: DaemonConfig, processor: Processor) -> Executor:
    """The executor the config names; the job runner and the pipeline do not know which."""
    if isinstance(cfg.executor, DramatiqExecutor):
        from redactd.jobflow.distributed import DramatiqRunner
        from redactd.jobflow.signing import load_credentials

        return DramatiqRunner(cfg.executor, load_credentials(cfg.executor.credentials_file))
    return ChildRunner(processor, cfg.log_level)


class DaemonLock:
    """One daemon per state directory: an flock held for the life of the process."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RedactdError(f"another redactd is already running on {self.path.parent} "
                               f"(pid {self.holder() or '?'})") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def holder(self) -> int | None:
        """The pid of the running daemon, or None when none holds the lock."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.read(fd, 32).decode(errors="replace").strip()
                return int(text) if text.isdigit() else -1
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


def build_routes(cfg: DaemonConfig, policies: PolicySet) -> dict[str, Route]:
    routes = {}
    for inbox in cfg.inboxes:
        if not inbox.path.is_dir():
            raise ConfigError(f"inbox '{inbox.name}': {inbox.path} is not a directory (is the share mounted?)")
        policy = policies.get_redaction(inbox.policy)
        routes[inbox.name] = Route(inbox.name, Path(os.path.realpath(inbox.path)), inbox.policy,
                                   policy.version, inbox.watch, policy_hash(policy))
    return routes


class Daemon:
    """``redactd run``: everything between a file landing in an inbox and its clean copy."""

    def __init__(self, config_path: Path, cfg: DaemonConfig, policies: PolicySet, processor: Processor,
                 sink: TransitionSink, notifier: SystemdNotifier, custody: CustodyLog,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.config_path, self.cfg, self.policies = config_path, cfg, policies
        self.custody, self.clock = custody, clock
        # Appends the outbox, checkpoints every burst, and says when custody cannot be written:
        # then nothing is admitted or processed (guarantee 7).
        self.keeper = CustodyKeeper(custody, store_path(cfg), cfg.state_dir, cfg.custody.checkpoint_seconds,
                                    reopen=lambda: open_custody(self.cfg))
        self._custody_wake = False
        self.scheduler = DaemonScheduler(Tasks(self._run_retention, self._request_rescan, self._checkpoint), clock)
        # Every transition is told to ``sink`` (a log line unless a test observes) and then
        # appended to the custody log from the outbox its own transaction filled.
        self.sink, self.notifier = serialized(self._transitioned), notifier
        self._observe = sink
        self.log = log.get_logger()
        self.routes = build_routes(cfg, policies)
        self.queues = Queues(cfg.clean_dir, cfg.review_dir, cfg.failed_dir)
        self.tracker = StabilityTracker(cfg.limits.settle_seconds)
        self.sightings: queue.Queue[Sighting] = queue.Queue()
        self.watcher = InboxWatcher(self.sightings, self._poll_interval())
        self.wake = threading.Condition()
        self.stop_now = threading.Event()
        self.runner = make_executor(cfg, processor)
        self._ready: queue.Queue[tuple[Route, Path] | None] = queue.Queue()
        self._done: queue.SimpleQueue[Path] = queue.SimpleQueue()
        self._receipts = any(i.receipts for i in cfg.inboxes)
        self._local = threading.local()
        self._stores: list[JobStore] = []
        self._stores_lock = threading.Lock()
        self._signals = 0
        self._reload_requested = False
        self.exit_code = 0
        self.executor = JobExecutor(self.store, self.runner, self.queues, scratch_root(cfg),
                                    lambda: self.policies, self._run_limits, self.stop_now,
                                    custody_blocked=lambda: self.keeper.blocked)
        # One watch per kind of work: a big file waiting for admission and a small job waiting for a
        # worker need different room, and each logs its own short/returned changes without flapping.
        self.space_admit = SpaceWatch(space_paths(cfg), cfg.limits.min_free_space, "admission")
        self.space_work = SpaceWatch(space_paths(cfg), cfg.limits.min_free_space, "processing")
        self.pool = WorkerPool(cfg.worker_count, self._claim, self.executor.execute, self.wake)
        self._admission = threading.Thread(target=self._admission_loop, name="admission", daemon=True)

    # ------------------------------------------------------------------ plumbing

    def store(self) -> JobStore:
        """This thread's connection to the job store."""
        existing: JobStore | None = getattr(self._local, "store", None)
        if existing is None:
            existing = JobStore.open(store_path(self.cfg), self.sink)
            self._local.store = existing
            with self._stores_lock:
                self._stores.append(existing)
        return existing

    def _claim(self) -> Job | None:
        """The next due job, if custody can be written and scratch and clean storage have room for it
        (else it waits, unblamed)."""
        if self.keeper.blocked:
            return None
        store = self.store()
        nxt = store.peek_next()
        if nxt is None:
            return None
        if self.space_work.check(nxt.size or 0, space.PROCESSING):
            return None
        return store.claim_next()

    def _run_limits(self) -> RunLimits:
        lim = self.cfg.limits
        return RunLimits(lim.job_timeout_seconds, lim.max_attempts, lim.retry_backoff_seconds)

    def _poll_interval(self) -> float:
        # Polling a network share costs a directory walk; more often than the settle window is waste.
        return min(5.0, max(0.5, self.cfg.limits.settle_seconds / 2))

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reload_requested = True
            return
        if signum == signal.SIGUSR1:  # a command queued custody entries or asks for a checkpoint
            self._custody_wake = True
            return
        self._signals += 1

    # ------------------------------------------------------------------ life cycle

    def run(self) -> int:
        cfg = self.cfg
        fstype = filesystem_type(cfg.state_dir)
        if fstype in NETWORK_FILESYSTEMS:
            raise ConfigError(f"state_dir {cfg.state_dir} is on a network filesystem ({fstype}): the job store "
                              "(SQLite) must sit on a local disk of the daemon's host; only the raw store and "
                              "executor.scratch_dir are shared with workers")
        secure_layout(cfg.state_dir, cfg.raw_store, cfg.custody.directory, cfg.custody.signing_key)
        scratch_root(cfg).mkdir(parents=True, exist_ok=True, mode=0o700)
        # Before the first job starts the forkserver: its children inherit the environment.
        os.environ.setdefault(CACHE_ENV, str(cfg.state_dir / CACHE_DIR))
        lock = DaemonLock(cfg.state_dir)
        lock.acquire()
        try:
            return self._run_locked()
        finally:
            for s in self._stores:
                with contextlib.suppress(Exception):
                    s.close()
            lock.release()

    def _run_locked(self) -> int:
        self.queues.ensure()
        sweep_temps(self.cfg.raw_store)
        admitter = self._admitter()
        admitter.recover(self.routes)
        self.executor.recover()
        self.keeper.start()
        self.runner.start()
        self._flush_outbox()
        self._record_policies()
        self.keeper.checkpoint()  # before admitting: whatever came before is covered and witnessed
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(sig, self._on_signal)
        self.watcher.start((r.name, r.root, r.watch) for r in self.routes.values())
        self._admission.start()
        self.pool.start()
        warn_about_snapshots({"raw_store": self.cfg.raw_store, "failed_dir": self.cfg.failed_dir})
        log_missed_runs(self.cfg, store_path(self.cfg), self.clock())
        # Retention and the first full rescan run now: files and deadlines that passed while we were down.
        self.scheduler.start(self._timetable())
        console = self._start_console()
        self.log.info("daemon_started", pid=os.getpid(), workers=self.cfg.worker_count,
                      inboxes={r.name: self.watcher.modes[r.name] for r in self.routes.values()})
        self.notifier.send(READY=1, STATUS=self._status_line(), MAINPID=os.getpid())
        try:
            self._loop()
        finally:
            if console is not None:
                console.stop()
            self.scheduler.shutdown()
            self._flush_outbox()
            self.watcher.stop()
            self.notifier.send(STOPPING=1, STATUS="stopped")
            self.notifier.close()
            self.runner.close()
        return self.exit_code

    def _start_console(self) -> ConsoleThread | None:
        """The web console and /metrics, in this process, when the config has a ``web:`` section."""
        if self.cfg.web is None:
            return None
        from redactd.web.server import ConsoleThread

        console = ConsoleThread(self.config_path)
        console.start()
        return console

    def _loop(self) -> None:
        draining = False
        next_status = 0.0
        while True:
            if self._signals >= 2:
                self.log.warning("daemon_stopping_now", note="running jobs resume at the next start")
                self.stop_now.set()
                self._begin_drain()
                self.pool.join(timeout=15)
                break
            if self._signals == 1 and not draining:
                draining = True
                self.log.info("daemon_stopping", running_jobs=self.pool.busy,
                              note="a second SIGTERM stops now")
                self._begin_drain()
            if draining and not self._admission.is_alive() and self.pool.join(timeout=0):
                self.log.info("daemon_stopped")
                break
            if self._reload_requested:
                self._reload_requested = False
                self._reload()
            self._take_sightings(timeout=0.2)
            if self._custody_wake:
                self._custody_wake = False
                self.keeper.checkpoint()
            self.keeper.tick()
            now = time.monotonic()
            if not draining and not self.keeper.blocked:
                for path in self.tracker.due(now):
                    route = self._route_of(path)
                    if route is None:
                        self.tracker.forget(path)
                    else:
                        self._ready.put((route, path))
            while True:
                try:
                    self.tracker.forget(self._done.get_nowait())
                except queue.Empty:
                    break
            if now >= next_status:
                next_status = now + 5.0
                self.notifier.send(STATUS=self._status_line())
            # Ping only while every part is alive: a dead thread must let systemd restart us.
            if self._admission.is_alive() and self.pool.alive() and (draining or self.watcher.alive()):
                self.notifier.ping_if_due()
            elif not draining:
                self.log.critical("daemon_part_died", admission=self._admission.is_alive(),
                                  workers=self.pool.alive(), watcher=self.watcher.alive(),
                                  note="stopping so that the service manager restarts the daemon")
                self.exit_code = 1
                self._signals = max(self._signals, 1)

    # ------------------------------------------------------------------ scheduled jobs (scheduler threads)

    def _timetable(self) -> Timetable:
        return Timetable.from_config(self.cfg, custody=True)

    def _run_retention(self) -> None:
        if self.keeper.blocked:
            self.log.error("retention_skipped", reason=self.keeper.blocked,
                           note="nothing is purged without a custody entry")
            return
        # On SIGTERM a run stops between two deletions, so shutdown never waits on a long run.
        run_retention(self.cfg, self.policies, store_path(self.cfg), self.keeper.custody, self.clock, trigger="daemon",
                      flush_pending=self._flush_outbox,
                      stop=lambda: self._signals > 0)

    def _request_rescan(self) -> None:
        """A full rescan of every inbox, done by the main loop like any other sighting."""
        for route in list(self.routes.values()):
            self.sightings.put(Sighting(route.name, route.root, rescan=True))

    def _checkpoint(self) -> None:
        self.keeper.checkpoint()

    def _record_policies(self) -> None:
        """A policy_loaded entry per policy in force: the versions officers see in the report."""
        try:
            for pol in self.policies.all():
                self.keeper.custody.append("policy_loaded", policy=policy_ref(pol), kind=pol.kind,
                                    file=self.policies.files[pol.id].name)
        except RedactdError:
            self.log.exception("custody_policies_not_recorded")

    def _transitioned(self, event: str, **fields: Any) -> None:
        self._observe(event, **fields)
        self._flush_outbox()
        if fields.get("job_id") and self._receipts:
            with contextlib.suppress(JobStoreError):
                write_receipt(self.cfg, self.store().get(fields["job_id"]))

    def _flush_outbox(self) -> None:
        """Append the queued custody entries (this process's transitions and other processes'
        decisions): the daemon holds the log. One flush at a time, so none is appended twice;
        a failure blocks admission and processing until custody can be written again."""
        written = self.keeper.flush()
        if written:
            self.log.debug("custody_outbox_flushed", entries=written)

    def _begin_drain(self) -> None:
        self.watcher.stop()
        with contextlib.suppress(queue.Empty):
            while True:
                self._ready.get_nowait()  # not yet admitted: they stay in the inbox for next time
        self._ready.put(None)
        self.pool.draining.set()
        with self.wake:
            self.wake.notify_all()
        self.notifier.send(STOPPING=1, STATUS=f"finishing {self.pool.busy} running job(s)")

    # ------------------------------------------------------------------ watching and admission

    def _route_of(self, path: Path) -> Route | None:
        for route in self.routes.values():
            if route.root in path.parents:
                return route
        return None

    def _consider(self, path: Path, now: float) -> None:
        route = self._route_of(path)
        if route is None or is_junk(path.relative_to(route.root)):
            return
        if os.path.isdir(path) and not os.path.islink(path):
            return
        self.tracker.observe(path, now)

    def _take_sightings(self, timeout: float) -> None:
        try:
            first = self.sightings.get(timeout=timeout)
        except queue.Empty:
            return
        batch = [first]
        with contextlib.suppress(queue.Empty):
            while len(batch) < 10_000:
                batch.append(self.sightings.get_nowait())
        now = time.monotonic()
        for s in batch:
            if s.rescan and os.path.isdir(s.path) and not os.path.islink(s.path):
                for p in walk(s.path):
                    self._consider(p, now)
                continue
            self._consider(s.path, now)

    def _rescan(self) -> None:
        now = time.monotonic()
        for route in self.routes.values():
            try:
                for path in walk(route.root):
                    self._consider(path, now)
            except OSError as exc:
                self.log.error("inbox_scan_failed", inbox=route.name, error=str(exc))

    def _admitter(self) -> Admitter:
        return Admitter(self.store(), self.cfg.raw_store, self.queues, self.cfg.limits.max_file_size)

    def _admission_loop(self) -> None:
        admitter = self._admitter()
        while True:
            item = self._ready.get()
            if item is None:
                return
            route, path = item
            admitter.max_size = self.cfg.limits.max_file_size
            if not self._room_to_admit(path):
                return  # stopping while waiting for space: the file stays in the inbox for next time
            try:
                job = admitter.admit(route, path)
            except OutOfSpace as exc:
                self.log.warning("admission_waiting_for_space", inbox=route.name, error=str(exc))
                self._ready.put(item)  # tried again once the space check passes
                time.sleep(1.0)
                continue
            except Exception:
                self.log.exception("admission_crashed", inbox=route.name)
                job = None
            if job is None or job.raw_path is not None or job.state is not JobState.FAILED:
                self._done.put(path)  # else refused and left in place: do not refuse it again
            if job is not None and job.state is JobState.ADMITTED:
                with self.wake:
                    self.wake.notify()

    def _room_to_admit(self, path: Path) -> bool:
        """Wait while scratch, the raw store or clean storage is under its floor for this file.

        False when the daemon began stopping meanwhile.
        """
        try:
            size = os.lstat(path).st_size
        except OSError:
            size = 0
        while self.space_admit.check(size, space.ADMISSION):
            if self._signals or self.pool.draining.is_set():
                return False
            time.sleep(1.0)
        return True

    # ------------------------------------------------------------------ reload and status

    def _reload(self) -> None:
        try:
            cfg, policies = check_config(self.config_path)
            routes = build_routes(cfg, policies)
        except RedactdError as exc:
            self.log.error("config_reload_failed", error=str(exc), note="the previous configuration stays")
            return
        fixed = ("raw_store", "clean_dir", "review_dir", "failed_dir", "state_dir", "workers", "custody")
        ignored = [k for k in fixed if getattr(cfg, k) != getattr(self.cfg, k)]
        if ignored:
            self.log.warning("config_change_needs_restart", keys=ignored)
            cfg = cfg.model_copy(update={k: getattr(self.cfg, k) for k in ignored})
        watch_changed = {(r.name, r.root, r.watch) for r in routes.values()} != \
            {(r.name, r.root, r.watch) for r in self.routes.values()}
        self.cfg, self.policies, self.routes = cfg, policies, routes
        self.tracker.set_settle(cfg.limits.settle_seconds)
        self.space_admit.min_free = self.space_work.min_free = cfg.limits.min_free_space
        if watch_changed:
            self.watcher.stop()
            self.watcher = InboxWatcher(self.sightings, self._poll_interval())
            self.watcher.start((r.name, r.root, r.watch) for r in routes.values())
            self._rescan()
        self.scheduler.configure(self._timetable())
        self._record_policies()
        self.log.info("config_reloaded", inboxes=sorted(routes), policies=sorted(policies.redaction))
        self.notifier.send(STATUS=self._status_line())

    def _status_line(self) -> str:
        counts = self.store().counts()
        if self.keeper.blocked:
            return f"STOPPED: {self.keeper.blocked}"
        line = (f"{counts[JobState.PROCESSING]} running, {counts[JobState.ADMITTED]} waiting, "
                f"{counts[JobState.PUBLISHED]} published, {counts[JobState.REVIEW]} in review, "
                f"{counts[JobState.FAILED]} failed")
        short = sorted({v.name for v in self.space_admit.short + self.space_work.short})
        if short:
            line += "; waiting for disk space on " + ", ".join(short)
        return line


def run_daemon(config_path: Path, processor: Processor | None = None, sink: TransitionSink | None = None,
               notifier: SystemdNotifier | None = None) -> int:
    """Build the daemon from its config and run it in the foreground until stopped.

    ``processor`` is what each worker runs on a job (default: ``redactd.jobflow.pipeline.run_job``);
    ``sink`` receives every job transition (default: a log line; the custody log in production).
    """
    cfg, policies = check_config(config_path)
    c = cfg.custody
    check_custody_config(c.signing_key, c.passphrase_file, c.witnesses)
    if processor is None:
        from redactd.jobflow.pipeline import run_job

        processor = run_job
    try:
        custody = open_custody(cfg)
    except LogBusy:
        holder = DaemonLock(cfg.state_dir).holder()
        if holder is None:
            raise
        raise RedactdError(f"another redactd is already running on {cfg.state_dir} (pid {holder})") from None
    daemon: Daemon | None = None
    try:
        daemon = Daemon(config_path, cfg, policies, processor, sink or log_transition,
                        notifier or SystemdNotifier(), custody)
        return daemon.run()
    finally:
        try:
            (daemon.keeper.custody if daemon is not None else custody).close()  # the final checkpoint
        except (RedactdError, OSError) as exc:
            log.get_logger().error("custody_close_failed", error=str(exc))


def open_custody(cfg: DaemonConfig) -> CustodyLog:
    """The daemon's custody log. No key, an unreadable key or one others can read is a
    ConfigError: the daemon never runs without custody (fail closed)."""
    c = cfg.custody
    return CustodyLog.open(c.directory, c.signing_key, read_passphrase(c.passphrase_file),
                           segment_max_bytes=c.segment_max_bytes, witnesses=c.witnesses)


# --------------------------------------------------------------------------- status (read-only)


def throughput(jobs: list[Job], window: float) -> dict[str, float | int | None]:
    """Finished jobs in a window: count, per hour, and the median seconds from start to finish."""
    durations = [j.finished_at - j.started_at for j in jobs if j.finished_at and j.started_at]
    return {
        "finished": len(jobs),
        "per_hour": round(len(jobs) * 3600 / window, 1),
        "median_job_seconds": round(statistics.median(durations), 3) if durations else None,
    }


def storage_report(cfg: DaemonConfig, pending: int = 0) -> dict[str, Any]:
    """Free space per volume (which one is short, for a file of ``pending`` bytes) and the purges
    retention refused: what ``status`` and the console show about storage."""
    vols = space.volumes(space_paths(cfg), cfg.limits.min_free_space, pending)
    return {"volumes": [v.as_dict() for v in vols], "space_short": [v.name for v in vols if v.short],
            "purge_refused": [{**r, "at": iso(r["at"] if isinstance(r["at"], float) else None)}
                              for r in open_refusals(store_path(cfg))]}


def status_report(cfg: DaemonConfig, recent: int = 5) -> dict[str, Any]:
    """What ``redactd status`` shows, as data: read-only, safe while the daemon runs."""
    store = JobStore.open(store_path(cfg), readonly=True)
    try:
        now = time.time()
        counts = store.counts()
        in_flight = store.jobs({JobState.PROCESSING})
        failed = store.recent_failures(recent)
        waiting = store.jobs({JobState.ADMITTED})
        pid = DaemonLock(cfg.state_dir).holder()
        return {
            **storage_report(cfg, max((j.size or 0 for j in waiting), default=0)),
            "daemon_pid": pid,
            "custody": {**custody_lag(store_path(cfg)), **read_state(cfg.state_dir, pid)},
            "state_dir": str(cfg.state_dir),
            "counts": {s.value: n for s, n in counts.items()},
            "in_flight": [
                {"id": j.id, "inbox": j.inbox, "progress": j.progress, "attempt": j.attempts + 1,
                 "running_s": round(now - j.started_at, 1) if j.started_at else None, "worker_pid": j.worker_pid}
                for j in in_flight
            ],
            "retrying": [{"id": j.id, "attempts": j.attempts, "due_in_s": round(max(0.0, j.not_before - now), 1),
                          "last_error": j.last_error} for j in waiting if j.attempts],
            "waiting_for_space": [j.id for j in waiting if (j.last_error or "").startswith(WAITING_FOR_SPACE)],
            "recent_errors": [{"id": j.id, "at": iso(j.finished_at), "error": j.last_error} for j in failed],
            "throughput": {
                "last_hour": throughput(store.finished_since(now - 3600), 3600),
                "last_day": throughput(store.finished_since(now - 86400), 86400),
            },
        }
    finally:
        store.close()

