"""gunicorn settings of the web process (``make run``, and a start for production).

Sized for a burst of webhooks on two cores: two processes of eight threads answer sixteen
requests at once (a delivery is one HMAC and one INSERT, mostly waiting on PostgreSQL),
and a deep listen backlog queues a burst beyond that instead of resetting connections, so
a platform never has to redeliver. ``WEB_WORKERS`` and ``WEB_THREADS`` resize it.
"""

import os

_address = os.environ.get("WEB_ADDR", "127.0.0.1:8000")
# runserver took a bare port too.
bind = f"127.0.0.1:{_address}" if _address.isdigit() else _address
workers = int(os.environ.get("WEB_WORKERS", "2"))
threads = int(os.environ.get("WEB_THREADS", "8"))
backlog = 2048
# Longer than STATEMENT_TIMEOUT_S (30 s): a request stuck behind a lock answers its error
# before its worker is killed.
timeout = 40
graceful_timeout = 10
wsgi_app = "nventory.wsgi"
