"""The simulators as a real subprocess (``python -m channels.simulators``), and a small
client for the Shopify simulator's /_sim/ control API."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests

# The Amazon simulator and its SQS queue server, beside Shopify's.
from tests.channels.amazon_simulator import amazon_simulator, sqs_server  # noqa: F401
from tests.channels.simulator_process import simulator_process

PROJECT_DIR = Path(__file__).resolve().parents[2]


class ShopifySimulatorClient:
    """Thin wrapper over ``/_sim/``: each method is one control call, answers are its JSON."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        # Tests fire 100+ control calls at once; the default pool of 10 would drop connections.
        self.session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=128))

    def shop_url(self, shop: str) -> str:
        """The ``api_base_url`` a channel uses for this shop."""
        return f"{self.url}/shops/{shop}"

    def graphql_url(self, shop: str, api_version: str = "2026-01") -> str:
        return f"{self.shop_url(shop)}/admin/api/{api_version}/graphql.json"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.session.request(method, f"{self.url}/_sim{path}", json=body, timeout=30)
        if response.status_code >= 400:
            raise AssertionError(f"{method} /_sim{path}: {response.status_code} {response.text}")
        return response.json()

    def reset(self) -> None:
        self._call("POST", "/reset")

    def clock(self, **move: Any) -> dict[str, Any]:
        """The simulator's clock; ``advance_s=``, ``freeze=True``, ``resume=True`` move it."""
        if move:
            return self._call("POST", "/clock", move)
        return self._call("GET", "/clock")

    def update_shop(self, shop: str, **settings: Any) -> dict[str, Any]:
        return self._call("POST", f"/shops/{shop}/settings", settings)

    def emitter(self, shop: str, **settings: Any) -> dict[str, Any]:
        """Webhook disorder: duplicate_next, drop_next, delay_s, jitter_s, hold_next, release."""
        return self._call("POST", f"/shops/{shop}/emitter", settings)

    def create_shop(self, shop: str, **settings: Any) -> dict[str, Any]:
        settings.setdefault("access_token", f"shpat_{shop}")
        return self._call("POST", "/shops", {"shop": shop, **settings})

    def shop_state(self, shop: str) -> dict[str, Any]:
        return self._call("GET", f"/shops/{shop}")

    def add_items(self, shop: str, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._call("POST", f"/shops/{shop}/items", {"items": list(items)})["items"]

    def items(self, shop: str) -> dict[int, dict[str, Any]]:
        """Items by inventory item id."""
        items = self._call("GET", f"/shops/{shop}/items")["items"]
        return {item["inventory_item_id"]: item for item in items}

    def available(self, shop: str, inventory_item_id: int) -> int:
        return self.items(shop)[inventory_item_id]["available"]

    def set_quantity(
        self, shop: str, inventory_item_id: int, available: int, *, notify: bool = False
    ) -> dict[str, Any]:
        return self._call(
            "POST",
            f"/shops/{shop}/items/{inventory_item_id}/set",
            {"available": available, "notify": notify},
        )

    def faults(self, shop: str, **faults: Any) -> dict[str, Any]:
        return self._call("POST", f"/shops/{shop}/faults", faults)["faults"]

    def place_order(
        self,
        shop: str,
        lines: Sequence[dict[str, Any]],
        *,
        duplicates: int = 0,
        deliver: bool = True,
    ) -> dict[str, Any]:
        return self._call(
            "POST",
            f"/shops/{shop}/orders",
            {"lines": list(lines), "duplicates": duplicates, "deliver": deliver},
        )

    def cancel_order(self, shop: str, order_id: int, **options: Any) -> dict[str, Any]:
        return self._call("POST", f"/shops/{shop}/orders/{order_id}/cancel", options)

    def refund(
        self, shop: str, order_id: int, lines: Sequence[dict[str, Any]], **options: Any
    ) -> dict[str, Any]:
        return self._call(
            "POST", f"/shops/{shop}/orders/{order_id}/refund", {"lines": list(lines), **options}
        )

    def redeliver(self, shop: str, webhook_id: str) -> dict[str, Any]:
        return self._call("POST", f"/shops/{shop}/redeliver", {"webhook_id": webhook_id})

    def changes(self, shop: str, since: int = 0) -> list[dict[str, Any]]:
        return self._call("GET", f"/shops/{shop}/changes?since={since}")["changes"]

    def requests(self, shop: str, since: int = 0) -> list[dict[str, Any]]:
        return self._call("GET", f"/shops/{shop}/requests?since={since}")["requests"]

    def webhooks(self, shop: str) -> list[dict[str, Any]]:
        """Every stored delivery with its attempts (time, status, error)."""
        return self._call("GET", f"/shops/{shop}/webhooks")["webhooks"]


@pytest.fixture(scope="session")
def shopify_simulator() -> Iterator[ShopifySimulatorClient]:
    """One simulator process for the session; tests create their own uniquely named shops."""
    with simulator_process("shopify") as url:
        yield ShopifySimulatorClient(url)


# The TikTok Shop simulator's fixture lives with its client.
# The Walmart simulator's fixture lives with its client.
from tests.channels.ebay_simulator import ebay_simulator  # noqa: E402, F401
from tests.channels.tiktok_simulator import tiktok_simulator  # noqa: E402, F401
from tests.channels.walmart_simulator import walmart_simulator  # noqa: E402, F401
