"""Readable views of the custody log: one file's timeline, and the officer's HTML period report.

Both read when an action happened (``occurred_at``), not when its entry was appended. Report
rows are jobs: a later identical copy is its own row, pointing at the job it duplicates, and
never changes the state of the job it copies. Original file names are personal data: the report
leaves them out unless given the name store (``names``); both read names through
``redactd.custody.names.original_name``.
"""

from __future__ import annotations

import html
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

from redactd.custody.entry import Event, occurred
from redactd.custody.names import Names, original_name
from redactd.custody.verify import Result

# How each event moves a file's outcome, in words an officer reads.
OUTCOME = {
    Event.INGESTED: "ingested", Event.PROCESSING_STARTED: "processing", Event.PUBLISHED: "published",
    Event.SENT_TO_REVIEW: "in review", Event.REVIEW_APPROVED: "review approved",
    Event.REVIEW_REJECTED: "review rejected", Event.FAILED: "failed", Event.REJECTED: "rejected",
    Event.DUPLICATE: "duplicate", Event.REQUEUED: "processing", Event.RETRIED: "retried",
}
_BADGE = {"published": "ok", "review approved": "ok", "in review": "warn", "processing": "info",
          "ingested": "info", "held": "warn", "failed": "bad", "rejected": "bad", "review rejected": "bad", "duplicate": "muted",
          "retried": "info"}


def history(entries: list[dict[str, Any]], what: str) -> list[dict[str, Any]]:
    """Entries about a file (raw or output SHA-256) or a job, with every entry of the jobs involved."""
    direct = [e for e in entries if what in (e.get("raw_sha256"), e.get("output_sha256"), e.get("job_id"))]
    jobs = {e["job_id"] for e in direct if e.get("job_id")}
    return [e for e in entries if e in direct or e.get("job_id") in jobs]


def _short(sha: str | None) -> str:
    return f"{sha[:12]}…" if sha else "-"


def _when(entry: dict[str, Any]) -> str:
    return occurred(entry)[:19].replace("T", " ") + "Z"


def timeline_line(entry: dict[str, Any], names: Names) -> str:
    """One entry as ``custody show`` prints it, its original name (if any) from ``names``."""
    parts = [f"{_when(entry)}  #{entry['seq']:<6} {entry['event']:<18}"]
    if entry.get("occurred_at") and entry["occurred_at"][:19] != entry["time"][:19]:
        parts.append(f"(appended {entry['time'][:19].replace('T', ' ')}Z)")
    if entry.get("job_id"):
        parts.append(f"job={entry['job_id']}")
    for field, label in (("raw_sha256", "raw"), ("output_sha256", "output")):
        if entry.get(field):
            parts.append(f"{label}={_short(entry[field])}")
    name = original_name(entry, names)
    if name is not None:
        parts.append(f"name={name!r}")
    if entry.get("policy"):
        parts.append(f"policy={entry['policy']['id']} v{entry['policy']['version']}")
    parts.extend(f"{k}={v}" for k, v in sorted((entry.get("details") or {}).items()))
    if entry.get("actor") not in (None, "redactd"):
        parts.append(f"by {entry['actor']}")
    return " ".join(parts)


def _day(entry: dict[str, Any]) -> date:
    return date.fromisoformat(occurred(entry)[:10])


