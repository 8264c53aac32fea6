"""Mutation campaign: every edit, deletion, reordering, truncation, re-signing or splice of a
1,000-entry log is caught by verify_log, which names the entry where it happened."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from redactd.custody import CustodyLog, Problem, canonical, verify_log
from redactd.custody.entry import line_hash, signing_bytes
from redactd.custody.keys import fingerprint, load_public_key
from redactd.custody.segments import CHECKPOINT_FILE, segment_paths

from .conftest import write_events


@dataclass(frozen=True)
class Loc:
    """Where one entry sits: segment file, 1-based line, byte range (newline at ``end``), seq."""

    path: Path
    number: int
    start: int
    end: int
    seq: int


def locate(directory: Path) -> list[Loc]:
    locs = []
    for path in segment_paths(directory):
        data, start = path.read_bytes(), 0
        for number, line in enumerate(data.split(b"\n")[:-1], 1):
            locs.append(Loc(path, number, start, start + len(line), json.loads(line)["seq"]))
            start += len(line) + 1
    return locs


def problem_after(directory: Path, pub: Any, path: Path, data: bytes) -> Problem:
    """Verify with ``path`` replaced by ``data``, restore it, and return the problem found."""
    original = path.read_bytes()
    path.write_bytes(data)
    try:
        result = verify_log(directory, pub)
    finally:
        path.write_bytes(original)
    assert result.problem is not None, f"tampering with {path.name} went unnoticed"
    return result.problem


def next_loc(locs: list[Loc], loc: Loc) -> Loc | None:
    i = locs.index(loc)
    return locs[i + 1] if i + 1 < len(locs) else None


@pytest.fixture
def campaign(generated: dict[str, Any], log_copy: Callable[[], Path]) -> tuple[Path, Any, list[Loc]]:
    directory = log_copy()
    return directory, load_public_key(generated["pub"]), locate(directory)


@pytest.mark.slow
class TestVerifyMutations:
    def test_the_untouched_log_passes(self, campaign: tuple[Path, Any, list[Loc]]) -> None:
        directory, pub, locs = campaign
        result = verify_log(directory, pub)
        assert result.ok, result.problem
        assert result.entries == len(locs) > 1000 and result.segments >= 5 and len(result.keys) == 2
        assert result.checkpoints >= 10 and not result.warnings

    def test_flipping_any_byte_names_the_entry_holding_it(self, campaign: tuple[Path, Any, list[Loc]]) -> None:
        directory, pub, locs = campaign
        rng = random.Random(1)
        targets = [(loc, loc.start) for loc in locs if loc.number == 1]  # first byte of each segment
        targets += [(loc, loc.end) for loc in locs if next_loc(locs, loc) is None or
                    next_loc(locs, loc).path != loc.path]  # type: ignore[union-attr]  # each final newline
        targets += [(loc, rng.randint(loc.start, loc.end)) for loc in rng.sample(locs, 120)]
        for loc, offset in targets:
            data = bytearray(loc.path.read_bytes())
            data[offset] ^= rng.randint(1, 255)
            problem = problem_after(directory, pub, loc.path, bytes(data))
            assert (problem.segment, problem.line, problem.seq) == (loc.path.name, loc.number, loc.seq), \
                f"flip at {loc.path.name}:{offset}: {problem}"

    def test_deleting_an_entry_of_each_kind_names_the_missing_seq(
            self, campaign: tuple[Path, Any, list[Loc]]) -> None:
        directory, pub, locs = campaign
        rng = random.Random(2)
        by_event: dict[str, list[Loc]] = {}
        for loc in locs:
            event = json.loads(loc.path.read_bytes()[loc.start:loc.end])["event"]
            by_event.setdefault(event, []).append(loc)
        assert len(by_event) >= 15  # every event kind the generator writes
        chosen = [rng.choice(group) for group in by_event.values()] + [locs[0], locs[-1]]
        for loc in chosen:
            data = loc.path.read_bytes()
            problem = problem_after(directory, pub, loc.path, data[:loc.start] + data[loc.end + 1:])
            following = next_loc(locs, loc)
            where = ((following.path.name, 1) if following and following.path != loc.path
                     else (loc.path.name, loc.number))
            assert (problem.segment, problem.line, problem.seq) == (*where, loc.seq), f"deleted {loc}: {problem}"

    def test_swapping_neighbours_names_the_first_of_them(self, campaign: tuple[Path, Any, list[Loc]]) -> None:
        directory, pub, locs = campaign
        pairs = [(a, b) for a, b in pairwise(locs) if a.path == b.path]
        for a, b in random.Random(3).sample(pairs, 20):
            data = a.path.read_bytes()
            swapped = data[:a.start] + data[b.start:b.end + 1] + data[a.start:a.end + 1] + data[b.end + 1:]
            problem = problem_after(directory, pub, a.path, swapped)
            assert (problem.segment, problem.line, problem.seq) == (a.path.name, a.number, a.seq)

    def test_truncating_at_any_offset_names_the_first_entry_lost(
            self, campaign: tuple[Path, Any, list[Loc]]) -> None:
        directory, pub, locs = campaign
        rng = random.Random(4)
        cuts = [(loc, loc.start) for loc in rng.sample(locs, 10)]  # exactly at a line boundary
        cuts += [(loc, rng.randint(loc.start + 1, loc.end)) for loc in rng.sample(locs, 25)]  # mid-line
        cuts += [(locs[-1], locs[-1].start), (locs[-1], locs[-1].end)]  # the last entry, the last newline
        for loc, offset in cuts:
            problem = problem_after(directory, pub, loc.path, loc.path.read_bytes()[:offset])
            assert problem.seq == loc.seq, f"cut {loc.path.name} at {offset}: {problem}"
            following = next_loc(locs, loc)
            if offset == loc.start and following is not None and following.path != loc.path:
                assert (problem.segment, problem.line) == (following.path.name, 1)
            elif offset == loc.start and loc.path != locs[-1].path:
                last_of_segment = [x for x in locs if x.path == loc.path][-1]
                following = next_loc(locs, last_of_segment)
                assert following is not None and (problem.segment, problem.line) == (following.path.name, 1)
            else:
                assert (problem.segment, problem.line) == (loc.path.name, loc.number)
            assert problem.torn_tail == (offset != loc.start and loc.path == locs[-1].path)

    def test_entries_re_signed_with_another_key_are_named(self, campaign: tuple[Path, Any, list[Loc]]) -> None:
        directory, pub, locs = campaign
        mallory = Ed25519PrivateKey.generate()
        for i, loc in enumerate(random.Random(5).sample(locs, 12)):
            data = loc.path.read_bytes()
            entry = json.loads(data[loc.start:loc.end])
            entry["actor"] = "mallory"
            if i % 2:  # claims its own key, or keeps claiming the real one
                entry["key"] = fingerprint(mallory.public_key())
            entry["sig"] = mallory.sign(signing_bytes(entry)).hex()
            forged = data[:loc.start] + canonical.dumps(entry) + data[loc.end:]
            problem = problem_after(directory, pub, loc.path, forged)
            assert (problem.segment, problem.line, problem.seq, problem.signature) == \
                (loc.path.name, loc.number, loc.seq, True)

    def test_a_rewritten_tail_chained_and_signed_by_another_key_is_named(
            self, campaign: tuple[Path, Any, list[Loc]]) -> None:
        directory, pub, locs = campaign
        mallory = Ed25519PrivateKey.generate()
        start = locs[600]
        prev = json.loads(start.path.read_bytes()[start.start:start.end])["prev"]
        for path in segment_paths(directory):
            out = []
            for line in path.read_bytes().split(b"\n")[:-1]:
                entry = json.loads(line)
                if entry["seq"] >= start.seq:
                    entry.update(prev=prev, key=fingerprint(mallory.public_key()), actor="mallory")
                    entry["sig"] = mallory.sign(signing_bytes(entry)).hex()
                    line = canonical.dumps(entry)
                    prev = line_hash(line)
                out.append(line + b"\n")
            path.write_bytes(b"".join(out))
        problem = verify_log(directory, pub).problem
        assert problem is not None and (problem.segment, problem.line, problem.seq) == \
            (start.path.name, start.number, start.seq)

    def test_splicing_two_logs_names_the_first_foreign_entry(
            self, generated: dict[str, Any], campaign: tuple[Path, Any, list[Loc]], tmp_path: Path) -> None:
        directory, pub, locs = campaign
        with CustodyLog.open(tmp_path / "other", generated["key"]) as other:  # same key, other history
            write_events(other, 300, random.Random(99))
        ours = [directory.joinpath(loc.path.name).read_bytes()[loc.start:loc.end + 1] for loc in locs]
        theirs = [loc.path.read_bytes()[loc.start:loc.end + 1] for loc in locate(tmp_path / "other")]
        spliced = tmp_path / "spliced"
        for cut in (1, 57, 150, 299):
            spliced.mkdir(exist_ok=True)
            (spliced / "custody-000001.jsonl").write_bytes(b"".join(ours[:cut] + theirs[cut:]))
            (spliced / CHECKPOINT_FILE).write_bytes((tmp_path / "other" / CHECKPOINT_FILE).read_bytes())
            problem = verify_log(spliced, pub).problem
            assert problem is not None and (problem.line, problem.seq) == (cut + 1, cut), problem

    def test_signed_entries_with_odd_values_or_an_unknown_format_version_are_named(
            self, campaign: tuple[Path, Any, list[Loc]]) -> None:
        directory, pub, locs = campaign
        loc = locs[3]
        data = loc.path.read_bytes()
        for change, complaint in (({"event": ["ingested"]}, "malformed entry"), ({"v": 4}, "format version 4")):
            entry = {**json.loads(data[loc.start:loc.end]), **change}
            edited = data[:loc.start] + canonical.dumps(entry) + data[loc.end:]
            problem = problem_after(directory, pub, loc.path, edited)
            assert (problem.line, problem.seq) == (loc.number, loc.seq) and complaint in problem.message

    def test_the_wrong_public_key_fails_at_the_first_entry(self, campaign: tuple[Path, Any, list[Loc]]) -> None:
        directory, _, _ = campaign
        result = verify_log(directory, Ed25519PrivateKey.generate().public_key())
        assert result.problem is not None and (result.problem.line, result.problem.seq) == (1, 0)
        assert "key in force" in result.problem.message

    def test_a_missing_checkpoint_file_is_a_warning_and_a_foreign_one_a_failure(
            self, campaign: tuple[Path, Any, list[Loc]]) -> None:
        directory, pub, _ = campaign
        saved = (directory / CHECKPOINT_FILE).read_bytes()
        (directory / CHECKPOINT_FILE).unlink()
        result = verify_log(directory, pub)
        assert result.ok and "would go unnoticed" in result.warnings[0]
        entry = json.loads(saved)
        entry["seq"] += 5
        (directory / CHECKPOINT_FILE).write_bytes(canonical.dumps(entry))
        problem = verify_log(directory, pub).problem
        assert problem is not None and "not from this log" in problem.message
