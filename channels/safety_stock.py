"""The safety-stock calculator: a recommended buffer for one SKU on one channel.

While a sale on one channel travels to the others, they still list the unit it took. The
units at risk in that gap are the SKU's sales rate at its busiest (the peak window in the
ledger) times the channel's propagation latency (p95 of its acknowledged pushes); the
operator's risk tolerance multiplies that, and sets the share held back on top of it.
The tolerances follow the guidance the buffers are sized by: start at 10-15 % held back
and step down (to 5 %) as the measured sync accuracy proves itself.

``recommend_buffer`` shows every step of the arithmetic; ``apply_recommended_buffer``
saves the result as the SKU's buffer rule on the channel, recorded in the rule's history
with who applied it and why.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from decimal import Decimal

from django.db import models, transaction
from django.utils import timezone

from channels import bulk_edits, measurements, selectors
from channels.buffers import BufferRuleValues, explain_listed_quantity
from channels.models import BufferRule, Channel
from inventory.models import Sku
from nventory import permissions


class RiskTolerance(models.TextChoices):
    """How much oversell risk the operator accepts: the percent held back and how many
    times the measured exposure is held in fixed units."""

    CAUTIOUS = "cautious", "Cautious: 15 % held back, 3 x the exposure (a new channel)"
    BALANCED = "balanced", "Balanced: 10 % held back, 2 x the exposure (the usual start)"
    PROVEN = "proven", "Proven: 5 % held back, 1 x the exposure (accuracy above 99.5 %)"


# The article's starting point is 10-15 %: a channel nobody has measured yet starts
# balanced, and steps down to proven once its reconciliations stay above 99.5 %.
DEFAULT_TOLERANCE = RiskTolerance.BALANCED

TOLERANCE_FIGURES: dict[str, tuple[Decimal, int]] = {
    RiskTolerance.CAUTIOUS: (Decimal(15), 3),
    RiskTolerance.BALANCED: (Decimal(10), 2),
    RiskTolerance.PROVEN: (Decimal(5), 1),
}

# Without a measured push, the latency the scorecard tolerates before it alerts: the
# recommendation errs on the safe side rather than assuming an instant channel.
UNMEASURED_LATENCY_MS = 60_000.0


@dataclasses.dataclass(frozen=True)
class CalculationStep:
    label: str
    value: str


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """A recommended buffer rule and the arithmetic behind it."""

    sku: Sku
    channel: Channel
    tolerance: str
    velocity: measurements.PeakVelocity
    latency_p95_ms: float
    latency_measured: bool
    exposure_units: float
    percent: Decimal
    fixed_units: int
    ats: int
    listed_now: int
    listed_after: int
    steps: tuple[CalculationStep, ...]

    @property
    def reason(self) -> str:
        """What the rule's history records (fits its 100 characters)."""
        return (
            f"Safety-stock calculator ({self.tolerance}): {self.percent}% + "
            f"{self.fixed_units} units"
        )[:100]