def render(entries: list[dict[str, Any]], result: Result, start: date, end: date, names: Names | None = None) -> str:
    """A self-contained HTML page (no scripts, no external resources) for ``start``..``end``.

    Original file names are shown only when ``names`` (the name store) is given.
    """
    raw_of_job = {e["job_id"]: e["raw_sha256"] for e in entries if e.get("job_id") and e.get("raw_sha256")}

    def raw_of(e: dict[str, Any]) -> str | None:
        return e.get("raw_sha256") or raw_of_job.get(e.get("job_id") or "")

    period = [e for e in entries if start <= _day(e) <= end]
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        (f"<h1>Chain-of-custody report</h1><p class=sub>{start} to {end} (UTC) · generated {now} · "
         f"{len(period)} log entries in this period</p>"),
        _verification(result),
        _summary(Counter(_summary_key(e) for e in period)),
        "<h2>Policy versions in force</h2>" + _table(
            ["Policy", "Version", "Policy hash", "Loaded", "Entries citing it in period"],
            [[_e(p["id"]), _e(str(p["version"])), _sha(p["hash"]), _e(p["loaded"]), _e(str(p["used"]))]
             for p in _policies(entries, period)], "No policy recorded up to the end of this period."),
        "<h2>Legal holds</h2>" + _table(
            ["Time", "Event", "Raw SHA-256", "Set by", "Reason"],
            [[_e(_when(e)), _e(e["event"].replace("_", " ")), _sha(raw_of(e)), _e(e["actor"]),
              _e(str(e["details"].get("reason", "-")))]
             for e in period if e["event"] in (Event.HOLD_SET, Event.HOLD_RELEASED)],
            "No holds were set or released in this period."),
        "<h2>Failures and rejections</h2>" + _table(
            ["Time", "Event", "Raw SHA-256", "Reason"],
            [[_e(_when(e)), _badge(OUTCOME[Event(e["event"])]), _sha(raw_of(e)),
              _e(str(e["details"].get("reason", "-")))]
             for e in period if e["event"] in (Event.FAILED, Event.REJECTED, Event.REVIEW_REJECTED)],
            "None in this period."),
        _files_section(_jobs(entries, end, names), _active_jobs(entries, period), names is not None),
        _HOW_TO_CHECK,
    ]
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Custody report {start} to {end}"
            f"</title><style>{_CSS}</style></head><body><main>{''.join(sections)}</main></body></html>\n")


def _item(e: dict[str, Any]) -> str:
    """Which kind of item a purge entry is about (raw footage unless it says otherwise)."""
    return str((e.get("details") or {}).get("item", "raw"))


def _summary_key(e: dict[str, Any]) -> str:
    """Purges count by item kind; a refused purge is not a failed job."""
    details = e.get("details") or {}
    if e["event"] == Event.FAILED and "purge_refused" in details:
        return "purge_refused"
    if e["event"] == Event.PURGED:
        return "purged_raw" if _item(e) == "raw" else "purged_other"
    return str(e["event"])


def _summary(counts: Counter[str]) -> str:
    cards = [("Files ingested", Event.INGESTED), ("Published", Event.PUBLISHED),
             ("Sent to review", Event.SENT_TO_REVIEW), ("Failed", Event.FAILED), ("Rejected", Event.REJECTED),
             ("Duplicates", Event.DUPLICATE), ("Raw files purged", "purged_raw"),
             ("Other items purged", "purged_other"), ("Purges refused", "purge_refused"),
             ("Legal holds set", Event.HOLD_SET), ("Holds released", Event.HOLD_RELEASED)]
    return "<h2>Summary</h2><div class=cards>" + "".join(
        f"<div class='card{' zero' if not counts[event] else ''}'><b>{counts[event]}</b><span>{_e(label)}</span></div>"
        for label, event in cards) + "</div>"


def _files_section(jobs: dict[str, dict[str, Any]], active: set[str], with_names: bool) -> str:
    rows = [[_e(job), *([_e(r["name"] or "-")] if with_names else []), _sha(r["raw"]), _e(r["first"]),
             _e(r["policy"]), _badge(r["outcome"]) + (f" of <code>{_e(r['duplicate_of'])}</code>"
                                                      if r["duplicate_of"] else ""),
             _sha(r["output"]), _e(r["purged"]), _badge(r["hold"]) if r["hold"] == "held" else _e(r["hold"])]
            for job, r in jobs.items() if job in active]
    names = ("Original file names are shown because this report was made with <code>--with-names</code>: "
             "it holds personal data." if with_names else
             "Original file names are personal data: they stay in the restricted name store beside the custody "
             "log (<code>redactd custody show JOB_ID</code>, or make the report with <code>--with-names</code>).")
    return ("<h2>Files</h2><p class=note>One row per job: a later copy of the same footage is its own row, "
            f"marked as a duplicate of the job it copies. {names} The state shown is the job's state at the "
            "end of the period.</p>" +
            _table(["Job", *(["Original name"] if with_names else []), "Raw SHA-256", "First seen", "Policy",
                    "Outcome", "Output SHA-256", "Purged", "Hold"], rows, "No file activity in this period."))


