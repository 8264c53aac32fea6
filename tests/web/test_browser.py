"""The console in a real browser (Debian's chromium through Selenium) against a real daemon serving it.

Each page visited is saved as a screenshot (the directory is printed at the start of the run).
"""

from __future__ import annotations

import json

import pytest

from redactd.jobflow.jobstore import JobState
from tests.web.conftest import Browser, Site, redactd, wait

pytestmark = pytest.mark.slow


def custody(site: Site, job_id: str, event: str) -> dict:
    """The job's custody entry ``event``, once the daemon has appended it from the outbox."""
    def find() -> dict | None:
        for seg in sorted((site.run.state / "custody").glob("custody-*.jsonl")):
            for line in seg.read_text().splitlines():
                e = json.loads(line)
                if e.get("job_id") == job_id and e["event"] == event:
                    return e
        return None

    return wait(find, timeout=60)


class TestSignIn:
    def test_a_wrong_password_is_refused_and_recorded(self, browser: Browser, site: Site) -> None:
        browser.sign_in("olga", "not the password")
        assert wait(lambda: "wrong account name or password" in browser.text())
        browser.shot("login-refused")
        lines = [json.loads(x) for x in (site.run.state / "web-signins.log").read_text().splitlines()]
        assert (lines[-1]["account"], lines[-1]["ok"], lines[-1]["client"]) == ("olga", False, "127.0.0.1")
        assert "not the password" not in json.dumps(lines)  # the password tried is never recorded

    def test_the_operator_sees_status_jobs_and_a_jobs_history(self, browser: Browser, site: Site) -> None:
        browser.sign_in("olga")
        wait(lambda: browser.driver.current_url.endswith("/operator"))
        page = browser.text()
        assert "daemon: running" in page
        counts = browser.by_id("counts").text
        assert "3\nreview" in counts and "1\npublished" in counts
        assert "free" in browser.by_id("volumes").text.lower()
        browser.shot("operator-status")
        browser.get("/jobs?state=review")
        listing = browser.by_id("jobs").text
        assert {"approve.mp4", "reject.mp4", "csrf.mp4"} <= {n for n in listing.split() if n.endswith(".mp4")}
        assert "good.mp4" not in listing
        browser.shot("operator-jobs")
        good = site.job("good.mp4")
        browser.get(f"/jobs/{good.id[:-4]}")  # any unique prefix
        assert "published" in browser.by_id("history").text
        timeline = browser.by_id("custody").text
        assert "ingested" in timeline and "published" in timeline
        browser.shot("operator-job")

    def test_a_role_is_refused_the_pages_it_must_not_see(self, browser: Browser, site: Site) -> None:
        browser.sign_in("olga")
        wait(lambda: browser.driver.current_url.endswith("/operator"))
        browser.get("/review")
        assert "this page is for the reviewer role" in browser.by_id("error").text
        browser.shot("operator-refused-review")
        job = site.job("approve.mp4")
        browser.get(f"/review/{job.id}/sheet.png")
        assert "reviewer role" in browser.text()  # no unredacted frames for an operator
        browser.sign_in("rita")
        wait(lambda: browser.driver.current_url.endswith("/review"))
        for page in ("/officer", "/operator", "/jobs"):
            browser.get(page)
            assert "your account does not hold it" in browser.by_id("error").text
        browser.shot("reviewer-refused-officer")


