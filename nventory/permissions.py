"""Who may do what: one Django permission per kind of operation, and the roles built of them.

Every operation that changes something (an API write, an admin action, a console button)
names one of the permissions below and checks it with :func:`require`; reading needs the
model's ``view_`` permission. The roles are Django groups, created from ``ROLES`` by a data
migration, so an administrator grants a person or an API client a role, not a list of
permissions. Django's default model permissions are used rather than custom ones so that the
admin's own pages and the operations agree on what "may change a dead letter" means.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from django.core.exceptions import PermissionDenied

# Stock clerk: the physical stock.
RECEIVE_ADJUST_TRANSFER: Final = "inventory.change_stocklevel"
EDIT_CATALOG: Final = "inventory.change_sku"
EDIT_LOCATIONS: Final = "inventory.change_location"

# Order client: an integration that sells (a storefront, a point of sale): its own
# reservations and the order endpoints.
SELL: Final = "inventory.add_reservation"
# Anyone's reservation, released by an operator.
RELEASE_ANY_RESERVATION: Final = "inventory.change_reservation"

# Channel manager: channels, listings, buffers, bundles and what goes wrong in the sync.
MANAGE_CHANNELS: Final = "channels.change_channel"
MAP_LISTINGS: Final = "channels.change_listing"
EDIT_BUFFERS: Final = "channels.change_bufferrule"
HANDLE_DEAD_LETTERS: Final = "channels.change_deadletter"
HANDLE_OVERSELLS: Final = "channels.change_oversellincident"
HANDLE_UNMAPPED_LINES: Final = "channels.change_unmappedline"
REPROCESS_RECEIPTS: Final = "channels.change_webhookreceipt"
SETTLE_DISCREPANCIES: Final = "reconciliation.change_discrepancy"
EDIT_BUNDLES: Final = "bundles.change_bundle"

# Administrators: issue and revoke API tokens (a token carries its user's permissions, so
# no role includes this one).
MANAGE_API_TOKENS: Final = "accounts.change_apitoken"

STOCK_CLERK: Final = "Stock clerk"
ORDER_CLIENT: Final = "Order client"
CHANNEL_MANAGER: Final = "Channel manager"
VIEWER: Final = "Viewer"

# Every role may also read everything (the view_ permission of every model of the apps
# below); the data migration adds those.
READABLE_APPS: Final = ("inventory", "bundles", "channels", "reconciliation")

ROLES: Final[dict[str, tuple[str, ...]]] = {
    STOCK_CLERK: (RECEIVE_ADJUST_TRANSFER, EDIT_CATALOG, EDIT_LOCATIONS),
    ORDER_CLIENT: (SELL,),
    CHANNEL_MANAGER: (
        MANAGE_CHANNELS,
        MAP_LISTINGS,
        EDIT_BUFFERS,
        HANDLE_DEAD_LETTERS,
        HANDLE_OVERSELLS,
        HANDLE_UNMAPPED_LINES,
        REPROCESS_RECEIPTS,
        SETTLE_DISCREPANCIES,
        EDIT_BUNDLES,
        RELEASE_ANY_RESERVATION,
    ),
    VIEWER: (),
}


def require(user: object, permission: str) -> None:
    """Raise ``PermissionDenied`` (403 in views and the API) unless ``user`` holds
    ``permission``; services that act for a person call this before they change anything."""
    has_perm = getattr(user, "has_perm", None)
    if has_perm is None or not has_perm(permission):
        raise PermissionDenied(f"This needs the permission {permission!r}.")


class Actor(Protocol):
    """The person (or API client) a service acts for: a user, as ``request.user`` is."""

    def get_username(self) -> str: ...

    def has_perm(self, perm: str, obj: Any = None) -> bool: ...
