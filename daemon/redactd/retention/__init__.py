"""Retention: plan what is due (pure), apply it (custody-recorded deletions), legal holds, snapshots.

    items = collect_items(jobs, purged, review_dir, failed_dir)   # items.py (reads the disk)
    p = plan(items, policy, holds, now)                              # plan.py (pure)
    Applier(custody, store, clock).apply(p)                          # apply.py (deletes)

``service.run_retention`` composes these for the daemon's scheduler and ``redactd retention``.
"""

from redactd.retention.apply import Applier, ApplyReport, apply
from redactd.retention.model import Action, Decision, Hold, HoldScope, ItemKind, Plan, RetentionItem
from redactd.retention.plan import plan

__all__ = ["Action", "Applier", "ApplyReport", "Decision", "Hold", "HoldScope", "ItemKind", "Plan",
           "RetentionItem", "apply", "plan"]
