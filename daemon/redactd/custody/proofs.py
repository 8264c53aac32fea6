"""Self-contained proofs an officer can check without the log: per-file bundles, consistency.

A bundle holds one file's entries, each with an RFC 9162 inclusion proof against a signed
checkpoint, plus every ``key_rotated`` entry before that checkpoint (so a key you trust for
entry 0 leads to the key that signed the checkpoint). A consistency document shows that a
checkpoint an officer kept earlier is a prefix of a newer one: the log only grew.

Original file names are personal data and a bundle leaves them out: a format 3 entry carries
only a salted commitment to its name, so it is proven without it. Made with names, each named
entry's item also holds ``name`` and ``salt`` from the name store, and verifying the bundle
checks that they open the entry's signed commitment. A format 1 or 2 entry carries its name in
its signed bytes, so a bundle without names leaves such an entry out (``names_left_out`` lists
its seq) rather than break its proof.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from redactd.custody import canonical
from redactd.custody.entry import Event
from redactd.custody.keys import fingerprint, public_from_hex
from redactd.custody.merkle import MerkleTree, leaf_hash, verify_consistency, verify_inclusion
from redactd.custody.names import Names, opens
from redactd.custody.segments import load_entries
from redactd.custody.verify import check_signature, parse_entry
from redactd.errors import BadSignature, ChainBroken, CustodyError

BUNDLE_FORMAT = "redactd-custody-bundle/2"
#: Format 1 bundles (no names, no ``names_left_out``) still verify.
BUNDLE_FORMATS = frozenset({"redactd-custody-bundle/1", BUNDLE_FORMAT})
CONSISTENCY_FORMAT = "redactd-custody-consistency/1"


def _tree(entries: list[dict[str, Any]]) -> MerkleTree:
    return MerkleTree([leaf_hash(canonical.dumps(e)) for e in entries])


def _latest_checkpoint(entries: list[dict[str, Any]]) -> dict[str, Any]:
    for entry in reversed(entries):
        if entry["event"] == Event.CHECKPOINT:
            return entry
    raise CustodyError("the log has no checkpoint yet; the daemon writes one every "
                       "custody.checkpoint_minutes and at shutdown")


def _proven(tree: MerkleTree, entry: dict[str, Any], size: int) -> dict[str, Any]:
    return {"entry": entry, "proof": [h.hex() for h in tree.inclusion_proof(entry["seq"], size)]}


def make_bundle(directory: Path, sha256: str, names: Names | None = None) -> tuple[dict[str, Any], int]:
    """The bundle for the file whose raw or output SHA-256 is ``sha256``, and how many of its
    entries came after the newest checkpoint (those cannot be proven yet and are left out).

    Without ``names`` the bundle holds no original file name. With them, each named entry's item
    holds the name and salt that open its commitment (``names_missing`` lists the seqs of named
    entries the store cannot open: the officer sees "name not available" for them).
    """
    entries = load_entries(directory)
    checkpoint = _latest_checkpoint(entries)
    size = checkpoint["details"]["tree_size"]
    tree = _tree(entries[:size])
    jobs = {e["job_id"] for e in entries if sha256 in (e["raw_sha256"], e["output_sha256"]) and e["job_id"]}
    mine = [e for e in entries if sha256 in (e["raw_sha256"], e["output_sha256"]) or e["job_id"] in jobs]
    if not mine:
        raise CustodyError(f"no custody entry for {sha256}")
    covered = [e for e in mine if e["seq"] < size]
    if not covered:
        raise CustodyError(f"all {len(mine)} entries for {sha256} are newer than the last checkpoint "
                           f"(seq {checkpoint['seq']}); bundle again after the next checkpoint")
    rotations = [e for e in entries[:size] if e["event"] == Event.KEY_ROTATED]
    items: list[dict[str, Any]] = []
    left_out: list[int] = []
    missing: list[int] = []
    for entry in covered:
        if entry.get("original_name") and names is None:
            left_out.append(entry["seq"])  # format 1 or 2: the name is part of the proven bytes
            continue
        item = _proven(tree, entry, size)
        if names is not None and entry.get("name_commit"):
            opened = names.opening(entry)
            if opened is None:
                missing.append(entry["seq"])
            else:
                item.update(opened)
        items.append(item)
    if not items:
        raise CustodyError(f"every entry for {sha256} is format 1 or 2 and carries its original name in its "
                           "signed bytes: bundle it --with-names")
    bundle = {"format": BUNDLE_FORMAT, "sha256": sha256, "checkpoint": checkpoint,
              "key_rotations": [_proven(tree, e, size) for e in rotations],
              "entries": items, "with_names": names is not None, "names_left_out": left_out,
              "names_missing": missing}
    return bundle, len(mine) - len(covered)


@dataclass(frozen=True)
class BundleResult:
    sha256: str
    entries: int
    checkpoint_seq: int
    checkpoint_time: str
    keys: tuple[str, ...]
    names: int = 0  # original names the bundle gives, each checked against its entry's commitment
    names_left_out: tuple[int, ...] = ()  # format 1/2 entries left out of a bundle made without names


class _KeyChain:
    """The key in force at each seq, starting from the key the officer trusts."""

    def __init__(self, trusted: Ed25519PublicKey) -> None:
        self._keys: list[tuple[int, Ed25519PublicKey]] = [(0, trusted)]

    def at(self, seq: int) -> Ed25519PublicKey:
        return [key for start, key in self._keys if start <= seq][-1]

    def follow(self, rotations: list[dict[str, Any]]) -> None:
        for entry in sorted(rotations, key=lambda e: e["seq"]):
            _signed(entry, self.at(entry["seq"]), "key rotation")
            if entry["event"] != Event.KEY_ROTATED:
                raise ChainBroken(f"entry {entry['seq']}: listed as a key rotation but is {entry['event']!r}")
            self._keys.append((entry["seq"] + 1, public_from_hex(entry["details"]["new_key"])))

    def fingerprints(self) -> tuple[str, ...]:
        return tuple(fingerprint(k) for _, k in self._keys)


def _signed(entry: dict[str, Any], key: Ed25519PublicKey, what: str) -> None:
    why = check_signature(entry, key)
    if why:
        raise BadSignature(f"{what} (seq {entry.get('seq')}): {why}")


def _checkpoint(entry: dict[str, Any], keys: _KeyChain) -> tuple[int, bytes]:
    _signed(entry, keys.at(entry["seq"]), "checkpoint")
    details = entry["details"]
    if entry["event"] != Event.CHECKPOINT or details.get("tree_size") != entry["seq"]:
        raise ChainBroken(f"entry {entry['seq']} is not a checkpoint of the entries before it")
    return details["tree_size"], bytes.fromhex(details["root"])


def _included(item: dict[str, Any], size: int, root: bytes) -> dict[str, Any]:
    entry, why = parse_entry(canonical.dumps(item["entry"]))
    if entry is None:
        raise ChainBroken(f"bundle entry {item['entry'].get('seq')}: {why}")
    proof = [bytes.fromhex(h) for h in item["proof"]]
    if not verify_inclusion(leaf_hash(canonical.dumps(entry)), entry["seq"], size, proof, root):
        raise ChainBroken(f"entry {entry['seq']} ({entry['event']}): its inclusion proof does not lead to the "
                          f"checkpoint's root: the entry is not the one the log holds")
    return entry


def verify_bundle(bundle: dict[str, Any], public_key: Ed25519PublicKey) -> BundleResult:
    """Check a bundle with the public key alone; raise ChainBroken or BadSignature naming the entry."""
    if bundle.get("format") not in BUNDLE_FORMATS:
        raise CustodyError(f"not a custody bundle (format {bundle.get('format')!r}, expected {BUNDLE_FORMAT}); "
                           "a newer format needs a newer redactd")
    try:
        keys = _KeyChain(public_key)
        checkpoint = bundle["checkpoint"]
        claimed_root = bytes.fromhex(checkpoint["details"]["root"])
        keys.follow([_included(i, checkpoint["details"]["tree_size"], claimed_root)
                     for i in bundle["key_rotations"]])
        size, root = _checkpoint(checkpoint, keys)
        entries = [_included(item, size, root) for item in bundle["entries"]]
        named = sum(_name_opens(item, entry) for item, entry in zip(bundle["entries"], entries, strict=True))
        sha = bundle["sha256"]
        jobs = {e["job_id"] for e in entries if sha in (e["raw_sha256"], e["output_sha256"])}
        for entry in entries:
            _signed(entry, keys.at(entry["seq"]), f"entry {entry['event']}")
            if sha not in (entry["raw_sha256"], entry["output_sha256"]) and entry["job_id"] not in jobs:
                raise ChainBroken(f"entry {entry['seq']} is about neither {sha} nor its jobs")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ChainBroken(f"malformed bundle ({exc.__class__.__name__}: {exc})") from None
    return BundleResult(sha, len(entries), checkpoint["seq"], checkpoint["time"], keys.fingerprints(), named,
                        tuple(bundle.get("names_left_out", ())))


def _name_opens(item: dict[str, Any], entry: dict[str, Any]) -> bool:
    """Whether the bundle gives a name for this entry; raise ChainBroken when it does not open the
    entry's signed commitment (an edited name or salt, or a name for an entry that records none)."""
    if "name" not in item and "salt" not in item:
        return False
    if not entry.get("name_commit"):
        raise ChainBroken(f"entry {entry['seq']} ({entry['event']}): the bundle gives an original name, but the "
                          "entry commits to none")
    if not opens(entry, item.get("name"), item.get("salt")):
        raise ChainBroken(f"entry {entry['seq']} ({entry['event']}): the original name and salt given do not "
                          "open the entry's signed name commitment: the name is not the one recorded")
    return True


