"""kill -9 of a real writer process: nothing acknowledged is lost, a torn line is reported, then recorded."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from redactd.custody import CustodyLog, Event, verify_log
from redactd.custody.keys import load_public_key
from redactd.custody.segments import read_segment, segment_paths

# Appends until killed; prints each acknowledged seq. Entries after the third carry a large
# detail so one write() spans thousands of pages and a SIGKILL can land in the middle of it.
WRITER = """
import sys
from pathlib import Path
from redactd.log import configure
configure(level="error")
from redactd.custody import CustodyLog, Event
log = CustodyLog.open(Path(sys.argv[1]), Path(sys.argv[2]))
padding = "x" * int(sys.argv[3])
while True:
    entry = log.append(Event.INGESTED, job_id="job", raw_sha256="a" * 64,
                       padding=padding if log.size >= 3 else "")
    print(entry["seq"], flush=True)
"""


def start_writer(directory: Path, key: Path, padding: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", WRITER, str(directory), str(key), str(padding)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_seq(proc: subprocess.Popen[str], seq: int) -> list[int]:
    acknowledged = []
    assert proc.stdout is not None
    while not acknowledged or acknowledged[-1] < seq:
        line = proc.stdout.readline()
        assert line, f"writer died: {proc.stderr.read() if proc.stderr else ''}"
        acknowledged.append(int(line))
    return acknowledged


def kill_mid_write(proc: subprocess.Popen[str], segment: Path, timeout: float = 30.0) -> None:
    """SIGKILL the writer while the segment's last byte is not a newline: a line is half written."""
    fd = os.open(segment, os.O_RDONLY)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                return
        raise AssertionError("never saw a write in progress")
    finally:
        os.close(fd)


class TestCrashMidAppend:
    def test_a_torn_line_is_reported_then_recorded_in_a_new_segment(self, tmp_path: Path, key_path: Path,
                                                                    pub_path: Path) -> None:
        log_dir = tmp_path / "log"
        for _attempt in range(5):  # the kill can land just after a write completes; then try again
            proc = start_writer(log_dir, key_path, 16 * 1024 * 1024)
            wait_for_seq(proc, 2)
            kill_mid_write(proc, log_dir / "custody-000001.jsonl")
            if read_segment(log_dir / "custody-000001.jsonl")[1] is not None:
                break
        lines, tail = read_segment(log_dir / "custody-000001.jsonl")
        assert tail is not None, "five kills never tore a line"
        torn_bytes = (log_dir / "custody-000001.jsonl").read_bytes()

        result = verify_log(log_dir, load_public_key(pub_path))
        assert result.problem is not None and result.problem.torn_tail
        assert result.entries == len(lines) == result.problem.seq
        assert (result.problem.segment, result.problem.line) == ("custody-000001.jsonl", len(lines) + 1)
        assert f"the {len(lines)} entries before it verify" in result.problem.message

        with CustodyLog.open(log_dir, key_path) as log:
            log.append(Event.PUBLISHED, job_id="job", raw_sha256="a" * 64, output_sha256="b" * 64)
        assert (log_dir / "custody-000001.jsonl").read_bytes() == torn_bytes  # never rewritten
        record = json.loads(read_segment(log_dir / "custody-000002.jsonl")[0][0].data)
        assert record["event"] == "torn_tail" and record["seq"] == len(lines)
        assert record["details"] == {"segment": "custody-000001.jsonl", "line": len(lines) + 1,
                                     "offset": len(torn_bytes) - len(tail.data), "length": len(tail.data),
                                     "sha256": hashlib.sha256(tail.data).hexdigest()}
        after = verify_log(log_dir, load_public_key(pub_path))
        assert after.ok and after.tears_recorded == 1 and after.segments == 2

    def test_every_acknowledged_entry_survives_kill_9(self, tmp_path: Path, key_path: Path,
                                                       pub_path: Path) -> None:
        proc = start_writer(tmp_path, key_path, 0)
        acknowledged = wait_for_seq(proc, 150)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        result = verify_log(tmp_path, load_public_key(pub_path))
        assert result.entries >= acknowledged[-1] + 1
        assert result.ok or (result.problem is not None and result.problem.torn_tail)
        CustodyLog.open(tmp_path, key_path).close()  # the dead writer's lock is gone
        assert verify_log(tmp_path, load_public_key(pub_path)).ok
        assert len(segment_paths(tmp_path)) in (1, 2)


# Appends under a file-size limit until the kernel cuts a write short (a full disk, in effect).
FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from redactd.log import configure
configure(level="error")
from redactd.custody import CustodyLog, Event
from redactd.errors import CustodyError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG / a short write instead of dying
log = CustodyLog.open(Path(sys.argv[1]), Path(sys.argv[2]))
resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))
try:
    while True:
        log.append(Event.INGESTED, job_id="job", raw_sha256="a" * 64)
except CustodyError as exc:
    print("first:", exc)
try:
    log.append(Event.INGESTED, job_id="job", raw_sha256="a" * 64)
except CustodyError as exc:
    print("then:", exc)
"""


class TestFailedWrite:
    def test_a_short_write_stops_the_writer_and_the_next_start_records_the_tear(
            self, tmp_path: Path, key_path: Path, pub_path: Path) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        done = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path), str(key_path)],
                              capture_output=True, text=True, timeout=60, env=env, check=False)
        assert "first:" in done.stdout and "short write" in done.stdout, done.stderr
        assert "then:" in done.stdout and "stopped after a failed write" in done.stdout
        lines, tail = read_segment(tmp_path / "custody-000001.jsonl")
        assert tail is not None and (tmp_path / "custody-000001.jsonl").stat().st_size == 4000
        assert verify_log(tmp_path, load_public_key(pub_path)).problem.torn_tail  # type: ignore[union-attr]
        CustodyLog.open(tmp_path, key_path).close()
        result = verify_log(tmp_path, load_public_key(pub_path))
        assert result.ok and result.tears_recorded == 1 and result.entries == len(lines) + 2
