"""The Amazon simulator and an SQS server (moto's server mode) as real subprocesses, and a
small client for the simulator's /_sim/ control API."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import boto3
import pytest
import requests

from tests.channels.simulator_process import PROJECT_DIR, simulator_process, stop


class AmazonSimulatorClient:
    """Thin wrapper over ``/_sim/``: each method is one control call, answers are its JSON."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=64))

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.session.request(method, f"{self.url}/_sim{path}", json=body, timeout=30)
        if response.status_code >= 400:
            raise AssertionError(f"{method} /_sim{path}: {response.status_code} {response.text}")
        return response.json()

    @property
    def token_url(self) -> str:
        return f"{self.url}/auth/o2/token"

    def create_seller(self, seller: str, **settings: Any) -> dict[str, Any]:
        settings.setdefault("client_id", f"amzn1.application-oa2-client.{seller}")
        settings.setdefault("client_secret", f"secret-{seller}")
        settings.setdefault("refresh_token", f"Atzr|{seller}")
        return self._call("POST", "/sellers", {"seller_id": seller, **settings})

    def update_seller(self, seller: str, **settings: Any) -> dict[str, Any]:
        return self._call("POST", f"/sellers/{seller}/settings", settings)

    def add_listings(self, seller: str, listings: Sequence[dict[str, Any]]) -> list[Any]:
        return self._call("POST", f"/sellers/{seller}/listings", {"listings": list(listings)})[
            "listings"
        ]

    def listings(self, seller: str) -> dict[str, dict[str, Any]]:
        """Listings by SKU (what is due applied first)."""
        found = self._call("GET", f"/sellers/{seller}/listings")["listings"]
        return {listing["sku"]: listing for listing in found}

    def set_fba(self, seller: str, sku: str, **quantities: int) -> dict[str, Any]:
        return self._call("POST", f"/sellers/{seller}/listings/{sku}/fba", quantities)

    def process(self, seller: str) -> dict[str, Any]:
        """Everything waiting (patches, feeds) is due now."""
        return self._call("POST", f"/sellers/{seller}/process")

    def faults(self, seller: str, **faults: Any) -> dict[str, Any]:
        return self._call("POST", f"/sellers/{seller}/faults", faults)["faults"]

    def emitter(self, seller: str, **settings: Any) -> dict[str, Any]:
        return self._call("POST", f"/sellers/{seller}/emitter", settings)

    def place_order(
        self,
        seller: str,
        lines: Sequence[dict[str, Any]],
        *,
        duplicates: int = 0,
        deliver: bool = True,
        fulfillment_channel: str = "MFN",
    ) -> dict[str, Any]:
        return self._call(
            "POST",
            f"/sellers/{seller}/orders",
            {
                "lines": list(lines),
                "duplicates": duplicates,
                "deliver": deliver,
                "fulfillment_channel": fulfillment_channel,
            },
        )

    def cancel_order(self, seller: str, order_id: str, **options: Any) -> dict[str, Any]:
        return self._call("POST", f"/sellers/{seller}/orders/{order_id}/cancel", options)

    def notifications(self, seller: str, since: int = 0) -> list[dict[str, Any]]:
        return self._call("GET", f"/sellers/{seller}/notifications?since={since}")["notifications"]

    def release_notifications(self, seller: str) -> int:
        return int(self._call("POST", f"/sellers/{seller}/notifications/release")["released"])

    def changes(self, seller: str, since: int = 0) -> list[dict[str, Any]]:
        return self._call("GET", f"/sellers/{seller}/changes?since={since}")["changes"]

    def requests(self, seller: str, since: int = 0) -> list[dict[str, Any]]:
        return self._call("GET", f"/sellers/{seller}/requests?since={since}")["requests"]


class SqsServer:
    """moto's SQS in server mode: queues reached over HTTP as boto3 reaches Amazon's."""

    region = "us-east-1"
    access_key = "testing"
    secret_key = "testing"

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = boto3.client(
            "sqs",
            endpoint_url=url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def create_queue(self, name: str, *, visibility_timeout_s: int = 30) -> str:
        return str(
            self.client.create_queue(
                QueueName=name, Attributes={"VisibilityTimeout": str(visibility_timeout_s)}
            )["QueueUrl"]
        )

    def waiting(self, queue_url: str) -> int:
        """Messages on the queue, visible or in flight."""
        attributes = self.client.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def sqs_server() -> Iterator[SqsServer]:
    """One moto server process for the session; tests create their own queues."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{url}/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto's SQS server did not start.") from None
                time.sleep(0.1)
        yield SqsServer(url)
    finally:
        stop(process)


@pytest.fixture(scope="session")
def amazon_simulator() -> Iterator[AmazonSimulatorClient]:
    """One simulator process for the session; tests create their own sellers."""
    with simulator_process("amazon") as url:
        yield AmazonSimulatorClient(url)
