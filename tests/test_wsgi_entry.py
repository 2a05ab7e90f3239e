"""The WSGI entry point: webhook deliveries take the lean handler, pages Django's full one."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import sys
from typing import Any

import pytest

from channels.models import WebhookReceipt
from channels.pipeline import receive
from nventory.wsgi import application
from tests import factories

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("wsgi_requests_keep_the_test_connection"),
]

SECRET = "shpss_entry_point_secret_0123456789"
HOST = "nventory.test"


@pytest.fixture(autouse=True)
def served_host(settings):
    settings.ALLOWED_HOSTS = [HOST]
    settings.SECURE_SSL_REDIRECT = False
    receive.forget_cached_channels()
    yield
    receive.forget_cached_channels()


@pytest.fixture
def channel():
    return factories.make_channel(slug="entry-shop", webhook_secret=SECRET)


def _call(
    method: str, path: str, *, body: bytes = b"", host: str = HOST, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SERVER_NAME": host,
        "SERVER_PORT": "80",
        "HTTP_HOST": host,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
        **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()},
    }
    answered: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], *_: Any) -> None:
        answered["status"] = int(status.split()[0])
        answered["headers"] = dict(response_headers)

    content = b"".join(application(environ, start_response))
    return answered["status"], answered["headers"], content


def _delivery(order_id: int, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"id": order_id, "line_items": []}).encode()
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return body, {
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Webhook-Id": f"entry-{order_id}",
        "X-Shopify-Hmac-Sha256": signature.decode(),
    }


def test_a_signed_delivery_is_stored_and_acknowledged(channel):
    body, headers = _delivery(1)
    status, _, content = _call("POST", "/webhooks/shopify/entry-shop/", body=body, **headers)
    assert (status, json.loads(content)) == (200, {"status": "accepted"})
    assert WebhookReceipt.objects.filter(channel=channel, dedupe_key="entry-1").exists()


def test_a_bad_signature_is_refused_and_nothing_stored(channel):
    body, headers = _delivery(2, secret="not-the-secret")
    status, _, _ = _call("POST", "/webhooks/shopify/entry-shop/", body=body, **headers)
    assert status == 401
    assert not WebhookReceipt.objects.exists()


def test_a_host_not_served_is_refused_on_the_webhook_path_too(channel):
    body, headers = _delivery(3)
    status, _, _ = _call(
        "POST", "/webhooks/shopify/entry-shop/", body=body, host="elsewhere.example", **headers
    )
    assert status == 400
    assert not WebhookReceipt.objects.exists()


def test_a_delivery_sets_no_session_and_pages_keep_their_middleware(channel):
    body, headers = _delivery(4)
    _, webhook_headers, _ = _call("POST", "/webhooks/shopify/entry-shop/", body=body, **headers)
    _, page_headers, _ = _call("GET", "/accounts/login/")
    # The page went through the whole chain (clickjacking, CSRF cookie for its form);
    # the delivery through SecurityMiddleware only.
    assert page_headers.get("X-Frame-Options") == "DENY"
    assert "Set-Cookie" in page_headers
    assert "X-Frame-Options" not in webhook_headers
    assert "Set-Cookie" not in webhook_headers
    assert webhook_headers.get("X-Content-Type-Options") == "nosniff"


@pytest.mark.django_db(transaction=True)
def test_a_delivery_on_a_connection_the_server_ended_is_stored_on_a_new_one(channel):
    """No health check runs before a delivery's statements: the one that finds the
    connection dead runs again on a new connection, and the platform is answered 200."""
    import psycopg
    from django.db import connection

    connection.ensure_connection()
    ended_pid = connection.connection.info.backend_pid
    settings_dict = connection.get_connection_params()
    with psycopg.connect(**settings_dict, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [ended_pid])
    body, headers = _delivery(41)

    status, _, _ = _call("POST", "/webhooks/shopify/entry-shop/", body=body, **headers)

    assert status == 200
    assert WebhookReceipt.objects.filter(dedupe_key="entry-41").exists()
    assert connection.connection.info.backend_pid != ended_pid
