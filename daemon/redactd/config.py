"""The daemon's configuration file: its format, validation and loading."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from redactd.errors import ConfigError
from redactd.policy import PolicySet
from redactd.yamlfile import load_model

_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1000, "KIB": 1024, "M": 1024**2, "MB": 1000**2, "MIB": 1024**2,
          "G": 1024**3, "GB": 1000**3, "GIB": 1024**3, "T": 1024**4, "TB": 1000**4, "TIB": 1024**4}


def parse_size(value: object) -> int:
    """'50 GiB', '500MB', 1024 -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
        if m and m.group(2).upper() in _UNITS:
            return int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    raise ValueError("expected a size such as 500 MiB, 50 GiB or a number of bytes")


Size = Annotated[int, BeforeValidator(parse_size), Field(ge=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Inbox(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    path: Path
    policy: str = Field(description="id of the redaction policy applied to files from this inbox")
    watch: Literal["auto", "inotify", "poll"] = "auto"
    receipts: bool = Field(False, description="write inbox/.redactd/FILE.txt telling the contributor what "
                           "became of each file")


class Limits(_Strict):
    max_file_size: Size = parse_size("50 GiB")
    settle_seconds: float = Field(10.0, ge=0, description="size and mtime must be stable this long")
    rescan_seconds: float = Field(300.0, ge=5, description="periodic full rescan of every inbox")
    job_timeout_seconds: float = Field(6 * 3600, ge=10)
    max_attempts: int = Field(3, ge=1, description="a job that crashes this often goes to failed")
    retry_backoff_seconds: float = Field(30.0, ge=0, description="wait before the first retry; doubles each time")
    min_free_space: Size = Field(parse_size("1 GiB"), description="admission pauses while scratch, the raw store "
                                 "or clean storage has less free than this plus the size of the file waiting")


class Retention(_Strict):
    policy: str = Field(description="id of the retention policy")
    schedule: str = Field("17 * * * *", description="cron expression (minute hour day month weekday)")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        CronTrigger.from_crontab(value)  # raises ValueError naming the bad field
        return value


class Custody(_Strict):
    directory: Path
    signing_key: Path
    passphrase_file: Path | None = None
    checkpoint_minutes: float = Field(60.0, gt=0)
    #: While entries arrive, a signed checkpoint covers them within this many seconds (and a
    #: burst is checkpointed as soon as it ends): the window in which a cut tail goes unnoticed.
    checkpoint_seconds: float = Field(5.0, gt=0, le=3600)
    segment_max_bytes: Size = parse_size("64 MiB")
    #: Directories every checkpoint is also delivered to, that the daemon can add to but not
    #: rewrite (another share, the officer's group, sticky bit): see redactd.custody.witness.
    witnesses: list[Path] = []


class Web(_Strict):
    """The console and ``/metrics`` (``redactd web``, or the daemon itself when this section is present)."""

    listen: str = Field("127.0.0.1", description="address to bind; keep 127.0.0.1 behind a reverse proxy")
    port: int = Field(8477, ge=1, le=65535)
    metrics_token_file: Path | None = Field(
        None, description="file holding the bearer token /metrics wants from anywhere but 127.0.0.1")
    trusted_proxies: list[str] = Field(
        default_factory=lambda: ["127.0.0.1"],
        description="addresses whose X-Forwarded-For/-Proto headers are believed (the TLS reverse proxy)")
    session_hours: float = Field(12.0, gt=0, le=24 * 30)


class BrokerSettings(_Strict):
    """Where the Dramatiq broker (Redis) is and how to talk to it; the daemon and workers share these."""

    broker_url: str = Field(description="redis://HOST:6379/0, rediss://… for TLS, or unix:///run/redis/redis.sock")
    credentials_file: Path = Field(description="shared HMAC key (and Redis password), 0600; "
                                   "made by `redactd worker credentials`")
    queue: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")] = "redactd-jobs"
    results_queue: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")] = "redactd-results"
    heartbeat_timeout_seconds: float = Field(
        60.0, ge=1, description="a worker silent this long is taken for dead and its job is handed to another")

    @field_validator("broker_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^(redis|rediss|unix)://", value):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        return value


class LocalExecutor(_Strict):
    """Each job in a child process on this machine; no server."""

    kind: Literal["local"] = "local"


class DramatiqExecutor(BrokerSettings):
    """Each job sent through Redis to `redactd worker` processes, possibly on other hosts."""

    kind: Literal["dramatiq"]
    scratch_dir: Path = Field(description="job scratch space on storage every worker mounts (NFS/SMB)")
    lost_after_seconds: float = Field(
        120.0, ge=5, description="how long a job may go unheard of before the daemon checks that the broker "
        "still holds it, and sends it again if not")


class DaemonConfig(_Strict):
    version: Literal[1]
    inboxes: list[Inbox] = Field(min_length=1)
    raw_store: Path
    clean_dir: Path
    review_dir: Path
    failed_dir: Path
    state_dir: Path
    policies_dir: Path
    custody: Custody
    retention: Retention | None = None
    web: Web | None = None
    workers: int = Field(0, ge=0, le=64, description="jobs run at once (with executor dramatiq: jobs in "
                         "flight on the workers); 0 = half the CPU cores, at least 1")
    executor: LocalExecutor | DramatiqExecutor = Field(default_factory=LocalExecutor, discriminator="kind")
    limits: Limits = Limits()
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @model_validator(mode="after")
    def _unique_inboxes(self) -> DaemonConfig:
        names = [i.name for i in self.inboxes]
        if len(set(names)) != len(names):
            raise ValueError(f"inbox names must be unique (got {names})")
        return self

    @property
    def worker_count(self) -> int:
        return self.workers or max(1, (os.cpu_count() or 2) // 2)


def _absolute(cfg: DaemonConfig, base: Path) -> DaemonConfig:
    """Resolve every relative path against the config file's directory."""

    def fix(p: Path) -> Path:
        return p if p.is_absolute() else (base / p).resolve()

    return cfg.model_copy(
        update={
            "inboxes": [i.model_copy(update={"path": fix(i.path)}) for i in cfg.inboxes],
            "raw_store": fix(cfg.raw_store),
            "clean_dir": fix(cfg.clean_dir),
            "review_dir": fix(cfg.review_dir),
            "failed_dir": fix(cfg.failed_dir),
            "state_dir": fix(cfg.state_dir),
            "policies_dir": fix(cfg.policies_dir),
            "executor": cfg.executor if isinstance(cfg.executor, LocalExecutor) else cfg.executor.model_copy(
                update={"credentials_file": fix(cfg.executor.credentials_file),
                        "scratch_dir": fix(cfg.executor.scratch_dir)}),
            "custody": cfg.custody.model_copy(
                update={
                    "directory": fix(cfg.custody.directory),
                    "signing_key": fix(cfg.custody.signing_key),
                    "witnesses": [fix(w) for w in cfg.custody.witnesses],
                    "passphrase_file": fix(cfg.custody.passphrase_file)
                    if cfg.custody.passphrase_file
                    else None,
                }
            ),
            "web": cfg.web.model_copy(update={"metrics_token_file": fix(cfg.web.metrics_token_file)})
            if cfg.web is not None and cfg.web.metrics_token_file is not None else cfg.web,
        }
    )


class PathMapping(_Strict):
    daemon: Path = Field(description="a directory as the daemon sees it (raw store, executor.scratch_dir)")
    worker: Path = Field(description="the same directory as this worker mounts it")


class WorkerConfig(BrokerSettings):
    """`redactd worker --config FILE`: one worker host's settings."""

    version: Literal[1]
    path_map: list[PathMapping] = Field(default_factory=list, description="longest daemon prefix wins")
    concurrency: int = Field(1, ge=1, le=64, description="jobs this host runs at once")
    device: Literal["cpu", "cuda"] = Field("cpu", description="cuda: run the detectors on onnxruntime's CUDA "
                                           "provider (needs onnxruntime-gpu)")
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def to_worker(self, path: Path) -> Path:
        """A daemon path as this host mounts it; unchanged when no mapping covers it."""
        best = max((m for m in self.path_map if path == m.daemon or m.daemon in path.parents),
                   key=lambda m: len(m.daemon.parts), default=None)
        return path if best is None else best.worker / path.relative_to(best.daemon)


def load_worker_config(path: Path) -> WorkerConfig:
    cfg = load_model(path, WorkerConfig)
    base = path.resolve().parent
    creds = cfg.credentials_file
    return cfg.model_copy(update={"credentials_file": creds if creds.is_absolute() else (base / creds).resolve()})


DEFAULT_CONFIG = Path(os.environ.get("REDACTD_CONFIG", "/etc/redactd/redactd.yaml"))
#: Environment variable naming the cache directory (see `cache_dir`); the daemon sets it to
#: ``state_dir/cache`` for its jobs unless it is set already.
CACHE_ENV = "REDACTD_CACHE_DIR"


def cache_dir() -> Path | None:
    """Where models made at load are kept between jobs: ``$REDACTD_CACHE_DIR``, else systemd's
    ``$CACHE_DIRECTORY`` (the units' ``CacheDirectory=redactd``: /var/cache/redactd), else
    ``$XDG_CACHE_HOME/redactd`` (~/.cache/redactd). An empty ``$REDACTD_CACHE_DIR`` turns it off."""
    named = os.environ.get(CACHE_ENV)
    if named is not None:
        return Path(named) if named else None
    if systemd := os.environ.get("CACHE_DIRECTORY"):
        return Path(systemd.split(":")[0])
    xdg = os.environ.get("XDG_CACHE_HOME") or (os.path.expanduser("~/.cache") if "HOME" in os.environ else "")
    return Path(xdg) / "redactd" if xdg else None


def load_config(path: Path) -> DaemonConfig:
    cfg = load_model(path, DaemonConfig)
    return _absolute(cfg, path.resolve().parent)


def check_config(path: Path) -> tuple[DaemonConfig, PolicySet]:
    """Load the config and every policy; make sure each reference resolves."""
    cfg = load_config(path)
    policies = PolicySet.load_dir(cfg.policies_dir)
    for inbox in cfg.inboxes:
        try:
            policies.get_redaction(inbox.policy)
        except ConfigError as exc:
            raise ConfigError(f"{path}: inbox '{inbox.name}': {exc}") from None
    if isinstance(cfg.executor, DramatiqExecutor):
        from redactd.jobflow.broker import dramatiq_modules
        from redactd.jobflow.signing import load_credentials

        load_credentials(cfg.executor.credentials_file)
        dramatiq_modules()  # installed, and importable
    if cfg.retention is not None:
        try:
            policies.get_retention(cfg.retention.policy)
        except ConfigError as exc:
            raise ConfigError(f"{path}: key 'retention.policy': {exc}") from None
    return cfg, policies
