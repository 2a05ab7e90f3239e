"""The platforms ``python -m channels.simulators`` can start: a platform plugs in with one entry.

Each entry names the class (imported only when that platform is started, so a platform's
dependencies load only with it) and the default port of ``make run``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Platform:
    key: str
    # "package.module:ClassName" of a ``harness.Simulator`` subclass.
    factory: str
    default_port: int

    def create(self) -> Any:
        module_name, _, class_name = self.factory.partition(":")
        return getattr(importlib.import_module(module_name), class_name)()


PLATFORMS: dict[str, Platform] = {
    platform.key: platform
    for platform in (
        Platform("shopify", "channels.simulators.shopify:ShopifySimulator", 8765),
        Platform("walmart", "channels.simulators.walmart:WalmartSimulator", 8768),
        Platform("amazon", "channels.simulators.amazon:AmazonSimulator", 8766),
        Platform("ebay", "channels.simulators.ebay:EbaySimulator", 8769),
        Platform("tiktok", "channels.simulators.tiktok:TikTokSimulator", 8770),
    )
}
