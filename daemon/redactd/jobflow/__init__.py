"""The job flow from admission to publishing, in the order a job meets it.

- ``jobstore``: the SQLite job store, the one source of truth for every job's state (daemon only).
- ``jobrun``: the job runner: takes queued jobs, hands them to an executor, records the outcome.
- ``workers``: the ``Executor`` interface and the ``local`` executor (a child process per job).
- ``distributed``, ``broker``, ``signing``, ``remote``: the ``dramatiq`` executor (Redis broker,
  signed messages, the daemon's results consumer and sweeper) and ``redactd worker`` on other hosts.
- ``pipeline``: ``run_job``, what either executor runs on one job (metadata, visual, audio, validation).
- ``publish``: the daemon's checks of a result and its move into clean storage or review.
- ``outbox``: custody entries queued with each transition, appended by the log's one writer.
"""
