"""The sync pipeline, one module per stage: receive → ingest → outbox → push.

``breaker`` and ``ratelimit`` guard the push; ``enqueue`` wakes the workers by task name,
so that a stage schedules work without importing the tasks that call it.
"""
