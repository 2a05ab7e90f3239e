"""Console pages of the operator's workflows: dead letters, oversell incidents, waiting
lines and mapping gaps, webhook receipts that failed or were quarantined.

Each page needs the model's view permission; each action is a POST that calls one
``channels.workflows`` service, which checks the action's own permission (403 without it)
and records who acted. An htmx request gets the page's fragment back (the rows it changed,
with the outcome above them); any other is redirected back to the page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from channels import selectors, workflows
from channels.models import (
    Channel,
    DeadLetter,
    Listing,
    OversellIncident,
    UnmappedLine,
    WebhookReceipt,
)
from channels.views.access import console_page
from inventory.models import Sku
from nventory.errors import ApplicationError

ROWS_PER_PAGE = 50


class HtmxHttpRequest(HttpRequest):
    """A request as ``django_htmx.middleware.HtmxMiddleware`` leaves it (for the types)."""

    htmx: HtmxDetails


def _page(request: HtmxHttpRequest, rows: QuerySet[Any]) -> Page:
    return Paginator(rows, ROWS_PER_PAGE).get_page(request.GET.get("page"))


def _ids(request: HtmxHttpRequest) -> list[int]:
    return [int(value) for value in request.POST.getlist("ids") if value.isdigit()]


def _channel_filter(request: HtmxHttpRequest) -> int | None:
    value = request.GET.get("channel", "")
    return int(value) if value.isdigit() else None


def _channels() -> QuerySet[Channel]:
    return Channel.objects.only("pk", "name", "slug").order_by("name")


@dataclass(frozen=True)
class Outcome:
    """What an action did (or why it was refused), shown above what it changed."""

    level: str
    text: str


def _act(request: HtmxHttpRequest, action: Callable[[], str]) -> Outcome:
    """Run one service call; its outcome, also kept as a message for the page a form
    without htmx is redirected to.

    PermissionDenied is not caught: the answer is 403 and nothing changed.
    """
    try:
        outcome = Outcome("success", action())
    except ApplicationError as error:
        outcome = Outcome("error", error.message)
    except ValidationError as error:  # a field of a listing the mapping would create
        outcome = Outcome("error", " ".join(error.messages))
    if not request.htmx:
        messages.add_message(
            request,
            messages.SUCCESS if outcome.level == "success" else messages.ERROR,
            outcome.text,
        )
    return outcome


def _back(request: HtmxHttpRequest, fallback: str) -> str:
    """Where a form without htmx returns to: the page it was posted from, if it is ours."""
    referer = request.headers.get("referer", "")
    host = request.get_host()
    if referer and f"//{host}/" in referer:
        return referer
    return fallback


# -----------------------------------------------------------------------------------------
# Dead letters
# -----------------------------------------------------------------------------------------


def _dead_letter_page(
    request: HtmxHttpRequest, *, partial: str = "", outcome: Outcome | None = None
) -> HttpResponse:
    status = request.GET.get("status", DeadLetter.Status.OPEN)
    if status not in DeadLetter.Status.values:
        status = ""
    context = {
        "page": _page(
            request,
            selectors.dead_letters_to_handle(status=status, channel_id=_channel_filter(request)),
        ),
        "status": status,
        "statuses": DeadLetter.Status.choices,
        "channels": _channels(),
        "channel_id": _channel_filter(request),
        "outcome": outcome,
    }
    template = "channels/dead_letters.html"
    return render(request, f"{template}#{partial}" if partial else template, context)


@require_GET
@console_page(read_permission="channels.view_deadletter")
def dead_letters_view(request: HtmxHttpRequest) -> HttpResponse:
    """Dead letters (open by default), newest first, each with its last error."""
    return _dead_letter_page(request, partial="dead-letter-rows" if request.htmx else "")


@require_GET
@console_page(read_permission="channels.view_deadletter")
def dead_letter_view(request: HtmxHttpRequest, dead_letter_id: int) -> HttpResponse:
    """One dead letter's whole story: every attempt's error, the listing's recent pushes,
    what the master would list now, and whether a push is owed already."""
    return _dead_letter_detail(request, dead_letter_id)


def _dead_letter_detail(
    request: HtmxHttpRequest, dead_letter_id: int, outcome: Outcome | None = None
) -> HttpResponse:
    get_object_or_404(DeadLetter, pk=dead_letter_id)
    context = {
        "context": selectors.dead_letter_context(dead_letter_id=dead_letter_id),
        "outcome": outcome,
    }
    template = "channels/dead_letter.html"
    return render(request, f"{template}#dead-letter-story" if request.htmx else template, context)


@require_POST
@login_required
def dead_letters_replay_view(request: HtmxHttpRequest) -> HttpResponse:
    ids = _ids(request)

    def act() -> str:
        replayed = workflows.replay_dead_letters(dead_letter_ids=ids, actor=request.user)
        return (
            f"Replayed {len(replayed)} dead letter(s): the master's quantity goes out "
            "with fresh tries."
        )

    return _after_dead_letter_action(request, ids, _act(request, act))


@require_POST
@login_required
def dead_letters_discard_view(request: HtmxHttpRequest) -> HttpResponse:
    ids = _ids(request)

    def act() -> str:
        discarded = workflows.discard_dead_letters(
            dead_letter_ids=ids, reason=request.POST.get("reason", ""), actor=request.user
        )
        return f"Discarded {len(discarded)} dead letter(s)."

    return _after_dead_letter_action(request, ids, _act(request, act))


def _after_dead_letter_action(
    request: HtmxHttpRequest, ids: list[int], outcome: Outcome
) -> HttpResponse:
    if request.POST.get("from") == "detail" and len(ids) == 1:
        if request.htmx:
            return _dead_letter_detail(request, ids[0], outcome)
        return redirect("dashboard:dead-letter", dead_letter_id=ids[0])
    if request.htmx:
        return _dead_letter_page(request, partial="dead-letter-rows", outcome=outcome)
    return redirect(_back(request, reverse("dashboard:dead-letters")))


# -----------------------------------------------------------------------------------------
# Oversell incidents
# -----------------------------------------------------------------------------------------


@require_GET
@console_page(read_permission="channels.view_oversellincident")
def oversells_view(request: HtmxHttpRequest) -> HttpResponse:
    """Oversell incidents (open by default), each with its handling so far."""
    state = request.GET.get("state", "open")
    context = {
        "page": _page(request, selectors.oversell_incidents_to_handle(state=state)),
        "state": state,
    }
    template = "channels/oversells.html"
    return render(request, f"{template}#oversell-rows" if request.htmx else template, context)


def _oversell_action(
    request: HtmxHttpRequest, incident_id: int, action: Callable[[], str]
) -> HttpResponse:
    get_object_or_404(OversellIncident, pk=incident_id)
    outcome = _act(request, action)
    if request.htmx:
        incident = selectors.oversell_incidents_to_handle(state="all").get(pk=incident_id)
        return render(
            request,
            "channels/oversells.html#oversell-row",
            {"incident": incident, "outcome": outcome},
        )
    return redirect(_back(request, reverse("dashboard:oversells")))


@require_POST
@login_required
def oversell_acknowledge_view(request: HtmxHttpRequest, incident_id: int) -> HttpResponse:
    def act() -> str:
        workflows.acknowledge_oversell(incident_id=incident_id, actor=request.user)
        return f"Incident {incident_id} acknowledged."

    return _oversell_action(request, incident_id, act)


@require_POST
@login_required
def oversell_root_cause_view(request: HtmxHttpRequest, incident_id: int) -> HttpResponse:
    def act() -> str:
        workflows.note_oversell_root_cause(
            incident_id=incident_id,
            root_cause=request.POST.get("root_cause", ""),
            actor=request.user,
        )
        return f"Root cause of incident {incident_id} noted."

    return _oversell_action(request, incident_id, act)


@require_POST
@login_required
def oversell_resolve_view(request: HtmxHttpRequest, incident_id: int) -> HttpResponse:
    def act() -> str:
        workflows.resolve_oversell(
            incident_id=incident_id,
            root_cause=request.POST.get("root_cause", ""),
            actor=request.user,
        )
        return f"Incident {incident_id} resolved."

    return _oversell_action(request, incident_id, act)


# -----------------------------------------------------------------------------------------
# Waiting lines and mapping gaps
# -----------------------------------------------------------------------------------------


def _mapping_page(
    request: HtmxHttpRequest, *, partial: str = "", outcome: Outcome | None = None
) -> HttpResponse:
    channel_id = _channel_filter(request)
    lines_page = _page(request, selectors.waiting_lines(channel_id=channel_id))
    context = {
        "lines": [
            (line, workflows.proposed_listing(line=line)) for line in lines_page.object_list
        ],
        "lines_page": lines_page,
        "gaps": selectors.unmapped_listings(channel_id=channel_id)[:ROWS_PER_PAGE],
        "unusable": selectors.unusable_lines(channel_id=channel_id)[:ROWS_PER_PAGE],
        "channels": _channels(),
        "channel_id": channel_id,
        "outcome": outcome,
    }
    template = "channels/mapping.html"
    return render(request, f"{template}#{partial}" if partial else template, context)


@require_GET
@console_page(read_permission="channels.view_unmappedline")
def mapping_view(request: HtmxHttpRequest) -> HttpResponse:
    """Order lines waiting for a listing, listings with no SKU, and lines the platform sent
    unusable; mapping a line or a listing applies the lines that waited for it."""
    return _mapping_page(request, partial="mapping-queues" if request.htmx else "")


def _sku_id(request: HtmxHttpRequest) -> int:
    code = request.POST.get("sku", "").strip()
    sku_id = Sku.objects.filter(code=code).values_list("pk", flat=True).first()
    if sku_id is None:
        raise ApplicationError(f"No SKU has the code {code!r}.")
    return sku_id


def _mapped_message(result: workflows.Reapplied) -> str:
    listing = result.listing
    named = f"Listing {listing.external_id} mapped" if listing else "Mapped"
    return (
        f"{named}: {result.lines_applied} waiting line(s) applied, "
        f"{result.lines_waiting} still waiting on this channel."
    )


@require_POST
@login_required
def map_line_view(request: HtmxHttpRequest, unmapped_line_id: int) -> HttpResponse:
    get_object_or_404(UnmappedLine, pk=unmapped_line_id)
    outcome = _act(
        request,
        lambda: _mapped_message(
            workflows.map_unmapped_line(
                unmapped_line_id=unmapped_line_id,
                sku_id=_sku_id(request),
                external_id=request.POST.get("external_id", ""),
                actor=request.user,
            )
        ),
    )
    return _after_mapping(request, outcome)


@require_POST
@login_required
def map_listing_view(request: HtmxHttpRequest, listing_id: int) -> HttpResponse:
    get_object_or_404(Listing, pk=listing_id)
    outcome = _act(
        request,
        lambda: _mapped_message(
            workflows.map_listing(
                listing_id=listing_id, sku_id=_sku_id(request), actor=request.user
            )
        ),
    )
    return _after_mapping(request, outcome)


def _after_mapping(request: HtmxHttpRequest, outcome: Outcome) -> HttpResponse:
    if request.htmx:
        return _mapping_page(request, partial="mapping-queues", outcome=outcome)
    return redirect(_back(request, reverse("dashboard:mapping")))


# -----------------------------------------------------------------------------------------
# Webhook receipts
# -----------------------------------------------------------------------------------------


def _receipts_page(
    request: HtmxHttpRequest, *, partial: str = "", outcome: Outcome | None = None
) -> HttpResponse:
    status = request.GET.get("status", "")
    context = {
        "page": _page(
            request,
            selectors.receipts_to_handle(
                status=status if status in workflows.REPROCESSABLE else "",
                channel_id=_channel_filter(request),
            ),
        ),
        "status": status,
        "channels": _channels(),
        "channel_id": _channel_filter(request),
        "outcome": outcome,
    }
    template = "channels/receipts.html"
    return render(request, f"{template}#{partial}" if partial else template, context)


@require_GET
@console_page(read_permission="channels.view_webhookreceipt")
def receipts_view(request: HtmxHttpRequest) -> HttpResponse:
    """Receipts that failed, were quarantined or whose order never came."""
    return _receipts_page(request, partial="receipt-rows" if request.htmx else "")


@require_GET
@console_page(read_permission="channels.view_webhookreceipt")
def receipt_view(request: HtmxHttpRequest, receipt_id: int) -> HttpResponse:
    """One receipt: its error, headers and raw body (escaped, the first 64 KiB of it)."""
    receipt = get_object_or_404(
        WebhookReceipt.objects.select_related("channel").defer("body"), pk=receipt_id
    )
    context = {
        "receipt": receipt,
        "body": selectors.receipt_body(receipt_id=receipt_id),
        "reprocessable": receipt.status in workflows.REPROCESSABLE,
    }
    return render(request, "channels/receipt.html", context)


@require_POST
@login_required
def receipts_reprocess_view(request: HtmxHttpRequest) -> HttpResponse:
    ids = _ids(request)

    def act() -> str:
        sent = workflows.reprocess_receipts(receipt_ids=ids, actor=request.user)
        return f"{len(sent)} receipt(s) sent through ingest again; each is applied once."

    outcome = _act(request, act)
    if request.POST.get("from") == "detail" and len(ids) == 1:
        return redirect("dashboard:receipt", receipt_id=ids[0])
    if request.htmx:
        return _receipts_page(request, partial="receipt-rows", outcome=outcome)
    return redirect(_back(request, reverse("dashboard:receipts")))


urlpatterns = [
    path("dead-letters/", dead_letters_view, name="dead-letters"),
    path("dead-letters/replay/", dead_letters_replay_view, name="dead-letters-replay"),
    path("dead-letters/discard/", dead_letters_discard_view, name="dead-letters-discard"),
    path("dead-letters/<int:dead_letter_id>/", dead_letter_view, name="dead-letter"),
    path("oversells/", oversells_view, name="oversells"),
    path(
        "oversells/<int:incident_id>/acknowledge/",
        oversell_acknowledge_view,
        name="oversell-acknowledge",
    ),
    path(
        "oversells/<int:incident_id>/root-cause/",
        oversell_root_cause_view,
        name="oversell-root-cause",
    ),
    path("oversells/<int:incident_id>/resolve/", oversell_resolve_view, name="oversell-resolve"),
    path("mapping/", mapping_view, name="mapping"),
    path("mapping/lines/<int:unmapped_line_id>/map/", map_line_view, name="map-line"),
    path("mapping/listings/<int:listing_id>/map/", map_listing_view, name="map-listing"),
    path("receipts/", receipts_view, name="receipts"),
    path("receipts/reprocess/", receipts_reprocess_view, name="receipts-reprocess"),
    path("receipts/<int:receipt_id>/", receipt_view, name="receipt"),
]
