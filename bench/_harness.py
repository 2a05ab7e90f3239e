"""What every benchmark shares: servers, a database of its own, Django, progress, JSON.

A bench script runs as ``.venv/bin/python bench/<name>.py``. With no DATABASE_URL it
re-runs itself under the embedded runner (``.data/bench``). It always works in a database
of its own (``<name of DATABASE_URL's database>_bench``) so it never touches real data.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))


def ensure_servers() -> None:
    """Re-execute this script under the embedded runner when no servers are configured."""
    if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
        return
    command = [
        sys.executable,
        "-m",
        "nventory.embedded",
        "--data-dir",
        str(PROJECT_DIR / ".data" / "bench"),
        "--",
        sys.executable,
        *sys.argv,
    ]
    os.chdir(PROJECT_DIR)
    os.execv(sys.executable, command)  # noqa: S606


def setup_django() -> None:
    """Point Django at the bench database (created if missing), migrate it, set it up."""
    import dj_database_url
    import psycopg

    base = dj_database_url.parse(os.environ["DATABASE_URL"])
    bench_name = f"{base['NAME']}_bench"
    admin_kwargs: dict[str, Any] = {
        "dbname": base["NAME"],
        "user": base.get("USER") or None,
        "host": base.get("HOST") or None,
        "port": base.get("PORT") or None,
        "password": base.get("PASSWORD") or None,
    }
    with psycopg.connect(
        **{k: v for k, v in admin_kwargs.items() if v}, autocommit=True
    ) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (bench_name,)
        ).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{bench_name}"')
    os.environ["DATABASE_URL"] = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + f"/{bench_name}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nventory.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(samples: list[float], fraction: float) -> float:
    if not samples:
        return float("nan")
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=1000, method="inclusive")[round(fraction * 1000) - 1]


def emit(figures: dict[str, Any]) -> None:
    """The last line of every bench: its figures as one line of JSON."""
    print(json.dumps(figures, sort_keys=True), flush=True)
