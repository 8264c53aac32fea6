"""`redactd retention plan|apply` and `redactd hold add|release|list`: see and enforce retention, set legal holds."""

from __future__ import annotations

import argparse
import getpass
import json
import os
from dataclasses import replace
from datetime import UTC, date, datetime, time
from typing import Any

from redactd.commands._common import add_config_arg, config_path
from redactd.config import DaemonConfig, check_config
from redactd.custody import CustodyLog
from redactd.custody.keys import read_passphrase
from redactd.daemon import DaemonLock, store_path
from redactd.errors import RetentionError
from redactd.holds import release_hold, set_hold
from redactd.retention.apply import ApplyReport
from redactd.retention.model import Action, Decision, Hold, HoldScope, Plan
from redactd.retention.plan import fmt_time
from redactd.retention.service import make_plan, retention_policy, run_retention
from redactd.retention.store import RetentionStore


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    ret = sub.add_parser("retention", help="show and apply the retention policy (what is deleted, when, why)")
    rsub = ret.add_subparsers(dest="retention_command", metavar="ACTION", required=True)
    plan = rsub.add_parser("plan", help="a table of every item: keep / delete / held / deferred, deadline, reason")
    plan.add_argument("--at", type=_moment, default=None, metavar="DATE",
                      help="plan as if it were this moment (YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS], UTC)")
    plan.add_argument("--only", action="append", choices=[a.value for a in Action],
                      help="show only these actions (repeatable)")
    plan.add_argument("--json", action="store_true", help="one JSON object per decision")
    add_config_arg(plan)
    plan.set_defaults(func=cmd_plan)
    app = rsub.add_parser("apply", help="delete what is due now, with custody entries (the daemon does this "
                          "itself at start-up and on its schedule)")
    app.add_argument("--dry-run", action="store_true", help="show what would be deleted; delete nothing")
    add_config_arg(app)
    app.set_defaults(func=cmd_apply)

    hold = sub.add_parser("hold", help="legal holds: nothing a hold covers is deleted, whatever the policy says")
    hsub = hold.add_subparsers(dest="hold_command", metavar="ACTION", required=True)
    add = hsub.add_parser("add", help="set a hold (takes effect at once; recorded in the custody log)")
    what = add.add_mutually_exclusive_group(required=True)
    what.add_argument("--sha256", help="content hash of a raw file or output")
    what.add_argument("--job", help="job id (or an unambiguous prefix)")
    what.add_argument("--inbox", help="every item from this inbox")
    what.add_argument("--pattern", help="glob over '<inbox>/<original file name>', e.g. 'dashcams/2026-03-*'")
    add.add_argument("--reason", required=True, help="why (a case or request reference)")
    add.add_argument("--requested-by", required=True, help="who asked for the hold")
    add.add_argument("--review-date", type=_day, help="when the hold should be reviewed (YYYY-MM-DD)")
    add_config_arg(add)
    add.set_defaults(func=cmd_hold_add)
    rel = hsub.add_parser("release", help="release a hold; what it protected becomes subject to the policy again")
    rel.add_argument("hold_id", type=int)
    rel.add_argument("--by", default=None, help="who released it (default: the current user)")
    add_config_arg(rel)
    rel.set_defaults(func=cmd_hold_release)
    ls = hsub.add_parser("list", help="active holds (--all: released ones too)")
    ls.add_argument("--all", action="store_true")
    ls.add_argument("--json", action="store_true")
    add_config_arg(ls)
    ls.set_defaults(func=cmd_hold_list)


def _moment(value: str) -> datetime:
    text = value.strip().replace(" ", "T")
    text = text.removesuffix("Z")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] (UTC), got {value!r}") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _day(value: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(value), time(), UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {value!r}") from None


def _user() -> str:
    return os.environ.get("SUDO_USER") or getpass.getuser()


# --------------------------------------------------------------------------- retention


def _decision_doc(d: Decision) -> dict[str, Any]:
    return {"job_id": d.item.job_id, "item": d.item.kind.value, "action": d.action.value,
            "deadline": d.deadline.isoformat() if d.deadline else None, "rule": d.rule, "hold_id": d.hold_id,
            "sha256": d.item.sha256, "reason": d.reason}


def print_table(decisions: list[Decision], status: dict[int, str] | None = None) -> None:
    """ITEM, ACTION, DEADLINE, REASON: one line per decision (item = job id / kind, never a file name)."""
    actions = [(status or {}).get(i, d.action.value) for i, d in enumerate(decisions)]
    width = max([len(d.item.label) for d in decisions] + [4])
    aw = max([len(a) for a in actions] + [6])
    print(f"{'ITEM':<{width}}  {'ACTION':<{aw}}  {'DEADLINE (UTC)':<20}  REASON")
    for d, action in zip(decisions, actions, strict=True):
        print(f"{d.item.label:<{width}}  {action:<{aw}}  {fmt_time(d.deadline):<20}  {d.reason}")


def _summary(plan: Plan) -> str:
    counts = plan.counts()
    return (f"plan at {fmt_time(plan.now)} under {plan.policy_id} v{plan.policy_version}"
            f"{' (policy dry_run: nothing is deleted)' if plan.dry_run else ''}: "
            + ", ".join(f"{n} {a}" for a, n in counts.items()))


