"""The listed-quantity arithmetic, worked by hand, plus its invariants as properties."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from channels.buffers import BufferRuleValues, explain_listed_quantity, listed_quantity

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def listed(ats: int, rule: BufferRuleValues | None = None, threshold: int = 0) -> int:
    return listed_quantity(ats=ats, rule=rule, out_of_stock_threshold=threshold, now=NOW)


def test_no_rule_lists_the_ats():
    assert listed(42) == 42


def test_ats_100_percent_10_fixed_5_cap_50_lists_50():
    """floor(100 x 0.9) = 90; 90 - 5 = 85; cap 50 -> 50."""
    rule = BufferRuleValues(percent=Decimal(10), fixed_units=5, max_cap=50)
    assert listed(100, rule) == 50


def test_ats_100_percent_10_fixed_5_no_cap_lists_85():
    """floor(100 x 0.9) = 90; 90 - 5 = 85."""
    assert listed(100, BufferRuleValues(percent=Decimal(10), fixed_units=5)) == 85


def test_ats_7_percent_30_rounds_down_to_4():
    """7 x 0.7 = 4.9 -> 4 (Decimal: no 4.8999... surprises)."""
    assert listed(7, BufferRuleValues(percent=Decimal(30))) == 4


def test_ats_3_percent_33_33_rounds_down_to_2():
    """3 x 0.6667 = 2.0001 -> 2."""
    assert listed(3, BufferRuleValues(percent=Decimal("33.33"))) == 2


def test_ats_7_below_threshold_10_lists_0():
    assert listed(7, threshold=10) == 0


def test_ats_10_at_threshold_10_lists_10():
    assert listed(10, threshold=10) == 10


def test_threshold_applies_after_the_buffer():
    """ATS 12, 5 fixed -> 7, below threshold 10 -> 0."""
    assert listed(12, BufferRuleValues(fixed_units=5), threshold=10) == 0


def test_negative_ats_lists_0():
    assert listed(-5) == 0


def test_fixed_units_above_ats_clamp_at_0():
    """ATS 3 - 5 fixed = -2 -> 0."""
    assert listed(3, BufferRuleValues(fixed_units=5)) == 0


def test_percent_100_lists_0():
    assert listed(1000, BufferRuleValues(percent=Decimal(100))) == 0


def test_time_boxed_cap_applies_inside_its_window():
    """ATS 100, cap 20 from an hour ago until an hour from now -> 20."""
    rule = BufferRuleValues(max_cap=20, cap_starts_at=NOW - HOUR, cap_ends_at=NOW + HOUR)
    assert listed(100, rule) == 20


def test_time_boxed_cap_lifts_before_its_window():
    """ATS 100, cap 20 starting in an hour -> 100."""
    rule = BufferRuleValues(max_cap=20, cap_starts_at=NOW + HOUR, cap_ends_at=NOW + 2 * HOUR)
    assert listed(100, rule) == 100


def test_time_boxed_cap_lifts_after_its_window():
    """ATS 100, cap 20 that ended at NOW (end exclusive) -> 100."""
    rule = BufferRuleValues(max_cap=20, cap_starts_at=NOW - HOUR, cap_ends_at=NOW)
    assert listed(100, rule) == 100


def test_open_ended_cap_window():
    """Only a start in the past: the cap applies from then on."""
    assert listed(100, BufferRuleValues(max_cap=20, cap_starts_at=NOW - HOUR)) == 20
    assert listed(100, BufferRuleValues(max_cap=20, cap_ends_at=NOW + HOUR)) == 20


def test_explanation_lists_every_step_in_order():
    rule = BufferRuleValues(percent=Decimal(10), fixed_units=5, max_cap=50)
    explanation = explain_listed_quantity(ats=100, rule=rule, out_of_stock_threshold=0, now=NOW)
    assert [step.quantity for step in explanation.steps] == [100, 90, 85, 50, 50, 50]
    assert explanation.listed == 50
    assert "cap at 50" in explanation.steps[3].label


rules = st.builds(
    BufferRuleValues,
    percent=st.decimals(min_value=0, max_value=100, places=2),
    fixed_units=st.integers(min_value=0, max_value=1000),
    max_cap=st.none() | st.integers(min_value=0, max_value=1000),
    cap_starts_at=st.none() | st.sampled_from([NOW - HOUR, NOW + HOUR]),
    cap_ends_at=st.none() | st.sampled_from([NOW, NOW + 2 * HOUR]),
)
ats_values = st.integers(min_value=-1000, max_value=100_000)
thresholds = st.integers(min_value=0, max_value=100)


@given(ats=ats_values, rule=st.none() | rules, threshold=thresholds)
def test_listed_is_within_zero_ats_and_active_cap(ats, rule, threshold):
    result = listed(ats, rule, threshold)
    assert 0 <= result <= max(ats, 0)
    if rule is not None and rule.max_cap is not None and rule.cap_applies(NOW):
        assert result <= rule.max_cap
    assert result == 0 or result >= threshold


@given(
    ats=ats_values,
    more=st.integers(min_value=0, max_value=1000),
    rule=st.none() | rules,
    threshold=thresholds,
)
def test_listed_is_monotone_in_ats(ats, more, rule, threshold):
    assert listed(ats, rule, threshold) <= listed(ats + more, rule, threshold)
