"""The officer's HTML report and the one-file timeline."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from redactd.custody import report, verify_log
from redactd.custody.keys import load_public_key
from redactd.custody.names import NAME_UNAVAILABLE, Names, names_path
from redactd.custody.segments import load_entries


class _Cards(HTMLParser):
    """Collect the summary cards (number, label) and every visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: dict[str, int] = {}
        self.text: list[str] = []
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        self._stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._stack[-1:] == ["span"] and len(self.text) > 1 and self.text[-2].isdigit():
            self.cards[data] = int(self.text[-2])


def render(generated: dict[str, Any], start: date, end: date, pub: Any = None,
           names: Names | None = None) -> tuple[str, _Cards]:
    entries = load_entries(generated["dir"])
    result = verify_log(generated["dir"], pub or load_public_key(generated["pub"]))
    page = report.render(entries, result, start, end, names)
    parsed = _Cards()
    parsed.feed(page)
    return page, parsed


class TestReport:
    def test_summary_counts_match_the_entries_of_the_period(self, generated: dict[str, Any]) -> None:
        start, end = date(2026, 3, 2), date(2026, 3, 4)
        page, parsed = render(generated, start, end)
        counts = Counter(e["event"] for e in load_entries(generated["dir"])
                         if start <= date.fromisoformat(e["time"][:10]) <= end)
        assert parsed.cards["Files ingested"] == counts["ingested"] > 0
        assert parsed.cards["Published"] == counts["published"]
        assert parsed.cards["Sent to review"] == counts["sent_to_review"]
        raw_purges = sum(1 for e in load_entries(generated["dir"]) if e["event"] == "purged"
                         and start <= date.fromisoformat(e["time"][:10]) <= end
                         and (e.get("details") or {}).get("item", "raw") == "raw")
        assert parsed.cards["Raw files purged"] == raw_purges
        assert parsed.cards["Legal holds set"] == counts["hold_set"]
        assert "Log verified" in page and "visual-default" in page

    def test_original_file_names_never_reach_the_report(self, generated: dict[str, Any]) -> None:
        page, _ = render(generated, date(2026, 3, 1), date(2026, 3, 31))
        assert not re.search(r"clip \d+\.mp4", page)

    def test_given_the_name_store_the_report_shows_each_jobs_name_and_says_when_it_has_none(
            self, generated: dict[str, Any], tmp_path: Path) -> None:
        page, _ = render(generated, date(2026, 3, 1), date(2026, 3, 2), names=Names.load(names_path(generated["dir"])))
        assert "<th>Original name</th>" in page and re.search(r"<td>clip \d+\.mp4</td>", page)
        page, _ = render(generated, date(2026, 3, 1), date(2026, 3, 2), names=Names.load(tmp_path / "none.jsonl"))
        assert not re.search(r"clip \d+\.mp4", page) and f"<td>{NAME_UNAVAILABLE}</td>" in page

    def test_a_failed_verification_is_the_first_thing_on_the_page(self, generated: dict[str, Any]) -> None:
        page, _ = render(generated, date(2026, 3, 1), date(2026, 3, 2),
                              pub=Ed25519PrivateKey.generate().public_key())
        assert page.index("Verification failed") < page.index("Summary")
        assert "custody-000001.jsonl line 1 (seq 0)" in page

    def test_a_period_without_activity_says_so(self, generated: dict[str, Any]) -> None:
        page, parsed = render(generated, date(2025, 1, 1), date(2025, 1, 2))
        assert parsed.cards["Files ingested"] == 0 and "No file activity in this period." in page

    def test_the_page_loads_nothing_from_outside(self, generated: dict[str, Any]) -> None:
        page, _ = render(generated, date(2026, 3, 1), date(2026, 3, 2))
        assert not re.search(r"<script|<link|src=|https?://", page)


class TestPurgesInTheReport:
    def test_purges_count_by_item_and_a_refused_purge_is_not_a_failed_job(self, tmp_path) -> None:
        from redactd.custody import CustodyLog
        from redactd.custody.keys import init_key, public_path

        key = tmp_path / "k.key"
        init_key(key)
        raw, out = "a" * 64, "b" * 64
        pol = {"id": "retention-default", "version": 1, "hash": "c" * 64}
        with CustodyLog.open(tmp_path / "log", key) as log:
            log.append("ingested", job_id="j1", raw_sha256=raw, policy={**pol, "id": "visual-default"})
            log.append("published", job_id="j1", raw_sha256=raw, output_sha256=out)
            log.append("purge_intended", job_id="j1", raw_sha256=raw, policy=pol, item="clean")
            log.append("purged", job_id="j1", raw_sha256=raw, policy=pol, item="clean", method="unlink")
            log.append("purge_intended", job_id="j1", raw_sha256=raw, policy=pol, item="raw")
            log.append("failed", job_id="j1", raw_sha256=raw, policy=pol, item="raw",
                       purge_refused="size changed on disk")
        today = date.today()
        page = report.render(load_entries(tmp_path / "log"),
                             verify_log(tmp_path / "log", load_public_key(public_path(key))), today, today)
        parsed = _Cards()
        parsed.feed(page)
        assert parsed.cards["Raw files purged"] == 0
        assert parsed.cards["Other items purged"] == 1
        assert parsed.cards["Purges refused"] == 1
        assert parsed.cards["Failed"] == 0
        assert "raw refused: file changed on disk" in page and "clean " in page
        assert "published" in page and "visual-default v1" in page


class TestTimeline:
    def test_history_follows_a_file_through_its_jobs(self, generated: dict[str, Any]) -> None:
        entries = load_entries(generated["dir"])
        published = next(e for e in entries if e["event"] == "published")
        by_output = report.history(entries, published["output_sha256"])
        assert [e["event"] for e in by_output][:3] == ["ingested", "processing_started", "published"]
        assert by_output == report.history(entries, published["job_id"])
        line = report.timeline_line(by_output[0], Names.load(names_path(generated["dir"])))
        assert line.startswith(by_output[0]["time"][:10]) and "name='clip " in line

