"""Officer-side verification of a custody log: needs only the segment files and a public key.

Read top to bottom, this is the whole argument. For every line, in segment order:

1. it parses as JSON, has exactly the entry fields of its format version (1, 2 or 3; a newer
   one needs a newer redactd) and is byte-for-byte canonical JSON (so no byte can change
   without changing what is signed);
2. its ``seq`` is the previous one plus one and its ``prev`` is SHA-256 of the previous line
   (nothing removed, inserted or reordered, across segment files too);
3. its Ed25519 signature verifies with the key in force: the key you trust for entry 0, then
   each key announced by a ``key_rotated`` entry that the previous key signed;
4. a ``checkpoint`` entry's tree size and root equal the RFC 9162 Merkle tree over all entries
   before it (so every checkpoint is consistent with every earlier one);
5. bytes after a segment's last newline (a write torn by a crash) are allowed only when the
   very next entry is a signed ``torn_tail`` record of exactly those bytes.

Finally ``checkpoint.json`` (the newest checkpoint, kept beside the segments) must be an entry
of the log: a log cut short at a line boundary is caught there. Whoever can write the state
directory can cut the log and rewrite ``checkpoint.json`` too; checkpoints delivered to witness
directories (``witnesses``) they cannot rewrite close that gap: each must be an entry of the log,
and an RFC 9162 consistency proof must show the log's tree extends it. A witnessed checkpoint
the log does not reach is a cut. A recorded torn tail is where a crash cut a write short, but
also where a cut could hide: it is reported, and only a witness proves it innocent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from redactd.custody import canonical
from redactd.custody.entry import (
    FIELDS_BY_VERSION,
    GENESIS,
    SIG_HEX,
    Event,
    format_problem,
    line_hash,
    signing_bytes,
)
from redactd.custody.keys import fingerprint, public_from_hex
from redactd.custody.merkle import Frontier, MerkleTree, leaf_hash, verify_consistency
from redactd.custody.segments import CHECKPOINT_FILE, Line, Tail, read_segment, segment_paths
from redactd.custody.witness import witnessed
from redactd.errors import BadSignature, ChainBroken, CustodyError

EVENTS = frozenset(e.value for e in Event)
UNRECORDED_TEAR = "torn line that the next entry does not record"


@dataclass(frozen=True)
class Problem:
    """The first thing wrong: where (segment file, 1-based line, expected seq) and what."""

    segment: str
    line: int
    seq: int | None
    message: str
    torn_tail: bool = False
    signature: bool = False

    def __str__(self) -> str:
        if self.line == 0:  # about the directory, not one line
            return f"{self.segment}: {self.message}"
        return f"{self.segment} line {self.line} (seq {self.seq}): {self.message}"

    def error(self) -> CustodyError:
        return (BadSignature if self.signature else ChainBroken)(str(self))


@dataclass(frozen=True)
class Result:
    entries: int  # entries that verified, in order, from seq 0
    segments: int
    checkpoints: int
    tears_recorded: int
    keys: tuple[str, ...]  # fingerprints, in the order they came into force
    root: str  # Merkle root over the verified entries
    last_checkpoint: dict[str, Any] | None
    problem: Problem | None
    warnings: tuple[str, ...] = ()
    lines: int = 0  # complete lines in the segment files: ``entries``/``lines`` entries are valid
    first_time: str | None = None  # occurred_at of the first and last verified entries
    last_time: str | None = None
    torn_tail_seqs: tuple[int, ...] = ()
    witnessed: int = 0  # witnessed checkpoints proven consistent with the log
    witness_dirs: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def unproven(self) -> int:
        """Verified entries after the last checkpoint: no signed tree head covers them yet."""
        cp = self.last_checkpoint
        return self.entries - (cp["seq"] + 1 if cp else 0)

    @property
    def checkpoints_checked(self) -> int:
        return self.checkpoints + self.witnessed

    def summary(self) -> list[str]:
        """What ``custody verify`` prints (and the console shows): like ``aws cloudtrail validate-logs``."""
        out = []
        if self.entries:
            out.append(f"range: seq 0 to {self.entries - 1}, {self.first_time} to {self.last_time}")
        out.append(f"{self.entries}/{self.lines} entries valid in {self.segments} segment(s)")
        out.append(f"{self.checkpoints_checked} checkpoint(s) checked: {self.checkpoints} in the log, "
                   f"{self.witnessed} witnessed" + (f" ({', '.join(self.witness_dirs)})" if self.witness_dirs else ""))
        out.append(f"{self.unproven} entr{'y' if self.unproven == 1 else 'ies'} after the last checkpoint "
                   "cannot be proven yet")
        return out


def check_signature(entry: dict[str, Any], key: Ed25519PublicKey) -> str | None:
    """Why ``entry`` is not signed by ``key``, or None when it is."""
    if entry.get("key") != fingerprint(key):
        return f"signed by key {entry.get('key')}, but the key in force is {fingerprint(key)}"
    sig = entry.get("sig")
    if not isinstance(sig, str) or not SIG_HEX.fullmatch(sig):
        return "signature is not 128 lowercase hex digits"
    try:
        key.verify(bytes.fromhex(sig), signing_bytes(entry))
    except InvalidSignature:
        return f"signature does not verify with key {fingerprint(key)} (the entry was altered or re-signed)"
    return None


def parse_entry(data: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The entry in ``data``, or why ``data`` is not a well-formed, canonical entry."""
    try:
        entry = json.loads(data)
        if not isinstance(entry, dict) or "v" not in entry:
            return None, "not a custody entry (wrong or missing fields)"
        fields = FIELDS_BY_VERSION.get(entry["v"]) if isinstance(entry["v"], int) else None
        if fields is None:
            return None, f"entry format version {entry['v']!r} is not one of {sorted(FIELDS_BY_VERSION)}: use a newer redactd"
        if set(entry) != fields:
            return None, "not a custody entry (wrong or missing fields)"
        if canonical.dumps(entry) != data:
            return None, "not canonical JSON (the bytes were edited)"
        why = format_problem(entry)
        if why is not None:
            return None, why
    except ValueError as exc:  # bad JSON, bad UTF-8, NaN
        return None, f"not valid JSON ({exc.__class__.__name__})"
    return entry, None