def _active_jobs(entries: list[dict[str, Any]], period: list[dict[str, Any]]) -> set[str]:
    """Jobs with an entry in the period (an entry naming only a raw SHA-256 counts for its jobs)."""
    jobs_of_raw: dict[str, set[str]] = {}
    for e in entries:
        if e.get("job_id") and e.get("raw_sha256"):
            jobs_of_raw.setdefault(e["raw_sha256"], set()).add(e["job_id"])
    active: set[str] = set()
    for e in period:
        if e.get("job_id"):
            active.add(e["job_id"])
        elif e.get("raw_sha256"):
            active |= jobs_of_raw.get(e["raw_sha256"], set())
    return active


_HOW_TO_CHECK = (
    "<h2>Checking this report yourself</h2><p class=note>This page summarises the log; the log is the "
    "evidence. With a copy of the log directory and the public key you were given, check all of it:</p>"
    "<pre>redactd custody verify LOG_DIR --pubkey custody.pub</pre><p class=note>or one file, with "
    "nothing but its bundle:</p><pre>redactd custody bundle SHA256 -o bundle.json --log-dir LOG_DIR\n"
    "redactd custody verify-bundle bundle.json --pubkey custody.pub</pre>"
)


def _jobs(entries: list[dict[str, Any]], end: date, names: Names | None) -> dict[str, dict[str, Any]]:
    """Each job's state at the end of the period, from every entry up to then.

    An entry with a job id is about that job only. One with just a raw SHA-256 (a hold on the
    footage, a purge of it) is about every job that is not a duplicate of that footage: a
    duplicate's raw copy is set aside at admission and never published.
    """
    jobs: dict[str, dict[str, Any]] = {}
    for e in entries:
        if _day(e) > end:
            continue
        if e.get("job_id"):
            targets = [e["job_id"]]
        elif e.get("raw_sha256"):
            targets = [j for j, r in jobs.items() if r["raw"] == e["raw_sha256"] and not r["duplicate_of"]]
        else:
            continue
        for job in targets:
            _apply(jobs.setdefault(job, {"first": _when(e), "policy": "-", "outcome": "-", "output": None,
                                         "purges": {}, "hold": "-", "raw": None, "name": None,
                                         "duplicate_of": None}), e, names)
    for row in jobs.values():
        purges = row.pop("purges")
        row["purged"] = "; ".join(f"{item} {when}" for item, when in sorted(purges.items())) or "-"
    return jobs


def _apply(row: dict[str, Any], e: dict[str, Any], names: Names | None) -> None:
    kind = Event(e["event"])
    details = e.get("details") or {}
    purge_refused = kind == Event.FAILED and "purge_refused" in details
    row["raw"] = row["raw"] or e.get("raw_sha256")
    if names is not None:
        row["name"] = row["name"] or original_name(e, names)
    if kind == Event.DUPLICATE:
        row["duplicate_of"] = details.get("duplicate_of") or "?"
    if e.get("policy") and kind not in (Event.PURGE_INTENDED, Event.PURGED) and not purge_refused:
        row["policy"] = f"{e['policy']['id']} v{e['policy']['version']}"
    if kind in OUTCOME and not purge_refused:
        row["outcome"] = OUTCOME[kind]
    if e.get("output_sha256"):
        row["output"] = e["output_sha256"]
    if kind == Event.PURGED:
        row["purges"][_item(e)] = _when(e)
    elif kind == Event.PURGE_INTENDED:
        row["purges"].setdefault(_item(e), "intended, not confirmed")
    elif purge_refused:
        row["purges"][_item(e)] = "refused: file changed on disk"
    elif kind in (Event.HOLD_SET, Event.HOLD_RELEASED):
        row["hold"] = "held" if kind == Event.HOLD_SET else "released"