def cmd_plan(args: argparse.Namespace) -> int:
    cfg, policies = check_config(config_path(args))
    the_plan = make_plan(cfg, policies, store_path(cfg), args.at or datetime.now(UTC))
    shown = [d for d in the_plan.decisions if not args.only or d.action.value in args.only]
    if args.json:
        for d in shown:
            print(json.dumps(_decision_doc(d)))
        return 0
    print(_summary(the_plan))
    if shown:
        print_table(shown)
    return 0


def _open_custody(cfg: DaemonConfig) -> CustodyLog:
    """The custody log for a CLI that writes to it; refused while the daemon (its one writer) runs."""
    pid = DaemonLock(cfg.state_dir).holder()
    if pid is not None:
        raise RetentionError(f"the daemon (pid {pid}) is running and is the custody log's one writer: it applies "
                             "retention at start-up and on its schedule; see what it will do with "
                             "`redactd retention plan`, or stop it to apply now")
    c = cfg.custody
    return CustodyLog.open(c.directory, c.signing_key, read_passphrase(c.passphrase_file),
                           segment_max_bytes=c.segment_max_bytes)


def _print_report(report: ApplyReport) -> None:
    print(_summary(report.plan))
    if report.recovered:
        print(f"completed {report.recovered} purge(s) an earlier run was interrupted in")
    if report.outcomes:
        decisions = [o.decision for o in report.outcomes]
        status = {i: o.status for i, o in enumerate(report.outcomes)}
        print_table([d if o.status != "refused" else _with_reason(d, o.detail)
                     for d, o in zip(decisions, report.outcomes, strict=True)], status)
    counts = report.counts()
    verb = "would delete" if report.dry_run else "deleted"
    print(f"{verb} {counts['would_purge'] if report.dry_run else counts['purged']}, refused {counts['refused']}, "
          f"held {counts['held']}, deferred {counts['deferred']}")


def _with_reason(d: Decision, problem: str) -> Decision:
    return replace(d, reason=f"REFUSED: {problem}")


def cmd_apply(args: argparse.Namespace) -> int:
    cfg, policies = check_config(config_path(args))
    retention_policy(cfg, policies)
    if args.dry_run:
        the_plan = make_plan(cfg, policies, store_path(cfg), datetime.now(UTC))
        print(_summary(the_plan) + " (dry run: nothing is deleted)")
        due = the_plan.deletions
        if due:
            print_table(due, {i: "would-delete" for i in range(len(due))})
        return 0
    with _open_custody(cfg) as custody:
        report = run_retention(cfg, policies, store_path(cfg), custody, lambda: datetime.now(UTC),
                               trigger="cli")
    _print_report(report)
    return 1 if report.count("refused") else 0


# --------------------------------------------------------------------------- holds


def _hold_line(h: Hold) -> str:
    review = f", review {h.review_date.date().isoformat()}" if h.review_date else ""
    released = f", released {fmt_time(h.released_at)} by {h.released_by}" if h.released_at else ""
    return (f"#{h.id}  {h.scope.value} {h.value}  reason: {h.reason}  requested by {h.requested_by} "
            f"on {fmt_time(h.created_at)}{review}{released}")


def _scope(args: argparse.Namespace) -> tuple[HoldScope, str]:
    for scope, value in ((HoldScope.SHA256, args.sha256), (HoldScope.JOB, args.job), (HoldScope.INBOX, args.inbox),
                         (HoldScope.PATTERN, args.pattern)):
        if value is not None:
            return scope, value
    raise RetentionError("say what the hold covers: --sha256, --job, --inbox or --pattern")


def cmd_hold_add(args: argparse.Namespace) -> int:
    cfg, _ = check_config(config_path(args))
    scope, value = _scope(args)
    hold, note = set_hold(cfg, scope, value, args.reason, args.requested_by, args.review_date)
    print(f"hold set: {_hold_line(hold)}")
    print(note)
    return 0


def cmd_hold_release(args: argparse.Namespace) -> int:
    cfg, _ = check_config(config_path(args))
    hold, note = release_hold(cfg, args.hold_id, args.by or _user())
    print(f"hold released: {_hold_line(hold)}")
    print(note)
    return 0


def cmd_hold_list(args: argparse.Namespace) -> int:
    cfg, _ = check_config(config_path(args))
    with RetentionStore.open(store_path(cfg)) as store:
        holds = store.holds(include_released=args.all)
    if args.json:
        for h in holds:
            print(json.dumps({"id": h.id, "scope": h.scope.value, "value": h.value, "reason": h.reason,
                              "requested_by": h.requested_by, "created_at": h.created_at.isoformat(),
                              "review_date": h.review_date.date().isoformat() if h.review_date else None,
                              "released_at": h.released_at.isoformat() if h.released_at else None,
                              "released_by": h.released_by}))
        return 0
    if not holds:
        print("no active holds" if not args.all else "no holds")
    for h in holds:
        print(_hold_line(h))
    return 0
