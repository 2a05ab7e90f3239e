"""Edits of many buffer rules or channels at once, for an operator: services with their
permission, recorded with who made them.

Every rule is still written through ``channels.services`` (so the listings it governs are
owed their pushes) and every change goes into the rule's history, signed with the operator
and the reason. The preview is the admin's single-rule preview
(``selectors.preview_buffer_rule``) run over each rule the edit would write.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from decimal import Decimal

from django.contrib.admin.models import CHANGE, LogEntry
from django.db import transaction
from django.db.models import Q, QuerySet

from channels import selectors, services
from channels.models import BufferRule, Channel
from inventory.models import Sku
from nventory import permissions
from nventory.errors import ApplicationError

# Rules an edit may write at once: a category of 2,000 SKUs on five channels is 10,000
# rules, each owing its listings a push, in one transaction.
MAX_RULES_PER_EDIT = 10_000
# (channel, SKU) pairs the preview works out; the rest are counted, not shown.
PREVIEW_PAIRS = 20


class EditTooLarge(ApplicationError):
    code = "edit_too_large"


@dataclasses.dataclass(frozen=True)
class BufferValues:
    """What a bulk edit sets on each SKU's rule."""

    percent: Decimal = Decimal(0)
    fixed_units: int = 0
    max_cap: int | None = None


def skus_in_selection(*, sku_codes: Iterable[str] = (), category: str = "") -> QuerySet[Sku]:
    """The SKUs an edit covers: those with these codes, and every SKU of the category."""
    codes = [code.strip() for code in sku_codes if code.strip()]
    scope = Q(pk__in=[])
    if codes:
        scope |= Q(code__in=codes)
    if category:
        scope |= Q(category=category)
    return Sku.objects.filter(scope).order_by("code")


def categories() -> list[str]:
    """Every category a SKU has, in order (for the edit's choice)."""
    return list(
        Sku.objects.exclude(category="")
        .order_by("category")
        .values_list("category", flat=True)
        .distinct()
    )


@dataclasses.dataclass(frozen=True)
class PairPreview:
    channel: Channel
    sku: Sku
    existing: BufferRule | None
    rows: list[selectors.RulePreviewRow]


@dataclasses.dataclass(frozen=True)
class BulkPreview:
    pairs: list[PairPreview]
    # Rules the edit would write (created or changed), and how many of them exist already.
    rule_count: int
    existing_count: int

    @property
    def not_shown(self) -> int:
        return self.rule_count - len(self.pairs)


def preview_bulk_buffer_rules(
    *, channel_ids: Sequence[int], sku_ids: Sequence[int], values: BufferValues
) -> BulkPreview:
    """What the edit would list, next to today's figure, for the first ``PREVIEW_PAIRS``
    (channel, SKU) pairs; reads only."""
    channels = list(Channel.objects.filter(pk__in=channel_ids).order_by("slug"))
    skus = list(Sku.objects.filter(pk__in=sku_ids).order_by("code")[:PREVIEW_PAIRS])
    existing = {
        (rule.channel_id, rule.sku_id): rule
        for rule in BufferRule.objects.filter(channel_id__in=channel_ids, sku_id__in=sku_ids)
    }
    pairs: list[PairPreview] = []
    for sku in skus:
        for channel in channels:
            if len(pairs) >= PREVIEW_PAIRS:
                break
            current = existing.get((channel.pk, sku.pk))
            unsaved = BufferRule(
                channel=channel,
                sku=sku,
                percent=values.percent,
                fixed_units=values.fixed_units,
                max_cap=values.max_cap,
                cap_starts_at=current.cap_starts_at if current else None,
                cap_ends_at=current.cap_ends_at if current else None,
            )
            pairs.append(
                PairPreview(
                    channel=channel,
                    sku=sku,
                    existing=current,
                    rows=selectors.preview_buffer_rule(rule=unsaved),
                )
            )
    return BulkPreview(
        pairs=pairs,
        rule_count=len(channels) * len(set(sku_ids)),
        existing_count=len(existing),
    )


@dataclasses.dataclass(frozen=True)
class BulkResult:
    created: int
    updated: int
    unchanged: int


