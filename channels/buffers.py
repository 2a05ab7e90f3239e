"""The listed-quantity arithmetic: pure, no database, one documented order of steps.

``listed = clamp(floor(ATS x (1 - percent/100)) - fixed_units - velocity_units, 0, max_cap)``,
then 0 if below the channel's out-of-stock threshold (DESIGN.md, "Listed quantity"). Decimal
throughout, never float: ``floor(7 x 0.7)`` must be 4 however 0.7 is represented.

``velocity_units`` is the velocity guard's rise (``channels.pipeline.velocity``); how large
a rise a spike earns is worked out here too (``velocity_rise``).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

_HUNDRED = Decimal(100)


@dataclass(frozen=True)
class BufferRuleValues:
    """The numbers of one buffer rule, detached from the model."""

    percent: Decimal = Decimal(0)
    fixed_units: int = 0
    max_cap: int | None = None
    cap_starts_at: dt.datetime | None = None
    cap_ends_at: dt.datetime | None = None
    # The velocity guard's rise for the listing's SKU on the channel, whichever rule governs.
    velocity_units: int = 0

    def cap_applies(self, now: dt.datetime) -> bool:
        """A cap applies with no window, or inside it (start inclusive, end exclusive)."""
        if self.max_cap is None:
            return False
        if self.cap_starts_at is not None and now < self.cap_starts_at:
            return False
        return not (self.cap_ends_at is not None and now >= self.cap_ends_at)


@dataclass(frozen=True)
class Step:
    label: str
    quantity: int


@dataclass(frozen=True)
class Explanation:
    steps: tuple[Step, ...]
    listed: int


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def explain_listed_quantity(
    *,
    ats: int,
    rule: BufferRuleValues | None,
    out_of_stock_threshold: int,
    now: dt.datetime,
) -> Explanation:
    """Each step of the listed quantity, in order, with the quantity after it.

    1. ATS (a negative ATS, after an oversell, counts as 0);
    2. percent held back: ``floor(ATS x (1 - percent/100))``: the only step that can leave
       a fraction, so rounding down to whole units happens here;
    3. minus the fixed units, and minus the velocity guard's rise while there is one;
    4. the cap, if the rule has one and its window (if any) contains ``now``;
    5. the out-of-stock threshold: below it, 0;
    6. clamp at 0.
    """
    values = rule or BufferRuleValues()
    steps: list[Step] = []

    quantity = max(ats, 0)
    steps.append(Step(f"ATS {ats}" + (" (negative counts as 0)" if ats < 0 else ""), quantity))

    kept = Decimal(quantity) * (1 - Decimal(values.percent) / _HUNDRED)
    quantity = _floor(kept)
    steps.append(Step(f"hold back {values.percent}%, rounded down to whole units", quantity))

    quantity -= values.fixed_units
    steps.append(Step(f"minus {values.fixed_units} fixed units", quantity))
    if values.velocity_units:
        quantity -= values.velocity_units
        steps.append(
            Step(f"minus {values.velocity_units} units held by the velocity guard", quantity)
        )

    if values.max_cap is None:
        steps.append(Step("no cap", quantity))
    elif values.cap_applies(now):
        quantity = min(quantity, values.max_cap)
        steps.append(Step(f"cap at {values.max_cap}", quantity))
    else:
        steps.append(Step(f"cap {values.max_cap} lifted (outside its window)", quantity))

    if quantity < out_of_stock_threshold:
        quantity = 0
        steps.append(Step(f"below out-of-stock threshold {out_of_stock_threshold}: 0", quantity))
    else:
        steps.append(
            Step(f"at or above out-of-stock threshold {out_of_stock_threshold}", quantity)
        )

    quantity = max(quantity, 0)
    steps.append(Step("clamp at 0", quantity))

    return Explanation(steps=tuple(steps), listed=quantity)


def listed_quantity(
    *,
    ats: int,
    rule: BufferRuleValues | None,
    out_of_stock_threshold: int,
    now: dt.datetime,
) -> int:
    return explain_listed_quantity(
        ats=ats, rule=rule, out_of_stock_threshold=out_of_stock_threshold, now=now
    ).listed


def velocity_rise(*, units_sold: int, window_s: float, cover_s: float, current: int) -> int:
    """The velocity guard's rise for a SKU that sold ``units_sold`` in the last ``window_s``
    on a channel, given the rise it holds now (``current``).

    The rise covers ``cover_s`` of sales at the measured rate, rounded up: the units that
    could sell on the channel before its orders reach nventory and every channel is pushed.
    A rise never falls here (only the guard's sweep lowers it, once the spike is over), and
    a higher one grows by at least half the current one: each step is a history row and a
    push of every listing of the SKU on the channel, not one per sale.
    """
    needed = math.ceil(units_sold * cover_s / window_s) if window_s > 0 else 0
    if needed <= current:
        return current
    return max(needed, math.ceil(current * 1.5))
