import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nventory.settings")

application = get_wsgi_application()

# Web requests, like tasks, end a statement stuck behind a lock (nventory.db).
from nventory import db  # noqa: E402

db.limit_statement_time()
