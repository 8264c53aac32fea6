"""The pure retention planner: items, one policy, holds and a moment in, one explained decision per item out.

Nothing here touches the disk or the clock, so ``redactd retention plan --at DATE`` shows
exactly what a run at that moment would do, and tests pin every boundary.

How an item's deadline is found (first match wins at every step):

1. A legal hold that covers it (by SHA-256, job, inbox or name pattern): **held**, whatever
   the rules say. The decision still shows what the rules alone would have done.
2. The first rule whose ``match`` fits (inbox, redaction profile, extension, size). None: kept.
3. The duration for the item: ``raw_after_published`` / ``raw_after_failed`` / ``review_items``
   (raw of a job still in review) for raw footage; ``review_items``, ``failed_items`` and
   ``clean_outputs`` for the queues and clean storage. ``null`` keeps forever.
4. Raw footage of a job that never published is kept while
   ``require_published_before_raw_purge`` is true (the default), except failed footage where the
   policy says ``purge_failed_raw: true``: a policy must say so explicitly to purge footage
   that has no clean copy. Raw footage of a published job is purged only while its clean copy
   is still in clean storage with the recorded SHA-256 (``apply`` checks, right before deleting).
5. Deadline = (ingested or finished time, per ``count_from``) + duration. Due when
   ``now >= deadline``: at the very second, not one later.
6. At most ``max_deletions_per_run`` deletions, oldest deadline first; the rest are deferred.

The *current* version of the policy governs every item, whatever version was in force when it
arrived: retention is a reconciliation of what is due now, so a shortened duration takes effect
at the next run and a lengthened one saves items not yet deleted. Each plan records the policy
id, version and hash it was made under, and so does every custody entry apply writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from redactd.errors import RetentionError
from redactd.policy import RetentionPolicy, RetentionRule, policy_hash
from redactd.retention.model import Action, Decision, Hold, ItemKind, Plan, RetentionItem

_ORDER = {Action.DELETE: 0, Action.DEFERRED: 1, Action.HELD: 2, Action.KEEP: 3}
_RAW_DURATION = {"published": "raw_after_published", "failed": "raw_after_failed", "review": "review_items"}
_QUEUE_DURATION = {ItemKind.REVIEW: "review_items", ItemKind.FAILED: "failed_items",
                   ItemKind.CLEAN: "clean_outputs"}


def fmt_time(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%SZ") if when is not None else "never"


def _days(days: float) -> str:
    return f"{days:g} d"


def rule_matches(rule: RetentionRule, item: RetentionItem) -> bool:
    m = rule.match
    if m.inbox is not None and m.inbox != item.inbox:
        return False
    if m.profile is not None and m.profile != item.profile:
        return False
    if m.extensions is not None:
        wanted = {"." + e.lower().lstrip(".") for e in m.extensions}
        if item.ext.lower() not in wanted:
            return False
    if m.min_bytes is not None and (item.size is None or item.size < m.min_bytes):
        return False
    return m.max_bytes is None or (item.size is not None and item.size <= m.max_bytes)


def _by_rules(item: RetentionItem, policy: RetentionPolicy, now: datetime, footage_jobs: set[str]) -> Decision:
    """What the rules alone decide (holds and the per-run cap come after)."""
    if item.kind is ItemKind.RAW and item.state not in _RAW_DURATION:
        return Decision(item, Action.KEEP, f"its job is {item.state}: raw footage waits until "
                        "its job is published, failed or in review")
    if not item.record and item.sha256 is None:
        return Decision(item, Action.KEEP, "no SHA-256 was recorded for this file, so redactd cannot prove "
                        "it is the file it would delete; remove it by hand when it is no longer needed")
    rule = next((r for r in policy.rules if rule_matches(r, item)), None)
    if rule is None:
        return Decision(item, Action.KEEP, "no rule of the policy matches it: kept until one does")
    if item.kind is ItemKind.RAW:
        duration = _RAW_DURATION[item.state]
        explicitly_discarded = item.state == "failed" and policy.purge_failed_raw
        if item.state != "published" and policy.require_published_before_raw_purge and not explicitly_discarded:
            return Decision(item, Action.KEEP, f"never published (job {item.state}): "
                            "require_published_before_raw_purge keeps raw footage until a clean copy exists"
                            + (" (purge_failed_raw: true would let failed footage go)" if item.state == "failed"
                               else ""), rule.name)
    else:
        duration = _QUEUE_DURATION[item.kind]
        if item.record and item.job_id in footage_jobs:
            return Decision(item, Action.KEEP, "the failed folder still holds this job's footage; its "
                            "reason file goes after the footage", rule.name)
    days: float | None = getattr(rule.keep_days, duration)
    if days is None:
        return Decision(item, Action.KEEP, f"rule '{rule.name}' keeps {duration} forever", rule.name)
    start = item.ingested_at if rule.count_from == "ingested" else item.finished_at
    if start is None:
        return Decision(item, Action.KEEP, f"no {rule.count_from} time is recorded to count "
                        f"{duration} from", rule.name)
    deadline = start + timedelta(days=days)
    why = f"{duration} {_days(days)} from {rule.count_from} {fmt_time(start)}, rule '{rule.name}'"
    if now >= deadline:
        return Decision(item, Action.DELETE, f"due since {fmt_time(deadline)} ({why})", rule.name, deadline)
    return Decision(item, Action.KEEP, f"due at {fmt_time(deadline)} ({why})", rule.name, deadline)


def _held(decision: Decision, hold: Hold, now: datetime) -> Decision:
    overdue = ""
    if hold.review_date is not None and hold.review_date <= now:
        overdue = f"; its review date {fmt_time(hold.review_date)} has passed: review or release it"
    alone = "delete it" if decision.action is Action.DELETE else "keep it"
    reason = (f"{hold.description}: {hold.reason} (requested by {hold.requested_by}){overdue}; "
              f"without the hold the rules would {alone}: {decision.reason}")
    return replace(decision, action=Action.HELD, reason=reason, hold_id=hold.id)


def plan(items: Iterable[RetentionItem], policy: RetentionPolicy, holds: Iterable[Hold], now: datetime) -> Plan:
    """Decide, for every item, keep / delete / held / deferred, with the reason, rule and deadline."""
    if now.tzinfo is None:
        raise RetentionError("retention plan: 'now' must carry a time zone (use UTC)")
    items = list(items)
    active = [h for h in holds if h.active]
    footage_jobs = {i.job_id for i in items if not i.record and i.kind in (ItemKind.RAW, ItemKind.FAILED)}
    decisions = []
    for item in items:
        decision = _by_rules(item, policy, now, footage_jobs)
        hold = next((h for h in active if h.covers(item)), None)
        decisions.append(_held(decision, hold, now) if hold is not None else decision)

    def order(d: Decision) -> tuple[int, datetime, str, str]:
        return (_ORDER[d.action], d.deadline or datetime.max.replace(tzinfo=now.tzinfo), d.item.job_id,
                d.item.kind.value)

    decisions.sort(key=order)
    capped = []
    taken = 0
    for d in decisions:
        if d.action is Action.DELETE:
            if taken >= policy.max_deletions_per_run:
                d = replace(d, action=Action.DEFERRED, reason=f"{d.reason}; deferred: this run already deletes "
                            f"max_deletions_per_run={policy.max_deletions_per_run} items, the next run takes it")
            taken += 1
        capped.append(d)
    capped.sort(key=order)
    return Plan(now=now, policy_id=policy.id, policy_version=policy.version, policy_hash=policy_hash(policy),
                dry_run=policy.dry_run, max_deletions=policy.max_deletions_per_run, decisions=tuple(capped))
