"""CSV import/export of the SKU map (django-import-export), as the admin offers it.

A row is one listing: the channel by slug, the SKU by code (empty: unmapped, a gap),
the platform ids. Rows are matched on (channel, external_id), so importing the same
file twice changes nothing, and an edited file updates listings in place. Each row is
saved by ``channels.services`` (``create_listing`` / ``update_listing``), so a row that
maps a SKU owes its listing a push, as an edit in the admin does.
"""

from __future__ import annotations

from import_export import fields, resources
from import_export.widgets import ForeignKeyWidget

from channels import services
from channels.models import Channel, Listing
from inventory.models import Sku


class ListingResource(resources.ModelResource):
    channel = fields.Field(
        attribute="channel", column_name="channel", widget=ForeignKeyWidget(Channel, "slug")
    )
    sku = fields.Field(attribute="sku", column_name="sku", widget=ForeignKeyWidget(Sku, "code"))

    class Meta:
        model = Listing
        fields = (
            "channel",
            "external_id",
            "external_sku",
            "sku",
            "extra_identifiers",
            "is_active",
        )
        export_order = fields
        import_id_fields = ("channel", "external_id")
        skip_unchanged = True
        report_skipped = True
        # One bad row refuses the whole file: a half-imported map is worse than none.
        use_transactions = True

    def do_instance_save(self, instance: Listing, is_create: bool) -> None:
        """django-import-export's one hook for saving a row: the services save it."""
        fields = services.ListingFields.of(instance)
        if is_create:
            instance.pk = services.create_listing(fields=fields).pk
            instance._state.adding = False
        else:
            services.update_listing(listing_id=instance.pk, fields=fields)
