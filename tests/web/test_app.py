"""The console's security rules through Starlette's test transport, on a real config and state dir.

No daemon here (see test_browser.py for the console served by a running daemon): these check the
rules every page shares, from addresses and schemes a browser on this machine cannot take.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from starlette.testclient import TestClient

from redactd.web.accounts import Accounts, Role
from redactd.web.app import create_app
from redactd.web.data import Console
from tests.conftest import TEST_POLICIES
from tests.daemon.conftest import PYTHONPATH

PASSWORD = "correct horse battery"
TOKEN = "metrics-token-0123456789abcdef"


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "metadata-only.yaml").write_text((TEST_POLICIES / "metadata-only.yaml").read_text())
    cfg = {"version": 1, "inboxes": [{"name": "in", "path": str(tmp_path / "in"), "policy": "metadata-only"}],
           "raw_store": str(tmp_path / "raw"), "clean_dir": str(tmp_path / "clean"),
           "review_dir": str(tmp_path / "review"), "failed_dir": str(tmp_path / "failed"),
           "state_dir": str(tmp_path / "state"), "policies_dir": str(policies),
           "custody": {"directory": str(tmp_path / "state" / "custody"), "signing_key": str(tmp_path / "k")},
           "web": {"port": 8477}}
    path = tmp_path / "redactd.yaml"
    path.write_text(yaml.safe_dump(cfg))
    accounts = Accounts(tmp_path / "state")
    accounts.add("olga", {Role.OPERATOR}, PASSWORD)
    accounts.add("rita", {Role.REVIEWER}, PASSWORD)
    return path


def client(config: Path, base_url: str = "http://127.0.0.1", address: str = "127.0.0.1") -> TestClient:
    return TestClient(create_app(Console(config), TOKEN), base_url=base_url, client=(address, 50000))


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def sign_in(c: TestClient, account: str, password: str = PASSWORD) -> Iterator[str] | object:
    page = c.get("/login")
    return c.post("/login", data={"csrf": csrf_of(page.text), "account": account, "password": password},
                  follow_redirects=False)


class TestAccounts:
    def test_user_add_stores_an_argon2id_hash_in_an_owner_only_file(self, config: Path, tmp_path: Path) -> None:
        out = subprocess.run([sys.executable, "-m", "redactd", "web", "user", "add", "otto", "--role", "officer",
                              "--password-stdin", "--config", str(config)], input=PASSWORD + "\n", text=True,
                             capture_output=True, timeout=60, check=False,
                             env={"PYTHONPATH": PYTHONPATH, "PATH": "/usr/bin:/bin"})
        assert out.returncode == 0, out.stderr
        path = tmp_path / "state" / "web-users.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        doc = json.loads(path.read_text())
        assert doc["users"]["otto"]["roles"] == ["officer"]
        assert doc["users"]["otto"]["hash"].startswith("$argon2id$")
        assert PASSWORD not in path.read_text()

    @pytest.mark.parametrize(("name", "password", "message"), [
        ("Bad Name", PASSWORD, "account name"), ("ok", "short", "at least 10 characters"),
        ("olga", PASSWORD, "exists")])
    def test_user_add_refuses_bad_accounts_without_a_traceback(self, config: Path, name: str, password: str,
                                                               message: str) -> None:
        out = subprocess.run([sys.executable, "-m", "redactd", "web", "user", "add", name, "--role", "operator",
                              "--password-stdin", "--config", str(config)], input=password + "\n", text=True,
                             capture_output=True, timeout=60, check=False,
                             env={"PYTHONPATH": PYTHONPATH, "PATH": "/usr/bin:/bin"})
        assert out.returncode != 0
        assert message in out.stderr and "Traceback" not in out.stderr


class TestSessions:
    def test_the_cookie_is_httponly_and_samesite_strict_and_secure_only_over_tls(self, config: Path) -> None:
        plain = sign_in(client(config), "olga")
        cookie = plain.headers["set-cookie"]  # type: ignore[attr-defined]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
        tls = sign_in(client(config, base_url="https://console.example"), "olga")
        assert "Secure" in tls.headers["set-cookie"]  # type: ignore[attr-defined]

    def test_signing_in_replaces_the_session_token(self, config: Path) -> None:
        c = client(config)
        before = c.get("/login").cookies.get("redactd_session")
        c.cookies.clear()
        c.cookies.set("redactd_session", before)
        after = sign_in(c, "olga").cookies.get("redactd_session")  # type: ignore[attr-defined]
        assert before and after and before != after

    def test_a_wrong_password_gets_no_session_and_is_recorded(self, config: Path, tmp_path: Path) -> None:
        c = client(config)
        refused = sign_in(c, "olga", "guessed wrong")
        assert refused.status_code == 401  # type: ignore[attr-defined]
        assert c.get("/operator", follow_redirects=False).status_code == 303
        assert sign_in(c, "nobody").status_code == 401  # type: ignore[attr-defined]
        lines = [json.loads(x) for x in (tmp_path / "state" / "web-signins.log").read_text().splitlines()]
        assert [(x["account"], x["ok"]) for x in lines] == [("olga", False), ("(unknown account)", False)]
        assert stat.S_IMODE((tmp_path / "state" / "web-signins.log").stat().st_mode) == 0o600

    def test_a_removed_account_loses_its_session_at_its_next_request(self, config: Path, tmp_path: Path) -> None:
        c = client(config)
        sign_in(c, "olga")
        assert c.get("/operator").status_code == 200
        Accounts(tmp_path / "state").remove("olga")
        assert c.get("/operator", follow_redirects=False).headers["location"] == "/login?next=/operator"

    def test_sign_in_never_redirects_off_the_console(self, config: Path) -> None:
        c = client(config)
        page = c.get("/login?next=//evil.example/x")
        answer = c.post("/login?next=//evil.example/x", data={"csrf": csrf_of(page.text), "account": "olga",
                                                               "password": PASSWORD}, follow_redirects=False)
        assert answer.headers["location"] == "/operator"


class TestRefusals:
    def test_a_post_without_the_csrf_token_is_refused(self, config: Path) -> None:
        c = client(config)
        sign_in(c, "olga")
        answer = c.post("/jobs/0123456789/retry", data={})
        assert answer.status_code == 403 and "security token is missing" in answer.text
        answer = c.post("/jobs/0123456789/retry", data={"csrf": "forged"})
        assert answer.status_code == 403

    def test_sign_in_without_the_forms_token_is_refused(self, config: Path) -> None:
        answer = client(config).post("/login", data={"account": "olga", "password": PASSWORD})
        assert answer.status_code == 403 and "set-cookie" not in answer.headers

    def test_each_role_is_refused_the_others_pages(self, config: Path) -> None:
        c = client(config)
        sign_in(c, "rita")
        for page in ("/operator", "/jobs", "/officer", "/officer/retention", "/officer/bundle?sha256=00"):
            answer = c.get(page)
            assert answer.status_code == 403, page
        assert c.get("/review").status_code == 200

    def test_every_page_is_no_store_and_unframeable(self, config: Path) -> None:
        c = client(config)
        sign_in(c, "olga")
        for page in ("/login", "/operator", "/jobs", "/review"):
            answer = c.get(page)
            assert answer.headers["cache-control"].startswith("no-store"), page
            assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
            assert answer.headers["x-frame-options"] == "DENY"


class TestMetrics:
    def test_metrics_are_open_to_this_machine(self, config: Path) -> None:
        answer = client(config).get("/metrics")
        assert answer.status_code == 200
        assert "redactd_volume_free_bytes" in answer.text

    def test_metrics_from_elsewhere_need_the_bearer_token(self, config: Path) -> None:
        c = client(config, address="203.0.113.5")
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        answer = c.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200 and "redactd_job_store_up 0.0" in answer.text


class TestOperatorActions:
    def test_cancel_from_the_job_page_is_the_same_transition_as_jobs_cancel(self, config: Path,
                                                                             tmp_path: Path) -> None:
        from redactd.jobflow.jobstore import JobState, JobStore

        (tmp_path / "raw").mkdir()
        raw = tmp_path / "raw" / "01waiting.mp4"
        raw.write_bytes(b"footage")
        store = JobStore.open(tmp_path / "state" / "jobs.sqlite3")
        store.begin_receiving("01waiting", "in", b"d.mp4", 7, "metadata-only", 1, raw)
        store.finish_receiving("01waiting", "d" * 64)
        c = client(config)
        sign_in(c, "olga")
        page = c.get("/jobs/01wait")
        assert page.status_code == 200 and 'id="cancel"' in page.text
        done = c.post("/jobs/01waiting/cancel", data={"csrf": csrf_of(page.text)})
        assert done.status_code == 200 and "cancelled; raw file kept in the failed queue" in done.text
        job = store.get("01waiting")
        assert job.state is JobState.FAILED and job.last_error == "cancelled by olga before processing"
        assert job.raw_path == tmp_path / "failed" / "01waiting" / "raw.mp4"
        again = c.post("/jobs/01waiting/cancel", data={"csrf": csrf_of(page.text)})
        assert again.status_code == 409 and "only a job waiting in the queue" in again.text
        store.close()


class TestSignOut:
    def test_signing_out_ends_the_session_on_the_server(self, config: Path) -> None:
        c = client(config)
        sign_in(c, "olga")
        page = c.get("/operator")
        token = c.cookies.get("redactd_session")
        out = c.post("/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
        assert out.status_code == 303 and out.headers["location"] == "/login"
        c.cookies.set("redactd_session", token)  # a copy of the old cookie is worth nothing now
        assert c.get("/operator", follow_redirects=False).headers["location"] == "/login?next=/operator"


class TestServeCommand:
    def test_redactd_web_serves_the_console_on_loopback_and_stops_on_sigterm(self, config: Path) -> None:
        import signal
        import time

        import httpx2

        from tests.web.conftest import free_port

        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "redactd", "web", "--config", str(config), "--port", str(port)],
                                env={"PYTHONPATH": PYTHONPATH, "PATH": "/usr/bin:/bin"}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    answer = httpx2.get(f"http://127.0.0.1:{port}/login", timeout=5)
                    break
                except httpx2.HTTPError:
                    assert time.monotonic() < deadline and proc.poll() is None, "the console did not come up"
                    time.sleep(0.3)
            assert answer.status_code == 200 and "Sign in" in answer.text
        finally:
            proc.send_signal(signal.SIGTERM)
            out = proc.communicate(timeout=60)[0].decode()
        # uvicorn shuts down, then re-raises the signal it caught: systemd counts that as a clean stop.
        assert proc.returncode in (0, -signal.SIGTERM), out
        assert "web_console_started" in out and "Traceback" not in out


class TestHolds:
    def test_an_officer_sets_a_hold_with_a_review_date_and_a_bad_date_changes_nothing(
            self, config: Path, tmp_path: Path) -> None:
        from redactd.retention.store import RetentionStore

        Accounts(tmp_path / "state").add("otto", {Role.OFFICER}, PASSWORD)
        c = client(config)
        sign_in(c, "otto")
        page = c.get("/officer/retention")
        form = {"csrf": csrf_of(page.text), "scope": "inbox", "value": "in", "reason": "case 7",
                "requested_by": "legal"}
        bad = c.post("/officer/holds", data={**form, "review_date": "next spring"})
        assert bad.status_code == 409 and "expected YYYY-MM-DD" in bad.text
        done = c.post("/officer/holds", data={**form, "review_date": "2027-01-31"})
        assert done.status_code == 200 and "hold #1 set on inbox in" in done.text
        with RetentionStore.open(tmp_path / "state" / "jobs.sqlite3") as store:
            (hold,) = store.holds()
        assert (hold.reason, hold.requested_by, hold.review_date.date().isoformat()) == \
            ("case 7", "legal", "2027-01-31")


class TestOfficerNames:
    def test_custody_pages_read_names_from_the_name_store_and_the_bundle_download_has_none(
            self, config: Path, tmp_path: Path) -> None:
        from redactd.custody import CustodyLog, Event
        from redactd.custody.keys import init_key

        raw, name = "5" * 64, "Zoë <b>O'Brien</b>.mp4"
        init_key(tmp_path / "k")
        with CustodyLog.open(tmp_path / "state" / "custody", tmp_path / "k") as log:
            log.append(Event.INGESTED, job_id="job-1", raw_sha256=raw, original_name=name)
        Accounts(tmp_path / "state").add("otto", {Role.OFFICER}, PASSWORD)
        c = client(config)
        sign_in(c, "otto")
        page = c.get("/officer/history", params={"what": raw})
        assert page.status_code == 200 and "name=&#34;Zoë &lt;b&gt;O&#39;Brien&lt;/b&gt;.mp4&#34;" in page.text
        bundle = c.get("/officer/bundle", params={"sha256": raw})
        assert bundle.status_code == 200 and json.loads(bundle.content)["entries"]
        assert "Zoë".encode() not in bundle.content and b"O'Brien" not in bundle.content
        (tmp_path / "state" / "custody-names.jsonl").unlink()  # an officer's copy without the names file
        page = c.get("/officer/history", params={"what": raw})
        assert "name=&#39;name not available&#39;" in page.text and "Brien" not in page.text