class _Chain:
    """The verifier's running state: what the next entry must continue."""

    def __init__(self, key: Ed25519PublicKey) -> None:
        self.key = key
        self.keys = [fingerprint(key)]
        self.seq = 0
        self.prev = GENESIS
        self.tree = Frontier()
        self.checkpoints: dict[int, bytes] = {}
        self.tears = 0
        self.tear_seqs: list[int] = []
        self.leaves: list[bytes] = []
        self.key_from: list[tuple[int, Ed25519PublicKey]] = [(0, key)]
        self.first_time: str | None = None
        self.last_time: str | None = None

    def check(self, data: bytes, tear: Tail | None) -> tuple[str | None, bool]:
        """(why this line breaks the chain or None, whether it is a signature problem)."""
        entry, why = parse_entry(data)
        if entry is None:
            return why, False
        if entry["seq"] != self.seq:
            return f"seq is {entry['seq']}, expected {self.seq}: an entry was removed, added or moved", False
        if entry["prev"] != self.prev:
            return "prev is not the hash of the previous entry: the chain is broken here", False
        if entry["event"] not in EVENTS:
            return f"unknown event {entry['event']!r}", False
        why = check_signature(entry, self.key)
        if why:
            return why, True
        event, details = entry["event"], entry["details"]
        if (event == Event.TORN_TAIL) != (tear is not None) or (tear and details != tear.record()):
            return "torn_tail entry without the torn line it describes", False
        if event == Event.CHECKPOINT:
            expected = {"tree_size": self.seq, "root": self.tree.root().hex()}
            if details != expected:
                return f"checkpoint {details} does not match the entries before it {expected}", False
            self.checkpoints[self.seq] = data
        if event == Event.KEY_ROTATED:
            new_key = public_from_hex(details["new_key"])
            if fingerprint(new_key) != details["new_key_id"]:
                return "key_rotated: new_key_id is not the fingerprint of new_key", False
            self.key = new_key
            self.keys.append(fingerprint(new_key))
            self.key_from.append((self.seq + 1, new_key))
        if event == Event.TORN_TAIL:
            self.tears += 1
            self.tear_seqs.append(self.seq)
        when = entry.get("occurred_at") or entry["time"]
        self.first_time = self.first_time or when
        self.last_time = when
        leaf = leaf_hash(data)
        self.leaves.append(leaf)
        self.tree.add(leaf)
        self.prev = line_hash(data)
        self.seq += 1
        return None, False


