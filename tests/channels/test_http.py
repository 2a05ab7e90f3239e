"""The HTTP layer every connector shares: what it refuses to trust from a platform."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from channels.connectors import http
from channels.connectors.base import ChannelError


class _Recorder(ThreadingHTTPServer):
    """Answers every request with one status and headers; keeps each request's headers."""

    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status, self.answer_headers = status, headers
        self.seen: list[dict[str, str]] = []
        super().__init__(("127.0.0.1", 0), _RecordingHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _RecordingHandler(BaseHTTPRequestHandler):
    server: _Recorder

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append(dict(self.headers))
        self.send_response(self.server.status)
        for name, value in self.server.answer_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def serve() -> Iterator[list[_Recorder]]:
    servers: list[_Recorder] = []
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def _start(servers: list[_Recorder], status: int, headers: dict[str, str]) -> _Recorder:
    server = _Recorder(status, headers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    servers.append(server)
    return server


def test_a_redirect_is_not_followed_and_the_token_reaches_no_other_host(serve):
    """A channel's API that answers 302 elsewhere: a channel error, and the other host
    never sees the token."""
    elsewhere = _start(serve, 200, {})
    channel_api = _start(serve, 302, {"Location": f"{elsewhere.url}/steal"})

    with pytest.raises(ChannelError, match="redirect"):
        http.send(
            "GET",
            f"{channel_api.url}/orders.json",
            platform_name="Test",
            api_domains=(),
            read_timeout_s=2,
            headers={"X-Shopify-Access-Token": "shpat_secret"},
        )

    assert channel_api.seen[0]["X-Shopify-Access-Token"] == "shpat_secret"
    assert elsewhere.seen == []


@pytest.mark.parametrize(
    ("header", "wait_s"),
    [
        ("2.5", 2.5),
        ("1e10", http.MAX_RETRY_AFTER_S),
        ("inf", None),
        ("nan", None),
        ("-3", None),
        ("0", None),
        ("soon", None),
    ],
)
def test_a_platforms_retry_after_is_bounded(header, wait_s):
    """A wait beyond the cap is capped; one that is not a finite positive number is no
    wait at all: no answer can freeze a channel's pushes."""
    response = requests.Response()
    response.headers["Retry-After"] = header
    assert http.retry_after_s(response) == wait_s


def test_a_cached_token_is_reused_until_its_margin_and_renewed_on_demand():
    """One fetch per account while the token lives; ``renew`` (the platform refused it) and
    its end (less the margin) each fetch a new one; accounts do not share tokens."""
    import time

    fetched: list[str] = []

    def fetch(lifetime_s: float):
        def fetch_one() -> http.AccessToken:
            fetched.append(f"t{len(fetched)}")
            return http.AccessToken.lasting(
                fetched[-1], lifetime_s=lifetime_s, fetched_at=time.monotonic(), margin_s=60
            )

        return fetch_one

    cache = http.TokenCache()
    assert cache.get("a", fetch(900)) == "t0"
    assert cache.get("a", fetch(900)) == "t0"
    assert cache.get("b", fetch(900)) == "t1"
    assert cache.get("a", fetch(900), renew=True) == "t2"
    # A token that lives less than its margin is never reused.
    assert cache.get("c", fetch(30)) == "t3"
    assert cache.get("c", fetch(30)) == "t4"
