"""The TikTok Shop simulator as a real subprocess (``python -m channels.simulators``), and a
small client for its /_sim/ control API."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import requests

from tests.channels.simulator_process import simulator_process


class TikTokSimulatorClient:
    """Thin wrapper over ``/_sim/``: each method is one control call, answers are its JSON."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=128))

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.session.request(method, f"{self.url}/_sim{path}", json=body, timeout=30)
        if response.status_code >= 400:
            raise AssertionError(f"{method} /_sim{path}: {response.status_code} {response.text}")
        return response.json()

    def create_shop(self, shop: str, **settings: Any) -> dict[str, Any]:
        settings.setdefault("app_key", f"key-{shop}")
        settings.setdefault("app_secret", f"secret-{shop}")
        return self._call("POST", "/shops", {"shop": shop, **settings})["shop"]

    def update_shop(self, shop: str, **settings: Any) -> dict[str, Any]:
        return self._call("POST", f"/shops/{shop}/settings", settings)

    def add_skus(self, shop: str, skus: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._call("POST", f"/shops/{shop}/skus", {"skus": list(skus)})["skus"]

    def skus(self, shop: str) -> dict[str, dict[str, Any]]:
        """SKUs by id: available_quantity, warehouses, status, api_writes."""
        return {sku["sku_id"]: sku for sku in self._call("GET", f"/shops/{shop}/skus")["skus"]}

    def faults(self, shop: str, **faults: Any) -> dict[str, Any]:
        return self._call("POST", f"/shops/{shop}/faults", faults)["faults"]

    def place_order(
        self, shop: str, lines: Sequence[dict[str, Any]], **options: Any
    ) -> dict[str, Any]:
        return self._call("POST", f"/shops/{shop}/orders", {"lines": list(lines), **options})

    def set_order_status(self, shop: str, order_id: str, status: str, **options: Any) -> Any:
        return self._call(
            "POST", f"/shops/{shop}/orders/{order_id}/status", {"status": status, **options}
        )

    def cancel_lines(
        self, shop: str, order_id: str, lines: Sequence[dict[str, Any]] | None, **options: Any
    ) -> dict[str, Any]:
        """A cancellation of some units (``lines``; one unit when None): ``status``,
        ``then``, ``after_s``, ``duplicates``, ``deliver``."""
        body = {**options} if lines is None else {"lines": list(lines), **options}
        return self._call("POST", f"/shops/{shop}/orders/{order_id}/cancellations", body)

    def open_return(
        self, shop: str, order_id: str, lines: Sequence[dict[str, Any]] | None, **options: Any
    ) -> dict[str, Any]:
        """A return of some units: ``return_type``, ``status``, ``then``, ``after_s``..."""
        body = {**options} if lines is None else {"lines": list(lines), **options}
        return self._call("POST", f"/shops/{shop}/orders/{order_id}/returns", body)

    def advance(self, shop: str, kind: str, record_id: str, status: str, **options: Any) -> Any:
        """``kind`` is "cancellations" or "returns"."""
        return self._call(
            "POST", f"/shops/{shop}/{kind}/{record_id}/status", {"status": status, **options}
        )

    def notify(self, shop: str, kind: int) -> dict[str, Any]:
        return self._call("POST", f"/shops/{shop}/notify", {"type": kind})

    def start_viral(self, shop: str, **burst: Any) -> dict[str, Any]:
        """Viral mode: ``sku_id``, ``orders``, ``per_s``, ``quantity``."""
        return self._call("POST", f"/shops/{shop}/viral", burst)

    def viral_bursts(self, shop: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/shops/{shop}/viral")["bursts"]

    def requests(self, shop: str, since: int = 0) -> list[dict[str, Any]]:
        return self._call("GET", f"/shops/{shop}/requests?since={since}")["requests"]

    def webhooks(self, shop: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/shops/{shop}/webhooks")["webhooks"]


@pytest.fixture(scope="session")
def tiktok_simulator() -> Iterator[TikTokSimulatorClient]:
    """One simulator process for the session; tests create their own uniquely named shops."""
    with simulator_process("tiktok") as url:
        yield TikTokSimulatorClient(url)
