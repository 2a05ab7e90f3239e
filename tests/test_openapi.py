"""The OpenAPI schema: served, complete, and generated without a warning."""

from __future__ import annotations

import json
import re
import sys

import pytest
import yaml
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.urls import path
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.management.commands.spectacular import SchemaGenerationError
from drf_spectacular.validation import validate_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.views import APIView

from nventory.api import VISIBLE_CHARACTER_PATTERN

EXPECTED_OPERATIONS = {
    ("get", "/api/v1/skus/"),
    ("post", "/api/v1/skus/"),
    ("get", "/api/v1/skus/{code}/"),
    ("get", "/api/v1/skus/{code}/stock/"),
    ("get", "/api/v1/locations/"),
    ("post", "/api/v1/locations/"),
    ("get", "/api/v1/locations/{code}/"),
    ("get", "/api/v1/events/"),
    ("post", "/api/v1/receipts/"),
    ("post", "/api/v1/adjustments/"),
    ("post", "/api/v1/transfers/"),
    ("post", "/api/v1/reservations/"),
    ("get", "/api/v1/reservations/{reservation_id}/"),
    ("post", "/api/v1/reservations/{reservation_id}/confirm/"),
    ("post", "/api/v1/reservations/{reservation_id}/release/"),
    ("post", "/api/v1/orders/commit/"),
    ("post", "/api/v1/orders/cancel/"),
    ("post", "/api/v1/orders/ship/"),
    ("post", "/api/v1/orders/return/"),
    ("get", "/api/v1/channels/"),
    ("get", "/api/v1/listings/{listing_id}/explanation/"),
    ("get", "/api/v1/dead-letters/"),
    ("post", "/api/v1/dead-letters/{dead_letter_id}/replay/"),
    ("get", "/api/v1/oversell-incidents/"),
    ("get", "/api/v1/bundles/"),
    ("post", "/api/v1/bundles/"),
    ("get", "/api/v1/bundles/{code}/"),
    ("put", "/api/v1/bundles/{code}/"),
    ("get", "/api/v1/listings/"),
    ("get", "/api/v1/buffer-rules/"),
    ("get", "/api/v1/alerts/"),
    ("get", "/api/v1/reconciliation-runs/"),
    ("get", "/api/v1/reconciliation-runs/{run_id}/"),
    ("get", "/api/v1/reconciliation-runs/{run_id}/discrepancies/"),
    ("get", "/api/v1/discrepancies/"),
}


def _operations(schema: dict) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, operations in schema["paths"].items()
        if path.startswith("/api/v1/")
        for method in operations
    }


@pytest.mark.django_db
def test_schema_endpoint_serves_a_valid_schema_of_every_operation():
    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = json.loads(response.content)
    validate_schema(schema)
    assert _operations(schema) >= EXPECTED_OPERATIONS
    commit = schema["paths"]["/api/v1/orders/commit/"]["post"]
    assert set(commit["responses"]) == {
        "201",
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "415",
        "429",
    }
    assert {"tokenAuth": []} in commit["security"]


@pytest.mark.django_db
def test_list_operations_document_limit_offset_pagination():
    schema = json.loads(APIClient().get("/api/schema/", {"format": "json"}).content)
    events = schema["paths"]["/api/v1/events/"]["get"]
    names = {parameter["name"] for parameter in events["parameters"]}
    assert {"limit", "offset", "sku", "kind", "location", "since", "until"} <= names
    ok = events["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/PaginatedInventoryEventList"}


@pytest.fixture
def generator_stats():
    """Warnings are counted process-wide; each test here starts and ends with none."""
    GENERATOR_STATS.reset()
    yield GENERATOR_STATS
    GENERATOR_STATS.reset()


def test_spectacular_command_validates_without_warnings(tmp_path, generator_stats):
    """The gate `manage.py spectacular --validate --fail-on-warn` passes on the whole site."""
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = yaml.safe_load(target.read_text())
    assert _operations(schema) >= EXPECTED_OPERATIONS


class _UndocumentedApi(APIView):
    def get(self, request: Request) -> Response:
        return Response({})


urlpatterns = [path("undocumented/", _UndocumentedApi.as_view())]


def test_fail_on_warn_does_catch_an_undocumented_view(tmp_path, generator_stats):
    """A control for the test above: the gate fails on a view drf-spectacular cannot read."""
    with pytest.raises(SchemaGenerationError):
        call_command(
            "spectacular",
            "--fail-on-warn",
            "--urlconf",
            __name__,
            "--file",
            str(tmp_path / "schema.yaml"),
        )


@pytest.mark.django_db
def test_docs_page_answers():
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


