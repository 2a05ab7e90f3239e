"""nventory settings, read from the environment.

Every value has a safe default for local use; production sets DEBUG=false, SECRET_KEY,
ALLOWED_HOSTS, DATABASE_URL and REDIS_URL. https://docs.djangoproject.com/en/5.2/ref/settings/
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _embedded_services() -> dict[str, str]:
    """URLs of the servers a running `make run` started, for manage.py used beside it."""
    env_file = BASE_DIR / ".data" / "run" / "services.env"
    if not env_file.exists():
        return {}
    pairs = (line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


_running_services = _embedded_services()

# ---------------------------------------------------------------------------------------
# Core
# ---------------------------------------------------------------------------------------
# Off unless asked for: `make run`, `make test` and `python -m nventory.embedded` (the local
# commands) set DEBUG=true, and manage.py run beside `make run` (on its embedded servers,
# found in .data/run/services.env) is local too; anything else runs with DEBUG off.
DEBUG = env_bool("DEBUG", not os.environ.get("DATABASE_URL") and bool(_running_services))


def _local_secret_key() -> str:
    """A random key kept in .data/secret-key (created once, readable by its owner only),
    so local runs never share a key anyone could know and keep their sessions across
    restarts. Several processes starting at once agree on one key: the file is linked
    into place atomically and the loser reads the winner's."""
    path = BASE_DIR / ".data" / "secret-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f"secret-key.{os.getpid()}")
        draft.write_text(secrets.token_urlsafe(50))
        draft.chmod(0o600)
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = _local_secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI's files served from here, so the API docs page needs no outside network.
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_htmx",
    "template_partials",
    "simple_history",
    "import_export",
    "axes",
    "accounts",
    "inventory",
    "bundles",
    "channels",
    "reconciliation",
]

MIDDLEWARE = [
    # First: an oversized API body is refused before any other middleware reads it.
    "nventory.middleware.ApiBodyLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Edit history (buffers, the SKU map) records which operator made each change.
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes asks: answers a locked-out login with 429.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "nventory.urls"
WSGI_APPLICATION = "nventory.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                # The open alerts as the console's banners.
                "channels.views.alerts.alert_banners",
            ],
        },
    },
]

