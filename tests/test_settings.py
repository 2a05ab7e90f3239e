"""Production settings pass Django's deployment checks; local defaults stay usable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

PROJECT_DIR = Path(__file__).resolve().parent.parent


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_values():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="false",
        SECRET_KEY="a-long-random-production-secret-" + "x9" * 20,
        ALLOWED_HOSTS="nventory.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_without_secret_key_refuses_to_start():
    result = _manage("check", DEBUG="false", SECRET_KEY="")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_sqlite_is_refused():
    result = _manage("check", DATABASE_URL="sqlite:///tmp/nventory.sqlite3")
    assert result.returncode != 0
    assert "PostgreSQL only" in result.stderr


@pytest.mark.django_db
@override_settings(DEBUG=False)
def test_an_unknown_api_or_webhook_url_answers_json_and_an_admin_one_html(client):
    """Programs get a JSON 404 with its code; people still get the HTML page."""
    for path in ("/api/v1/no-such-thing/", "/webhooks/shopify/"):
        answer = client.get(path)
        assert answer.status_code == 404
        assert answer.json() == {"detail": "Not found.", "code": "not_found"}
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


def _setting(name: str, **env: str) -> str:
    result = _manage(
        "shell",
        "--no-imports",
        "-c",
        f"from django.conf import settings; print(settings.{name})",
        **env,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_debug_is_off_unless_asked_for():
    environment = {key: value for key, value in os.environ.items() if key != "DEBUG"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Off, and so a secret key is required: nothing starts on a known one.
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
    assert _setting("DEBUG", SECRET_KEY="s" * 60, DEBUG="") == "False"
    assert _setting("DEBUG", DEBUG="true") == "True"


def test_a_local_run_uses_a_random_secret_key_kept_under_the_data_dir():
    first = _setting("SECRET_KEY", DEBUG="true", SECRET_KEY="")
    assert first == _setting("SECRET_KEY", DEBUG="true", SECRET_KEY="")
    assert first == (PROJECT_DIR / ".data" / "secret-key").read_text().strip()
    assert len(first) >= 50 and "local-development" not in first
    assert (PROJECT_DIR / ".data" / "secret-key").stat().st_mode & 0o077 == 0


def test_the_debug_page_shows_no_password_or_token(rf, settings):
    """DATABASE_URL's password, a Redis password and the API token of the request are
    masked on the page DEBUG shows for an error; the rest of the URL stays readable."""
    import sys as system

    from django.views.debug import technical_500_response

    # Built here, so that the page's own excerpt of this source does not show them.
    secrets = [f"{name}-canary-{'value'}" for name in ("db", "redis", "nvt_token")]
    settings.DEBUG = True
    settings.DATABASE_URL = f"postgresql://nventory:{secrets[0]}@db.internal:5432/nv"
    settings.CELERY_BROKER_URL = f"redis://:{secrets[1]}@cache.internal:6379/0"
    request = rf.get("/api/v1/skus/", HTTP_AUTHORIZATION=f"Token {secrets[2]}")
    request.META["DATABASE_URL"] = settings.DATABASE_URL  # as runserver's environment
    credential_url = settings.CELERY_BROKER_URL
    try:
        raise RuntimeError(f"cannot reach {credential_url}")
    except RuntimeError:
        page = technical_500_response(request, *system.exc_info()).content.decode()
    for secret in secrets:
        assert secret not in page
    assert "db.internal" in page  # the host is still there to diagnose