def _policies(entries: list[dict[str, Any]], period: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every policy version loaded before the period ended, and how often the period's entries cite it."""
    last_day = max((_day(e) for e in period), default=None)
    found: dict[tuple[str, int, str], dict[str, Any]] = {}
    for e in entries:
        p = e.get("policy")
        if not p or (last_day is not None and _day(e) > last_day):
            continue
        row = found.setdefault((p["id"], p["version"], p["hash"]), {**p, "loaded": "-", "used": 0})
        if e["event"] == Event.POLICY_LOADED and row["loaded"] == "-":
            row["loaded"] = _when(e)
        if e in period and e["event"] != Event.POLICY_LOADED:
            row["used"] += 1
    return sorted(found.values(), key=lambda r: (r["id"], r["version"]))


def _verification(result: Result) -> str:
    cp = result.last_checkpoint
    facts = (f"{result.entries} entries in {result.segments} segment file(s); {result.checkpoints} signed "
             f"checkpoint(s)" + (f", the last at {_e(_when(cp))} over {cp['details']['tree_size']} entries"
                                 if cp else "") + ". Signing key(s): " +
             " → ".join(f"<code>{_e(k[:23])}…</code>" for k in result.keys) + ".")
    if result.ok:
        return (f"<section class='verdict ok'><h2>✔ Log verified</h2><p>Every entry is intact, in order and "
                f"signed; every checkpoint matches the entries before it. {facts}</p></section>")
    return (f"<section class='verdict bad'><h2>✘ Verification failed</h2><p class=problem>{_e(str(result.problem))}"
            f"</p><p>Only the {result.entries} entries before this point could be verified; the figures below "
            f"cover those entries only. {facts}</p></section>")


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _sha(sha: str | None) -> str:
    return f"<code title='{_e(sha)}'>{_e(sha[:16])}…</code>" if sha else "-"


def _badge(outcome: str) -> str:
    return f"<span class='badge {_BADGE.get(outcome, 'muted')}'>{_e(outcome)}</span>"


def _table(head: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f"<p class=empty>{_e(empty)}</p>"
    cells = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{''.join(f'<th>{_e(h)}</th>' for h in head)}</tr></thead><tbody>{cells}</tbody></table>"


_CSS = """
body{margin:0;background:#f4f5f7;color:#1d2430;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"DejaVu Sans",sans-serif}
main{max-width:1120px;margin:0 auto;padding:28px 32px 48px;background:#fff;min-height:100vh}
h1{font-size:26px;margin:0 0 4px}h2{font-size:18px;margin:30px 0 10px;border-bottom:1px solid #e2e5ea;
padding-bottom:4px}
.sub,.note,.empty{color:#5b6472}.note{font-size:14px}
code{font:13px/1.3 "DejaVu Sans Mono",Menlo,Consolas,monospace;background:#f0f2f5;padding:1px 4px;
border-radius:3px}
.verdict{border-radius:6px;padding:12px 18px;margin:18px 0}.verdict h2{border:0;margin:0 0 4px;padding:0}
.verdict.ok{background:#e8f5ec;border:1px solid #9fd3ae}.verdict.ok h2{color:#1f7a3a}
.verdict.bad{background:#fdecec;border:1px solid #eba3a3}.verdict.bad h2{color:#b42323}
.problem{font-weight:600}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:10px}
.card{border:1px solid #e2e5ea;border-radius:6px;padding:10px 14px;background:#fafbfc}
.card b{display:block;font-size:26px}.card span{color:#5b6472;font-size:14px}.card.zero b{color:#9aa3af}
table{border-collapse:collapse;width:100%;font-size:14px}
th{text-align:left;background:#eef0f3;padding:7px 8px;font-weight:600;white-space:nowrap}
td{padding:6px 8px;border-top:1px solid #e8eaee;vertical-align:top}tbody tr:nth-child(even){background:#fafbfc}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:13px;white-space:nowrap}
.badge.ok{background:#dff3e5;color:#1f7a3a}.badge.warn{background:#fff1d6;color:#8a5a00}
.badge.bad{background:#fbe0e0;color:#b42323}.badge.info{background:#e3edfb;color:#2458a6}
.badge.muted{background:#eceef1;color:#5b6472}
pre{font:13px/1.5 "DejaVu Sans Mono",Menlo,Consolas,monospace;background:#f0f2f5;padding:8px 12px;
border-radius:4px;overflow-x:auto}
"""
