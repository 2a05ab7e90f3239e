"""Where a channel's calls may go (SSRF): refused when the channel is saved, and again when
a request is sent, and the channel's token never reaches another host.

Local HTTP servers stand in for the hosts a call must never reach; DNS, which is outside
the machine, is the one thing replaced (a platform's name made to resolve to loopback).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError

from channels import services
from channels.connectors import http, outbound
from channels.connectors.base import ChannelError
from channels.connectors.registry import get_connector
from channels.connectors.types import QuantityUpdate
from channels.models import Channel
from tests import factories

pytestmark = pytest.mark.django_db

TOKEN = "shpat_never_elsewhere_0123456789"


class _Recorder(ThreadingHTTPServer):
    """Answers every request with one status (and Location); keeps what each one carried."""

    def __init__(self, status: int = 200, location: str = "") -> None:
        self.status, self.location = status, location
        self.seen: list[dict[str, str]] = []
        self.connections = 0
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def verify_request(self, request: object, client_address: object) -> bool:
        self.connections += 1
        return True


class _Handler(BaseHTTPRequestHandler):
    server: _Recorder

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.seen.append({"path": self.path, **dict(self.headers)})
        self.send_response(self.server.status)
        if self.server.location:
            self.send_header("Location", self.server.location)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = do_PUT = _answer


@pytest.fixture
def servers() -> Iterator[list[_Recorder]]:
    started: list[_Recorder] = []
    yield started
    for server in started:
        server.shutdown()
        server.server_close()


def _start(servers: list[_Recorder], **answer: object) -> _Recorder:
    server = _Recorder(**answer)  # type: ignore[arg-type]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    servers.append(server)
    return server


def _fields(url: str, **settings: object) -> services.ChannelFields:
    return services.ChannelFields(
        platform=Channel.Platform.SHOPIFY,
        name="Shop",
        slug="ssrf-shop",
        api_base_url=url,
        credentials={"access_token": TOKEN},
        platform_settings=dict(settings),
    )


def _channel_pointed_at(url: str) -> Channel:
    """A channel whose URL was written without the model's check (an old row, SQL)."""
    channel = factories.make_channel(
        api_base_url="https://ssrf.myshopify.com", credentials={"access_token": TOKEN}
    )
    Channel.objects.filter(pk=channel.pk).update(api_base_url=url)
    return Channel.objects.get(pk=channel.pk)


def _push(channel: Channel) -> None:
    get_connector(channel).push_quantities(
        [
            QuantityUpdate(
                listing_id=1,
                external_id="gid://shopify/InventoryItem/1",
                quantity=5,
                compare_quantity=None,
                idempotency_key="k",
                extra_identifiers={"location_id": 1},
            )
        ]
    )


REFUSED_EVERYWHERE = [
    "http://169.254.169.254/latest/meta-data/",
    "https://169.254.169.254/",
    "https://10.0.0.1/",
    "https://192.168.1.10/",
    "https://[fd00::1]/",
    "https://[::ffff:169.254.169.254]/",
    "https://evil.example.com/",
    "https://shop.myshopify.com.evil.example.com/",
    "https://user:password@shop.myshopify.com/",
    "http://shop.myshopify.com/",
    "ftp://shop.myshopify.com/",
]


@pytest.mark.parametrize(
    "url", [*REFUSED_EVERYWHERE, "http://localhost:8080/", "https://127.0.0.1/"]
)
def test_a_channel_pointed_anywhere_but_the_platform_is_refused_when_saved(url, settings):
    settings.CHANNELS_ALLOW_LOCAL_HOSTS = False
    with pytest.raises(ValidationError) as refused:
        services.create_channel(fields=_fields(url))
    assert "api_base_url" in refused.value.message_dict
    assert not Channel.objects.exists()


@pytest.mark.parametrize("url", REFUSED_EVERYWHERE)
def test_local_simulators_allowed_open_loopback_and_nothing_else(url, settings):
    settings.CHANNELS_ALLOW_LOCAL_HOSTS = True
    with pytest.raises(ValidationError):
        services.create_channel(fields=_fields(url))
    assert services.create_channel(fields=_fields("http://127.0.0.1:8001/shops/a")).pk


def test_the_platforms_own_host_over_https_is_saved(settings):
    settings.CHANNELS_ALLOW_LOCAL_HOSTS = False
    channel = services.create_channel(fields=_fields("https://my-shop.myshopify.com"))
    assert channel.api_base_url == "https://my-shop.myshopify.com"


def test_a_url_among_the_platform_settings_is_checked_too(settings):
    """Amazon's token and queue URLs sit in its platform settings: the same rule."""
    settings.CHANNELS_ALLOW_LOCAL_HOSTS = False
    fields = services.ChannelFields(
        platform=Channel.Platform.AMAZON,
        name="Seller",
        slug="seller",
        api_base_url="https://sellingpartnerapi-na.amazon.com",
        platform_settings={"token_url": "http://169.254.169.254/latest/meta-data/iam"},
    )
    with pytest.raises(ValidationError) as refused:
        services.create_channel(fields=fields)
    assert "token_url" in str(refused.value.message_dict["platform_settings"])


