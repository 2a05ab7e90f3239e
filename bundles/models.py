"""Bills of materials: a bundle is a ``Sku`` with BOM lines, and holds no stock of its own.

``BomLine`` is what an operator edits. ``BundleComponent`` is derived from it by
``bundles.services.set_bom`` only, in the same transaction: each bundle's leaf components
(SKUs without BOM lines, the ones that hold stock) with the units of each per one bundle,
multiplied through every level of nesting.
"""

from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q

from inventory.models import Sku


class Bundle(Sku):
    """A SKU seen as a bundle: the admin edits its BOM lines through this proxy."""

    class Meta:
        proxy = True
        verbose_name = "bundle"


class BomLine(models.Model):
    """One direct component of a bundle; the component may itself be a bundle."""

    # The unique constraint's index starts with bundle_id and serves look-ups by bundle.
    bundle = models.ForeignKey(
        Sku, on_delete=models.CASCADE, related_name="bom_lines", db_index=False
    )
    # PROTECT: deleting a SKU that a bundle is made of would silently change the bundle.
    component = models.ForeignKey(Sku, on_delete=models.PROTECT, related_name="used_in")
    quantity = models.PositiveIntegerField(
        validators=[MinValueValidator(1)], help_text="Units of the component in one bundle."
    )

    class Meta:
        ordering = ["bundle_id", "component__code"]
        verbose_name = "BOM line"
        constraints = [
            models.UniqueConstraint(fields=["bundle", "component"], name="bomline_one_per_pair"),
            models.CheckConstraint(
                condition=~Q(bundle=F("component")), name="bomline_not_its_own_component"
            ),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="bomline_quantity_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.component_id} in {self.bundle_id}"


class BundleComponent(models.Model):
    """Closure row: one leaf component of a bundle, expanded through nesting."""

    bundle = models.ForeignKey(
        Sku, on_delete=models.CASCADE, related_name="leaf_components", db_index=False
    )
    component = models.ForeignKey(
        Sku, on_delete=models.CASCADE, related_name="containing_bundles", db_index=False
    )
    # Products of nested quantities outgrow 32 bits long before a BOM looks unusual.
    quantity = models.PositiveBigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["bundle", "component"], name="bundlecomponent_one_per_pair"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="bundlecomponent_quantity_positive"
            ),
        ]
        indexes = [
            # "Which bundles contain SKU X, directly or nested": an index-only scan.
            models.Index(fields=["component", "bundle"], name="bundlecomponent_by_component"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.component_id} in {self.bundle_id} (expanded)"
