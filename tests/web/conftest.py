"""The console's fixtures: a real daemon serving the console (its config has a ``web:`` section),
with jobs held in review by validation, one account per role, and Debian's chromium through Selenium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest

from redactd.jobflow.jobstore import Job
from tests.daemon.conftest import DaemonRun, drop
from tests.validation import scenes
from tests.validation.test_review_daemon import policy_files

PASSWORD = "correct horse battery"
ACCOUNTS = {"olga": ["operator"], "rita": ["reviewer"], "otto": ["officer"]}
CLIPS = {"approve.mp4": ("careless", "rocket"), "reject.mp4": ("careless", "brick"),
         "csrf.mp4": ("careless", "chelsea"), "good.mp4": ("faces", "coffee")}

RETENTION = """\
kind: retention
id: keep-a-week
version: 1
require_published_before_raw_purge: true
max_deletions_per_run: 200
dry_run: false
rules:
  - name: default
    count_from: published
    keep_days: {raw_after_published: 7, raw_after_failed: 30, review_items: 30, failed_items: 30,
                clean_outputs: null}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redactd(run: DaemonRun, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "redactd", "--config", str(run.config), *args], input=stdin,
                          env=run.env, capture_output=True, text=True, timeout=120, check=False)


@dataclass
class Site:
    run: DaemonRun
    url: str
    token: str

    def job(self, name: str) -> Job:
        (found,) = [j for j in self.run.jobs() if j.name == name]
        return found


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("web")
    run = DaemonRun(root, settle=0.5, workers=2)
    policy_files(run.policies)
    inboxes = []
    for name in ("faces", "careless"):
        (root / f"in-{name}").mkdir()
        inboxes.append({"name": name, "path": str(root / f"in-{name}"), "policy": name, "receipts": True})
    run.settings["inboxes"] = inboxes
    run.settings["custody"]["checkpoint_minutes"] = 0.02  # decisions reach the log within seconds
    run.settings["retention"] = {"policy": "keep-a-week"}
    (run.policies / "keep-a-week.yaml").write_text(RETENTION)
    token = "metrics-token-0123456789abcdef"
    (root / "metrics.token").write_text(token + "\n")
    port = free_port()
    run.settings["web"] = {"port": port, "metrics_token_file": str(root / "metrics.token")}
    run.write_config()
    for account, roles in ACCOUNTS.items():
        out = redactd(run, "web", "user", "add", account, *(a for r in roles for a in ("--role", r)),
                      "--password-stdin", stdin=PASSWORD + "\n")
        assert out.returncode == 0, out.stderr
    clips = {name: scenes.make_scene(root / f"src-{name}", bg, frames=15, layout=0)
             for name, (_, bg) in CLIPS.items()}
    run.start()
    try:
        for name, (inbox, _) in CLIPS.items():
            drop(root / f"in-{inbox}", name, clips[name].path.read_bytes())
        run.wait_finished(len(CLIPS), timeout=240)
        hold = redactd(run, "hold", "add", "--inbox", "faces", "--reason", "case 2026-114",
                       "--requested-by", "legal")
        assert hold.returncode == 0, hold.stderr
        url = f"http://127.0.0.1:{port}"
        run.wait_for(lambda: _answers(url), timeout=30, what="the console to answer")
        yield Site(run, url, token)
    finally:
        if run.alive():
            run.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/login", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


class Browser:
    """A headless chromium driven by chromedriver; ``shot`` saves a screenshot of the page shown."""

    def __init__(self, url: str, shots: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.url, self.shots = url, shots
        self.profile = tempfile.mkdtemp(prefix="redactd-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,1000", f"--user-data-dir={self.profile}"):
            opts.add_argument(arg)
        service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
        self.driver = webdriver.Chrome(options=opts, service=service)
        self.driver.set_page_load_timeout(120)

    def get(self, path: str) -> None:
        self.driver.get(self.url + path)

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        return str(self.driver.find_element(By.TAG_NAME, "body").text)

    def by_id(self, element_id: str):  # type: ignore[no-untyped-def]
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, element_id)

    def sign_in(self, account: str, password: str = PASSWORD) -> None:
        self.driver.delete_all_cookies()
        self.get("/login")
        self.by_id("account").send_keys(account)
        self.by_id("password").send_keys(password)
        self.by_id("signin").click()
        wait(lambda: "/login" not in self.driver.current_url or "wrong account" in self.text())

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def close(self) -> None:
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="package")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = Path(os.environ.get("REDACTD_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    where.mkdir(parents=True, exist_ok=True)
    print(f"\nconsole screenshots: {where}", file=sys.stderr)
    return where


@pytest.fixture(scope="package")
def browser(site: Site, screenshots: Path) -> Iterator[Browser]:
    b = Browser(site.url, screenshots)
    try:
        yield b
    finally:
        b.close()


def wait(predicate, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    """The predicate's first true value; a page still loading (element missing or stale) counts as not yet.

    ChromeDriver 156 reports an element read while the next page replaces the document as an
    "unhandled inspector error" ("Node with given id does not belong to the document") rather
    than as stale: seen once in a fresh-clone run, reading the body just after "sign in" was clicked.
    """
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        WebDriverException,
    )

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = predicate()
        except (NoSuchElementException, StaleElementReferenceException):
            found = None
        except WebDriverException as exc:
            if "does not belong to the document" not in str(exc.msg):
                raise
            found = None
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("timed out")
