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
