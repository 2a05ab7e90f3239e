"""The permission check of every API view (``DEFAULT_PERMISSION_CLASSES``).

Kept apart from ``nventory.api``: DRF imports its default permission classes while
``rest_framework.views`` itself loads, so this module may not import that.
"""

from __future__ import annotations

from typing import Any, Final

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

# A view that any authenticated client may read (the API's entry point): stated, so that
# "no permission named" still means refused.
ANY_CLIENT: Final = "any authenticated client"


def required_permission(view: Any, method: str) -> str | None:
    """The permission a request of ``method`` to ``view`` needs: ``read_permission`` for
    GET and HEAD, ``write_permission`` for the others, either for OPTIONS (it describes
    the view); None when the view names none."""
    read = getattr(view, "read_permission", None)
    write = getattr(view, "write_permission", None)
    match method.upper():
        case "OPTIONS":
            return read or write
        case verb if verb in SAFE_METHODS:
            return read
    return write


class OperationPermission(BasePermission):
    """Every API request needs the permission its view names for its method
    (``nventory.permissions`` for writes, the model's ``view_`` one for reads). A view
    that names none is refused to everyone, superusers included, so that a new route
    cannot be left open by forgetting. Anonymous requests get 401, others 403."""

    message = "You do not have permission to perform this action."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        method = request.method or "GET"
        needed = required_permission(view, method)
        if needed is None and not hasattr(view, method.lower()):
            # A method the view does not offer: its 405 changes nothing and says more.
            return True
        if needed is None:
            self.message = "This operation is not open to any client."
            return False
        if needed == ANY_CLIENT or user.has_perm(needed):
            return True
        self.message = f"This needs the permission {needed!r}."
        return False
