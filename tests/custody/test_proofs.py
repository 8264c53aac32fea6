"""Per-file bundles (inclusion proofs) and consistency proofs, checked without the log."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from redactd.custody import CustodyLog, Event, verify_log
from redactd.custody.keys import load_public_key
from redactd.custody.proofs import make_bundle, make_consistency, verify_bundle, verify_consistency_doc
from redactd.custody.segments import load_entries
from redactd.errors import BadSignature, ChainBroken, CustodyError


def file_with(entries: list[dict[str, Any]], event: str, after_rotation: bool) -> str:
    rotation = next(e["seq"] for e in entries if e["event"] == "key_rotated")
    return next(e["raw_sha256"] for e in entries
                if e["event"] == event and (e["seq"] > rotation) == after_rotation)


@pytest.fixture
def bundled(generated: dict[str, Any], log_copy: Callable[[], Path], tmp_path: Path) -> dict[str, Any]:
    directory = log_copy()
    sha = file_with(load_entries(directory), "purged", after_rotation=True)
    bundle, left_out = make_bundle(directory, sha)
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    shutil.rmtree(directory)  # the officer has only the bundle and the public key
    return {"bundle": json.loads((tmp_path / "bundle.json").read_text()), "left_out": left_out,
            "pub": load_public_key(generated["pub"]), "sha": sha}


class TestBundles:
    def test_a_bundle_verifies_with_only_the_public_key_after_the_log_is_gone(self, bundled: dict[str, Any]) -> None:
        result = verify_bundle(bundled["bundle"], bundled["pub"])
        events = [item["entry"]["event"] for item in bundled["bundle"]["entries"]]
        assert events[0] == "ingested" and "purged" in events and result.entries == len(events)
        assert len(result.keys) == 2 and bundled["left_out"] == 0  # followed the rotation in the bundle

    def test_a_file_from_before_the_key_rotation_verifies_too(self, generated: dict[str, Any]) -> None:
        sha = file_with(load_entries(generated["dir"]), "published", after_rotation=False)
        bundle, _ = make_bundle(generated["dir"], sha)
        assert verify_bundle(bundle, load_public_key(generated["pub"])).sha256 == sha

    def test_an_edited_entry_fails_its_inclusion_proof(self, bundled: dict[str, Any]) -> None:
        bundle = copy.deepcopy(bundled["bundle"])
        bundle["entries"][1]["entry"]["details"]["attempt"] = 2
        with pytest.raises(ChainBroken, match=f"entry {bundle['entries'][1]['entry']['seq']} .*inclusion proof"):
            verify_bundle(bundle, bundled["pub"])

    def test_a_dropped_key_rotation_fails_the_signature_check(self, bundled: dict[str, Any]) -> None:
        bundle = copy.deepcopy(bundled["bundle"])
        bundle["key_rotations"] = []
        with pytest.raises(BadSignature, match="checkpoint"):
            verify_bundle(bundle, bundled["pub"])

    def test_a_forged_checkpoint_root_fails(self, bundled: dict[str, Any]) -> None:
        bundle = copy.deepcopy(bundled["bundle"])
        bundle["checkpoint"]["details"]["root"] = "0" * 64
        with pytest.raises(CustodyError):
            verify_bundle(bundle, bundled["pub"])

    def test_another_public_key_fails(self, bundled: dict[str, Any]) -> None:
        with pytest.raises(BadSignature, match="key in force"):
            verify_bundle(bundled["bundle"], Ed25519PrivateKey.generate().public_key())

    def test_entries_after_the_last_checkpoint_are_counted_not_bundled(self, tmp_path: Path, key_path: Path) -> None:
        with CustodyLog.open(tmp_path, key_path) as log:
            log.append(Event.INGESTED, job_id="j", raw_sha256="a" * 64)
            log.checkpoint()
            log.append(Event.PUBLISHED, job_id="j", raw_sha256="a" * 64, output_sha256="b" * 64)
            with pytest.raises(CustodyError, match="no custody entry"):
                make_bundle(tmp_path, "c" * 64)
            bundle, left_out = make_bundle(tmp_path, "b" * 64)  # found by output hash, then its job
            assert left_out == 1 and [i["entry"]["event"] for i in bundle["entries"]] == ["ingested"]


class TestConsistencyProofs:
    def test_a_newer_checkpoint_is_proven_to_extend_an_older_one(self, tmp_path: Path, key_path: Path,
                                                                pub_path: Path) -> None:
        with CustodyLog.open(tmp_path, key_path) as log:
            for i in range(50):
                log.append(Event.INGESTED, job_id=f"j{i}", raw_sha256="a" * 64)
            old = log.checkpoint()
            log.rotate_key(Ed25519PrivateKey.generate())
            for i in range(77):
                log.append(Event.PURGED, job_id=f"j{i}", raw_sha256="a" * 64)
        doc = make_consistency(tmp_path, old)
        assert verify_consistency_doc(doc, load_public_key(pub_path)) == (50, 129)

    def test_a_rewritten_history_passes_verify_but_fails_the_consistency_proof(
            self, tmp_path: Path, key_path: Path, pub_path: Path) -> None:
        with CustodyLog.open(tmp_path / "log", key_path) as log:
            for i in range(40):
                log.append(Event.INGESTED, job_id=f"j{i}", raw_sha256="a" * 64)
            old = log.checkpoint()
        shutil.rmtree(tmp_path / "log")  # the key holder starts over with a different past
        with CustodyLog.open(tmp_path / "log", key_path) as log:
            for i in range(60):
                log.append(Event.INGESTED, job_id=f"j{i}", raw_sha256="b" * 64 if i == 7 else "a" * 64)
        assert verify_log(tmp_path / "log", load_public_key(pub_path)).ok  # signatures alone cannot tell
        with pytest.raises(ChainBroken, match="history was rewritten"):
            verify_consistency_doc(make_consistency(tmp_path / "log", old), load_public_key(pub_path))

    def test_a_kept_checkpoint_newer_than_the_log_means_the_log_was_cut(self, tmp_path: Path,
                                                                       key_path: Path) -> None:
        with CustodyLog.open(tmp_path, key_path) as log:
            log.append(Event.INGESTED, raw_sha256="a" * 64)
            kept = dict(log.checkpoint(), details={"tree_size": 99, "root": "0" * 64})
        with pytest.raises(ChainBroken, match="the log was cut"):
            make_consistency(tmp_path, kept)