@transaction.atomic
def apply_bulk_buffer_rules(
    *,
    actor: object,
    channel_ids: Sequence[int],
    sku_ids: Sequence[int],
    values: BufferValues,
    reason: str,
) -> BulkResult:
    """Give every SKU a rule with ``values`` on every channel: new rules, or the SKU's
    existing rule changed (its cap window kept); all or none.

    Needs ``EDIT_BUFFERS`` (PermissionDenied); ``EditTooLarge`` past ``MAX_RULES_PER_EDIT``;
    ValidationError for an invalid value. Each rule's history records ``actor`` and
    ``reason``; the listings each governs are owed a push.
    """
    permissions.require(actor, permissions.EDIT_BUFFERS)
    channel_ids = sorted(set(channel_ids))
    sku_ids = sorted(set(sku_ids))
    if len(channel_ids) * len(sku_ids) > MAX_RULES_PER_EDIT:
        raise EditTooLarge(
            f"{len(channel_ids) * len(sku_ids)} rules in one edit; at most "
            f"{MAX_RULES_PER_EDIT}: split it by category or channel."
        )
    created = updated = unchanged = 0
    for channel_id in channel_ids:
        for sku_id in sku_ids:
            outcome = save_sku_rule(
                actor=actor,
                channel_id=channel_id,
                sku_id=sku_id,
                percent=values.percent,
                fixed_units=values.fixed_units,
                max_cap=values.max_cap,
                keep_cap=False,
                reason=reason,
            )
            created += outcome == "created"
            updated += outcome == "updated"
            unchanged += outcome == "unchanged"
    return BulkResult(created=created, updated=updated, unchanged=unchanged)


def save_sku_rule(
    *,
    actor: object,
    channel_id: int,
    sku_id: int,
    percent: Decimal,
    fixed_units: int,
    reason: str,
    max_cap: int | None = None,
    keep_cap: bool = True,
) -> str:
    """Create or change the SKU's rule on the channel through ``channels.services``, and
    sign the history entry the save wrote with ``actor`` and ``reason``: "created",
    "updated" or "unchanged". ``keep_cap`` leaves an existing rule's cap as it is.

    Locks the existing rule. Checks no permission: its callers check theirs first, inside
    the same transaction.
    """
    existing = (
        BufferRule.objects.select_for_update()
        .filter(channel_id=channel_id, sku_id=sku_id, listing__isnull=True)
        .first()
    )
    if existing is None:
        rule = services.create_buffer_rule(
            fields=services.BufferRuleFields(
                channel_id=channel_id,
                sku_id=sku_id,
                percent=percent,
                fixed_units=fixed_units,
                max_cap=max_cap,
            )
        )
        _sign_history(rule=rule, after_history_id=0, actor=actor, reason=reason)
        return "created"
    fields = dataclasses.replace(
        services.BufferRuleFields.of(existing), percent=percent, fixed_units=fixed_units
    )
    if not keep_cap:
        fields = dataclasses.replace(fields, max_cap=max_cap)
    last_entry = _newest_history_id(existing)
    rule = services.update_buffer_rule(rule_id=existing.pk, fields=fields)
    signed = _sign_history(rule=rule, after_history_id=last_entry, actor=actor, reason=reason)
    return "updated" if signed else "unchanged"


def _newest_history_id(rule: BufferRule) -> int:
    newest = rule.history.order_by("-history_id").values_list("history_id", flat=True).first()
    return newest or 0


def _sign_history(*, rule: BufferRule, after_history_id: int, actor: object, reason: str) -> int:
    """Record who and why on the history entries this save wrote (none if it changed
    nothing); how many were signed."""
    user = actor if getattr(actor, "pk", None) is not None else None
    return int(
        rule.history.filter(history_id__gt=after_history_id).update(
            history_user=user, history_change_reason=reason[:100]
        )
    )


@transaction.atomic
def set_channel_modes(*, actor: object, channel_ids: Iterable[int], mode: str) -> list[Channel]:
    """Switch these channels to ``mode`` (active, shadow or paused); the channels that
    changed.

    Needs ``MANAGE_CHANNELS`` (PermissionDenied); ValidationError for an unknown mode.
    Locks the channels in primary-key order (``services.update_channel``); a channel that
    starts pushing owes every listing a push. Each switch is logged in the admin's history
    of the channel with ``actor``.
    """
    permissions.require(actor, permissions.MANAGE_CHANNELS)
    changed = []
    for channel in Channel.objects.filter(pk__in=set(channel_ids)).order_by("pk"):
        if channel.mode == mode:
            continue
        before = channel.get_mode_display()
        fields = dataclasses.replace(services.ChannelFields.of(channel), mode=mode)
        updated = services.update_channel(channel_id=channel.pk, fields=fields)
        changed.append(updated)
        user_id = getattr(actor, "pk", None)
        if user_id is not None:
            LogEntry.objects.log_actions(
                user_id=user_id,
                queryset=[updated],
                action_flag=CHANGE,
                change_message=f"Mode: {before} → {updated.get_mode_display()} (console).",
                single_object=True,
            )
    return changed
