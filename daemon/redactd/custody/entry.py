"""What one custody entry is: its events, fields, canonical bytes, hash and signature payload.

An entry is one line of canonical JSON:

    {"actor":..., "details":{...}, "event":..., "job_id":..., "key":"sha256:<signer>",
     "models":{...}|null, "name_commit":"<sha256 of salt || name>"|null, "output_sha256":...|null,
     "policy":{"hash","id","version"}|null, "prev":"<sha256 of the previous line>",
     "raw_sha256":...|null, "seq":N, "sig":"<Ed25519 hex>", "time":"YYYY-MM-DDTHH:MM:SS.ffffffZ", "v":3,
     "occurred_at":"YYYY-MM-DDTHH:MM:SS.ffffffZ"}

``sig`` signs the canonical bytes of every other field; ``prev`` of entry 0 is 64 zeros.
``time`` is when the entry was appended; ``occurred_at`` (format version 2 on) is when the action
it records happened (a reviewer's decision can wait in the outbox before it is appended).
Format version 3 entries carry no original file name: ``name_commit`` is a salted commitment to
it, and the name with its salt lives in the name store beside the log (``redactd.custody.names``),
so proofs over an entry never need the name. Versions 1 (no ``occurred_at``) and 2 (the name in
clear as ``original_name``) still verify; a log may hold all three.
"""

from __future__ import annotations

import hashlib
import re
from enum import Enum
from typing import TYPE_CHECKING, Any

from redactd.custody import canonical
from redactd.errors import EntryRefused

if TYPE_CHECKING:
    from redactd.policy import RedactionPolicy, RetentionPolicy


class Event(str, Enum):
    """Everything the custody log records. The last three are written by the log itself."""

    INGESTED = "ingested"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    PROCESSING_STARTED = "processing_started"
    PUBLISHED = "published"
    SENT_TO_REVIEW = "sent_to_review"
    FAILED = "failed"
    REQUEUED = "requeued"  # a transient error or crash: the job runs again from its raw file
    RETRIED = "retried"  # an operator asked for a failed or review job to run again
    REVIEW_APPROVED = "review_approved"
    REVIEW_REJECTED = "review_rejected"
    PURGE_INTENDED = "purge_intended"
    PURGED = "purged"
    HOLD_SET = "hold_set"
    HOLD_RELEASED = "hold_released"
    POLICY_LOADED = "policy_loaded"
    KEY_ROTATED = "key_rotated"
    CHECKPOINT = "checkpoint"
    TORN_TAIL = "torn_tail"  # a crash left a partial line; the next segment records it


#: Events only CustodyLog's own methods may write, because their details are computed, not given.
INTERNAL_EVENTS = frozenset({Event.KEY_ROTATED, Event.CHECKPOINT, Event.TORN_TAIL})

GENESIS = "0" * 64
FORMAT_VERSION = 3  # the "v" of every new entry; a verifier refuses versions it does not know
FIELDS_V1 = frozenset({"actor", "details", "event", "job_id", "key", "models", "original_name",
                       "output_sha256", "policy", "prev", "raw_sha256", "seq", "sig", "time", "v"})
FIELDS_V2 = FIELDS_V1 | {"occurred_at"}
FIELDS = (FIELDS_V2 - {"original_name"}) | {"name_commit"}
FIELDS_BY_VERSION = {1: FIELDS_V1, 2: FIELDS_V2, 3: FIELDS}
#: No detail may take the name of a field of any format version.
ENTRY_FIELD_NAMES = FIELDS_V2 | FIELDS
#: What replaces a detail value that repeats the original file name (``details.withheld`` lists where).
WITHHELD = "[withheld: repeats original_name]"
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
SIG_HEX = re.compile(r"[0-9a-f]{128}")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
DETAIL_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")


def line_hash(line: bytes) -> str:
    """The hash the next entry's ``prev`` carries: SHA-256 of the line without its newline."""
    return hashlib.sha256(line).hexdigest()


def signing_bytes(entry: dict[str, Any]) -> bytes:
    return canonical.dumps({k: v for k, v in entry.items() if k != "sig"})


def policy_ref(policy: RedactionPolicy | RetentionPolicy) -> dict[str, Any]:
    """The ``policy`` field for a loaded policy: id, version and the hash of its canonical form."""
    from redactd.policy import policy_hash

    return {"id": policy.id, "version": policy.version, "hash": policy_hash(policy)}


def format_problem(entry: dict[str, Any]) -> str | None:
    """Why a parsed entry of a known version has a field of the wrong shape, or None.

    Only what readers of a format 3 entry rely on: ``name_commit`` is null or 64 hex digits.
    """
    if entry.get("v") == 3:
        commit = entry["name_commit"]
        if commit is not None and (not isinstance(commit, str) or not SHA256_HEX.fullmatch(commit)):
            return "name_commit is neither null nor 64 lowercase hex digits"
    return None