def verify_log(directory: Path, public_key: Ed25519PublicKey,
               progress: Callable[[str, int], None] | None = None, witnesses: Sequence[Path] = ()) -> Result:
    """Check everything in ``directory`` (and, given ``witnesses``, every checkpoint they hold);
    stop at and report the first problem."""
    chain = _Chain(public_key)
    paths = segment_paths(directory) if directory.is_dir() else []
    warnings: list[str] = []
    total_lines = sum(p.read_bytes().count(b"\n") for p in paths)
    proven = [0]

    def result(problem: Problem | None) -> Result:
        last = max(chain.checkpoints, default=None)
        return Result(chain.seq, len(paths), len(chain.checkpoints), chain.tears, tuple(chain.keys),
                      chain.tree.root().hex(), json.loads(chain.checkpoints[last]) if last is not None else None,
                      problem, tuple(warnings), total_lines, chain.first_time, chain.last_time, tuple(chain.tear_seqs),
                      proven[0], tuple(str(w) for w in witnesses))

    if not paths:
        return result(Problem(str(directory), 0, 0, "no custody segment files (custody-NNNNNN.jsonl) here"))
    tear: Tail | None = None
    last_line = Line(paths[-1].name, 0, b"")
    for path in paths:
        lines, tail = read_segment(path)
        for line in lines:
            if tear is not None and not _records(line.data, tear):
                return result(Problem(tear.segment, tear.number, chain.seq, UNRECORDED_TEAR))
            try:
                why, bad_sig = chain.check(line.data, tear)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:  # well-formed JSON, odd values
                why, bad_sig = f"malformed entry ({exc.__class__.__name__}: {exc})", False
            if why is not None:
                return result(Problem(line.segment, line.number, chain.seq, why, signature=bad_sig))
            tear = None
        if tail is not None:
            if tear is not None:
                return result(Problem(tear.segment, tear.number, chain.seq, UNRECORDED_TEAR))
            tear = tail
        last_line = lines[-1] if lines else Line(path.name, 0, b"")
        if progress:
            progress(path.name, chain.seq)
    if tear is not None:
        return result(Problem(tear.segment, tear.number, chain.seq,
                              f"torn last line: {len(tear.data)} bytes without a newline (a write cut short by "
                              f"a crash, or a truncation); the {chain.seq} entries before it verify; the writer "
                              "records the tear when it next opens the log", torn_tail=True))
    cut = _check_checkpoint_file(directory, chain)
    if cut is not None:
        return result(Problem(last_line.segment, last_line.number + 1, chain.seq, cut))
    for witness in witnesses:
        problem = _check_witness(witness, chain, last_line)
        if problem is not None:
            return result(problem)
        proven[0] += len(witnessed(witness))
    if not (directory / CHECKPOINT_FILE).exists():
        warnings.append(f"no {CHECKPOINT_FILE}: a log cut after its last checkpoint entry would go unnoticed"
                        + ("" if witnesses else " (give --witness to check against the witnessed checkpoints)"))
    for seq in chain.tear_seqs:
        warnings.append(f"entry {seq} records a torn tail: a crash cut a write short there, or the log was cut "
                        "there; " + ("every witnessed checkpoint is consistent with it" if witnesses else
                                     "only a witness (--witness DIR) can tell which"))
    return result(None)