def recommend_buffer(
    *,
    sku: Sku,
    channel: Channel,
    tolerance: str = DEFAULT_TOLERANCE,
    now: dt.datetime | None = None,
) -> Recommendation:
    """The recommended rule for the SKU on the channel, from the measured peak velocity and
    latency; ``ValueError`` for an unknown tolerance. Reads only (a fixed number of
    queries)."""
    if tolerance not in TOLERANCE_FIGURES:
        raise ValueError(f"Unknown risk tolerance {tolerance!r}.")
    now = now or timezone.now()
    percent, multiplier = TOLERANCE_FIGURES[tolerance]
    velocity = measurements.peak_sales_velocity(sku_id=sku.pk, now=now)
    latency = measurements.latency_p95_by_channel(channel_ids=[channel.pk], now=now).get(
        channel.pk
    )
    latency_ms = latency.p95_ms if latency is not None else UNMEASURED_LATENCY_MS
    exposure = velocity.units_per_s * latency_ms / 1000
    fixed_units = math.ceil(exposure * multiplier)
    ats = selectors.ats_on_channel(sku_id=sku.pk, channel_id=channel.pk)
    current_rule = _current_rule(sku=sku, channel=channel)
    listed_now = explain_listed_quantity(
        ats=ats,
        rule=selectors.buffer_rule_values(current_rule),
        out_of_stock_threshold=channel.out_of_stock_threshold,
        now=now,
    ).listed
    recommended = BufferRuleValues(
        percent=percent,
        fixed_units=fixed_units,
        max_cap=current_rule.max_cap if current_rule else None,
        cap_starts_at=current_rule.cap_starts_at if current_rule else None,
        cap_ends_at=current_rule.cap_ends_at if current_rule else None,
    )
    listed_after = explain_listed_quantity(
        ats=ats,
        rule=recommended,
        out_of_stock_threshold=channel.out_of_stock_threshold,
        now=now,
    ).listed
    window_min = int(velocity.window.total_seconds() // 60)
    steps = (
        CalculationStep(
            f"peak sales in any {window_min} min of the last {velocity.lookback.days} days",
            f"{velocity.units} units = {velocity.units_per_s:.4f} units/s",
        ),
        CalculationStep(
            f"propagation latency p95 on {channel.name}"
            + (
                f" (its newest {latency.pushes} pushes of the last 24 h)"
                if latency is not None
                else " (no push measured: the 60 s alert threshold)"
            ),
            f"{latency_ms / 1000:.2f} s",
        ),
        CalculationStep(
            "units sold elsewhere before the channel hears (rate x latency)",
            f"{exposure:.3f} units",
        ),
        CalculationStep(
            f"held as fixed units: {multiplier} x exposure, rounded up",
            f"{fixed_units} unit" + ("" if fixed_units == 1 else "s"),
        ),
        CalculationStep(f"share held back ({RiskTolerance(tolerance).label})", f"{percent} %"),
        CalculationStep(
            f"listed now from ATS {ats} → with the recommendation",
            f"{listed_now} → {listed_after}",
        ),
    )
    return Recommendation(
        sku=sku,
        channel=channel,
        tolerance=tolerance,
        velocity=velocity,
        latency_p95_ms=latency_ms,
        latency_measured=latency is not None,
        exposure_units=exposure,
        percent=percent,
        fixed_units=fixed_units,
        ats=ats,
        listed_now=listed_now,
        listed_after=listed_after,
        steps=steps,
    )


def _current_rule(*, sku: Sku, channel: Channel) -> BufferRule | None:
    return BufferRule.objects.filter(channel=channel, sku=sku).first()


@transaction.atomic
def apply_recommended_buffer(
    *, actor: object, sku_id: int, channel_id: int, tolerance: str = DEFAULT_TOLERANCE
) -> BufferRule:
    """Save the recommendation as the SKU's buffer rule on the channel (a new rule, or the
    percent and fixed units of the one it has; its cap is kept).

    Needs ``EDIT_BUFFERS`` (PermissionDenied). Recomputed here, so what is saved is what
    the figures say at the time of saving. The rule's history records ``actor`` and the
    calculator's figures as the reason; its listings are owed a push
    (``channels.services``).
    """
    permissions.require(actor, permissions.EDIT_BUFFERS)
    sku = Sku.objects.get(pk=sku_id)
    channel = Channel.objects.get(pk=channel_id)
    recommendation = recommend_buffer(sku=sku, channel=channel, tolerance=tolerance)
    bulk_edits.save_sku_rule(
        actor=actor,
        channel_id=channel_id,
        sku_id=sku_id,
        percent=recommendation.percent,
        fixed_units=recommendation.fixed_units,
        reason=recommendation.reason,
    )
    return BufferRule.objects.get(channel_id=channel_id, sku_id=sku_id, listing__isnull=True)
