"""Original names out of the signed log: commitments in format 3 entries, the name store beside the log,
and logs that older writers began (formats 1 and 2) continued by this one."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
from pathlib import Path

import pytest

from redactd.custody import CustodyLog, Event, verify_log
from redactd.custody import verify as verify_module
from redactd.custody.entry import FIELDS_V1, FIELDS_V2
from redactd.custody.keys import load_public_key, public_path
from redactd.custody.names import NAME_UNAVAILABLE, Names, NameWriter, names_path, original_name
from redactd.custody.segments import load_entries
from redactd.errors import CustodyError

RAW = "a" * 64
#: Quotes, markup, non-ASCII (which JSON may also write as \u escapes): findable in any encoding.
HOSTILE = 'Zoë "O\'Brien" <b>at 12 Elm St</b> & ünï.mp4'
FORMATS = Path(__file__).parent / "formats"


def forms_of(name: str) -> list[bytes]:
    """Every way the name's bytes could sit in a file: raw UTF-8, JSON with and without \\u escapes,
    and a plain-ASCII stretch of it."""
    return [name.encode(), json.dumps(name).encode(), json.dumps(name, ensure_ascii=False).encode(), b"12 Elm St"]


def tree_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


class TestNameStore:
    def test_the_log_directory_holds_no_original_name_and_the_name_store_beside_it_does(
            self, tmp_path: Path, key_path: Path, pub_path: Path) -> None:
        log_dir = tmp_path / "log"
        with CustodyLog.open(log_dir, key_path) as log:
            entry = log.append(Event.INGESTED, job_id="j1", raw_sha256=RAW, original_name=HOSTILE, inbox="default")
            later = log.append(Event.PROCESSING_STARTED, job_id="j1", raw_sha256=RAW)
        stored = tree_bytes(log_dir)
        assert all(form not in stored for form in forms_of(HOSTILE))
        assert entry["v"] == 3 and "original_name" not in entry and later["name_commit"] is None
        store = names_path(log_dir)
        assert store == tmp_path / "log-names.jsonl"
        assert stat.S_IMODE(store.stat().st_mode) == 0o600
        (record,) = [json.loads(line) for line in store.read_bytes().splitlines()]
        assert record["seq"] == 0 and record["name"] == HOSTILE
        salt = bytes.fromhex(record["salt"])
        assert len(salt) == 16
        assert entry["name_commit"] == hashlib.sha256(salt + HOSTILE.encode()).hexdigest()
        assert original_name(entry, Names.load(store)) == HOSTILE
        assert original_name(later, Names.load(store)) is None
        assert verify_log(log_dir, load_public_key(pub_path)).ok

    def test_each_entry_gets_its_own_salt_so_equal_names_give_unequal_commitments(
            self, tmp_path: Path, key_path: Path) -> None:
        with CustodyLog.open(tmp_path / "log", key_path) as log:
            one = log.append(Event.INGESTED, job_id="j1", raw_sha256=RAW, original_name="clip.mp4")
            two = log.append(Event.INGESTED, job_id="j2", raw_sha256="b" * 64, original_name="clip.mp4")
        assert one["name_commit"] != two["name_commit"]
        names = Names.load(names_path(tmp_path / "log"))
        assert original_name(one, names) == original_name(two, names) == "clip.mp4"

    def test_without_the_name_store_or_with_an_edited_one_the_name_is_not_available(
            self, tmp_path: Path, key_path: Path) -> None:
        with CustodyLog.open(tmp_path / "log", key_path) as log:
            entry = log.append(Event.INGESTED, job_id="j1", raw_sha256=RAW, original_name="Carol.mp4")
        store = names_path(tmp_path / "log")
        assert original_name(entry, Names.load(tmp_path / "no-such-file")) == NAME_UNAVAILABLE
        store.write_bytes(store.read_bytes().replace(b"Carol", b"Alice"))
        assert original_name(entry, Names.load(store)) == NAME_UNAVAILABLE  # it does not open the commitment

    def test_an_orphan_record_and_a_torn_record_left_by_crashes_are_harmless(
            self, tmp_path: Path, key_path: Path, pub_path: Path) -> None:
        log_dir, store = tmp_path / "log", names_path(tmp_path / "log")
        with CustodyLog.open(log_dir, key_path) as log:
            log.append(Event.PROCESSING_STARTED, job_id="j0", raw_sha256=RAW)
        seq = len(load_entries(log_dir))  # the next entry's
        # A crash after the record of the next entry was fsynced and before the entry was written ...
        orphan = NameWriter(store)
        orphan.write(seq, "never recorded.mp4", b"\x01" * 16)
        orphan.close()
        # ... and a later crash in the middle of a record.
        with store.open("ab") as fh:
            fh.write(b'{"name":"torn')
        with CustodyLog.open(log_dir, key_path) as log:
            entry = log.append(Event.INGESTED, job_id="j1", raw_sha256=RAW, original_name="Bob.mp4")
        assert entry["seq"] == seq
        names = Names.load(store)
        assert [name for name, _ in names.records[seq]] == ["never recorded.mp4", "Bob.mp4"]
        assert original_name(entry, names) == "Bob.mp4"
        assert verify_log(log_dir, load_public_key(pub_path)).ok

    def test_a_name_that_cannot_be_stored_writes_no_entry_and_leaves_the_log_writable(
            self, tmp_path: Path, key_path: Path) -> None:
        blocked = tmp_path / "a-directory"
        blocked.mkdir()
        with CustodyLog.open(tmp_path / "log", key_path, names=blocked) as log:
            with pytest.raises(CustodyError, match="original name of custody entry 0 not written"):
                log.append(Event.INGESTED, job_id="j1", raw_sha256=RAW, original_name="Carol.mp4")
            assert log.size == 0 and log.failed is None
            assert log.append(Event.PROCESSING_STARTED, job_id="j1", raw_sha256=RAW)["seq"] == 0

    def test_a_commitment_that_is_not_a_digest_is_named_by_verify(
            self, tmp_path: Path, key_path: Path, pub_path: Path) -> None:
        from redactd.custody import canonical
        from redactd.custody.entry import signing_bytes
        from redactd.custody.keys import load_private_key

        with CustodyLog.open(tmp_path / "log", key_path) as log:
            entry = log.append(Event.INGESTED, job_id="j1", raw_sha256=RAW, original_name="Carol.mp4")
        forged = {**entry, "name_commit": "Carol.mp4"}  # re-signed with the real key: still refused
        forged["sig"] = load_private_key(key_path).sign(signing_bytes(forged)).hex()
        segment = next((tmp_path / "log").glob("custody-*.jsonl"))
        lines = segment.read_bytes().split(b"\n")
        lines[0] = canonical.dumps(forged)
        segment.write_bytes(b"\n".join(lines))
        problem = verify_log(tmp_path / "log", load_public_key(pub_path)).problem
        assert problem is not None and problem.seq == 0 and "name_commit is neither null nor" in problem.message


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """The log older writers began (formats 1 and 2, names in clear), continued by this one."""
    base = tmp_path / "site"
    shutil.copytree(FORMATS, base, ignore=shutil.ignore_patterns("*.py"))
    (base / "custody.key").chmod(0o600)
    with CustodyLog.open(base / "log", base / "custody.key") as log:
        log.append(Event.INGESTED, job_id="job-v3", raw_sha256="3" * 64, original_name="New Zoë v3.mp4",
                   inbox="default")
        log.append(Event.PUBLISHED, job_id="job-v3", raw_sha256="3" * 64, output_sha256="4" * 64)
    return base


class TestMixedFormats:
    def test_a_log_begun_by_format_1_and_2_writers_and_continued_in_format_3_verifies(self, mixed: Path) -> None:
        result = verify_log(mixed / "log", load_public_key(public_path(mixed / "custody.key")))
        assert result.ok, result.problem
        entries = load_entries(mixed / "log")
        assert result.entries == len(entries) > 10
        assert [e["v"] for e in entries[:8]] == [1] * 4 + [2] * 4 and {e["v"] for e in entries[8:]} == {3}
        assert set(entries[0]) == FIELDS_V1 and set(entries[4]) == FIELDS_V2

    def test_every_format_gives_its_name_through_one_function(self, mixed: Path) -> None:
        names = Names.load(names_path(mixed / "log"))
        ingested = [e for e in load_entries(mixed / "log") if e["event"] == "ingested"]
        assert [original_name(e, names) for e in ingested] == ["Old Zoë v1.mp4", "Old Zoë v2.mp4", "New Zoë v3.mp4"]
        assert "New Zoë" not in (mixed / "log").joinpath("custody-000003.jsonl").read_text()

    def test_a_verifier_that_knows_formats_1_and_2_only_says_to_use_a_newer_redactd(
            self, mixed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(verify_module, "FIELDS_BY_VERSION", {1: FIELDS_V1, 2: FIELDS_V2})
        result = verify_log(mixed / "log", load_public_key(public_path(mixed / "custody.key")))
        assert result.problem is not None and result.entries == 8
        assert "entry format version 3 is not one of [1, 2]: use a newer redactd" in result.problem.message

    def test_a_bundle_without_names_leaves_out_an_older_entry_that_carries_one_and_says_so(
            self, mixed: Path) -> None:
        from redactd.custody.proofs import make_bundle, verify_bundle

        pub = load_public_key(public_path(mixed / "custody.key"))
        bundle, _ = make_bundle(mixed / "log", "2" * 64)
        assert "Old Zoë" not in json.dumps(bundle, ensure_ascii=False) and bundle["names_left_out"] == [4]
        result = verify_bundle(json.loads(json.dumps(bundle)), pub)
        assert (result.entries, result.names, result.names_left_out) == (2, 0, (4,))
        named, _ = make_bundle(mixed / "log", "2" * 64, Names.load(names_path(mixed / "log")))
        assert named["names_left_out"] == [] and named["entries"][0]["entry"]["original_name"] == "Old Zoë v2.mp4"
        assert verify_bundle(json.loads(json.dumps(named)), pub).entries == 3
        newer, _ = make_bundle(mixed / "log", "3" * 64, Names.load(names_path(mixed / "log")))
        assert newer["entries"][0]["name"] == "New Zoë v3.mp4"
        assert verify_bundle(json.loads(json.dumps(newer)), pub).names == 1
