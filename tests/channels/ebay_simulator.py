"""The eBay simulator as a real subprocess (``python -m channels.simulators``), and a small
client for its /_sim/ control API."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import requests

from tests.channels.simulator_process import simulator_process


class EbaySimulatorClient:
    """Thin wrapper over ``/_sim/``: each method is one control call, answers are its JSON."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()

    def seller_url(self, seller: str) -> str:
        """The ``api_base_url`` a channel uses for this seller."""
        return f"{self.url}/sellers/{seller}"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.session.request(method, f"{self.url}/_sim{path}", json=body, timeout=30)
        if response.status_code >= 400:
            raise AssertionError(f"{method} /_sim{path}: {response.status_code} {response.text}")
        return response.json()

    def clock(self, **move: Any) -> dict[str, Any]:
        """The simulator's clock; ``advance_s=`` moves it (shared by every seller)."""
        return self._call("POST", "/clock", move) if move else self._call("GET", "/clock")

    def reset(self) -> None:
        """Drop every seller and put the clock back to real time."""
        self._call("POST", "/reset")

    def create_seller(self, seller: str, **settings: Any) -> dict[str, Any]:
        settings.setdefault("client_id", f"app-{seller}")
        settings.setdefault("client_secret", f"cert-{seller}")
        settings.setdefault("refresh_token", f"v^1.1#r^{seller}")
        return self._call("POST", "/sellers", {"seller": seller, **settings})

    def update_seller(self, seller: str, **settings: Any) -> dict[str, Any]:
        return self._call("POST", f"/sellers/{seller}/settings", settings)

    def add_items(self, seller: str, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._call("POST", f"/sellers/{seller}/items", {"items": list(items)})["items"]

    def items(self, seller: str) -> dict[str, dict[str, Any]]:
        """Items by SKU: quantity, offer_quantity, listed, api_writes, revisions_today."""
        items = self._call("GET", f"/sellers/{seller}/items")["items"]
        return {item["sku"]: item for item in items}

    def faults(self, seller: str, **faults: Any) -> dict[str, Any]:
        return self._call("POST", f"/sellers/{seller}/faults", faults)["faults"]

    def place_order(
        self, seller: str, lines: Sequence[dict[str, Any]], **options: Any
    ) -> dict[str, Any]:
        return self._call("POST", f"/sellers/{seller}/orders", {"lines": list(lines), **options})

    def requests(self, seller: str, since: int = 0) -> list[dict[str, Any]]:
        return self._call("GET", f"/sellers/{seller}/requests?since={since}")["requests"]

    def webhooks(self, seller: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/sellers/{seller}/webhooks")["webhooks"]

    def send_notification(
        self, seller: str, topic: str, data: dict[str, Any], **options: Any
    ) -> dict[str, Any]:
        """A signed Notification API notification to the seller's notification URL."""
        body = {"topic": topic, "data": data, **options}
        return self._call("POST", f"/sellers/{seller}/notifications", body)

    def validate_endpoint(self, seller: str) -> dict[str, Any]:
        """eBay's challenge GET of the seller's notification URL: ``{"validated", ...}``."""
        return self._call("POST", f"/sellers/{seller}/validate_endpoint", {})


@pytest.fixture(scope="session")
def ebay_simulator() -> Iterator[EbaySimulatorClient]:
    """One simulator process for the session; tests create their own uniquely named sellers."""
    with simulator_process("ebay") as url:
        yield EbaySimulatorClient(url)
