"""What one custody entry is: its events, fields, canonical bytes, hash and signature payload.

An entry is one line of canonical JSON:

    {"actor":..., "details":{...}, "event":..., "job_id":..., "key":"sha256:<signer>",
     "models":{...}|null, "original_name":...|null, "output_sha256":...|null,
     "policy":{"hash","id","version"}|null, "prev":"<sha256 of the previous line>",
     "raw_sha256":...|null, "seq":N, "sig":"<Ed25519 hex>", "time":"YYYY-MM-DDTHH:MM:SS.ffffffZ", "v":1}

``sig`` signs the canonical bytes of every other field; ``prev`` of entry 0 is 64 zeros.
"""

from __future__ import annotations

import hashlib
import re
from enum import Enum
from typing import TYPE_CHECKING, Any

from redactd.custody import canonical
from redactd.errors import CustodyError

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
FORMAT_VERSION = 1  # the "v" of every entry; a verifier refuses versions it does not know
FIELDS = frozenset({"actor", "details", "event", "job_id", "key", "models", "original_name",
                    "output_sha256", "policy", "prev", "raw_sha256", "seq", "sig", "time", "v"})
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


def _sha(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not SHA256_HEX.fullmatch(value):
        raise CustodyError(f"custody field {name!r} must be 64 lowercase hex digits (got {value!r})")
    return value


def check_fields(*, job_id: object, raw_sha256: object, output_sha256: object, original_name: object,
                 policy: object, models: object, actor: object, details: dict[str, Any]) -> dict[str, Any]:
    """Validate what a caller gives ``append``; return the entry's caller-supplied fields."""
    if job_id is not None and (not isinstance(job_id, str) or not job_id):
        raise CustodyError(f"custody field 'job_id' must be a non-empty string (got {job_id!r})")
    if not isinstance(actor, str) or not actor:
        raise CustodyError(f"custody field 'actor' must be a non-empty string (got {actor!r})")
    if original_name is not None and (not isinstance(original_name, str) or not original_name):
        raise CustodyError("custody field 'original_name' must be a non-empty string")
    if policy is not None:
        if not isinstance(policy, dict) or set(policy) != {"id", "version", "hash"}:
            raise CustodyError("custody field 'policy' must be {'id', 'version', 'hash'} (see policy_ref())")
        if not isinstance(policy["version"], int) or isinstance(policy["version"], bool):
            raise CustodyError(f"custody policy version must be an integer (got {policy['version']!r})")
        _sha("policy.hash", policy["hash"])
    if models is not None:
        if not isinstance(models, dict):
            raise CustodyError("custody field 'models' must map model names to SHA-256 hex digests")
        for name, digest in models.items():
            _sha(f"models.{name}", digest)
    for key in details:
        if not DETAIL_KEY.fullmatch(key) or key in FIELDS:
            raise CustodyError(f"custody detail {key!r}: names are snake_case and not an entry field")
    if isinstance(original_name, str) and len(original_name) >= 4:  # shorter names match by accident
        _refuse_name_in_details(original_name, details)
    fields = {"job_id": job_id, "raw_sha256": _sha("raw_sha256", raw_sha256),
              "output_sha256": _sha("output_sha256", output_sha256), "original_name": original_name,
              "policy": policy, "models": models, "actor": actor, "details": details}
    try:
        canonical.check(fields)
    except canonical.NotCanonical as exc:
        raise CustodyError(f"custody entry cannot be recorded: {exc}") from None
    return fields


def _refuse_name_in_details(name: str, details: object, path: str = "details") -> None:
    """The original file name is personal data: it may live in ``original_name`` and nowhere else."""
    if isinstance(details, str) and name in details:
        raise CustodyError(f"custody {path} repeats the original file name; keep it in 'original_name' only")
    if isinstance(details, dict):
        for key, value in details.items():
            _refuse_name_in_details(name, value, f"{path}.{key}")
    elif isinstance(details, (list, tuple)):
        for i, value in enumerate(details):
            _refuse_name_in_details(name, value, f"{path}[{i}]")
