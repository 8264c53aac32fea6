"""One retention run, as the daemon's scheduler and ``redactd retention`` both do it.

collect items (job store + queue folders) → ``plan`` (pure) → ``Applier.apply`` → a run record.
Start-up runs the same reconciliation as the cron: everything due *now* is deleted, so a daemon
that was down across deadlines catches up at its first run. Runs the cron missed while the
daemon was down are counted from the last recorded run and logged.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

from apscheduler.triggers.cron import CronTrigger

from redactd import log
from redactd.config import DaemonConfig
from redactd.errors import RetentionError
from redactd.jobflow.jobstore import JobStore
from redactd.jobflow.outbox import LogWriter, flush_outbox
from redactd.policy import PolicySet, RetentionPolicy
from redactd.retention.apply import Applier, ApplyReport
from redactd.retention.items import collect_items
from redactd.retention.model import Plan
from redactd.retention.plan import plan
from redactd.retention.store import RetentionStore

Clock = Callable[[], datetime]


def retention_policy(cfg: DaemonConfig, policies: PolicySet) -> RetentionPolicy:
    if cfg.retention is None:
        raise RetentionError("no retention policy is configured: add a 'retention:' section to the config "
                             "(see etc/redactd.yaml)")
    return policies.get_retention(cfg.retention.policy)


def make_plan(cfg: DaemonConfig, policies: PolicySet, store_file: Path, now: datetime,
              store: RetentionStore | None = None) -> Plan:
    """The plan for ``now`` under the configured (current) retention policy."""
    policy = retention_policy(cfg, policies)
    jobs = JobStore.open(store_file)
    try:
        all_jobs = jobs.jobs()
    finally:
        jobs.close()
    own = store or RetentionStore.open(store_file)
    try:
        items = collect_items(all_jobs, own.purged_paths(), cfg.review_dir, cfg.failed_dir)
        return plan(items, policy, own.holds(), now)
    finally:
        if store is None:
            own.close()


def run_retention(cfg: DaemonConfig, policies: PolicySet, store_file: Path, custody: LogWriter, clock: Clock,
                  *, dry_run: bool = False, trigger: str = "schedule",
                  stop: Callable[[], bool] | None = None,
                  flush_pending: Callable[[], object] | None = None) -> ApplyReport:
    """Plan for ``clock()`` and apply it; every purge lands in ``custody``.

    Queued custody entries (hold changes among them) are appended first, by ``flush_pending``
    where the caller already serialises its appends (the daemon), else straight from the outbox.
    """
    policy = retention_policy(cfg, policies)
    logger = log.get_logger()
    store = RetentionStore.open(store_file)
    try:
        if flush_pending is not None:
            flush_pending()
        else:
            flush_outbox(store_file, custody)
        now = clock()
        the_plan = make_plan(cfg, policies, store_file, now, store)
        dry = dry_run or policy.dry_run
        run_id = store.begin_run(trigger, policy.id, policy.version, dry, now)
        report = Applier(custody, store, clock).apply(the_plan, dry_run=dry_run, stop=stop)
        counts = report.counts()
        store.finish_run(run_id, clock(), counts)
        holds = store.holds()
    finally:
        store.close()
    logger.info("retention_applied", trigger=trigger, policy_id=policy.id, policy_version=policy.version,
                dry_run=dry, **counts)
    for hold in holds:
        if hold.review_date is not None and hold.review_date <= now:
            logger.warning("hold_review_overdue", hold_id=hold.id, review_date=hold.review_date.date().isoformat())
    return report


def missed_runs(schedule: str, last_run: datetime | None, now: datetime, limit: int = 1000,
                timezone: tzinfo | None = None) -> list[datetime]:
    """Times the cron ``schedule`` fired strictly between ``last_run`` and ``now`` (none without a last run).

    ``timezone`` None reads the cron in the host's zone, as the daemon's scheduler does.
    """
    if last_run is None:
        return []
    trigger = CronTrigger.from_crontab(schedule, timezone=timezone)
    fired: list[datetime] = []
    t = last_run + timedelta(microseconds=1)
    while len(fired) < limit:
        nxt = trigger.get_next_fire_time(None, t)
        if nxt is None or nxt >= now:
            break
        fired.append(nxt)
        t = nxt + timedelta(microseconds=1)
    return fired


def log_missed_runs(cfg: DaemonConfig, store_file: Path, now: datetime) -> int:
    """At start-up: say how many scheduled runs fell into the downtime (the start-up run catches up)."""
    if cfg.retention is None:
        return 0
    with RetentionStore.open(store_file) as store:
        last = store.last_finished_run()
    missed = missed_runs(cfg.retention.schedule, last, now)
    if missed:
        log.get_logger().warning("retention_runs_missed", count=len(missed), first=missed[0].isoformat(),
                                 last=missed[-1].isoformat(), since=last.isoformat() if last else None,
                                 note="the daemon was not running; the start-up run deletes everything due now")
    return len(missed)