def make_consistency(directory: Path, old_checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A proof that the log's newest checkpoint extends ``old_checkpoint`` (one an officer kept)."""
    entries = load_entries(directory)
    new = _latest_checkpoint(entries)
    old_size, new_size = old_checkpoint["details"]["tree_size"], new["details"]["tree_size"]
    if old_size > new_size:
        raise ChainBroken(f"the kept checkpoint (tree size {old_size}) is newer than the log's newest "
                          f"checkpoint ({new_size}): the log was cut")
    tree = _tree(entries[:new_size])
    rotations = [e for e in entries[:new_size] if e["event"] == Event.KEY_ROTATED]
    return {"format": CONSISTENCY_FORMAT, "old": old_checkpoint, "new": new,
            "key_rotations": [_proven(tree, e, new_size) for e in rotations],
            "proof": [h.hex() for h in tree.consistency_proof(old_size, new_size)]}


def verify_consistency_doc(doc: dict[str, Any], public_key: Ed25519PublicKey) -> tuple[int, int]:
    """Check that ``doc['new']`` extends ``doc['old']``; return both tree sizes."""
    if doc.get("format") != CONSISTENCY_FORMAT:
        raise CustodyError(f"not a consistency proof (format {doc.get('format')!r})")
    try:
        keys = _KeyChain(public_key)
        claimed_root = bytes.fromhex(doc["new"]["details"]["root"])
        keys.follow([_included(i, doc["new"]["details"]["tree_size"], claimed_root)
                     for i in doc["key_rotations"]])
        old_size, old_root = _checkpoint(doc["old"], keys)
        new_size, new_root = _checkpoint(doc["new"], keys)
        proof = [bytes.fromhex(h) for h in doc["proof"]]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ChainBroken(f"malformed consistency proof ({exc.__class__.__name__}: {exc})") from None
    if not verify_consistency(old_size, new_size, old_root, new_root, proof):
        raise ChainBroken(f"checkpoint seq {doc['new']['seq']} (tree size {new_size}) does not extend checkpoint "
                          f"seq {doc['old']['seq']} (tree size {old_size}): history was rewritten")
    return old_size, new_size


def load_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CustodyError(f"{path}: cannot read JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise CustodyError(f"{path}: expected a JSON object")
    return doc