@pytest.mark.django_db
def test_docs_page_loads_every_asset_from_this_server():
    """Swagger UI comes from drf-spectacular-sidecar: the page names no other host, and
    each script and stylesheet it names is served here."""
    page = APIClient().get("/api/docs/").content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets
    assert not [url for url in assets if re.match(r"(https?:)?//", url)]
    scripts = [url for url in assets if url.endswith((".js", ".css"))]
    assert any("swagger-ui" in url for url in scripts)
    for url in scripts:
        assert finders.find(url.removeprefix(settings.STATIC_URL).lstrip("/")), url


@pytest.mark.django_db
def test_every_api_operation_documents_the_errors_any_request_may_get():
    """401, 403, 429 and 400 on every operation, 413 and 415 where there is a body; each
    error but 400 with the Error body {detail, code}."""
    schema = json.loads(APIClient().get("/api/schema/", {"format": "json"}).content)
    error = {"$ref": "#/components/schemas/Error"}
    assert set(schema["components"]["schemas"]["Error"]["required"]) == {"detail", "code"}
    for method, route in EXPECTED_OPERATIONS:
        operation = schema["paths"][route][method]
        expected = {"400", "401", "403", "429"}
        if "requestBody" in operation:
            expected |= {"413", "415"}
            assert set(operation["requestBody"]["content"]) == {"application/json"}
        assert expected <= set(operation["responses"]), (method, route)
        for status in expected - {"400"}:
            body = operation["responses"][status]["content"]["application/json"]["schema"]
            assert body == error, (method, route, status)


@pytest.mark.django_db
def test_a_string_that_may_not_be_blank_is_documented_as_holding_a_visible_character(
    authorised_api_client,
):
    """DRF trims a string before it checks for blank: a key of spaces is refused, and the
    schema says so, so that a client (or a schema checker) does not take it for valid."""
    schema = json.loads(APIClient().get("/api/schema/", {"format": "json"}).content)
    body_ref = schema["paths"]["/api/v1/orders/return/"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]["$ref"]
    body = schema["components"]["schemas"][body_ref.rsplit("/", 1)[-1]]
    assert body["properties"]["idempotency_key"]["pattern"] == VISIBLE_CHARACTER_PATTERN
    assert "pattern" not in body["properties"]["external_reference"]  # may be blank

    answer = authorised_api_client.post(
        "/api/v1/orders/return/",
        {"sku": "A", "location": "A", "quantity": 1, "idempotency_key": "   "},
        format="json",
    )
    assert answer.status_code == 400
    assert "idempotency_key" in answer.json()


def test_the_visible_character_pattern_finds_exactly_what_python_does_not_strip():
    """DRF's blank check follows str.strip: the schema's pattern must agree on every
    character, or a schema checker's valid string is refused (or the reverse)."""
    pattern = re.compile(VISIBLE_CHARACTER_PATTERN)
    disagree = [
        hex(code)
        for code in range(sys.maxunicode + 1)
        if (pattern.search(chr(code)) is not None) != bool(chr(code).strip())
    ]
    assert disagree == []


@pytest.mark.django_db
def test_api_root_links_every_resource(admin_user):
    client = APIClient()
    client.force_authenticate(admin_user)
    answer = client.get("/api/v1/")
    assert answer.status_code == 200
    links = answer.json()
    assert links["skus"].endswith("/api/v1/skus/")
    assert links["dead_letters"].endswith("/api/v1/dead-letters/")
    for url in links.values():
        assert client.get(url).status_code in {200, 405}  # POST-only resources answer 405


@pytest.mark.slow
def test_simultaneous_first_requests_for_the_schema_all_succeed(django_db_setup):
    """gunicorn's threads asking for the schema at once, before any was generated: none
    gets a 500 (drf-spectacular's first generation is not thread-safe)."""
    import concurrent.futures
    import os
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path
    from urllib.parse import urlsplit, urlunsplit

    import requests
    from django.conf import settings

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    parts = urlsplit(str(settings.DATABASE_URL))
    database_url = urlunsplit(parts._replace(path="/" + settings.DATABASES["default"]["NAME"]))
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "WEB_ADDR": f"127.0.0.1:{port}",
        "WEB_WORKERS": "1",
        "WEB_THREADS": "8",
    }
    project = Path(__file__).resolve().parents[1]
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "nventory/gunicorn_conf.py"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                # The first answer of a fresh worker loads the project: it may take seconds.
                requests.get(f"http://127.0.0.1:{port}/admin/login/", timeout=10)
                break
            except (requests.ConnectionError, requests.Timeout):
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        url = f"http://127.0.0.1:{port}/api/schema/"
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(
                pool.map(lambda _: requests.get(url, timeout=30).status_code, range(8))
            )
        assert statuses == [200] * 8
    finally:
        web.terminate()
        web.wait(timeout=10)
