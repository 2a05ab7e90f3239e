import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nventory.settings")

# Sets Django up (apps loaded) before the webhook handler is built.
_pages = get_wsgi_application()

from nventory.webhook_handler import WebhookHandler, dispatching_application  # noqa: E402

application = dispatching_application(pages=_pages, webhooks=WebhookHandler())

# Web requests, like tasks, end a statement stuck behind a lock (nventory.db).
from nventory import db  # noqa: E402

db.limit_statement_time()
