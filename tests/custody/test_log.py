"""The custody writer: signed entries, validation, one writer, segments, checkpoints, key rotation."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from redactd.custody import CustodyLog, Event, policy_ref, verify_log
from redactd.custody.entry import WITHHELD, line_hash
from redactd.custody.keys import fingerprint, init_key, load_public_key
from redactd.custody.names import Names, names_path, original_name
from redactd.custody.segments import CHECKPOINT_FILE, read_segment, segment_paths
from redactd.errors import ChainBroken, CustodyError
from redactd.policy import PolicySet
from tests.conftest import TEST_POLICIES

from .conftest import StepClock

RAW = "a" * 64


def lines_of(directory: Path) -> list[bytes]:
    return [line.data for path in segment_paths(directory) for line in read_segment(path)[0]]


class TestCustodyLog:
    def test_append_returns_the_signed_entry_it_wrote_durably(self, tmp_path: Path, key_path: Path,
                                                              pub_path: Path) -> None:
        with CustodyLog.open(tmp_path / "log", key_path) as log:
            entry = log.append(Event.INGESTED, job_id="j1", raw_sha256=RAW, original_name="Holiday.mp4",
                               size=123, inbox="default")
            assert json.loads(lines_of(tmp_path / "log")[0]) == entry
        assert entry["seq"] == 0 and entry["prev"] == "0" * 64 and entry["details"] == {"size": 123,
                                                                                         "inbox": "default"}
        assert entry["key"] == fingerprint(load_public_key(pub_path))
        assert datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert verify_log(tmp_path / "log", load_public_key(pub_path)).ok

    def test_each_entry_carries_the_hash_of_the_one_before(self, tmp_path: Path, key_path: Path) -> None:
        with CustodyLog.open(tmp_path, key_path) as log:
            for i in range(3):
                log.append("processing_started", job_id=f"j{i}", raw_sha256=RAW)
        lines = lines_of(tmp_path)
        for before, after in pairwise(lines):
            assert json.loads(after)["prev"] == line_hash(before)

    def test_records_policy_references_and_model_hashes(self, tmp_path: Path, key_path: Path) -> None:
        policy = PolicySet.load_dir(TEST_POLICIES).get_redaction("visual-default")
        with CustodyLog.open(tmp_path, key_path) as log:
            entry = log.append(Event.PUBLISHED, job_id="j", raw_sha256=RAW, output_sha256="b" * 64,
                               policy=policy_ref(policy), models={"centerface": "c" * 64})
        assert entry["policy"]["id"] == "visual-default" and len(entry["policy"]["hash"]) == 64
        assert entry["models"] == {"centerface": "c" * 64}

    @pytest.mark.parametrize(
        ("event", "fields", "complaint"),
        [("uploaded", {}, "unknown custody event 'uploaded'"),
         ("checkpoint", {}, "written by the log itself"),
         ("key_rotated", {}, "written by the log itself"),
         ("ingested", {"raw_sha256": "ABC"}, "64 lowercase hex"),
         ("ingested", {"policy": {"id": "p"}}, "'id', 'version', 'hash'"),
         ("ingested", {"models": {"m": "short"}}, "models.m"),
         ("ingested", {"duration": 1.5}, "floats are not allowed"),
         ("ingested", {"Bad-Key": 1}, "snake_case"),
         ("ingested", {"prev": "x"}, "not an entry field"),
         ("ingested", {"actor": ""}, "actor")],
    )
    def test_refuses_entries_it_must_not_record(self, tmp_path: Path, key_path: Path, event: str,
                                                fields: dict[str, object], complaint: str) -> None:
        with CustodyLog.open(tmp_path, key_path) as log:
            with pytest.raises(CustodyError, match=complaint):
                log.append(event, **fields)  # type: ignore[arg-type]
            assert log.size == 0

    @pytest.mark.parametrize("name", ["default", "empty", "file", "link"])
    def test_a_detail_repeating_the_original_name_is_withheld_and_said_not_refused(
            self, tmp_path: Path, key_path: Path, pub_path: Path, name: str) -> None:
        with CustodyLog.open(tmp_path, key_path) as log:
            entry = log.append(Event.REJECTED, job_id="j1", original_name=name, inbox="default",
                               reason=f"{name} changed during admission", paths=[f"/in/{name}", "/x"])
        assert original_name(entry, Names.load(names_path(tmp_path))) == name
        assert entry["details"]["withheld"] == (["details.inbox"] if name == "default" else []) + [
            "details.reason", "details.paths[0]"]
        assert name not in json.dumps(entry["details"])
        assert entry["details"]["reason"] == WITHHELD and entry["details"]["paths"] == [WITHHELD, "/x"]
        assert verify_log(tmp_path, load_public_key(pub_path)).ok

    def test_record_writes_a_safe_form_of_an_entry_a_rule_refuses(self, tmp_path: Path, key_path: Path,
                                                                   pub_path: Path) -> None:
        with CustodyLog.open(tmp_path, key_path) as log:
            safe = log.record(Event.INGESTED, {"job_id": "j1", "raw_sha256": "NOT-HEX", "inbox": "default",
                                               "outbox_seq": 4})
            after = log.append(Event.PUBLISHED, job_id="j1")
        assert safe["job_id"] == "j1" and safe["raw_sha256"] is None
        assert safe["details"] == {"withheld": ["raw_sha256"], "outbox_seq": 4,
                                   "withheld_reason": "custody field 'raw_sha256' must be 64 lowercase hex digits"}
        assert after["seq"] == safe["seq"] + 1
        assert verify_log(tmp_path, load_public_key(pub_path)).ok

    def test_every_entry_says_when_its_action_happened_besides_when_it_was_appended(
            self, tmp_path: Path, key_path: Path) -> None:
        when = datetime(2026, 5, 1, 16, 58, 20, tzinfo=UTC)
        with CustodyLog.open(tmp_path, key_path) as log:
            decided = log.append(Event.REVIEW_APPROVED, job_id="j1", actor="alice", occurred_at=when)
            now = log.append(Event.PUBLISHED, job_id="j1")
        assert decided["occurred_at"] == "2026-05-01T16:58:20.000000Z" and decided["time"] > decided["occurred_at"]
        assert now["occurred_at"] == now["time"] and now["v"] == 3

    def test_a_second_writer_is_refused_in_this_process_and_in_another(self, tmp_path: Path,
                                                                       key_path: Path) -> None:
        with CustodyLog.open(tmp_path, key_path):
            with pytest.raises(CustodyError, match="another writer holds the custody log"):
                CustodyLog.open(tmp_path, key_path)
            code = ("import sys; from pathlib import Path; from redactd.custody import CustodyLog\n"
                    "try: CustodyLog.open(Path(sys.argv[1]), Path(sys.argv[2]))\n"
                    "except Exception as e: print(e); sys.exit(7)")
            other = subprocess.run([sys.executable, "-c", code, str(tmp_path), str(key_path)],
                                   capture_output=True, text=True, timeout=60, check=False)
            assert other.returncode == 7 and "another writer" in other.stdout
        CustodyLog.open(tmp_path, key_path).close()  # released on close

    def test_threads_appending_at_once_get_one_unbroken_chain(self, tmp_path: Path, key_path: Path,
                                                              pub_path: Path) -> None:
        with CustodyLog.open(tmp_path, key_path) as log:
            def work(n: int) -> list[int]:
                return [log.append(Event.INGESTED, job_id=f"t{n}-{i}", raw_sha256=RAW)["seq"] for i in range(40)]

            with ThreadPoolExecutor(4) as pool:
                seqs = sorted(s for part in pool.map(work, range(4)) for s in part)
        assert seqs == list(range(160))
        assert verify_log(tmp_path, load_public_key(pub_path)).entries == 161

    def test_close_writes_a_checkpoint_and_checkpoint_json(self, tmp_path: Path, key_path: Path) -> None:
        log = CustodyLog.open(tmp_path, key_path)
        log.append(Event.INGESTED, raw_sha256=RAW)
        log.close()
        log.close()
        last = json.loads(lines_of(tmp_path)[-1])
        assert last["event"] == "checkpoint" and last["details"]["tree_size"] == 1 == last["seq"]
        assert json.loads((tmp_path / CHECKPOINT_FILE).read_bytes()) == last
        with pytest.raises(CustodyError, match="closed"):
            log.append(Event.INGESTED, raw_sha256=RAW)

    def test_checkpoint_twice_in_a_row_writes_one_entry(self, tmp_path: Path, key_path: Path) -> None:
        with CustodyLog.open(tmp_path, key_path) as log:
            log.append(Event.INGESTED, raw_sha256=RAW)
            assert log.checkpoint() == log.checkpoint()
            assert log.size == 2
        assert len(lines_of(tmp_path)) == 2

    def test_reopening_continues_the_sequence_and_the_chain(self, tmp_path: Path, key_path: Path,
                                                           pub_path: Path) -> None:
        for _ in range(3):
            with CustodyLog.open(tmp_path, key_path) as log:
                log.append(Event.INGESTED, raw_sha256=RAW)
        assert [json.loads(x)["seq"] for x in lines_of(tmp_path)] == list(range(6))
        assert verify_log(tmp_path, load_public_key(pub_path)).ok

    def test_segments_rotate_by_size_each_ending_with_a_checkpoint(self, tmp_path: Path, key_path: Path,
                                                                  pub_path: Path) -> None:
        with CustodyLog.open(tmp_path, key_path, segment_max_bytes=2000) as log:
            for i in range(20):
                log.append(Event.INGESTED, job_id=f"j{i}", raw_sha256=RAW)
        paths = segment_paths(tmp_path)
        assert len(paths) >= 3
        for older, newer in pairwise(paths):
            last, first = read_segment(older)[0][-1].data, read_segment(newer)[0][0].data
            assert json.loads(last)["event"] == "checkpoint"
            assert json.loads(first)["prev"] == line_hash(last)
        assert verify_log(tmp_path, load_public_key(pub_path)).segments == len(paths)

    def test_segments_rotate_at_each_utc_day(self, tmp_path: Path, key_path: Path) -> None:
        clock = StepClock(datetime(2026, 1, 1, 22, 0, tzinfo=UTC), timedelta(hours=1))
        with CustodyLog.open(tmp_path, key_path, clock=clock) as log:
            for _ in range(5):
                log.append(Event.INGESTED, raw_sha256=RAW)
        days = [{json.loads(x.data)["time"][:10] for x in read_segment(p)[0] if b'"ingested"' in x.data}
                for p in segment_paths(tmp_path)]
        assert days == [{"2026-01-01"}, {"2026-01-02"}]

    def test_a_log_shorter_than_its_checkpoint_file_is_not_written_to(self, tmp_path: Path,
                                                                      key_path: Path) -> None:
        with CustodyLog.open(tmp_path, key_path) as log:
            log.append(Event.INGESTED, raw_sha256=RAW)
        saved = (tmp_path / CHECKPOINT_FILE).read_bytes()
        for path in segment_paths(tmp_path):
            path.unlink()  # a lost disk, or an old backup restored
        with pytest.raises(ChainBroken, match="segments are missing"):
            CustodyLog.open(tmp_path, key_path)
        assert (tmp_path / CHECKPOINT_FILE).read_bytes() == saved

    def test_a_key_other_than_the_one_in_force_is_refused(self, tmp_path: Path, key_path: Path) -> None:
        with CustodyLog.open(tmp_path / "log", key_path) as log:
            log.append(Event.INGESTED, raw_sha256=RAW)
        init_key(tmp_path / "other.key")
        with pytest.raises(CustodyError, match="not the key in force"):
            CustodyLog.open(tmp_path / "log", tmp_path / "other.key")

    def test_after_rotation_entries_are_signed_by_the_new_key_and_verify_from_the_first(
            self, tmp_path: Path, key_path: Path, pub_path: Path) -> None:
        new_key = Ed25519PrivateKey.generate()
        with CustodyLog.open(tmp_path, key_path) as log:
            old_id = log.key_id
            log.append(Event.INGESTED, raw_sha256=RAW)
            rotation = log.rotate_key(new_key)
            after = log.append(Event.PUBLISHED, raw_sha256=RAW, output_sha256="b" * 64)
        assert rotation["key"] == old_id and rotation["details"]["new_key_id"] == fingerprint(new_key.public_key())
        assert after["key"] == fingerprint(new_key.public_key())
        result = verify_log(tmp_path, load_public_key(pub_path))
        assert result.ok and result.keys == (old_id, fingerprint(new_key.public_key()))
