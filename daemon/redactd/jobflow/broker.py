"""Connect to the Dramatiq broker (Redis): the one place that imports the optional `[distributed]` extra."""

from __future__ import annotations

from typing import Any

from redactd.config import BrokerSettings
from redactd.errors import ConfigError
from redactd.jobflow.signing import Credentials

#: The actor names on the wire: a job for a worker, and what a worker says back.
JOB_ACTOR = "redactd_job"
RESULT_ACTOR = "redactd_result"

#: Dead-worker maintenance runs on this share of broker calls (out of 1,000,000). Dramatiq's default
#: (0.1 %) can leave a dead worker's job waiting for many minutes on a small, quiet cluster; the
#: maintenance is one sorted-set range query, cheap at any rate.
MAINTENANCE_CHANCE = 100_000


def dramatiq_modules() -> tuple[Any, Any]:
    """``(dramatiq, RedisBroker)``, or a ConfigError that says how to install them."""
    try:
        import dramatiq
        from dramatiq.brokers.redis import RedisBroker
    except ImportError:
        raise ConfigError("executor 'dramatiq' needs the optional extra: pip install 'redactd[distributed]'") from None
    return dramatiq, RedisBroker


def connect(settings: BrokerSettings, creds: Credentials) -> Any:
    """A RedisBroker with only the middleware a long video job can live with.

    Dramatiq's default middleware would kill an actor after 10 minutes (TimeLimit) and retry a
    failed one 20 times (Retries): a job's time limit and attempts belong to the daemon, which
    counts them in SQLite, so no middleware runs here. An actor that raises has its message
    acknowledged; the daemon sees the job gone from the broker and sends it again.
    """
    _, RedisBroker = dramatiq_modules()
    import redis

    extra: dict[str, Any] = {"password": creds.redis_password} if creds.redis_password else {}
    pool = redis.ConnectionPool.from_url(settings.broker_url, socket_connect_timeout=10,
                                         health_check_interval=30, **extra)
    broker = RedisBroker(client=redis.Redis(connection_pool=pool), namespace="redactd",
                         heartbeat_timeout=int(settings.heartbeat_timeout_seconds * 1000),
                         maintenance_chance=MAINTENANCE_CHANCE,
                         middleware=[])
    for queue in (settings.queue, settings.results_queue):
        broker.declare_queue(queue)
    return broker


def broker_errors() -> tuple[type[BaseException], ...]:
    """What a broker call raises while Redis is down, restarting or loading its data."""
    import redis

    return (redis.exceptions.RedisError, OSError)


def message(queue: str, actor: str, kwargs: dict[str, str]) -> Any:
    dramatiq, _ = dramatiq_modules()
    return dramatiq.Message(queue_name=queue, actor_name=actor, args=(), kwargs=kwargs, options={})


def holds(broker: Any, queue: str, msg: Any) -> bool:
    """Whether the broker still has ``msg``: queued, or taken by a worker and not yet acknowledged.

    The Redis broker keeps every message body in the hash ``NAMESPACE:QUEUE.msgs`` from enqueue to
    acknowledgement; a message that is in neither that hash nor the dead-letter set was lost (a
    flushed or restored Redis) and only the daemon, from SQLite, can send it again.
    """
    return bool(broker.client.hexists(f"{broker.namespace}:{queue}.msgs", msg.options["redis_message_id"]))