def _key_at(chain: _Chain, seq: int) -> Ed25519PublicKey:
    return [key for start, key in chain.key_from if start <= seq][-1]


def _check_witness(directory: Path, chain: _Chain, last_line: Line) -> Problem | None:
    """The first checkpoint ``directory`` holds that the log does not prove, or None.

    Each must be signed by the key in force at its seq, be byte-for-byte the log's entry at that
    seq, and the log's tree must extend its tree (RFC 9162 consistency proof, verified as the RFC
    says). One ahead of the log is a cut.
    """
    tree: MerkleTree | None = None
    for w in witnessed(directory):
        where = Problem(str(w.path), 0, w.seq, "")
        entry, why = parse_entry(w.data)
        if entry is None or entry["event"] != Event.CHECKPOINT or entry["seq"] != w.seq:
            return Problem(where.segment, 0, w.seq, f"not a checkpoint entry of seq {w.seq} ({why or entry['event']})")  # type: ignore[index]
        why = check_signature(entry, _key_at(chain, min(w.seq, chain.seq)))
        if why:
            return Problem(where.segment, 0, w.seq, f"witnessed checkpoint {w.seq} is not from this log: {why}",
                           signature=True)
        size, root = entry["details"]["tree_size"], bytes.fromhex(entry["details"]["root"])
        if w.seq >= chain.seq:
            return Problem(where.segment, 0, w.seq,
                           f"witnessed checkpoint seq {w.seq} (tree size {size}, signed {entry['time']}) is ahead of "
                           f"the log, which ends before seq {chain.seq}: entries {chain.seq}..{w.seq} are missing "
                           f"(the log was cut after {last_line.segment} line {last_line.number})")
        if tree is None:
            tree = MerkleTree(chain.leaves)
        proof = tree.consistency_proof(size, tree.size)
        if not verify_consistency(size, tree.size, root, tree.root(), proof) or chain.checkpoints.get(w.seq) != w.data:
            return Problem(where.segment, 0, w.seq,
                           f"witnessed checkpoint seq {w.seq} (tree size {size}, signed {entry['time']}) does not "
                           f"match the log: the log's first {size} entries are not the ones witnessed "
                           "(rewritten, or cut and written again)")
    return None


def _records(data: bytes, tear: Tail) -> bool:
    """Whether ``data`` claims to be the torn_tail record of ``tear`` (check() then verifies it)."""
    entry, _ = parse_entry(data)
    return entry is not None and entry["event"] == Event.TORN_TAIL and entry["details"] == tear.record()


def _check_checkpoint_file(directory: Path, chain: _Chain) -> str | None:
    """Why checkpoint.json shows the log is incomplete, or None."""
    path = directory / CHECKPOINT_FILE
    if not path.exists():
        return None
    data = path.read_bytes().rstrip(b"\n")
    saved, why = parse_entry(data)
    if saved is None or saved["event"] != Event.CHECKPOINT:
        return f"{CHECKPOINT_FILE} is not a checkpoint entry ({why or saved['event']})"  # type: ignore[index]
    if saved["seq"] >= chain.seq:
        why = check_signature(saved, chain.key)
        if why:
            return f"{CHECKPOINT_FILE} (seq {saved['seq']}) is not from this log: {why}"
        return (f"the log ends before seq {chain.seq}, but {CHECKPOINT_FILE} is checkpoint seq {saved['seq']} "
                f"signed {saved['time']}: entries {chain.seq}..{saved['seq']} are missing (the log was cut)")
    if chain.checkpoints.get(saved["seq"]) != data:
        return f"{CHECKPOINT_FILE} (seq {saved['seq']}) differs from the log's entry {saved['seq']}"
    return None