# ---------------------------------------------------------------------------------------
# Database: PostgreSQL only (row locks are the heart of the product).
# https://github.com/jazzband/dj-database-url
# ---------------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL") or _running_services.get("DATABASE_URL")
if not DATABASE_URL:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. Start the system with `make run` (it starts an embedded "
        "PostgreSQL), or set DATABASE_URL=postgresql://user@host:port/dbname."
    )
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
}
# Lets psycopg prepare the statements that ask for it (the stock-change statement in
# inventory/services.py); the ORM's client-side-bound queries are never prepared.
DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("nventory runs on PostgreSQL only: DATABASE_URL must be postgres")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Project-wide static files (the console's stylesheet, vendored JavaScript libraries).
STATICFILES_DIRS = [BASE_DIR / "static"]

# The console's sign-in page (Django's auth views); the admin keeps its own.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:scorecard"
LOGOUT_REDIRECT_URL = "login"
# The bearer token Prometheus sends to /metrics (`Authorization: Bearer ...`); empty: only
# signed-in users who may read the channels see the metrics.
# https://prometheus.io/docs/prometheus/latest/configuration/configuration/#scrape_config
METRICS_BEARER_TOKEN = os.environ.get("METRICS_BEARER_TOKEN", "")

# ---------------------------------------------------------------------------------------
# Logins: failed attempts are counted per user name and address (django-axes, in
# PostgreSQL); after AXES_FAILURE_LIMIT the pair is refused (429) for the cool-off time.
# Applies to every form that logs in with a password (the admin, the console).
# https://django-axes.readthedocs.io/en/latest/4_configuration.html
# ---------------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "accounts.backends.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = float(os.environ.get("LOGIN_COOLOFF_MINUTES", "15")) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
# The address counted is REMOTE_ADDR: behind a reverse proxy that is the proxy's, so the
# lockout then falls on the user name alone.
# What the debug page and error reports show: settings and request values whose names
# look secret are masked, and so is the password of any URL (DATABASE_URL, REDIS_URL).
DEFAULT_EXCEPTION_REPORTER_FILTER = "nventory.error_reports.SecretSafeExceptionReporterFilter"
DEFAULT_EXCEPTION_REPORTER = "nventory.error_reports.SecretSafeExceptionReporter"

# API tokens (accounts.ApiToken): the lifetime `manage.py issue_api_token` gives a token
# unless told otherwise.
API_TOKEN_LIFETIME_DAYS = float(os.environ.get("API_TOKEN_LIFETIME_DAYS", "90"))

# ---------------------------------------------------------------------------------------
# Security: strict when DEBUG is off, so `manage.py check --deploy` is clean.
# https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/
# ---------------------------------------------------------------------------------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True

# ---------------------------------------------------------------------------------------
# Email (reconciliation reports and alerts)
# https://docs.djangoproject.com/en/5.2/topics/email/
# ---------------------------------------------------------------------------------------
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# A mail server that accepts the connection and never answers must not hold a
# reconciliation (and its channel's lock) for good.
EMAIL_TIMEOUT = float(os.environ.get("EMAIL_TIMEOUT_S", "10"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "nventory@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
OPERATOR_EMAILS = env_list("OPERATOR_EMAILS", "")

# ---------------------------------------------------------------------------------------
# REST API  https://www.django-rest-framework.org/api-guide/settings/
# ---------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Each view names the permission it needs (nventory/api.py); one that names none is
    # refused to everyone.
    "DEFAULT_PERMISSION_CLASSES": ["nventory.api_permissions.OperationPermission"],
    "DEFAULT_THROTTLE_CLASSES": [
        "nventory.throttling.FailOpenUserRateThrottle",
        "nventory.throttling.FailOpenAnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": os.environ.get("API_THROTTLE_USER", "6000/minute"),
        "anon": os.environ.get("API_THROTTLE_ANON", "60/minute"),
    },
    # JSON only, bounded in size (API_MAX_BODY_BYTES) and nesting: the schema documents
    # one request format, and a form or multipart body has no shape for a BOM's lines.
    "DEFAULT_PARSER_CLASSES": ["nventory.parsers.BoundedJSONParser"],
    # DRF's test client sends what the API takes.
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_PAGINATION_CLASS": "nventory.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "nventory.errors.api_exception_handler",
}
# The admin's CSV import of listings changes them: it needs the change permission, and
# exporting needs the view one (the library allows both to anyone by default).
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "change"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"
SPECTACULAR_SETTINGS = {
    "TITLE": "nventory API",
    "DESCRIPTION": "Master stock of every SKU, synced to every sales channel.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Choice sets whose field names ("kind", "status") other sets use too.
    "ENUM_NAME_OVERRIDES": {
        "AlertKindEnum": "channels.models.Alert.Kind",
        "ReconciliationRunKindEnum": "reconciliation.models.ReconciliationRun.Kind",
        "ReconciliationRunStatusEnum": "reconciliation.models.ReconciliationRun.Status",
        "WebhookReceiptStatusEnum": "channels.models.WebhookReceipt.Status",
    },
    # The docs page loads Swagger UI from drf-spectacular-sidecar, not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Every operation documents the error answers any request may get (nventory.api).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "nventory.api.document_error_answers",
    ],
    # Path converters of the project's own (nventory.api.CodeConverter) read as strings.
    "PATH_CONVERTER_OVERRIDES": {"code": str},
}
# The largest API request body read; above it the answer is 413 (webhooks have their own
# cap below). Far above any request of this API, far below Django's in-memory limit.
API_MAX_BODY_BYTES = int(os.environ.get("API_MAX_BODY_BYTES", str(1024 * 1024)))

# ---------------------------------------------------------------------------------------
# Redis, cache and Celery  https://docs.celeryq.dev/en/stable/userguide/configuration.html
# ---------------------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL") or _running_services.get("REDIS_URL", "")
if not REDIS_URL:
    raise ImproperlyConfigured(
        "REDIS_URL is not set. Start the system with `make run` (it starts an embedded "
        "Redis), or set REDIS_URL=redis://host:port/0."
    )
# Rate-limit buckets, wake-up flags, the cache and the broker's sockets: a Redis that
# accepts connections but does not answer must fail the call (the pipeline then falls back
# on its sweeps), not hold a webhook's acknowledgement or a push for good.
REDIS_SOCKET_TIMEOUT_S = float(os.environ.get("REDIS_SOCKET_TIMEOUT_S", "2"))
# The throttle counters live in Redis so that every web process shares them.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {
            "socket_timeout": REDIS_SOCKET_TIMEOUT_S,
            "socket_connect_timeout": REDIS_SOCKET_TIMEOUT_S,
        },
    }
}
# Redis by default; any broker Celery supports, such as RabbitMQ
# (amqp://user:password@host:5672/vhost). Redis stays needed for the cache, rate limits
# and wake-up flags. https://docs.celeryq.dev/en/stable/getting-started/backends-and-brokers/
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL
# Redis broker: a message taken by a worker that dies unacknowledged is delivered again
# after this. Longer than any task may run (the reconciliation poll: 3900 s) and than any
# countdown the pipeline sets (backoffs and Retry-After are capped at 300 s), or a task
# would run twice at once. Nothing waits on it: what is owed lives in PostgreSQL, and the
# sweeps find it again within a minute.
# https://docs.celeryq.dev/en/stable/getting-started/backends-and-brokers/redis.html
CELERY_VISIBILITY_TIMEOUT_S = float(os.environ.get("CELERY_VISIBILITY_TIMEOUT_S", "7200"))
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "visibility_timeout": CELERY_VISIBILITY_TIMEOUT_S,
        "socket_timeout": REDIS_SOCKET_TIMEOUT_S,
        "socket_connect_timeout": REDIS_SOCKET_TIMEOUT_S,
    }
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
    else {}
)
# Seconds to connect to the broker, whichever it is; a publish that cannot get through is
# tried twice more, briefly, then fails (wake-ups are signals: the sweeps are the net).
CELERY_BROKER_CONNECTION_TIMEOUT = REDIS_SOCKET_TIMEOUT_S
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_REDIS_SOCKET_TIMEOUT = REDIS_SOCKET_TIMEOUT_S
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = REDIS_SOCKET_TIMEOUT_S
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 20
CELERY_TASK_TIME_LIMIT = 30
# Web requests and Celery tasks (not manage.py commands): PostgreSQL ends a statement
# after this many seconds (nventory/db.py); 0 for no limit.
STATEMENT_TIMEOUT_S = float(os.environ.get("STATEMENT_TIMEOUT_S", "30"))
# The most a request or task waits for a wake-up (Redis flag, broker publish) after its
# commit; after one that took longer, none is waited for during the backoff
# (channels.pipeline.enqueue). The work itself is committed either way.
WAKE_UP_WAIT_S = float(os.environ.get("WAKE_UP_WAIT_S", "0.25"))
WAKE_UP_BACKOFF_S = float(os.environ.get("WAKE_UP_BACKOFF_S", "5"))
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Celery's Django fixup closes the database connection before and after every task unless
# this is set, and a new connection costs more than most of our tasks. Connections are
# recycled by CONN_MAX_AGE and health checks instead (nventory/celery.py).
CELERY_DB_REUSE_MAX = 1_000_000
# Tests run tasks in process; CELERY_TASK_ALWAYS_EAGER=true makes that explicit.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# ---------------------------------------------------------------------------------------
# Domain
# ---------------------------------------------------------------------------------------
RESERVATION_DEFAULT_TTL_S = int(os.environ.get("RESERVATION_DEFAULT_TTL_S", "900"))
# Reconciliation: who gets the daily report and drift alerts, when a channel's drift
# alerts (percent of its listings), and after how many runs in a row a drift is "repeated".
RECONCILIATION_OPERATOR_EMAILS = env_list("RECONCILIATION_OPERATOR_EMAILS", "") or OPERATOR_EMAILS
RECONCILIATION_DRIFT_ALERT_PERCENT = float(
    os.environ.get("RECONCILIATION_DRIFT_ALERT_PERCENT", "2")
)
RECONCILIATION_REPEAT_RUNS = int(os.environ.get("RECONCILIATION_REPEAT_RUNS", "3"))
# Changes to one channel within this window go out in one push call (channels.tasks).
PUSH_COALESCE_WINDOW_S = float(os.environ.get("PUSH_COALESCE_WINDOW_S", "0.03"))
# A push's claim on the rows it sends, in seconds: a claim whose worker died is free again
# after this (the outbox sweep then wakes a pusher). Longer than any push call may take.
PUSH_CLAIM_LEASE_S = float(os.environ.get("PUSH_CLAIM_LEASE_S", "60"))
# A channel whose push calls fail this many times in a row is left alone for the cooldown,
# doubled on each trip in a row up to the maximum (channels.pipeline.breaker). Per channel:
# platform_settings "breaker_failures" and "breaker_cooldown_s".
# The failure that opens it is not counted against the items of its call, so with 3 (and
# the default 3 tries) an outage leaves no dead letters; a probe is one read, so the
# maximum is kept short: a channel back up is noticed within it.
PUSH_BREAKER_FAILURES = int(os.environ.get("PUSH_BREAKER_FAILURES", "3"))
PUSH_BREAKER_COOLDOWN_S = float(os.environ.get("PUSH_BREAKER_COOLDOWN_S", "5"))
PUSH_BREAKER_MAX_COOLDOWN_S = float(os.environ.get("PUSH_BREAKER_MAX_COOLDOWN_S", "30"))
# A channel's new webhook secret leaves the old one accepted this long
# (channels.services.rotate_webhook_secret):
# the platform may still deliver webhooks signed with it (Shopify: until it is revoked).
WEBHOOK_SECRET_ROTATION_GRACE_S = int(os.environ.get("WEBHOOK_SECRET_ROTATION_GRACE_S", "86400"))
# A webhook body above this is refused with 413 before it is read.
WEBHOOK_MAX_BODY_BYTES = int(os.environ.get("WEBHOOK_MAX_BODY_BYTES", str(1024 * 1024)))
# Alerts (channels.alerts): who is emailed when one opens and when it clears, and the
# thresholds of the conditions watched. The latency threshold is the scorecard's alert
# line (sync latency p95 over 60 s).
ALERT_EMAILS = env_list("ALERT_EMAILS", "") or OPERATOR_EMAILS
ALERT_LATENCY_P95_MS = float(os.environ.get("ALERT_LATENCY_P95_MS", "60000"))
ALERT_DEAD_LETTERS_THRESHOLD = int(os.environ.get("ALERT_DEAD_LETTERS_THRESHOLD", "10"))
# A new webhook secret shorter than this is refused (Standard Webhooks: 24 random bytes).
WEBHOOK_SECRET_MIN_LENGTH = int(os.environ.get("WEBHOOK_SECRET_MIN_LENGTH", "24"))
# A platform that signs a timestamp (eBay's SOAP Timestamp, TikTok Shop's envelope): a
# delivery signed further than this from now is refused (401), so a captured one cannot
# be replayed later (https://docs.stripe.com/webhooks#replay-attacks: 300 s).
WEBHOOK_TIMESTAMP_TOLERANCE_S = float(os.environ.get("WEBHOOK_TIMESTAMP_TOLERANCE_S", "300"))
# Signed deliveries kept quarantined per channel (the topic contradicts the body, no
# delivery id...); past this many, more are not stored and an alert is raised.
WEBHOOK_QUARANTINE_CAP = int(os.environ.get("WEBHOOK_QUARANTINE_CAP", "1000"))

