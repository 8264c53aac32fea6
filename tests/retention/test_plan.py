"""The pure planner: deadlines, rules in order, holds, the per-run cap, policy versions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from redactd.errors import RetentionError
from redactd.policy import RetentionPolicy
from redactd.retention import Action, Hold, HoldScope, ItemKind, RetentionItem, plan
from tests.conftest import TEST_POLICIES

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
SHA = "a" * 64


def policy(**overrides: Any) -> RetentionPolicy:
    doc: dict[str, Any] = {
        "kind": "retention", "id": "ret", "version": 1, "max_deletions_per_run": 100,
        "rules": [
            {"name": "big-mkv", "match": {"extensions": ["mkv"], "min_bytes": 1000},
             "keep_days": {"raw_after_published": 1}},
            {"name": "dashcams", "match": {"inbox": "dashcams", "profile": "metadata-only"},
             "count_from": "ingested", "keep_days": {"raw_after_published": 2, "review_items": 3}},
            {"name": "default", "keep_days": {"raw_after_published": 7, "raw_after_failed": 30, "review_items": 30,
                                              "failed_items": 30, "clean_outputs": None}},
        ],
    }
    doc.update(overrides)
    return RetentionPolicy.model_validate(doc)


def raw(job: str = "job1", state: str = "published", inbox: str = "default", ext: str = ".mp4",
        size: int = 500, sha: str | None = SHA, finished: datetime = T0, **kw: Any) -> RetentionItem:
    return RetentionItem(kind=ItemKind.RAW, path=Path(f"/raw/{job}{ext}"), sha256=sha, size=size, job_id=job,
                         inbox=inbox, profile="metadata-only", ext=ext, state=state,
                         ingested_at=finished - timedelta(hours=1), finished_at=finished, name="site 7/clip.mp4",
                         **kw)


def hold(scope: HoldScope, value: str, hold_id: int = 1, **kw: Any) -> Hold:
    return Hold(id=hold_id, scope=scope, value=value, reason="case 42", requested_by="legal:bob",
                created_at=T0, **kw)


def only(items: list[RetentionItem], pol: RetentionPolicy | None = None, holds: list[Hold] | None = None,
         now: datetime = T0):  # type: ignore[no-untyped-def]
    p = plan(items, pol or policy(), holds or [], now)
    assert len(p.decisions) == 1
    return p.decisions[0]


class TestDeadlines:
    def test_deletes_raw_at_the_exact_second_it_falls_due(self) -> None:
        d = only([raw()], now=T0 + timedelta(days=7))
        assert d.action is Action.DELETE
        assert d.deadline == T0 + timedelta(days=7)
        assert d.rule == "default"
        assert "raw_after_published 7 d from published 2026-03-01 12:00:00Z" in d.reason

    def test_keeps_raw_one_second_before_its_deadline(self) -> None:
        d = only([raw()], now=T0 + timedelta(days=7) - timedelta(seconds=1))
        assert d.action is Action.KEEP
        assert d.reason.startswith("due at 2026-03-08 12:00:00Z")

    def test_counts_from_ingestion_when_the_rule_says_so(self) -> None:
        d = only([raw(inbox="dashcams")], now=T0 + timedelta(days=2) - timedelta(hours=1))
        assert (d.action, d.rule) == (Action.DELETE, "dashcams")
        assert d.deadline == T0 - timedelta(hours=1) + timedelta(days=2)

    def test_keeps_forever_when_the_duration_is_null(self) -> None:
        item = replace(raw(), kind=ItemKind.CLEAN)
        d = only([item], now=T0 + timedelta(days=10_000))
        assert d.action is Action.KEEP
        assert d.reason == "rule 'default' keeps clean_outputs forever"
        assert d.deadline is None

    def test_requires_a_time_zone_aware_now(self) -> None:
        with pytest.raises(RetentionError, match="time zone"):
            plan([raw()], policy(), [], datetime(2026, 3, 1))


class TestRules:
    def test_first_matching_rule_wins_by_extension_and_size(self) -> None:
        d = only([raw(ext=".mkv", size=5000)], now=T0 + timedelta(days=1))
        assert (d.action, d.rule) == (Action.DELETE, "big-mkv")

    def test_a_rule_with_a_size_bound_skips_items_outside_it(self) -> None:
        d = only([raw(ext=".mkv", size=10)], now=T0 + timedelta(days=1))
        assert (d.action, d.rule) == (Action.KEEP, "default")

    def test_profile_must_match_too(self) -> None:
        item = replace(raw(inbox="dashcams"), profile="visual-default")
        assert only([item], now=T0 + timedelta(days=3)).rule == "default"

    def test_keeps_an_item_no_rule_matches(self) -> None:
        pol = policy(rules=[{"name": "mkv-only", "match": {"extensions": [".mkv"]},
                             "keep_days": {"raw_after_published": 0}}])
        d = only([raw()], pol, now=T0 + timedelta(days=999))
        assert (d.action, d.rule) == (Action.KEEP, None)
        assert "no rule" in d.reason


class TestPublishedBeforeRawPurge:
    def test_keeps_raw_of_a_job_that_never_published_under_the_default(self) -> None:
        d = only([raw(state="failed")], now=T0 + timedelta(days=365))
        assert d.action is Action.KEEP
        assert "never published" in d.reason and "require_published_before_raw_purge" in d.reason

    def test_purges_failed_raw_after_raw_after_failed_when_the_policy_allows(self) -> None:
        pol = policy(require_published_before_raw_purge=False)
        assert only([raw(state="failed")], pol, now=T0 + timedelta(days=30)).action is Action.DELETE
        assert only([raw(state="failed")], pol, now=T0 + timedelta(days=29)).action is Action.KEEP

    def test_keeps_raw_of_a_job_still_in_progress_whatever_the_policy(self) -> None:
        pol = policy(require_published_before_raw_purge=False)
        d = only([raw(state="processing")], pol, now=T0 + timedelta(days=999))
        assert d.action is Action.KEEP and "processing" in d.reason

    def test_never_deletes_footage_without_a_recorded_sha256(self) -> None:
        item = replace(raw(sha=None), kind=ItemKind.FAILED, state="failed")
        d = only([item], now=T0 + timedelta(days=999))
        assert d.action is Action.KEEP and "no SHA-256" in d.reason

    def test_a_failed_folders_reason_file_waits_for_the_footage_in_it(self) -> None:
        record = replace(raw(sha=None), kind=ItemKind.FAILED, state="failed", record=True,
                         path=Path("/failed/job1/REASON.txt"))
        kept = plan([record, raw(state="failed")], policy(), [], T0 + timedelta(days=999))
        assert {d.item.kind: d.action for d in kept.decisions} == {ItemKind.FAILED: Action.KEEP,
                                                                  ItemKind.RAW: Action.KEEP}
        alone = plan([record], policy(), [], T0 + timedelta(days=30))
        assert alone.decisions[0].action is Action.DELETE


class TestHolds:
    @pytest.mark.parametrize(("scope", "value"), [
        (HoldScope.SHA256, SHA), (HoldScope.JOB, "job1"), (HoldScope.INBOX, "default"),
        (HoldScope.PATTERN, "default/site 7/*"),
    ])
    def test_a_hold_blocks_a_due_purge(self, scope: HoldScope, value: str) -> None:
        d = only([raw()], holds=[hold(scope, value)], now=T0 + timedelta(days=8))
        assert d.action is Action.HELD
        assert d.hold_id == 1
        assert d.deadline == T0 + timedelta(days=7)
        assert "case 42 (requested by legal:bob)" in d.reason and "the rules would delete it" in d.reason

    def test_a_hold_on_other_content_does_not_block(self) -> None:
        d = only([raw()], holds=[hold(HoldScope.SHA256, "b" * 64), hold(HoldScope.PATTERN, "dashcams/*", 2)],
                 now=T0 + timedelta(days=8))
        assert d.action is Action.DELETE

    def test_a_released_hold_no_longer_blocks(self) -> None:
        released = hold(HoldScope.JOB, "job1", released_at=T0 + timedelta(days=1), released_by="legal:bob")
        assert only([raw()], holds=[released], now=T0 + timedelta(days=8)).action is Action.DELETE

    def test_a_hold_past_its_review_date_still_holds_and_says_so(self) -> None:
        h = hold(HoldScope.JOB, "job1", review_date=T0 + timedelta(days=2))
        d = only([raw()], holds=[h], now=T0 + timedelta(days=8))
        assert d.action is Action.HELD and "review date 2026-03-03 12:00:00Z has passed" in d.reason

    def test_holds_are_not_counted_against_the_cap(self) -> None:
        items = [raw(f"job{i}", sha=f"{i:064x}") for i in range(3)]
        p = plan(items, policy(max_deletions_per_run=2), [hold(HoldScope.JOB, "job0")], T0 + timedelta(days=8))
        assert p.counts() == {"keep": 0, "delete": 2, "held": 1, "deferred": 0}


class TestCap:
    def test_deletes_at_most_max_deletions_per_run_oldest_deadline_first(self) -> None:
        items = [raw(f"job{i}", sha=f"{i:064x}", finished=T0 + timedelta(hours=i)) for i in range(5)]
        p = plan(reversed(items), policy(max_deletions_per_run=2), [], T0 + timedelta(days=30))
        assert [d.item.job_id for d in p.deletions] == ["job0", "job1"]
        deferred = p.with_action(Action.DEFERRED)
        assert [d.item.job_id for d in deferred] == ["job2", "job3", "job4"]
        assert all("max_deletions_per_run=2" in d.reason for d in deferred)


class TestPolicyVersions:
    def test_the_current_policy_version_governs_and_is_recorded(self) -> None:
        item = raw()
        now = T0 + timedelta(days=3)
        v1 = plan([item], policy(), [], now)
        shorter = policy(version=2, rules=[{"name": "short", "keep_days": {"raw_after_published": 2}}])
        v2 = plan([item], shorter, [], now)
        assert (v1.policy_version, v1.decisions[0].action) == (1, Action.KEEP)
        assert (v2.policy_version, v2.decisions[0].action, v2.decisions[0].rule) == (2, Action.DELETE, "short")
        assert v1.policy_hash != v2.policy_hash

    def test_policy_dry_run_is_carried_into_the_plan(self) -> None:
        assert plan([raw()], policy(dry_run=True), [], T0).dry_run is True


class TestExplicitFailedPurge:
    def test_purge_failed_raw_lets_failed_footage_go_while_raw_in_review_stays(self) -> None:
        pol = policy(purge_failed_raw=True)
        assert only([raw(state="failed")], pol, now=T0 + timedelta(days=30)).action is Action.DELETE
        assert only([raw(state="failed")], pol, now=T0 + timedelta(days=29)).action is Action.KEEP
        d = only([raw(state="review")], pol, now=T0 + timedelta(days=999))
        assert d.action is Action.KEEP and "require_published_before_raw_purge" in d.reason


class TestShippedRetentionPolicy:
    """policies/retention-default.yaml does what its own description says."""

    def load(self) -> RetentionPolicy:
        from redactd.policy import load_policy

        pol = load_policy(TEST_POLICIES / "retention-default.yaml")
        assert isinstance(pol, RetentionPolicy)
        return pol

    def test_failed_footage_and_its_reason_file_are_kept_30_days_then_purged(self) -> None:
        pol = self.load()
        assert "failed footage and its reason file are kept 30 days" in pol.description
        reason = replace(raw(state="failed", sha=None), kind=ItemKind.FAILED, record=True,
                         path=Path("/failed/job1/REASON.txt"))
        for inbox in ("default", "dashcams"):
            item = raw(state="failed", inbox=inbox)
            assert only([item], pol, now=T0 + timedelta(days=30) - timedelta(seconds=1)).action is Action.KEEP
            assert only([item], pol, now=T0 + timedelta(days=30)).action is Action.DELETE
            # The reason file follows once the footage is gone.
            assert only([replace(reason, inbox=inbox)], pol, now=T0 + timedelta(days=30)).action is Action.DELETE

    def test_raw_footage_is_purged_7_days_after_publishing_and_never_while_in_review(self) -> None:
        pol = self.load()
        assert "7 days after its clean copy is published" in pol.description
        assert only([raw()], pol, now=T0 + timedelta(days=7)).action is Action.DELETE
        assert only([raw(state="review")], pol, now=T0 + timedelta(days=3650)).action is Action.KEEP