class TestReview:
    def test_the_reviewer_approves_an_item_after_seeing_its_frames(self, browser: Browser, site: Site) -> None:
        job = site.job("approve.mp4")
        browser.sign_in("rita")
        wait(lambda: browser.driver.current_url.endswith("/review"))
        assert job.id in browser.by_id("queue").text
        browser.shot("reviewer-queue")
        browser.get(f"/review/{job.id}")
        sheet = browser.by_id("sheet")
        # The contact sheet loaded: three flagged frames, original beside output (800 px wide).
        assert wait(lambda: browser.driver.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth", sheet)) == 800
        clip = browser.by_id("clip")
        # The output plays in the page: chromium read its length (15 frames at 25 fps, about 0.6 s).
        duration = wait(lambda: browser.driver.execute_script(
            "return arguments[0].readyState >= 1 && arguments[0].duration", clip))
        assert 0.3 < duration < 2
        browser.shot("reviewer-item")
        browser.by_id("approve").click()
        wait(lambda: browser.driver.current_url.endswith("/review"))
        assert wait(lambda: f"job {job.id}: approve recorded (published)" in browser.text())
        browser.shot("reviewer-approved")
        done = site.job("approve.mp4")
        assert done.state is JobState.PUBLISHED and done.output_path is not None and done.output_path.is_file()
        entry = custody(site, job.id, "review_approved")
        assert entry["actor"] == "rita"

    def test_the_reviewer_rejects_an_item_with_a_reason(self, browser: Browser, site: Site) -> None:
        job = site.job("reject.mp4")
        browser.sign_in("rita")
        wait(lambda: browser.driver.current_url.endswith("/review"))
        browser.get(f"/review/{job.id}")
        browser.by_id("reason").send_keys("the still face is readable")
        browser.by_id("reject").click()
        wait(lambda: browser.driver.current_url.endswith("/review"))
        assert wait(lambda: f"job {job.id}: reject recorded (failed)" in browser.text())
        done = site.job("reject.mp4")
        assert done.state is JobState.FAILED
        assert done.last_error == "rejected in review by rita: the still face is readable"
        assert done.raw_path is not None and done.raw_path.is_file()
        entry = custody(site, job.id, "review_rejected")
        assert entry["actor"] == "rita" and entry["details"]["reason"] == "the still face is readable"
        receipt = (site.run.root / "in-careless" / ".redactd" / "reject.mp4.txt").read_text()
        assert "rejected in review: the still face is readable" in receipt and "rita" not in receipt

    def test_the_operator_retries_a_rejected_job(self, browser: Browser, site: Site) -> None:
        job = site.job("reject.mp4")
        assert job.state is JobState.FAILED  # rejected by the test above
        browser.sign_in("olga")
        wait(lambda: browser.driver.current_url.endswith("/operator"))
        browser.get(f"/jobs/{job.id}")
        browser.by_id("retry").click()
        assert wait(lambda: f"job {job.id}: queued again" in browser.text())
        browser.shot("operator-retried")
        assert "retried by olga" in browser.by_id("history").text
        assert custody(site, job.id, "retried")["actor"] == "olga"
        # The daemon runs it again from its raw file: the careless policy sends it back to review.
        site.run.wait_for(lambda: site.job("reject.mp4").state is JobState.REVIEW, timeout=120,
                          what="the retried job back in review")

    def test_a_post_without_the_csrf_token_is_refused(self, browser: Browser, site: Site) -> None:
        job = site.job("csrf.mp4")
        browser.sign_in("rita")
        wait(lambda: browser.driver.current_url.endswith("/review"))
        browser.get(f"/review/{job.id}")
        browser.driver.execute_script(
            "document.querySelectorAll('input[name=csrf]').forEach(function (e) { e.remove(); });")
        browser.by_id("approve").click()
        assert wait(lambda: "security token is missing or stale" in browser.by_id("error").text)
        browser.shot("csrf-refused")
        assert site.job("csrf.mp4").state is JobState.REVIEW


class TestOfficer:
    def test_the_officer_verifies_the_log_and_reads_a_files_history(self, browser: Browser, site: Site) -> None:
        browser.sign_in("otto")
        wait(lambda: browser.driver.current_url.endswith("/officer"))
        shown = browser.by_id("verify").text
        assert shown.startswith("custody log OK:")
        cli = redactd(site.run, "custody", "verify")
        assert cli.returncode == 0, cli.stderr
        # The same check as `redactd custody verify`, so the same counts (the CLI, run later, may
        # also see entries and checkpoints the daemon appended in between).
        page_entries = int(shown.split("OK: ")[1].split(" entries")[0])
        cli_entries = int(cli.stdout.split("OK: ")[1].split(" entries")[0])
        assert 20 <= page_entries <= cli_entries
        browser.shot("officer-custody")
        good = site.job("good.mp4")
        browser.get(f"/officer/history?what={good.id[:-3]}")
        timeline = browser.by_id("timeline").text
        assert "ingested" in timeline and "published" in timeline and good.id in timeline
        browser.shot("officer-history")
        browser.get("/officer/report?from=2000-01-01&to=2100-01-01")
        assert "Log verified" in browser.text()
        # Its inline styles apply (the page's own CSP allows them, and nothing else, no script).
        assert browser.driver.execute_script(
            "return [...document.styleSheets].reduce((n, s) => n + s.cssRules.length, 0)") > 0
        browser.shot("officer-report")
        browser.get("/officer/retention")
        assert "under keep-a-week v1" in browser.by_id("plan-summary").text
        assert "inbox faces" in browser.by_id("holds").text and "case 2026-114" in browser.by_id("holds").text
        browser.shot("officer-retention")

    def test_the_officer_sets_and_releases_a_hold(self, browser: Browser, site: Site) -> None:
        from selenium.webdriver.support.ui import Select

        job = site.job("csrf.mp4")
        browser.sign_in("otto")
        wait(lambda: browser.driver.current_url.endswith("/officer"))
        browser.get("/officer/retention")
        Select(browser.by_id("hold-scope")).select_by_value("job")
        browser.by_id("hold-value").send_keys(job.id[:-5])  # a unique prefix, as on the command line
        browser.by_id("hold-reason").send_keys("case 2026-201")
        browser.by_id("hold-by").send_keys("legal:j.doe")
        browser.by_id("hold-set").click()
        assert wait(lambda: "set on job " + job.id in browser.text())
        browser.shot("officer-hold-set")
        out = redactd(site.run, "hold", "list", "--json")
        (hold,) = [json.loads(x) for x in out.stdout.splitlines() if json.loads(x)["value"] == job.id]
        assert hold["reason"] == "case 2026-201" and hold["requested_by"] == "legal:j.doe"
        browser.by_id(f"release-{hold['id']}").click()
        assert wait(lambda: f"hold #{hold['id']} released by otto" in browser.text())
        out = redactd(site.run, "hold", "list", "--json", "--all")
        (released,) = [json.loads(x) for x in out.stdout.splitlines() if json.loads(x)["id"] == hold["id"]]
        assert released["released_by"] == "otto"

        def hold_entries() -> list[dict]:
            found = []
            for seg in sorted((site.run.state / "custody").glob("custody-*.jsonl")):
                for line in seg.read_text().splitlines():
                    e = json.loads(line)
                    if e["event"] in ("hold_set", "hold_released") and e["details"].get("hold_id") == hold["id"]:
                        found.append(e)
            return found

        entries = wait(lambda: (found := hold_entries()) and len(found) == 2 and found, timeout=60)
        assert [e["event"] for e in entries] == ["hold_set", "hold_released"]