def test_the_admin_form_refuses_the_metadata_address(admin_client, settings):
    settings.CHANNELS_ALLOW_LOCAL_HOSTS = False
    answer = admin_client.post(
        "/admin/channels/channel/add/",
        {
            "platform": "shopify",
            "name": "Shop",
            "slug": "admin-ssrf",
            "mode": "shadow",
            "api_base_url": "https://169.254.169.254/",
            "credentials": "",
            "webhook_secret": "",
            "rate_limit_per_s": "2",
            "out_of_stock_threshold": "0",
            "settle_window_s": "0",
            "max_push_attempts": "3",
            "platform_settings": "{}",
        },
    )
    assert answer.status_code == 200
    errors = answer.context["adminform"].form.errors
    assert "link-local" in str(errors["api_base_url"])
    assert not Channel.objects.exists()


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest", "https://10.0.0.1/", "https://evil.example.com"]
)
def test_a_channel_written_around_the_check_is_refused_at_send(url):
    """Nothing is sent: the URL is checked before any connection."""
    channel = _channel_pointed_at(url)
    with pytest.raises(http.DestinationRefused):
        _push(channel)


def test_loopback_without_the_local_setting_gets_no_request_and_no_token(servers, settings):
    """The local server stands in for this machine's services: not one request reaches
    it."""
    settings.CHANNELS_ALLOW_LOCAL_HOSTS = False
    local_service = _start(servers)
    channel = _channel_pointed_at(local_service.url)

    with pytest.raises(http.DestinationRefused, match="local simulators"):
        _push(channel)

    assert local_service.seen == []
    assert local_service.connections == 0


def test_a_platform_name_that_resolves_to_this_machine_gets_no_byte(
    servers, settings, monkeypatch
):
    """A name on the allow-list whose DNS answer is loopback (or rebound to it): refused
    before connecting, with the name in the URL."""
    settings.CHANNELS_ALLOW_LOCAL_HOSTS = False
    local_service = _start(servers)
    real_getaddrinfo = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if host == "rebound.myshopify.com":
            return real_getaddrinfo("127.0.0.1", port, *args, **kwargs)
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    channel = _channel_pointed_at(f"https://rebound.myshopify.com:{local_service.port}")

    with pytest.raises(http.DestinationRefused, match="this machine"):
        _push(channel)

    assert local_service.connections == 0
    assert local_service.seen == []


def test_a_host_that_redirects_elsewhere_never_hands_the_token_over(servers, settings):
    """The channel's API answers 302 to another host (a local server standing in): the
    redirect is not followed, the push fails as a channel error, the other host sees
    nothing."""
    settings.CHANNELS_ALLOW_LOCAL_HOSTS = True
    elsewhere = _start(servers)
    redirector = _start(servers, status=302, location=f"{elsewhere.url}/steal")
    channel = _channel_pointed_at(redirector.url)

    with pytest.raises(ChannelError, match="redirect"):
        _push(channel)

    assert [seen["X-Shopify-Access-Token"] for seen in redirector.seen] == [TOKEN]
    assert elsewhere.seen == []
    assert elsewhere.connections == 0


def test_a_redirecting_host_is_refused_at_save_without_the_local_setting(servers, settings):
    settings.CHANNELS_ALLOW_LOCAL_HOSTS = False
    redirector = _start(servers, status=302, location="https://elsewhere.example.com/")
    with pytest.raises(ValidationError):
        services.create_channel(fields=_fields(redirector.url))
    assert redirector.seen == []


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("169.254.169.254", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.0.1", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),  # noqa: S104
        ("fe80::1", False),
        ("::ffff:10.0.0.1", False),
        ("23.227.38.65", True),
        ("2606:4700::1", True),
    ],
)
def test_addresses_calls_may_reach(address, allowed, settings):
    settings.CHANNELS_ALLOW_LOCAL_HOSTS = True
    assert (outbound.address_refusal(address) == "") is allowed


@pytest.mark.parametrize(
    ("platform", "url"),
    [
        ("shopify", "https://my-shop.myshopify.com/admin/api/2025-01"),
        ("amazon", "https://sellingpartnerapi-eu.amazon.com"),
        ("amazon", "https://sqs.us-east-1.amazonaws.com/123456789012/notifications"),
        ("walmart", "https://marketplace.walmartapis.com"),
        ("ebay", "https://api.sandbox.ebay.com"),
        ("tiktok", "https://open-api.tiktokglobalshop.com"),
        ("tiktok", "https://auth.tiktok-shops.com"),
    ],
)
def test_each_platforms_own_hosts_are_allowed_and_no_other_platforms(platform, url, settings):
    """A platform's hosts are its own: Shopify's channel may not point at eBay's API."""
    from channels.connectors.registry import CONNECTORS

    settings.CHANNELS_ALLOW_LOCAL_HOSTS = False
    own = CONNECTORS[platform].api_domains
    assert outbound.url_refusal(url, api_domains=own) == ""
    for other, connector in CONNECTORS.items():
        if other != platform and not set(connector.api_domains) & set(own):
            assert outbound.url_refusal(url, api_domains=connector.api_domains)