# ---------------------------------------------------------------------------------------
# Outbound calls and secrets at rest
# ---------------------------------------------------------------------------------------
# Channels may point at loopback over http (the local simulators): on in `make run` and
# the tests, never in production. Otherwise only https to the platform's own API hosts.
CHANNELS_ALLOW_LOCAL_HOSTS = env_bool("CHANNELS_ALLOW_LOCAL_HOSTS", False)
# Fernet keys (comma-separated, newest first) that encrypt channel credentials and webhook
# secrets in the database; the first encrypts, all decrypt, so a new key is put first and
# `manage.py rotate_secrets_key` re-encrypts every row with it.
# https://cryptography.io/en/latest/fernet/#cryptography.fernet.MultiFernet
SECRETS_ENCRYPTION_KEYS = env_list("SECRETS_ENCRYPTION_KEYS", "")
# Without SECRETS_ENCRYPTION_KEYS (local runs): the keys are kept in this file, one per
# line, a first one generated when it is missing.
SECRETS_KEY_FILE = Path(
    os.environ.get("SECRETS_KEY_FILE", str(BASE_DIR / ".data" / "secrets.keys"))
)

# The velocity guard (channels.pipeline.velocity): a SKU selling more than this many units a
# minute on one channel, measured over the window, has that channel's buffer for it raised
# by the units its rate would sell in the cover time; the rise falls back once the rate is
# back under the limit, at least the hold time later. 0 turns the guard off. Per channel:
# platform_settings "velocity_units_per_min".
VELOCITY_GUARD_UNITS_PER_MIN = float(os.environ.get("VELOCITY_GUARD_UNITS_PER_MIN", "60"))
VELOCITY_GUARD_WINDOW_S = float(os.environ.get("VELOCITY_GUARD_WINDOW_S", "60"))
VELOCITY_GUARD_COVER_S = float(os.environ.get("VELOCITY_GUARD_COVER_S", "5"))
VELOCITY_GUARD_HOLD_S = float(os.environ.get("VELOCITY_GUARD_HOLD_S", "300"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
