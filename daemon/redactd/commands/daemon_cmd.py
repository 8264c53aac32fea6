"""`redactd run`, `redactd status`, `redactd jobs list|show|retry`: run the daemon and look after its jobs."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from redactd import log
from redactd.commands._common import add_config_arg, config_path
from redactd.config import DaemonConfig, load_config
from redactd.daemon import run_daemon, status_report, store_path
from redactd.fsutil import human_size
from redactd.jobflow.jobstore import JobState, JobStore, as_dict, iso
from redactd.jobflow.outbox import record_pending
from redactd.jobops import cancel_job, retry_job
from redactd.review import default_actor
from redactd.space import human


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = sub.add_parser("run", help="run the daemon in the foreground (SIGTERM: finish jobs and stop)")
    add_config_arg(run)
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="job counts, jobs in flight, recent errors, throughput")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    add_config_arg(status)
    status.set_defaults(func=cmd_status)

    jobs = sub.add_parser("jobs", help="list, show and retry jobs")
    jsub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    ls = jsub.add_parser("list", help="jobs, newest first")
    ls.add_argument("--state", action="append", choices=[s.value for s in JobState],
                    help="only jobs in this state (repeatable)")
    ls.add_argument("--limit", type=int, default=50, help="at most this many (default 50; 0 = all)")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    add_config_arg(ls)
    ls.set_defaults(func=cmd_jobs_list)
    show = jsub.add_parser("show", help="everything about one job, with its history")
    show.add_argument("job_id", help="job id or an unambiguous prefix of it")
    show.add_argument("--json", action="store_true")
    add_config_arg(show)
    show.set_defaults(func=cmd_jobs_show)
    retry = jsub.add_parser("retry", help="run a failed or review job again from its raw file")
    retry.add_argument("job_id", help="job id or an unambiguous prefix of it")
    retry.add_argument("--by", default=None, help="who asks (recorded; default: the login user)")
    add_config_arg(retry)
    retry.set_defaults(func=cmd_jobs_retry)
    cancel = jsub.add_parser("cancel", help="take a job still waiting in the queue out of it (to failed, raw kept)")
    cancel.add_argument("job_id", help="job id or an unambiguous prefix of it")
    cancel.add_argument("--by", default=None, help="who cancels (recorded; default: the login user)")
    add_config_arg(cancel)
    cancel.set_defaults(func=cmd_jobs_cancel)


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) if ts else "-"


def cmd_run(args: argparse.Namespace) -> int:
    path = config_path(args)
    cfg = load_config(path)
    if args.log_level is None:
        log.configure(level=cfg.log_level, json=args.log_json)
    return run_daemon(path)


def cmd_status(args: argparse.Namespace) -> int:
    report = status_report(load_config(config_path(args)))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    pid = report["daemon_pid"]
    print(f"daemon: {'running (pid ' + str(pid) + ')' if pid else 'not running'}   state: {report['state_dir']}")
    print("jobs:   " + "  ".join(f"{k} {v}" for k, v in report["counts"].items() if v or k != "receiving"))
    custody = report["custody"]
    age = f", oldest {custody['oldest_age_s']} s" if custody["oldest_age_s"] is not None else ""
    print(f"custody: {custody['queued']} entr{'y' if custody['queued'] == 1 else 'ies'} queued{age}")
    if custody["blocked"]:
        print(f"custody: STOPPED admitting and processing: {custody['blocked']}")
    if custody["witness_undelivered"]:
        print(f"custody: {custody['witness_undelivered']} checkpoint(s) not yet delivered to a witness "
              "(see custody_witness_delivery_failed in the log); retried at each checkpoint")
    if report["in_flight"]:
        print("in flight:")
        for j in report["in_flight"]:
            pct = f"{j['progress'] * 100:3.0f}%" if j["progress"] is not None else "  ?"
            print(f"  {j['id']}  {j['inbox']:<12} {pct}  {j['running_s']:>7} s  attempt {j['attempt']}"
                  f"  pid {j['worker_pid'] or '-'}")
    for j in report["retrying"]:
        print(f"retrying: {j['id']}  after {j['attempts']} failed attempt(s), next in {j['due_in_s']} s: "
              f"{_first_line(j['last_error'])}")
    if report["recent_errors"]:
        print("recent errors:")
        for j in report["recent_errors"]:
            print(f"  {j['at'] or '-'}  {j['id']}  {_first_line(j['error'])}")
    for v in report["volumes"]:
        if v["short"]:
            print(f"disk space: {v['name']} is short ({v['path']}): {human(v['free_bytes'])} free, "
                  f"{human(v['floor_bytes'])} needed; admission and new jobs wait until space returns")
    if report["waiting_for_space"]:
        print(f"waiting for disk space: {len(report['waiting_for_space'])} job(s), none blamed on its file")
    if report["purge_refused"]:
        print("purges refused (raw footage kept; resolve, then retention tries again):")
        for r in report["purge_refused"]:
            print(f"  {r['at'] or '-'}  {r['job_id']}  {r['item']}: {_first_line(r['reason'])}")
    hour, day = report["throughput"]["last_hour"], report["throughput"]["last_day"]
    med = f", median {hour['median_job_seconds']} s per job" if hour["median_job_seconds"] is not None else ""
    print(f"throughput: {hour['finished']} finished in the last hour{med}; {day['finished']} in the last 24 h")
    return 0


def _first_line(text: str | None) -> str:
    return (text or "").splitlines()[0] if text else ""


def _open(cfg: DaemonConfig, readonly: bool = True) -> JobStore:
    return JobStore.open(store_path(cfg), readonly=readonly)


def cmd_jobs_list(args: argparse.Namespace) -> int:
    store = _open(load_config(config_path(args)))
    try:
        states = {JobState(s) for s in args.state} if args.state else None
        jobs = store.jobs(states, limit=args.limit or None)
        tries = store.tries([j.id for j in jobs])
    finally:
        store.close()
    if args.json:
        for job in jobs:
            print(json.dumps({**as_dict(job), "tries": tries[job.id]}))
        return 0
    print(f"{'JOB':<24}  {'STATE':<10}  {'INBOX':<12}  {'ARRIVED (UTC)':<19}  {'SIZE':>9}  {'TRIES':>5}  DETAIL")
    for job in jobs:
        detail = job.output_name if job.state is JobState.PUBLISHED else _first_line(job.last_error)
        if job.state is JobState.DUPLICATE:
            detail = f"duplicate of {job.duplicate_of}"
        print(f"{job.id:<24}  {job.state.value:<10}  {job.inbox:<12}  {_when(job.created_at):<19}  "
              f"{human_size(job.size):>9}  {tries[job.id]:>5}  {detail or ''}")
    return 0


def cmd_jobs_show(args: argparse.Namespace) -> int:
    store = _open(load_config(config_path(args)))
    try:
        job = store.get(args.job_id)
        history = store.history(job.id)
    finally:
        store.close()
    if args.json:
        doc: dict[str, Any] = dict(as_dict(job))
        doc["history"] = [{"at": iso(t.at), "from": t.from_state.value if t.from_state else None,
                           "to": t.to_state.value, "detail": t.detail} for t in history]
        print(json.dumps(doc, indent=2))
        return 0
    fields = as_dict(job)
    width = max(len(k) for k in fields)
    for key, value in fields.items():
        if key.endswith("_at") or key == "not_before":
            value = value.replace("T", " ").removesuffix("Z") if value else "-"
        elif key == "size" and value is not None:
            value = f"{human_size(value)} ({value} bytes)"
        text = str(value if value is not None else "-").replace("\n", "\n" + " " * (width + 2))
        print(f"{key:<{width}}  {text}")
    print("history:")
    for t in history:
        src = t.from_state.value if t.from_state else "(new)"
        print(f"  {_when(t.at)}  {src} -> {t.to_state.value}" + (f"  {_first_line(t.detail)}" if t.detail else ""))
    return 0


def cmd_jobs_retry(args: argparse.Namespace) -> int:
    cfg = load_config(config_path(args))
    store = _open(cfg, readonly=False)
    try:
        job = retry_job(cfg, store, args.job_id, args.by or default_actor())
    finally:
        store.close()
    print(f"job {job.id}: queued again (the daemon picks it up within a few seconds)")
    print(f"custody: {record_pending(cfg, store_path(cfg))}")
    return 0


def cmd_jobs_cancel(args: argparse.Namespace) -> int:
    cfg = load_config(config_path(args))
    actor = args.by or default_actor()
    store = _open(cfg, readonly=False)
    try:
        job = cancel_job(cfg, store, args.job_id, actor)
    finally:
        store.close()
    print(f"job {job.id}: cancelled by {actor}; raw file kept at {job.raw_path}")
    print(f"custody: {record_pending(cfg, store_path(cfg))}")
    return 0
