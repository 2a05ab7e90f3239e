"""Admin for channels, the SKU map (listings) and buffer rules.

Channel secrets (credentials, webhook secret) never appear in list views.
"""

from __future__ import annotations

from django.contrib import admin

from channels.models import BufferRule, Channel, Listing


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    # No credentials or webhook_secret here: list views never show secrets.
    list_display = (
        "name",
        "slug",
        "platform",
        "mode",
        "api_base_url",
        "rate_limit_per_s",
        "out_of_stock_threshold",
        "created_at",
    )
    list_filter = ("platform", "mode")
    search_fields = ("name", "slug")
    filter_horizontal = ("locations",)
    readonly_fields = ("created_at",)


@admin.register(Listing)
class ListingAdmin(admin.ModelAdmin):
    list_display = ("external_id", "external_sku", "channel", "sku", "is_active", "created_at")
    list_select_related = ("channel", "sku")
    list_filter = ("channel", "is_active")
    search_fields = ("external_id", "external_sku", "sku__code")
    autocomplete_fields = ("sku",)
    readonly_fields = ("created_at",)


@admin.register(BufferRule)
class BufferRuleAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "channel",
        "sku",
        "listing",
        "percent",
        "fixed_units",
        "max_cap",
        "cap_starts_at",
        "cap_ends_at",
        "updated_at",
    )
    list_select_related = ("channel", "sku", "listing")
    list_filter = ("channel",)
    search_fields = ("channel__name", "sku__code", "listing__external_id", "listing__external_sku")
    raw_id_fields = ("listing",)
    autocomplete_fields = ("sku",)
    readonly_fields = ("created_at", "updated_at")
