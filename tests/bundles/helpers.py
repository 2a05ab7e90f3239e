"""Builders shared by the bundle tests."""

from __future__ import annotations

from bundles import services
from bundles.models import BundleComponent
from inventory.models import Sku, StockLevel
from tests import factories


def make_bundle(*lines: tuple[Sku, int], **fields) -> Sku:
    bundle = factories.make_sku(**fields)
    services.set_bom(bundle=bundle, lines=list(lines))
    return bundle


def closure(bundle: Sku) -> dict[str, int]:
    return {
        row.component.code: row.quantity
        for row in BundleComponent.objects.filter(bundle=bundle).select_related("component")
    }


def figures(sku: Sku, location) -> tuple[int, int, int]:
    level = StockLevel.objects.filter(sku=sku, location=location).first()
    return (level.on_hand, level.committed, level.reserved) if level else (0, 0, 0)
