"""The console served by the running daemon, over real HTTP: frames, proxies and metrics."""

from __future__ import annotations

import re

import httpx2 as httpx
import pytest

from tests.web.conftest import PASSWORD, Site

pytestmark = pytest.mark.slow


def session(site: Site, account: str, headers: dict[str, str] | None = None) -> httpx.Client:
    c = httpx.Client(base_url=site.url, timeout=120, headers=headers or {})
    page = c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    answer = c.post("/login", data={"csrf": token.group(1), "account": account, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return c


class TestFrames:
    def test_unredacted_frames_go_only_to_reviewers_and_are_never_cached(self, site: Site) -> None:
        job = site.job("csrf.mp4")  # left in review by the browser tests
        rita = session(site, "rita")
        sheet = rita.get(f"/review/{job.id}/sheet.png")
        rita.close()
        assert sheet.status_code == 200 and sheet.headers["content-type"] == "image/png"
        assert sheet.content.startswith(b"\x89PNG") and sheet.headers["cache-control"].startswith("no-store")
        olga = session(site, "olga")
        assert olga.get(f"/review/{job.id}/sheet.png").status_code == 403
        olga.close()
        assert httpx.get(f"{site.url}/review/{job.id}/sheet.png", timeout=60).status_code == 303

    def test_the_output_clip_is_served_in_ranges_to_reviewers_only(self, site: Site) -> None:
        job = site.job("csrf.mp4")
        rita = session(site, "rita")
        part = rita.get(f"/review/{job.id}/output", headers={"Range": "bytes=0-99"})
        rita.close()
        assert part.status_code == 206 and len(part.content) == 100
        assert part.headers["cache-control"].startswith("no-store")
        assert job.output_path is not None and part.content == job.output_path.read_bytes()[:100]
        olga = session(site, "olga")
        assert olga.get(f"/review/{job.id}/output").status_code == 403
        olga.close()


class TestBehindAProxy:
    def test_the_cookie_is_secure_when_the_trusted_proxy_says_https(self, site: Site) -> None:
        c = httpx.Client(base_url=site.url, timeout=60, headers={"X-Forwarded-Proto": "https"})
        assert "Secure" in c.get("/login").headers["set-cookie"]
        plain = httpx.get(f"{site.url}/login", timeout=60)
        assert "Secure" not in plain.headers["set-cookie"]


class TestMetrics:
    def test_metrics_count_jobs_by_state_and_time_them_by_policy(self, site: Site) -> None:
        text = httpx.get(f"{site.url}/metrics", timeout=60).text
        assert re.search(r'^redactd_jobs\{state="published"\} [1-9]', text, re.MULTILINE)
        assert re.search(r'^redactd_job_duration_seconds_count\{policy="faces"\} [1-9]', text, re.MULTILINE)
        assert re.search(r'^redactd_job_fps_count\{policy="faces"\} [1-9]', text, re.MULTILINE)
        assert re.search(r'^redactd_queue_depth [0-9]', text, re.MULTILINE)
        assert re.search(r'^redactd_custody_lag_seconds [0-9.]+', text, re.MULTILINE)
        assert re.search(r'^redactd_retention_purges_total\{status="refused"\} [0-9]', text, re.MULTILINE)
        assert re.search(r'^redactd_volume_free_bytes\{folders="[^"]*raw store[^"]*"\} [1-9]', text, re.MULTILINE)
        assert re.search(r'^redactd_job_retries_total\{cause="operator"\} [0-9]', text, re.MULTILINE)

    def test_metrics_from_elsewhere_need_the_token_even_through_the_proxy(self, site: Site) -> None:
        forwarded = {"X-Forwarded-For": "198.51.100.7"}
        assert httpx.get(f"{site.url}/metrics", headers=forwarded, timeout=60).status_code == 401
        ok = httpx.get(f"{site.url}/metrics", headers={**forwarded, "Authorization": f"Bearer {site.token}"},
                       timeout=60)
        assert ok.status_code == 200


class TestReceipts:
    def test_contributors_read_held_for_review_and_published(self, site: Site) -> None:
        root = site.run.root
        site.run.wait_receipt(root / "in-careless" / ".redactd" / "csrf.mp4.txt", "held for review")
        site.run.wait_receipt(root / "in-faces" / ".redactd" / "good.mp4.txt", "published")
