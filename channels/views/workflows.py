"""Console pages of the operator's workflows: dead letters, oversell incidents, waiting
lines and mapping gaps, webhook receipts that failed or were quarantined.

Each page needs the model's view permission; each action is a ``WorkflowAction``: a POST
that calls one ``channels.workflows`` service, which checks the action's own permission
(403 without it) and records who acted. An htmx request gets the page's fragment back (the
rows it changed, with the outcome above them); any other is redirected back to the page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views import View
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


class WorkflowAction(View):
    """One console action: POST only, signed in; answers 404 when the object its URL names
    is missing (``target``: its model, found by the URL's one parameter), runs ``perform``
    (one service call, answering what to tell the operator) through ``_act``, and answers
    with ``respond``: the fragment it changed for htmx, a redirect otherwise.
    """

    target: type[Model] | None = None
    request: HtmxHttpRequest

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Callable[..., HttpResponseBase]:
        # The method is checked before the login, as on every other POST of the console.
        return require_POST(login_required(super().as_view(**initkwargs)))

    def post(self, request: HtmxHttpRequest, **url_parameters: int) -> HttpResponse:
        if self.target is not None:
            (target_id,) = url_parameters.values()
            get_object_or_404(self.target._default_manager.only("pk"), pk=target_id)
        return self.respond(_act(request, self.perform))

    def perform(self) -> str:
        """Call the action's service; what to tell the operator it did."""
        raise NotImplementedError

    def respond(self, outcome: Outcome) -> HttpResponse:
        raise NotImplementedError


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


class _DeadLetterAction(WorkflowAction):
    """Acts on the dead letters ticked (``ids``); answers the list, or the one dead
    letter's page when it was posted from there."""

    def respond(self, outcome: Outcome) -> HttpResponse:
        request, ids = self.request, _ids(self.request)
        if request.POST.get("from") == "detail" and len(ids) == 1:
            if request.htmx:
                return _dead_letter_detail(request, ids[0], outcome)
            return redirect("dashboard:dead-letter", dead_letter_id=ids[0])
        if request.htmx:
            return _dead_letter_page(request, partial="dead-letter-rows", outcome=outcome)
        return redirect(_back(request, reverse("dashboard:dead-letters")))


class DeadLettersReplay(_DeadLetterAction):
    def perform(self) -> str:
        replayed = workflows.replay_dead_letters(
            dead_letter_ids=_ids(self.request), actor=self.request.user
        )
        return (
            f"Replayed {len(replayed)} dead letter(s): the master's quantity goes out "
            "with fresh tries."
        )


class DeadLettersDiscard(_DeadLetterAction):
    def perform(self) -> str:
        discarded = workflows.discard_dead_letters(
            dead_letter_ids=_ids(self.request),
            reason=self.request.POST.get("reason", ""),
            actor=self.request.user,
        )
        return f"Discarded {len(discarded)} dead letter(s)."


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


class _OversellAction(WorkflowAction):
    """Acts on one incident; answers its row."""

    target = OversellIncident

    def respond(self, outcome: Outcome) -> HttpResponse:
        if self.request.htmx:
            incident = selectors.oversell_incidents_to_handle(state="all").get(
                pk=self.kwargs["incident_id"]
            )
            return render(
                self.request,
                "channels/oversells.html#oversell-row",
                {"incident": incident, "outcome": outcome},
            )
        return redirect(_back(self.request, reverse("dashboard:oversells")))


class OversellAcknowledge(_OversellAction):
    def perform(self) -> str:
        incident_id = self.kwargs["incident_id"]
        workflows.acknowledge_oversell(incident_id=incident_id, actor=self.request.user)
        return f"Incident {incident_id} acknowledged."


class OversellRootCause(_OversellAction):
    def perform(self) -> str:
        incident_id = self.kwargs["incident_id"]
        workflows.note_oversell_root_cause(
            incident_id=incident_id,
            root_cause=self.request.POST.get("root_cause", ""),
            actor=self.request.user,
        )
        return f"Root cause of incident {incident_id} noted."


class OversellResolve(_OversellAction):
    def perform(self) -> str:
        incident_id = self.kwargs["incident_id"]
        workflows.resolve_oversell(
            incident_id=incident_id,
            root_cause=self.request.POST.get("root_cause", ""),
            actor=self.request.user,
        )
        return f"Incident {incident_id} resolved."


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


class _MappingAction(WorkflowAction):
    """Maps a line or a listing to the SKU named (``sku``); answers the mapping queues."""

    def respond(self, outcome: Outcome) -> HttpResponse:
        if self.request.htmx:
            return _mapping_page(self.request, partial="mapping-queues", outcome=outcome)
        return redirect(_back(self.request, reverse("dashboard:mapping")))


class MapLine(_MappingAction):
    target = UnmappedLine

    def perform(self) -> str:
        return _mapped_message(
            workflows.map_unmapped_line(
                unmapped_line_id=self.kwargs["unmapped_line_id"],
                sku_id=_sku_id(self.request),
                external_id=self.request.POST.get("external_id", ""),
                actor=self.request.user,
            )
        )


class MapListing(_MappingAction):
    target = Listing

    def perform(self) -> str:
        return _mapped_message(
            workflows.map_listing(
                listing_id=self.kwargs["listing_id"],
                sku_id=_sku_id(self.request),
                actor=self.request.user,
            )
        )


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


class ReceiptsReprocess(WorkflowAction):
    """Sends the receipts ticked (``ids``) through ingest again; answers the list, or the
    receipt's page when it was posted from there."""

    def perform(self) -> str:
        sent = workflows.reprocess_receipts(
            receipt_ids=_ids(self.request), actor=self.request.user
        )
        return f"{len(sent)} receipt(s) sent through ingest again; each is applied once."

    def respond(self, outcome: Outcome) -> HttpResponse:
        request, ids = self.request, _ids(self.request)
        if request.POST.get("from") == "detail" and len(ids) == 1:
            return redirect("dashboard:receipt", receipt_id=ids[0])
        if request.htmx:
            return _receipts_page(request, partial="receipt-rows", outcome=outcome)
        return redirect(_back(request, reverse("dashboard:receipts")))


urlpatterns = [
    path("dead-letters/", dead_letters_view, name="dead-letters"),
    path("dead-letters/replay/", DeadLettersReplay.as_view(), name="dead-letters-replay"),
    path("dead-letters/discard/", DeadLettersDiscard.as_view(), name="dead-letters-discard"),
    path("dead-letters/<int:dead_letter_id>/", dead_letter_view, name="dead-letter"),
    path("oversells/", oversells_view, name="oversells"),
    path(
        "oversells/<int:incident_id>/acknowledge/",
        OversellAcknowledge.as_view(),
        name="oversell-acknowledge",
    ),
    path(
        "oversells/<int:incident_id>/root-cause/",
        OversellRootCause.as_view(),
        name="oversell-root-cause",
    ),
    path(
        "oversells/<int:incident_id>/resolve/", OversellResolve.as_view(), name="oversell-resolve"
    ),
    path("mapping/", mapping_view, name="mapping"),
    path("mapping/lines/<int:unmapped_line_id>/map/", MapLine.as_view(), name="map-line"),
    path("mapping/listings/<int:listing_id>/map/", MapListing.as_view(), name="map-listing"),
    path("receipts/", receipts_view, name="receipts"),
    path("receipts/reprocess/", ReceiptsReprocess.as_view(), name="receipts-reprocess"),
    path("receipts/<int:receipt_id>/", receipt_view, name="receipt"),
]
