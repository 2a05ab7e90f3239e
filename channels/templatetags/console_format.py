"""Formats the console's figures: a KPI with nothing to measure shows "n/a", never 0."""

from __future__ import annotations

from django import template

register = template.Library()

NOT_MEASURED = "n/a"


@register.filter
def percent(share: float | None, digits: int = 2) -> str:
    """0.99512 → "99.51 %"."""
    if share is None:
        return NOT_MEASURED
    return f"{share * 100:.{digits}f} %"


@register.filter
def seconds(milliseconds: float | None) -> str:
    """A latency in ms as seconds: 1234.5 → "1.23 s"; under 10 ms in ms."""
    if milliseconds is None:
        return NOT_MEASURED
    if milliseconds < 10:
        return f"{milliseconds:.1f} ms"
    return f"{milliseconds / 1000:.2f} s"
