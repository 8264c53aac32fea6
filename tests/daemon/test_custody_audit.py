"""The custody log as an auditor tries it against a real daemon: poison names, cut tails, witnesses,
CLI decisions while it runs, duplicates across inboxes, and a daemon that refuses to run blind."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from redactd.custody.names import Names, names_path, original_name
from redactd.custody.segments import CHECKPOINT_FILE, load_entries, read_segment, segment_paths
from redactd.custody.witness import witnessed
from redactd.jobflow.jobstore import JobState
from redactd.jobflow.outbox import custody_lag, queue_custody_event

from .conftest import DaemonRun, drop, variant


def cli(run: DaemonRun, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "redactd", "--config", str(run.config), *args], env=run.env,
                          capture_output=True, text=True, timeout=120, check=False)


def settled(run: DaemonRun, timeout: float = 60) -> list[dict[str, Any]]:
    """Wait until every queued custody entry is in the log and a checkpoint covers the last one."""
    def done() -> list[dict[str, Any]] | None:
        if custody_lag(run.state / "jobs.sqlite3")["queued"]:
            return None
        entries = load_entries(run.state / "custody", strict=False)
        if not entries or entries[-1]["event"] != "checkpoint":
            return None
        # The checkpoint entry is appended first, checkpoint.json written just after: a kill -9
        # between the two leaves checkpoint.json one checkpoint behind (a cut of that last entry
        # alone then loses nothing it vouched for), so wait for both.
        try:
            copied = json.loads((run.state / "custody" / "checkpoint.json").read_bytes())["seq"]
        except (OSError, ValueError, KeyError):
            return None
        if copied != entries[-1]["seq"]:
            return None
        # ...and each witness is handed the checkpoint after that.
        for witness in run.settings["custody"].get("witnesses", []):
            if not (Path(witness) / f"checkpoint-{copied:012d}.json").exists():
                return None
        return entries

    return run.wait_for(done, timeout=timeout, what="every custody entry appended and checkpointed")


def cut_to(log_dir: Path, keep: int) -> None:
    """Leave only the first ``keep`` entries (at a line boundary), as someone with write access could."""
    seen = 0
    for path in segment_paths(log_dir):
        lines, _ = read_segment(path)
        take = max(0, min(len(lines), keep - seen))
        if take == 0 and seen:
            path.unlink()
            continue
        path.write_bytes(b"".join(line.data + b"\n" for line in lines[:take]))
        seen += take


def checkpoint_seqs(entries: list[dict[str, Any]]) -> list[int]:
    return [e["seq"] for e in entries if e["event"] == "checkpoint"]


def published_three(run: DaemonRun, clip_bytes: bytes) -> list[dict[str, Any]]:
    run.start()
    # One at a time, each settled before the next: a checkpoint follows each burst of entries, and
    # three clips dropped together can make one burst (CI saw only the start-up checkpoint and one
    # after all three), which would leave the cuts below nothing between two checkpoints to cut.
    for i in range(3):
        drop(run.inbox, f"clip-{i}.mp4", variant(clip_bytes, i))
        run.wait_finished(i + 1, timeout=120)
        entries = settled(run)
    run.kill9()  # no clean stop: no checkpoint at shutdown to lean on
    return entries


class TestNeverStalls:
    def test_files_named_like_the_inbox_empty_or_a_link_are_recorded_and_stall_nothing(
            self, daemon_run, clip_bytes):
        run = daemon_run(naming="sha256")
        run.start()
        drop(run.inbox, "default", variant(clip_bytes, 1))  # the inbox is named "default" too
        drop(run.inbox, "empty", b"")
        drop(run.inbox, "file", b"")
        (run.root / "elsewhere.mp4").write_bytes(clip_bytes)
        os.symlink(run.root / "elsewhere.mp4", run.inbox / "link")
        for i in range(3):
            drop(run.inbox, f"clip-{i}.mp4", variant(clip_bytes, 10 + i))
        jobs = run.wait_finished(7, timeout=180)
        entries = settled(run)
        logged = {e["job_id"] for e in entries if e.get("job_id")}
        assert {j.id for j in jobs} <= logged
        names = Names.load(names_path(run.state / "custody"))
        by_name = {original_name(e, names): e for e in entries if e["event"] in ("ingested", "rejected")}
        assert set(by_name) >= {"default", "empty", "file", "link"}
        assert "details.inbox" in by_name["default"]["details"]["withheld"]
        for name in ("default", "empty", "file", "link"):
            assert name not in json.dumps(by_name[name]["details"]), by_name[name]
        status = json.loads(cli(run, "status", "--json").stdout)
        assert status["custody"] == {"queued": 0, "oldest_age_s": None, "blocked": None,
                                     "since": status["custody"]["since"], "witness_undelivered": 0}
        assert run.stop() == 0
        done = cli(run, "custody", "verify")
        assert done.returncode == 0, done.stderr
        assert re.search(r"(\d+)/\1 entries valid", done.stdout)


class TestTruncationEvident:
    def test_cutting_the_tail_after_a_kill_9_is_caught_without_a_witness(self, daemon_run, clip_bytes):
        run = daemon_run()
        entries = published_three(run, clip_bytes)
        log_dir = run.state / "custody"
        cps = checkpoint_seqs(entries)
        assert cps[0] <= 2, "a checkpoint is signed at start-up, before anything is admitted"
        assert len(cps) >= 3 and cps[-1] == len(entries) - 1
        for keep in (len(entries) - 1, len(entries) - 3, cps[-2] + 1):
            copy = run.root / f"cut-{keep}"
            shutil.copytree(log_dir, copy)
            cut_to(copy, keep)
            done = cli(run, "custody", "verify", str(copy), "--pubkey", str(run.key.with_suffix(".pub")))
            assert done.returncode == 7, (keep, done.stdout)
            assert "are missing (the log was cut)" in done.stderr

    def test_a_log_cut_back_to_an_earlier_checkpoint_fails_against_the_witness(self, daemon_run, clip_bytes):
        run = daemon_run()
        witness = run.root / "witness"
        witness.mkdir(mode=0o1777)
        run.settings["custody"]["witnesses"] = [str(witness)]
        run.write_config()
        entries = published_three(run, clip_bytes)
        log_dir = run.state / "custody"
        held = witnessed(witness)
        assert [w.seq for w in held] == checkpoint_seqs(entries)
        assert held[-1].data == json.dumps(entries[-1], sort_keys=True, separators=(",", ":"),
                                           ensure_ascii=False).encode()
        # The attacker cuts back to the previous checkpoint and copies it over checkpoint.json.
        earlier = checkpoint_seqs(entries)[-2]
        cut_to(log_dir, earlier + 1)
        (log_dir / CHECKPOINT_FILE).write_bytes(read_segment(segment_paths(log_dir)[-1])[0][-1].data + b"\n")
        assert cli(run, "custody", "verify", str(log_dir), "--pubkey", str(run.key.with_suffix(".pub"))
                   ).returncode == 0  # the state directory alone cannot tell
        done = cli(run, "custody", "verify", "--witness", str(witness))
        assert done.returncode == 7
        first_lost = next(w for w in held if w.seq > earlier)
        assert f"{first_lost.path.name}: witnessed checkpoint seq {first_lost.seq}" in done.stderr
        assert "is ahead of the log" in done.stderr
        assert f"{earlier + 1}/{earlier + 1} entries valid" in done.stdout

    def test_cut_mid_line_delete_checkpoint_and_restart_is_never_papered_over(self, daemon_run, clip_bytes):
        run = daemon_run()
        witness = run.root / "witness"
        witness.mkdir(mode=0o1777)
        run.settings["custody"]["witnesses"] = [str(witness)]
        run.write_config()
        entries = published_three(run, clip_bytes)
        log_dir = run.state / "custody"
        segment = segment_paths(log_dir)[-1]
        data = segment.read_bytes()
        cut_at = data.rstrip(b"\n").rfind(b"\n", 0, len(data) - 2000) + 40  # into a line well before the end
        segment.write_bytes(data[:cut_at])
        (log_dir / CHECKPOINT_FILE).unlink()
        # With a witness the daemon refuses to continue (and to sign a torn_tail over the cut).
        refused = subprocess.run([sys.executable, "-m", "redactd", "--config", str(run.config), "run"],
                                 env=run.env, capture_output=True, text=True, timeout=120, check=False)
        assert refused.returncode == 7 and "witnessed checkpoint seq" in refused.stderr
        assert "the log holds only" in refused.stderr
        # Without the witness configured it starts and records the tear; verify says so aloud,
        # and the witness (kept by the officer) proves the cut.
        run.settings["custody"]["witnesses"] = []
        run.write_config()
        run.log_path.write_text("")  # start() waits for this start's daemon_started line
        run.start()
        assert run.stop() == 0
        plain = cli(run, "custody", "verify")
        assert "records a torn tail" in plain.stderr and "only a witness" in plain.stderr
        done = cli(run, "custody", "verify", "--witness", str(witness))
        assert done.returncode == 7 and "does not match the log" in done.stderr, done.stderr
        assert len(entries) > 0


    def test_a_witness_out_of_reach_is_shown_in_status_and_caught_up_when_it_returns(
            self, daemon_run, clip_bytes):
        run = daemon_run()
        witness = run.root / "witness"
        witness.mkdir(mode=0o1777)
        run.settings["custody"]["witnesses"] = [str(witness)]
        run.write_config()
        run.start()
        shutil.rmtree(witness)  # the share is unmounted, say
        drop(run.inbox, "clip.mp4", clip_bytes)
        run.wait_finished(1, timeout=60)
        run.wait_for(lambda: json.loads(cli(run, "status", "--json").stdout)["custody"]["witness_undelivered"],
                     timeout=60, what="an undelivered checkpoint in status")
        assert "not yet delivered to a witness" in cli(run, "status").stdout
        assert run.events("custody_witness_delivery_failed")
        witness.mkdir(mode=0o1777)
        drop(run.inbox, "clip-2.mp4", variant(clip_bytes, 2))
        run.wait_for(lambda: not json.loads(cli(run, "status", "--json").stdout)["custody"]["witness_undelivered"],
                     timeout=60, what="the witness caught up")
        entries = settled(run)
        assert run.stop() == 0
        delivered = [w.seq for w in witnessed(witness)]
        assert set(checkpoint_seqs(load_entries(run.state / "custody"))) - set(delivered) <= {
            checkpoint_seqs(entries)[0]}  # all but the one delivered before the share went away
        done = cli(run, "custody", "verify", "--witness", str(witness))
        assert done.returncode == 0, done.stderr


class TestDecisionsWhileRunning:
    def test_review_decisions_and_holds_reach_the_log_within_seconds_with_when_they_happened(
            self, daemon_run, clip_bytes):
        run = daemon_run()
        run.start("doubtful")
        for i in range(3):
            drop(run.inbox, f"clip-{i}.mp4", variant(clip_bytes, i))
        jobs = sorted(run.wait_finished(3, timeout=120), key=lambda j: j.id)
        assert {j.state for j in jobs} == {JobState.REVIEW}
        settled(run)
        before = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert cli(run, "review", "approve", jobs[0].id, "--by", "alice").returncode == 0
        assert cli(run, "review", "reject", jobs[1].id, "--by", "bob", "--reason", "face at 0:03").returncode == 0
        out = cli(run, "hold", "add", "--job", jobs[0].id, "--reason", "case 7", "--requested-by", "carol")
        assert out.returncode == 0, out.stderr
        after = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        entries = settled(run, timeout=30)  # no job transition follows: the daemon was woken
        mine = {e["event"]: e for e in entries if e["event"] in ("review_approved", "review_rejected", "hold_set")}
        assert mine["review_approved"]["actor"] == "alice"
        assert (mine["review_rejected"]["actor"], mine["review_rejected"]["details"]["reason"]) == \
            ("bob", "face at 0:03")
        assert mine["hold_set"]["actor"] == "carol"
        for e in mine.values():  # when the reviewer acted, not when the entry was appended
            assert before <= e["occurred_at"] <= after and e["occurred_at"] <= e["time"]
        show = cli(run, "custody", "show", jobs[0].id)
        assert mine["review_approved"]["occurred_at"][:19].replace("T", " ") in show.stdout
        # A reject that re-queues keeps the reviewer's reason too, in custody and job history.
        out = cli(run, "review", "reject", jobs[2].id, "--by", "dana", "--reason", "plate visible",
                  "--requeue-with", "metadata-only")
        assert out.returncode == 0, out.stderr
        entries = settled(run, timeout=30)
        (requeued,) = [e for e in entries if e["event"] == "review_rejected" and e["actor"] == "dana"]
        assert requeued["details"]["reason"] == "plate visible"
        assert requeued["details"]["requeued_with"] == "metadata-only"
        assert any("plate visible" in (t.detail or "") for t in run.history(jobs[2].id))
        done = cli(run, "custody", "checkpoint")
        assert done.returncode == 0 and "signed by the running daemon" in done.stdout, done.stderr
        assert run.stop() == 0


class TestReportByJob:
    def test_a_duplicate_in_a_second_inbox_is_its_own_row_and_names_stay_out(self, daemon_run, clip_bytes):
        run = daemon_run()
        second = run.root / "inbox2"
        second.mkdir()
        run.settings["inboxes"].append({"name": "second", "path": str(second), "policy": "metadata-only-by-job"})
        run.write_config()
        run.start()
        drop(run.inbox, "Carol at the beach.mp4", clip_bytes)
        (first,) = run.wait_finished(1, timeout=60)
        assert first.state is JobState.PUBLISHED
        drop(second, "copy of Carol.mp4", clip_bytes)
        run.wait_for(lambda: run.in_state(JobState.DUPLICATE), timeout=60, what="the duplicate")
        settled(run)
        assert run.stop() == 0
        (dup,) = run.in_state(JobState.DUPLICATE)
        today = datetime.now(UTC).date().isoformat()
        page_path = run.root / "report.html"
        assert cli(run, "custody", "report", "--from", "2020-01-01", "--to", today, "-o", str(page_path)
                   ).returncode == 0
        page = page_path.read_text()
        rows = {m.group(1): m.group(0) for m in re.finditer(r"<tr><td>([0-9a-f-]{8,})</td>.*?</tr>", page)}
        assert "published" in rows[first.id] and "duplicate" not in rows[first.id]
        assert "duplicate" in rows[dup.id] and f"of <code>{first.id}</code>" in rows[dup.id]
        assert "Carol" not in page
        assert cli(run, "custody", "report", "--from", "2020-01-01", "--to", today, "-o", str(page_path),
                   "--with-names").returncode == 0
        assert "Carol at the beach.mp4" in page_path.read_text()


class TestNamesOutOfTheLog:
    def test_a_hostile_name_never_reaches_the_log_or_a_plain_bundle_and_the_officer_gets_it_when_asked(
            self, daemon_run, clip_bytes):
        name = 'Zoë "O\'Brien" <b>at 12 Elm St & ünï.mp4'  # quotes, markup, non-ASCII (no slash: a path)
        forms = [name.encode(), json.dumps(name).encode(), b"12 Elm St", b"O'Brien"]
        run = daemon_run()
        run.start()
        drop(run.inbox, name, clip_bytes)
        (job,) = run.wait_finished(1, timeout=60)
        assert job.state is JobState.PUBLISHED, job.last_error
        settled(run)
        assert run.stop() == 0
        log_dir, store = run.state / "custody", run.state / "custody-names.jsonl"
        stored = b"".join(p.read_bytes() for p in sorted(log_dir.rglob("*")) if p.is_file())
        assert not [f for f in forms if f in stored], "an original name in the custody log directory"
        assert [json.loads(line)["name"] for line in store.read_bytes().splitlines()] == [name]
        assert store.stat().st_mode & 0o777 == 0o600
        assert cli(run, "custody", "verify").returncode == 0
        show = cli(run, "custody", "show", job.id)
        assert show.returncode == 0 and f"name={name!r}" in show.stdout, show.stderr
        # A bundle by default: no name in any encoding, and it verifies with the public key alone.
        pub = str(run.key.with_suffix(".pub"))
        plain, named = run.root / "plain.json", run.root / "named.json"
        done = cli(run, "custody", "bundle", job.raw_sha256, "-o", str(plain))
        assert done.returncode == 0, done.stderr
        assert not [f for f in forms if f in plain.read_bytes()], "an original name in a plain bundle"
        done = cli(run, "custody", "verify-bundle", str(plain), "--pubkey", pub)
        assert done.returncode == 0 and "bundle OK: 3 entries" in done.stdout, done.stderr
        # With names: the name is there and checked; an edited name fails.
        assert cli(run, "custody", "bundle", job.raw_sha256, "-o", str(named), "--with-names").returncode == 0
        assert [i["name"] for i in json.loads(named.read_bytes())["entries"] if "name" in i] == [name]
        done = cli(run, "custody", "verify-bundle", str(named), "--pubkey", pub)
        assert done.returncode == 0 and "original names: 1" in done.stdout, done.stderr
        named.write_bytes(named.read_bytes().replace(b"O'Brien", b"O'Brian"))
        done = cli(run, "custody", "verify-bundle", str(named), "--pubkey", pub)
        assert done.returncode == 7 and "do not open the entry's signed name commitment" in done.stderr
        # The report with names reads the same store; an officer's copy without it says so.
        today = datetime.now(UTC).date().isoformat()
        page = run.root / "report.html"
        assert cli(run, "custody", "report", "--from", today, "--to", today, "-o", str(page), "--with-names"
                   ).returncode == 0
        assert html.escape(name) in page.read_text()
        copy = run.root / "officer" / "custody"
        shutil.copytree(log_dir, copy)
        show = cli(run, "custody", "show", job.id, "--log-dir", str(copy))
        assert show.returncode == 0 and "name='name not available'" in show.stdout and "no name store" in show.stderr


class TestFailClosed:
    def test_no_key_or_a_key_others_can_read_is_a_config_error_for_check_and_run(self, daemon_run, clip_bytes):
        run = daemon_run()
        run.key.chmod(0o644)
        done = cli(run, "config", "check")
        assert done.returncode == 2 and "readable by others" in done.stderr
        run.key.unlink()
        done = cli(run, "config", "check")
        assert done.returncode == 2 and "no custody signing key" in done.stderr
        drop(run.inbox, "clip.mp4", clip_bytes)
        done = subprocess.run([sys.executable, "-m", "redactd", "--config", str(run.config), "run"],
                              env=run.env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 2 and "no custody signing key" in done.stderr
        assert (run.inbox / "clip.mp4").exists() and not run.clean.joinpath("clip.mp4").exists()
        assert not list(run.clean.iterdir())


class TestLagAndCheckpointCommand:
    def test_status_shows_queued_entries_and_custody_checkpoint_records_and_signs_them(self, daemon_run):
        run = daemon_run()
        run.start()
        assert run.stop() == 0
        conn = sqlite3.connect(run.state / "jobs.sqlite3", isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        queue_custody_event(conn, "hold_set", {"hold_id": 1, "scope": "inbox", "covers": "default",
                                               "reason": "case 9", "actor": "erin"})
        conn.execute("COMMIT")
        conn.close()
        time.sleep(0.2)
        status = json.loads(cli(run, "status", "--json").stdout)["custody"]
        assert status["queued"] == 1 and status["oldest_age_s"] >= 0
        assert "custody: 1 entry queued, oldest" in cli(run, "status").stdout
        done = cli(run, "custody", "checkpoint")
        assert done.returncode == 0 and "no daemon running: signed here" in done.stdout, done.stderr
        entries = load_entries(run.state / "custody")
        assert [e["event"] for e in entries[-2:]] == ["hold_set", "checkpoint"]
        assert json.loads(cli(run, "status", "--json").stdout)["custody"]["queued"] == 0
        verify = cli(run, "custody", "verify")
        assert verify.returncode == 0 and "0 entries after the last checkpoint cannot be proven yet" in verify.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a full filesystem needs root (CI runs as root)")
class TestBlocked:
    def test_a_full_custody_disk_stops_admitting_and_publishing_and_says_why(self, daemon_run, clip_bytes):
        from tests.conftest import tmpfs

        run = daemon_run()
        with tmpfs(run.state / "custody", "size=12k,mode=0700"):
            run.start()
            for i in range(12):
                drop(run.inbox, f"clip-{i}.mp4", variant(clip_bytes, i))
            status = run.wait_for(lambda: (s := json.loads(cli(run, "status", "--json").stdout)["custody"])
                                  ["blocked"] and s, timeout=120, what="custody blocked")
            assert "custody log cannot be written" in status["blocked"]
            assert "STOPPED admitting and processing" in cli(run, "status").stdout
            assert run.events("custody_blocked")
            time.sleep(3)  # whatever was in flight when it blocked has finished by now
            clean_before = sorted(p.name for p in run.clean.iterdir())
            later = [drop(run.inbox, f"later-{i}.mp4", variant(clip_bytes, 100 + i)) for i in range(3)]
            time.sleep(5)  # the settle window passes several times: nothing is admitted or published
            assert sorted(p.name for p in run.clean.iterdir()) == clean_before
            assert all(p.exists() for p in later), "admission stopped: new files wait in the inbox"
            assert custody_lag(run.state / "jobs.sqlite3")["queued"] > 0  # kept in order, not lost
            assert run.alive()
            # Space returns: the daemon reopens the log (recording the torn write) and carries on.
            subprocess.run(["mount", "-o", "remount,size=4m", str(run.state / "custody")], check=True, timeout=10)
            run.wait_for(lambda: not json.loads(cli(run, "status", "--json").stdout)["custody"]["blocked"],
                         timeout=60, what="custody unblocked")
            run.wait_for(lambda: not any(p.exists() for p in later), timeout=60, what="later files admitted")
            run.wait_for(lambda: len(run.in_state(JobState.PUBLISHED)) == 15, timeout=120, what="all published")
            settled(run)
            assert run.stop() == 0
            done = cli(run, "custody", "verify")
            assert done.returncode == 0, done.stderr
            published = {e["job_id"] for e in load_entries(run.state / "custody") if e["event"] == "published"}
            assert published == {j.id for j in run.jobs()}
