"""The console's routes: sign-in, role checks, CSRF, and one handler per page (data comes from ``web.data``).

Security, in one place:
- every page but ``/login`` and ``/metrics`` needs a signed-in account holding the page's role;
- every POST carries the session's CSRF token (``csrf`` form field) or is refused with 403;
- the session cookie is ``HttpOnly``, ``SameSite=Strict``, and ``Secure`` whenever the request
  came over TLS (directly or through a trusted reverse proxy's ``X-Forwarded-Proto``);
- every response is ``Cache-Control: no-store`` (pages carry file names; contact sheets carry
  unobscured faces) with a strict Content-Security-Policy and no framing.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from redactd import log
from redactd.errors import RedactdError
from redactd.fsutil import human_size
from redactd.jobflow.jobstore import JobState
from redactd.web.accounts import Accounts, Role
from redactd.web.data import Console
from redactd.web.sessions import COOKIE, Session, Sessions

HERE = Path(__file__).parent
Handler = Callable[[Request], Awaitable[Response]]

_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; media-src 'self'; "
                               "form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_HOME = {Role.OPERATOR: "/operator", Role.REVIEWER: "/review", Role.OFFICER: "/officer"}


def _when(value: Any) -> str:
    """Times as ISO 8601 UTC, to the second."""
    if value is None or value == "":
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, str):  # already ISO 8601 UTC (status_report)
        return value
    return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


def create_app(console: Console, metrics_token: str | None = None, session_hours: float = 12.0) -> Starlette:
    """The console for one daemon configuration."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters.update(when=_when, size=human_size, duration=_duration)
    sessions = Sessions(session_hours * 3600)
    accounts = Accounts(console.cfg.state_dir)
    logger = log.get_logger()

    # ------------------------------------------------------------------ plumbing

    def _session(request: Request) -> Session | None:
        return sessions.get(request.cookies.get(COOKIE))

    def _set_cookie(request: Request, response: Response, s: Session) -> None:
        response.set_cookie(COOKIE, s.token, max_age=int(s.expires - datetime.now(UTC).timestamp()), path="/",
                            httponly=True, samesite="strict", secure=request.url.scheme == "https")

    def _finish(response: Response) -> Response:
        for k, v in _HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    def render(request: Request, name: str, s: Session | None, status: int = 200, **ctx: Any) -> Response:
        flash = list(s.flash) if s is not None else []
        if s is not None:
            s.flash.clear()
        return _finish(templates.TemplateResponse(
            request, name, {"session": s, "roles": Role, "flash": flash, "home": _HOME, **ctx}, status_code=status))

    def refuse(request: Request, s: Session | None, status: int, message: str) -> Response:
        return render(request, "error.html", s, status=status, message=message)

    def guarded(role: Role | None) -> Callable[[Handler], Handler]:
        """Signed in, holding ``role``; a POST must carry the session's CSRF token."""

        def wrap(handler: Handler) -> Handler:
            async def run(request: Request) -> Response:
                s = _session(request)
                if s is not None and s.account is not None:
                    # Accounts are read at every request: a removed account or a dropped role
                    # takes effect at once, not when the session expires.
                    current = accounts.load().get(s.account)
                    if current is None:
                        sessions.drop(s.token)
                        s = None
                    else:
                        s.roles = current.roles
                if s is None or s.account is None:
                    if request.method != "GET":
                        return refuse(request, None, 403, "sign in first")
                    return _finish(RedirectResponse(f"/login?next={request.url.path}", status_code=303))
                if role is not None and not s.has(role):
                    logger.warning("web_page_refused", account=s.account, path=request.url.path, role=role.value)
                    return refuse(request, s, 403, f"this page is for the {role.value} role; your account does "
                                  "not hold it")
                if request.method == "POST":
                    form = await request.form()
                    token = form.get("csrf")
                    if not s.csrf_ok(token if isinstance(token, str) else None):
                        logger.warning("web_csrf_refused", account=s.account, path=request.url.path)
                        return refuse(request, s, 403, "the form's security token is missing or stale: reload "
                                      "the page and try again")
                    request.state.form = form
                request.state.session = s
                try:
                    return await handler(request)
                except RedactdError as exc:
                    return refuse(request, s, 409 if request.method == "POST" else 404, str(exc))

            return run

        return wrap

    # ------------------------------------------------------------------ sign-in

    async def login(request: Request) -> Response:
        s = _session(request)
        nxt = request.query_params.get("next", "/")
        if not nxt.startswith("/") or nxt.startswith("//"):
            nxt = "/"  # never an open redirect
        if request.method == "GET":
            if s is None:
                s = sessions.new()
            response = render(request, "login.html", s, next=nxt, error=None)
            _set_cookie(request, response, s)
            return response
        form = await request.form()
        token = form.get("csrf")
        if s is None or not s.csrf_ok(token if isinstance(token, str) else None):
            return refuse(request, None, 403, "the sign-in form's security token is missing or stale: reload "
                          "the page and sign in again")
        name, password = str(form.get("account", "")), str(form.get("password", ""))
        client = request.client.host if request.client else "?"
        account = accounts.authenticate(name, password, client)
        if account is None:
            return render(request, "login.html", s, status=401, next=nxt, error="wrong account name or password")
        sessions.drop(s.token)
        fresh = sessions.new(account.name, account.roles)
        target = nxt if nxt != "/" else _HOME[min(account.roles, key=lambda r: list(Role).index(r))]
        response = _finish(RedirectResponse(target, status_code=303))
        _set_cookie(request, response, fresh)
        return response

    @guarded(None)
    async def logout(request: Request) -> Response:
        sessions.drop(request.state.session.token)
        response = _finish(RedirectResponse("/login", status_code=303))
        response.delete_cookie(COOKIE, path="/")
        return response

    @guarded(None)
    async def home(request: Request) -> Response:
        s: Session = request.state.session
        first = min(s.roles, key=lambda r: list(Role).index(r))
        return _finish(RedirectResponse(_HOME[first], status_code=303))

    # ------------------------------------------------------------------ operator

    @guarded(Role.OPERATOR)
    async def operator(request: Request) -> Response:
        return render(request, "operator.html", request.state.session, o=console.overview(),
                      inboxes=[i.name for i in console.cfg.inboxes])

    @guarded(Role.OPERATOR)
    async def jobs(request: Request) -> Response:
        q = request.query_params
        state = q.get("state") or None
        states = {JobState(state)} if state in {s.value for s in JobState} else None
        limit = min(max(int(q.get("limit", "100") or 100), 1), 5000) if q.get("limit", "100").isdigit() else 100
        found, tries = console.jobs(states, q.get("inbox") or None, q.get("name") or None, limit)
        return render(request, "jobs.html", request.state.session, jobs=found, tries=tries,
                      states=[s.value for s in JobState],
                      inboxes=[i.name for i in console.cfg.inboxes], q=q)

    @guarded(Role.OPERATOR)
    async def job(request: Request) -> Response:
        found, history, custody = console.job(request.path_params["job_id"])
        from redactd.custody.report import timeline_line

        names = console.names()
        return render(request, "job.html", request.state.session, job=found, history=history,
                      custody=[timeline_line(e, names) for e in custody])

    @guarded(Role.OPERATOR)
    async def retry(request: Request) -> Response:
        s: Session = request.state.session
        assert s.account is not None
        found, note = console.retry(request.path_params["job_id"], s.account)
        logger.info("web_job_retried", job_id=found.id, account=s.account)
        s.flash.append(f"job {found.id}: queued again. custody: {note}")
        return _finish(RedirectResponse(f"/jobs/{found.id}", status_code=303))

    @guarded(Role.OPERATOR)
    async def cancel(request: Request) -> Response:
        s: Session = request.state.session
        assert s.account is not None
        found, note = console.cancel(request.path_params["job_id"], s.account)
        logger.info("web_job_cancelled", job_id=found.id, account=s.account)
        s.flash.append(f"job {found.id}: cancelled; raw file kept in the failed queue. custody: {note}")
        return _finish(RedirectResponse(f"/jobs/{found.id}", status_code=303))

    # ------------------------------------------------------------------ reviewer

    @guarded(Role.REVIEWER)
    async def review(request: Request) -> Response:
        return render(request, "review.html", request.state.session, items=console.review_items())

    @guarded(Role.REVIEWER)
    async def review_item(request: Request) -> Response:
        item = console.review_item(request.path_params["job_id"])
        return render(request, "review_item.html", request.state.session, item=item,
                      validation=item.sidecar.get("validation", {}), policies=console.redaction_policies())

    @guarded(Role.REVIEWER)
    async def sheet(request: Request) -> Response:
        png = console.contact_sheet_png(request.path_params["job_id"])
        return _finish(Response(png, media_type="image/png", headers={"Cache-Control": "no-store, private"}))

    @guarded(Role.REVIEWER)
    async def clip(request: Request) -> Response:
        """The output under review, for the page's player (ranges, so it can be scrubbed)."""
        from starlette.responses import FileResponse

        path = console.review_output(request.path_params["job_id"])
        return _finish(FileResponse(path, media_type="video/mp4" if path.suffix == ".mp4" else None,
                                    headers={"Cache-Control": "no-store, private"}))

    @guarded(Role.REVIEWER)
    async def decide(request: Request) -> Response:
        s: Session = request.state.session
        form = request.state.form
        decision = str(form.get("decision", ""))
        reason = str(form.get("reason", "")).strip()
        policy = str(form.get("policy", "")).strip()
        job_id = request.path_params["job_id"]
        if decision not in ("approve", "reject", "requeue"):
            return refuse(request, s, 400, "choose approve, reject or requeue")
        if decision == "reject" and not reason:
            return refuse(request, s, 400, "a rejection needs a reason (it is recorded with the decision)")
        if decision == "requeue" and not policy:
            return refuse(request, s, 400, "choose the policy to run the job again with")
        assert s.account is not None
        found, note = console.decide(job_id, s.account, decision, reason, policy)
        logger.info("web_review_decided", job_id=found.id, account=s.account, decision=decision)
        s.flash.append(f"job {found.id}: {decision} recorded ({found.state.value}). custody: {note}")
        return _finish(RedirectResponse("/review", status_code=303))

    # ------------------------------------------------------------------ officer

    @guarded(Role.OFFICER)
    async def officer(request: Request) -> Response:
        today = datetime.now(UTC).date()
        result, problem = None, None
        try:
            result = console.verify()
        except RedactdError as exc:
            problem = str(exc)
        return render(request, "officer.html", request.state.session, result=result, problem=problem,
                      start=(today - timedelta(days=30)).isoformat(), end=today.isoformat())

    @guarded(Role.OFFICER)
    async def report(request: Request) -> Response:
        try:
            start = date.fromisoformat(request.query_params.get("from", ""))
            end = date.fromisoformat(request.query_params.get("to", ""))
        except ValueError:
            return refuse(request, request.state.session, 400, "give the period as from=YYYY-MM-DD&to=YYYY-MM-DD")
        if end < start:
            return refuse(request, request.state.session, 400, f"the period ends ({end}) before it starts ({start})")
        # The report is the same self-contained page `custody report` writes: its styles are inline.
        page = HTMLResponse(console.report_html(start, end), headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
                                       "form-action 'none'; base-uri 'none'"})
        return _finish(page)

    @guarded(Role.OFFICER)
    async def history(request: Request) -> Response:
        what = request.query_params.get("what", "").strip()
        entries = console.custody_history(what) if what else []
        shas = sorted({e[k] for e in entries for k in ("raw_sha256", "output_sha256") if e.get(k)})
        from redactd.custody.report import timeline_line

        names = console.names()
        return render(request, "history.html", request.state.session, what=what,
                      lines=[timeline_line(e, names) for e in entries], shas=shas)

    @guarded(Role.OFFICER)
    async def bundle(request: Request) -> Response:
        sha = request.query_params.get("sha256", "")
        doc, left_out = console.bundle(sha)
        body = json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False).encode() + b"\n"
        logger.info("web_bundle_downloaded", account=request.state.session.account, sha256=sha, left_out=left_out)
        return _finish(Response(body, media_type="application/json", headers={
            "Content-Disposition": f'attachment; filename="custody-{sha[:16]}.json"'}))

    @guarded(Role.OFFICER)
    async def retention(request: Request) -> Response:
        plan, problem = None, None
        try:
            plan = console.retention_plan()
        except RedactdError as exc:
            problem = str(exc)
        return render(request, "retention.html", request.state.session, plan=plan, problem=problem,
                      holds=console.holds(include_released=True))

    @guarded(Role.OFFICER)
    async def hold_add(request: Request) -> Response:
        s: Session = request.state.session
        form = request.state.form
        hold, note = console.set_hold(str(form.get("scope", "")), str(form.get("value", "")),
                                      str(form.get("reason", "")).strip(), str(form.get("requested_by", "")).strip(),
                                      str(form.get("review_date", "")))
        logger.info("web_hold_set", hold_id=hold.id, account=s.account)
        s.flash.append(f"hold #{hold.id} set on {hold.scope.value} {hold.value}. custody: {note}")
        return _finish(RedirectResponse("/officer/retention", status_code=303))

    @guarded(Role.OFFICER)
    async def hold_release(request: Request) -> Response:
        s: Session = request.state.session
        assert s.account is not None
        hold, note = console.release_hold(int(request.path_params["hold_id"]), s.account)
        logger.info("web_hold_released", hold_id=hold.id, account=s.account)
        s.flash.append(f"hold #{hold.id} released by {s.account}. custody: {note}")
        return _finish(RedirectResponse("/officer/retention", status_code=303))

    # ------------------------------------------------------------------ metrics and static

    async def metrics(request: Request) -> Response:
        from redactd.web.metrics import render_metrics

        client = request.client.host if request.client else ""
        if client not in ("127.0.0.1", "::1"):
            given = request.headers.get("authorization", "")
            if metrics_token is None or not hmac.compare_digest(given.encode(), f"Bearer {metrics_token}".encode()):
                return _finish(PlainTextResponse("metrics: a bearer token is needed from this address\n",
                                                 status_code=401, headers={"WWW-Authenticate": "Bearer"}))
        body, content_type = render_metrics(console)
        return _finish(Response(body, media_type=content_type))

    async def css(request: Request) -> Response:
        response = Response((HERE / "static" / "console.css").read_bytes(), media_type="text/css")
        return _finish(response)

    routes = [
        Route("/", home), Route("/login", login, methods=["GET", "POST"]), Route("/logout", logout, methods=["POST"]),
        Route("/operator", operator), Route("/jobs", jobs), Route("/jobs/{job_id}", job),
        Route("/jobs/{job_id}/retry", retry, methods=["POST"]), Route("/jobs/{job_id}/cancel", cancel, methods=["POST"]),
        Route("/review", review), Route("/review/{job_id}", review_item),
        Route("/review/{job_id}/sheet.png", sheet), Route("/review/{job_id}/output", clip), Route("/review/{job_id}/decide", decide, methods=["POST"]),
        Route("/officer", officer), Route("/officer/report", report), Route("/officer/history", history),
        Route("/officer/bundle", bundle), Route("/officer/retention", retention),
        Route("/officer/holds", hold_add, methods=["POST"]),
        Route("/officer/holds/{hold_id:int}/release", hold_release, methods=["POST"]),
        Route("/metrics", metrics), Route("/static/console.css", css),
    ]
    return Starlette(routes=routes)
