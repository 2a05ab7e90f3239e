"""The sync pipeline, one module per stage: receive → ingest → outbox → push.

``breaker`` and ``ratelimit`` guard the push; ``velocity`` raises a channel's buffer for a
SKU selling faster than its limit, once ingest has committed the sale; ``enqueue`` wakes
the workers by task name, so that a stage schedules work without importing the tasks that
call it.
"""
