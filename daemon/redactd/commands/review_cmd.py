"""`redactd review list|show|approve|reject`: the human decision on outputs validation doubted."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

from redactd.commands._common import add_config_arg, config_path
from redactd.config import check_config
from redactd.daemon import store_path
from redactd.jobflow.jobstore import JobState, JobStore, JobStoreError, iso
from redactd.jobflow.outbox import record_pending
from redactd.review import ReviewDesk, default_actor


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    review = sub.add_parser("review", help="the review queue: outputs held back for a human decision")
    rsub = review.add_subparsers(dest="review_command", metavar="ACTION", required=True)
    ls = rsub.add_parser("list", help="jobs waiting in review, newest first")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(func=cmd_list)
    add_config_arg(ls)
    show = rsub.add_parser("show", help="why a job is in review; writes a contact sheet PNG (private)")
    show.add_argument("job_id", help="job id or an unambiguous prefix of it")
    show.add_argument("--frames", type=int, default=6, help="frames on the contact sheet (default 6)")
    show.set_defaults(func=cmd_show)
    add_config_arg(show)
    for name, text in (("approve", "publish the output as it is to clean storage"),
                       ("reject", "send the job to failed (raw kept), or re-queue it with another policy")):
        p = rsub.add_parser(name, help=text)
        p.add_argument("job_id", help="job id or an unambiguous prefix of it")
        p.add_argument("--by", default=None, help="who decides (recorded; default: the login user)")
        if name == "reject":
            p.add_argument("--reason", default="rejected in review", help="why (recorded with the decision)")
            p.add_argument("--requeue-with", metavar="POLICY", default=None,
                           help="run the job again from its raw file under this redaction policy")
        p.set_defaults(func=cmd_approve if name == "approve" else cmd_reject)
        add_config_arg(p)


@contextmanager
def _desk(args: argparse.Namespace, readonly: bool = False) -> Iterator[ReviewDesk]:
    cfg, policies = check_config(config_path(args))
    store = JobStore.open(store_path(cfg), readonly=readonly)
    try:
        yield ReviewDesk(cfg, policies, store)
    finally:
        store.close()


@contextmanager
def _deciding(args: argparse.Namespace) -> Iterator[ReviewDesk]:
    """A desk whose decisions queue custody entries, appended here when the daemon is not running."""
    cfg, policies = check_config(config_path(args))
    path = store_path(cfg)
    store = JobStore.open(path)
    try:
        yield ReviewDesk(cfg, policies, store)
    finally:
        store.close()
    print(f"custody: {record_pending(cfg, path)}")


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) if ts else "-"


def cmd_list(args: argparse.Namespace) -> int:
    with _desk(args, readonly=True) as desk:
        items = desk.items()
    if args.json:
        for it in items:
            print(json.dumps({"id": it.job.id, "inbox": it.job.inbox, "policy": it.job.policy_id,
                              "since": iso(it.job.finished_at), "leak_score": it.leak_score,
                              "before_blur": it.before_blur, "reason": it.job.last_error}))
        return 0
    print(f"{'JOB':<24}  {'SINCE (UTC)':<19}  {'POLICY':<20}  {'LEAK':>5}  REASON")
    for it in items:
        score = f"{it.leak_score:.2f}" if it.leak_score is not None else "-"
        reason = (it.job.last_error or "").splitlines()[0] if it.job.last_error else ""
        print(f"{it.job.id:<24}  {_when(it.job.finished_at):<19}  {it.job.policy_id:<20}  {score:>5}  {reason}")
    if not items:
        print("(nothing waits for review)")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from redactd.validation.sheet import contact_sheet, write_private_png  # OpenCV and PyAV: only here

    with _desk(args, readonly=True) as desk:
        item = desk.item(args.job_id)
        policy = desk.policies.get_redaction(item.job.policy_id)
        if item.job.raw_path is None:
            raise JobStoreError(f"job {item.job.id} has no raw file on record: no contact sheet without it")
        output = item.job.output_path if not item.before_blur else None
        sheet = contact_sheet(item.job.raw_path, output, item.sidecar, policy, most=args.frames)
        path = write_private_png(desk.sheet_dir(), f"{item.job.id}.png", sheet)
    val = item.sidecar.get("validation", {})
    print(f"job:        {item.job.id}")
    print(f"policy:     {item.job.policy_id} v{item.job.policy_version or '?'}")
    print(f"in review:  {_when(item.job.finished_at)} UTC")
    print(f"reason:     {item.job.last_error or '-'}")
    if val:
        print(f"validation: leak score {val.get('leak_score')}, {val.get('leak_frames')} of "
              f"{val.get('sampled_frames')} sampled frames flagged; findings {val.get('findings')} "
              f"({val.get('covered')} inside obscured boxes, {val.get('candidates')} outside)"
              + (f"; {val['not_in_original']} set aside, not in the original" if val.get("not_in_original") else "")
              + (f"; {val['centerface_alone']} weak CenterFace findings set aside (no other detector agreed)"
                 if val.get("centerface_alone") else ""))
    print(f"output:     {item.job.output_path}")
    print(f"contact sheet (private, contains unobscured faces; delete it when done): {path}")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    actor = args.by or default_actor()
    with _deciding(args) as desk:
        job = desk.approve(args.job_id, actor)
    if job.state is JobState.ADMITTED:
        print(f"job {job.id}: boxes approved by {actor}; the daemon renders them next")
    else:
        print(f"job {job.id}: approved by {actor}, published as {job.output_path}")
    return 0


def cmd_reject(args: argparse.Namespace) -> int:
    actor = args.by or default_actor()
    with _deciding(args) as desk:
        if args.requeue_with:
            job = desk.requeue(args.job_id, actor, args.requeue_with, args.reason)
            print(f"job {job.id}: rejected by {actor}; queued again with policy {args.requeue_with}")
        else:
            job = desk.reject(args.job_id, actor, args.reason)
            print(f"job {job.id}: rejected by {actor}; raw file kept at {job.raw_path}")
    return 0
