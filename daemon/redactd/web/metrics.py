"""``/metrics``: Prometheus text computed at each scrape from the job store, outbox and retention tables.

Nothing is counted in memory: every figure is read from the same durable state the CLI reads, so
a restart of the console or the daemon loses no history and two consoles agree. Durations come
from each finished job's ``started_at`` / ``finished_at`` (its last attempt); frames per second
also need the frame count, read from the published sidecar and cached per job (it never changes).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from redactd.jobflow.jobstore import JobState
from redactd.jobflow.outbox import custody_lag

if TYPE_CHECKING:
    from redactd.web.data import Console

DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 3 * 3600.0, 6 * 3600.0)
FPS_BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 25.0, 30.0, 50.0, 100.0, 200.0, 500.0)

_frames_cache: dict[str, int | None] = {}
_cache_lock = threading.Lock()


def _histogram(name: str, doc: str, samples: dict[str, list[float]], buckets: tuple[float, ...]) -> Metric:
    fam = HistogramMetricFamily(name, doc, labels=["policy"])
    for policy, values in sorted(samples.items()):
        cumulative = [(str(b), float(sum(1 for v in values if v <= b))) for b in buckets]
        cumulative.append(("+Inf", float(len(values))))
        fam.add_metric([policy], cumulative, sum_value=sum(values))
    return fam


class _Collector:
    def __init__(self, console: Console) -> None:
        self.console = console

    def _frames(self, job_id: str, sidecar_path: Any) -> int | None:
        with _cache_lock:
            if job_id in _frames_cache:
                return _frames_cache[job_id]
        frames: int | None = None
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            doc = json.loads(sidecar_path.read_bytes())
            frames = int((doc.get("detections") or doc)["counts"]["frames"])  # visual; metadata-only has none
        with _cache_lock:
            _frames_cache[job_id] = frames
        return frames

    def collect(self) -> Iterator[Metric]:
        c = self.console
        up = GaugeMetricFamily("redactd_job_store_up", "1 when the job store could be read")
        if not c.has_store():
            up.add_metric([], 0.0)
            yield up
            yield from self._volumes()
            return
        up.add_metric([], 1.0)
        yield up
        with c.store() as store:
            counts = store.counts()
            finished = store.jobs({JobState.PUBLISHED, JobState.REVIEW, JobState.FAILED})
            waiting = store.jobs({JobState.ADMITTED})
        jobs = GaugeMetricFamily("redactd_jobs", "jobs in each state", labels=["state"])
        for state, n in counts.items():
            jobs.add_metric([state.value], float(n))
        yield jobs
        queue = GaugeMetricFamily("redactd_queue_depth", "admitted jobs waiting for a worker (due now or later)")
        queue.add_metric([], float(len(waiting)))
        yield queue

        durations: dict[str, list[float]] = {}
        fps: dict[str, list[float]] = {}
        for j in finished:
            if not (j.started_at and j.finished_at) or j.state is JobState.FAILED:
                continue
            took = max(0.0, j.finished_at - j.started_at)
            durations.setdefault(j.policy_id, []).append(took)
            if j.state is JobState.PUBLISHED and j.output_path is not None and took > 0:
                frames = self._frames(j.id, j.output_path.with_name(j.output_path.name + ".json"))
                if frames:
                    fps.setdefault(j.policy_id, []).append(frames / took)
        yield _histogram("redactd_job_duration_seconds", "processing time of finished jobs (last attempt), "
                         "by redaction policy", durations, DURATION_BUCKETS)
        yield _histogram("redactd_job_fps", "frames per second of published jobs, by redaction policy", fps,
                         FPS_BUCKETS)
        yield from self._transitions()
        custody = custody_lag(c.store_file)
        pending, oldest = custody["queued"], custody["oldest_age_s"]
        g = GaugeMetricFamily("redactd_custody_pending_entries", "custody entries queued but not yet in the log")
        g.add_metric([], float(pending))
        yield g
        g = GaugeMetricFamily("redactd_custody_lag_seconds", "age of the oldest custody entry not yet in the log "
                              "(0 when none waits)")
        g.add_metric([], float(oldest or 0.0))
        yield g
        yield from self._retention()
        yield from self._volumes()

    def _query(self, sql: str) -> list[Any]:
        conn = sqlite3.connect(f"file:{self.console.store_file}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:  # a table not created yet (e.g. retention never ran)
            return []
        finally:
            conn.close()

    def _transitions(self) -> Iterator[Metric]:
        rows = self._query("SELECT from_state != 'processing', COUNT(*) FROM transitions "
                           "WHERE to_state = 'admitted' AND from_state IN ('processing', 'failed', 'review') "
                           "AND (detail IS NULL OR detail NOT LIKE 'boxes approved%') GROUP BY 1")
        retries = CounterMetricFamily("redactd_job_retries", "jobs sent back to the queue", labels=["cause"])
        by = {bool(k): float(n) for k, n in rows}
        retries.add_metric(["automatic"], by.get(False, 0.0))  # transient error, crash, restart
        retries.add_metric(["operator"], by.get(True, 0.0))  # jobs retry, review re-queue
        yield retries

    def _retention(self) -> Iterator[Metric]:
        purges = CounterMetricFamily("redactd_retention_purges", "retention deletions by outcome",
                                     labels=["status"])
        found = dict(self._query("SELECT status, COUNT(*) FROM retention_purges GROUP BY status"))
        for status in ("purged", "refused", "abandoned", "intended"):
            purges.add_metric([status], float(found.get(status, 0)))
        yield purges
        last = self._query("SELECT MAX(finished_at) FROM retention_runs WHERE dry_run = 0")
        g = GaugeMetricFamily("redactd_retention_last_run_timestamp_seconds",
                              "when the last applied retention run finished (0: never)")
        g.add_metric([], float(last[0][0] or 0.0) if last else 0.0)
        yield g

    def _volumes(self) -> Iterator[Metric]:
        from redactd.web.data import volumes

        free = GaugeMetricFamily("redactd_volume_free_bytes", "free space on each volume holding a configured "
                                 "folder", labels=["folders"])
        size = GaugeMetricFamily("redactd_volume_size_bytes", "size of each such volume", labels=["folders"])
        for v in volumes(self.console.cfg):
            label = ",".join(name for name, _ in v.folders)
            free.add_metric([label], float(v.free))
            size.add_metric([label], float(v.total))
        yield free
        yield size


def render_metrics(console: Console) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(console))  # type: ignore[arg-type]
    started = time.monotonic()
    body = generate_latest(registry)
    took = time.monotonic() - started
    body += (b"# HELP redactd_scrape_seconds time spent computing these metrics\n"
             b"# TYPE redactd_scrape_seconds gauge\n" + f"redactd_scrape_seconds {took:.6f}\n".encode())
    return body, CONTENT_TYPE_LATEST
