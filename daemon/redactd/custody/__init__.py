"""Signed chain-of-custody log: keys, the single writer, Merkle proofs, officer-side verification.

    from redactd.custody import CustodyLog, Event, policy_ref
    log = CustodyLog.open(cfg.custody.directory, cfg.custody.signing_key, passphrase)
    log.append(Event.INGESTED, job_id=job, raw_sha256=sha, original_name=name)
    log.checkpoint()   # every cfg.custody.checkpoint_minutes
    log.close()        # at shutdown: writes a final checkpoint
"""

from redactd.custody.entry import Event, policy_ref
from redactd.custody.log import CustodyLog
from redactd.custody.verify import Problem, Result, verify_log

__all__ = ["CustodyLog", "Event", "Problem", "Result", "policy_ref", "verify_log"]