def occurred(entry: dict[str, Any]) -> str:
    """When the entry's action happened: ``occurred_at`` (v2), else its append ``time`` (v1)."""
    return str(entry.get("occurred_at") or entry["time"])


def _sha(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not SHA256_HEX.fullmatch(value):
        raise EntryRefused(f"custody field {name!r} must be 64 lowercase hex digits", name)
    return value


def check_fields(*, job_id: object, raw_sha256: object, output_sha256: object, original_name: object,
                 policy: object, models: object, actor: object, details: dict[str, Any]) -> dict[str, Any]:
    """Validate what a caller gives ``append``; return the entry's caller-supplied fields.

    ``original_name`` stays a field of what is returned; the writer turns it into the entry's
    ``name_commit`` and a name store record. A detail that repeats the original file name is not
    refused (that would stall the log on a file named like an inbox, ``default`` say): its value
    is replaced by ``WITHHELD`` and ``details.withheld`` lists the paths replaced. Any other
    broken rule raises EntryRefused.
    """
    if job_id is not None and (not isinstance(job_id, str) or not job_id):
        raise EntryRefused("custody field 'job_id' must be a non-empty string", "job_id")
    if not isinstance(actor, str) or not actor:
        raise EntryRefused("custody field 'actor' must be a non-empty string", "actor")
    if original_name is not None and (not isinstance(original_name, str) or not original_name):
        raise EntryRefused("custody field 'original_name' must be a non-empty string", "original_name")
    if policy is not None:
        if not isinstance(policy, dict) or set(policy) != {"id", "version", "hash"}:
            raise EntryRefused("custody field 'policy' must be {'id', 'version', 'hash'} (see policy_ref())", "policy")
        if not isinstance(policy["version"], int) or isinstance(policy["version"], bool):
            raise EntryRefused("custody policy version must be an integer", "policy")
        _sha("policy.hash", policy["hash"])
    if models is not None:
        if not isinstance(models, dict):
            raise EntryRefused("custody field 'models' must map model names to SHA-256 hex digests", "models")
        for name, digest in models.items():
            _sha(f"models.{name}", digest)
    for key in details:
        if not DETAIL_KEY.fullmatch(key) or key in ENTRY_FIELD_NAMES or key == "withheld":
            raise EntryRefused("custody detail names are snake_case and not an entry field", "details")
    if isinstance(original_name, str) and len(original_name) >= 4:  # shorter names match by accident
        withheld: list[str] = []
        details = _withhold_name(original_name, details, "details", withheld)
        if withheld:
            details["withheld"] = withheld
    fields = {"job_id": job_id, "raw_sha256": _sha("raw_sha256", raw_sha256),
              "output_sha256": _sha("output_sha256", output_sha256), "original_name": original_name,
              "policy": policy, "models": models, "actor": actor, "details": details}
    try:
        canonical.check(fields)
    except canonical.NotCanonical as exc:
        raise EntryRefused(f"custody entry cannot be recorded: {exc}", str(exc).split(":", 1)[0]) from None
    return fields


def safe_fields(fields: dict[str, Any], refused: EntryRefused) -> dict[str, Any]:
    """What to record instead of an entry whose fields were refused: every field that passes on
    its own, no details but where the refused entry came from, and what was withheld and why.
    The log must never skip or stall on an entry, and never hold a value no rule allows."""
    kept: dict[str, Any] = {"actor": "redactd", "details": {}}
    for name in ("job_id", "raw_sha256", "output_sha256", "original_name", "policy", "models", "actor"):
        if fields.get(name) is None:
            continue
        try:
            check_fields(**{**_NO_FIELDS, **kept, name: fields[name]})  # type: ignore[arg-type]
        except EntryRefused:
            continue
        kept[name] = fields[name]
    details: dict[str, Any] = {}
    outbox_seq = (fields.get("details") or {}).get("outbox_seq")
    if isinstance(outbox_seq, int) and not isinstance(outbox_seq, bool):
        details["outbox_seq"] = outbox_seq
    checked = check_fields(**{**_NO_FIELDS, **kept, "details": details})
    checked["details"] = {**checked["details"], "withheld": [refused.field], "withheld_reason": str(refused)}
    canonical.check(checked)
    return checked


_NO_FIELDS: dict[str, Any] = {"job_id": None, "raw_sha256": None, "output_sha256": None, "original_name": None,
                              "policy": None, "models": None, "actor": "redactd", "details": {}}


def _withhold_name(name: str, value: Any, path: str, withheld: list[str]) -> Any:
    """``value`` with every string that contains ``name`` replaced, noting each path replaced.
    The original file name is personal data: it may live in the name store and nowhere else."""
    if isinstance(value, str):
        if name in value:
            withheld.append(path)
            return WITHHELD
        return value
    if isinstance(value, dict):
        return {k: _withhold_name(name, v, f"{path}.{k}", withheld) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_withhold_name(name, v, f"{path}[{i}]", withheld) for i, v in enumerate(value)]
    return value
