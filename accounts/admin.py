"""API tokens in the admin: listed and revoked, never shown or edited (only digests are kept)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from accounts import services
from accounts.models import ApiToken
from nventory import permissions


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = (
        "prefix",
        "user",
        "name",
        "state",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )
    list_select_related = ("user",)
    list_filter = ("revoked_at", "expires_at")
    search_fields = ("prefix", "name", "user__username")
    readonly_fields = (
        "user",
        "name",
        "prefix",
        "created_at",
        "created_by",
        "expires_at",
        "revoked_at",
        "revoked_by",
        "last_used_at",
    )
    exclude = ("digest",)
    actions = ["revoke"]

    @admin.display(description="State")
    def state(self, token: ApiToken) -> str:
        return token.state_at(timezone.now())

    # Issued by `manage.py issue_api_token` or the console, which show the key once.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_manage_tokens_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(permissions.MANAGE_API_TOKENS)

    @admin.action(description="Revoke selected tokens", permissions=["manage_tokens"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = 0
        for token_id in queryset.filter(revoked_at__isnull=True).values_list("pk", flat=True):
            services.revoke_token(token_id=token_id, actor=request.user)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)
