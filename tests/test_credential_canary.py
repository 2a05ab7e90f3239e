"""Canary credentials on a channel of every platform never leave the server
(RELIABILITY.md §5 Secrets, §6.5 S7).

Each channel's credentials and webhook secret are unique canary strings; its API is a
local host that fails every call. After pushes that fail into dead letters, webhooks with
good and bad signatures, and requests that end in a 500, no canary is found in the log
(every logger at DEBUG), in Celery task messages, in the admin's list and change pages,
on an error page, or in any answer of the API.
"""

from __future__ import annotations

import http.server
import logging
import threading
import uuid
from collections.abc import Iterator

import pytest
from celery import signals as celery_signals
from django.contrib import admin
from django.db.models import Model
from django.test import Client
from django.urls import reverse

from channels.models import Channel, DeadLetter, PushAttempt, WebhookReceipt
from channels.pipeline import ingest, push, ratelimit, receive
from tests import factories

# Every name a connector reads its credentials by.
CREDENTIAL_NAMES = (
    "access_token",
    "client_id",
    "client_secret",
    "refresh_token",
    "app_key",
    "app_secret",
    "shop_cipher",
    "dev_id",
    "aws_access_key_id",
    "aws_secret_access_key",
    "password",
)


class _FailingPlatform(http.server.BaseHTTPRequestHandler):
    """A platform that fails every call with a 500 (and logs nothing)."""

    def _fail(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b'{"errors": [{"message": "upstream failure"}]}'
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _fail

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def failing_platform() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FailingPlatform)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def canaries() -> list[str]:
    return []


@pytest.fixture
def canary_channels(db, failing_platform, canaries) -> list[Channel]:
    """A channel of every platform, its secrets canaries, one stocked listing each."""
    channels = []
    for platform in Channel.Platform.values:
        marker = uuid.uuid4().hex
        credentials = {name: f"canary-{platform}-{name}-{marker}" for name in CREDENTIAL_NAMES}
        webhook_secret = f"canary-{platform}-webhook-secret-{marker}"
        canaries.extend([*credentials.values(), webhook_secret])
        location = factories.make_location()
        channel = factories.make_channel(
            platform=platform,
            locations=[location],
            mode=Channel.Mode.ACTIVE,
            api_base_url=f"{failing_platform}/{platform}/",
            credentials=credentials,
            webhook_secret=webhook_secret,
            # One failure is a dead letter: the whole failure path runs in one push.
            max_push_attempts=1,
            rate_limit_per_s=1000,
            platform_settings={
                "token_url": f"{failing_platform}/{platform}/token",
                "seller_id": "canary-seller",
                "location_id": 1,
                "timeout_s": 2,
                "retry_base_s": 0.01,
                "throttle_backoff_s": 0.01,
            },
        )
        ratelimit.reset(channel_id=channel.pk)
        sku = factories.make_sku()
        factories.stock(sku, location, 5)
        factories.make_listing(
            channel=channel, sku=sku, external_id=f"ext-{platform}", extra_identifiers={}
        )
        channels.append(channel)
    return channels


@pytest.fixture
def task_messages() -> Iterator[list[str]]:
    """The arguments of every Celery task published meanwhile, as text."""
    published: list[str] = []

    def record(sender=None, body=None, headers=None, **kwargs) -> None:
        published.append(f"{sender} {body!r} {headers!r}")

    celery_signals.before_task_publish.connect(record, weak=False)
    yield published
    celery_signals.before_task_publish.disconnect(record)


def _admin_pages(client: Client) -> list[str]:
    """Every registered model's list page and the change page of each of its first rows."""
    pages = []
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        base = f"admin:{meta.app_label}_{meta.model_name}"
        answer = client.get(reverse(f"{base}_changelist"))
        assert answer.status_code == 200, (meta.label, answer.status_code)
        pages.append(answer.content.decode())
        first: Model | None = model_admin.get_queryset(answer.wsgi_request).first()
        if first is not None:
            change = client.get(reverse(f"{base}_change", args=[first.pk]))
            assert change.status_code == 200, (meta.label, change.status_code)
            pages.append(change.content.decode())
    return pages


def _api_answers(client: Client) -> list[str]:
    root = client.get("/api/v1/").json()
    answers = [client.get(url).content.decode() for name, url in root.items()]
    for dead_letter in DeadLetter.objects.all():
        answers.append(
            client.post(f"/api/v1/dead-letters/{dead_letter.pk}/replay/").content.decode()
        )
    return answers


def _webhook_answers(client: Client, channels: list[Channel]) -> list[str]:
    answers = []
    for channel in channels:
        url = f"/webhooks/{channel.platform}/{channel.slug}/"
        for body in (b'{"id": 1}', b"<not-xml", b"\xff" * 10):
            answer = client.post(
                url,
                data=body,
                content_type="application/json",
                headers={"X-Shopify-Hmac-Sha256": "forged", "Authorization": "forged"},
            )
            answers.append(f"{answer.status_code} {answer.content.decode(errors='replace')}")
    for receipt in WebhookReceipt.objects.filter(status=WebhookReceipt.Status.RECEIVED):
        ingest.process_receipt(receipt_id=receipt.pk)
    return answers


def _error_pages(api: Client, operator: Client, monkeypatch) -> list[str]:
    """What a request that fails with an unexpected error is answered, as in production."""

    def fail(*args, **kwargs):
        # The failing frame holds every channel and its credentials.
        held = [(channel, dict(channel.credentials)) for channel in Channel.objects.all()]
        raise RuntimeError(f"failed with {len(held)} channels at hand")

    monkeypatch.setattr("channels.api.apis.ChannelListApi.get", fail)
    monkeypatch.setattr("channels.admin.ChannelAdmin.get_queryset", fail)
    pages = []
    for client, url in (
        (api, "/api/v1/channels/"),
        (operator, reverse("admin:channels_channel_changelist")),
    ):
        client.raise_request_exception = False
        answer = client.get(url)
        assert answer.status_code == 500, url
        pages.append(answer.content.decode())
    return pages


def _listen_at_debug(caplog) -> None:
    root = logging.getLogger()
    if caplog.handler not in root.handlers:
        root.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)


def test_channel_credentials_never_leave_the_server(
    canary_channels,
    canaries,
    task_messages,
    caplog,
    admin_client,
    api_credentials,
    settings,
    monkeypatch,
):
    settings.DEBUG = False
    _listen_at_debug(caplog)
    receive.forget_cached_channels()
    for channel in canary_channels:
        push.push_owed(channel_id=channel.pk)
    # The failure path ran: each channel's push failed at the platform into a dead letter.
    for channel in canary_channels:
        attempt = PushAttempt.objects.filter(channel=channel).first()
        assert attempt is not None and attempt.outcome != PushAttempt.Outcome.APPLIED
        assert DeadLetter.objects.filter(channel=channel).exists(), channel.platform

    seen = _webhook_answers(Client(), canary_channels)
    api = Client(HTTP_AUTHORIZATION=api_credentials["Authorization"])
    seen += _api_answers(api)
    seen += _admin_pages(admin_client)
    # The beat schedule's admin pages load Celery's task modules, and Celery's Django
    # fix-up then runs django.setup() again, which configures logging anew: listen again.
    _listen_at_debug(caplog)
    seen += _error_pages(api, admin_client, monkeypatch)
    seen += task_messages
    seen += [caplog.text]
    seen += [record.getMessage() for record in caplog.records]

    assert caplog.handler in logging.getLogger().handlers
    assert caplog.records, "nothing was logged: the check would prove nothing"
    leaks = sorted({canary for canary in canaries for text in seen if canary in text})
    assert leaks == []
