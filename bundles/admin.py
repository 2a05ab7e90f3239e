"""Admin for bundles: a bundle's BOM lines are edited inline on the ``Bundle`` proxy.

The lines are validated and saved by ``bundles.services`` (cycle check, closure rebuild),
never by the inline formset itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, QuerySet
from django.forms import BaseInlineFormSet, Form, ModelForm
from django.http import HttpRequest
from django.utils.html import format_html_join

from bundles import selectors, services
from bundles.models import BomLine, Bundle
from inventory.models import Sku


class BomLineFormSet(BaseInlineFormSet):
    """Asks ``services.validate_bom`` about the lines as a whole: a cycle is a form error."""

    def bom_lines(self) -> list[tuple[Sku, int]]:
        return [
            (form.cleaned_data["component"], form.cleaned_data["quantity"])
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        lines = self.bom_lines()
        if not lines:
            raise ValidationError("A bundle needs at least one BOM line.")
        try:
            services.validate_bom(bundle=self.instance, lines=lines)
        except services.BomError as exc:
            raise ValidationError(exc.message) from None


class BomLineInline(admin.TabularInline):
    model = BomLine
    fk_name = "bundle"
    formset = BomLineFormSet
    fields = ("component", "quantity")
    autocomplete_fields = ("component",)
    extra = 1


class ContainsBundlesFilter(admin.SimpleListFilter):
    title = "nesting"
    parameter_name = "nested"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Contains other bundles"), ("no", "Only stock-bearing SKUs")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        nested = Exists(
            BomLine.objects.filter(
                bundle_id=OuterRef("pk"),
                component__bom_lines__isnull=False,
            )
        )
        if self.value() == "yes":
            return queryset.filter(nested)
        if self.value() == "no":
            return queryset.exclude(nested)
        return queryset


@admin.register(Bundle)
class BundleAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "category", "is_active", "available_total")
    list_filter = ("is_active", ContainsBundlesFilter, "category")
    search_fields = ("code", "name", "bom_lines__component__code")
    fields = ("code", "name", "category", "is_active", "bom_arithmetic")
    readonly_fields = ("bom_arithmetic",)
    inlines = (BomLineInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Bundle]:
        # Listed only while it has lines: a SKU without them is not a bundle.
        return (
            super()
            .get_queryset(request)
            .filter(Exists(BomLine.objects.filter(bundle_id=OuterRef("pk"))))
            .annotate(available_units=selectors.availability_expression())
        )

    @admin.display(description="Available (all locations)", ordering="available_units")
    def available_total(self, obj: Bundle) -> int:
        return int(getattr(obj, "available_units", 0))

    @admin.display(description="Availability (all locations)")
    def bom_arithmetic(self, obj: Bundle | None) -> str:
        if obj is None or obj.pk is None:
            return "Save the bundle first."
        explanation = selectors.explain_bundle(bundle_id=obj.pk, location_ids=None)
        steps = format_html_join("", "<li>{}</li>", ((step.label,) for step in explanation.steps))
        return format_html_join(
            "", "<ul>{}</ul><p>Available: the smallest, {}.</p>", [(steps, explanation.available)]
        )

    def save_related(
        self, request: HttpRequest, form: ModelForm, formsets: list[Any], change: bool
    ) -> None:
        form.save_m2m()
        for formset in formsets:
            services.set_bom(bundle=form.instance, lines=formset.bom_lines())
            # What the admin's change message reads; the service saved the lines instead.
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def construct_change_message(
        self, request: HttpRequest, form: Form, formsets: Iterable[Any], add: bool = False
    ) -> list[dict[str, dict[str, list[str]]]]:
        message = super().construct_change_message(request, form, formsets, add)
        if not add and any(formset.has_changed() for formset in list(formsets)):
            message.append({"changed": {"fields": ["BOM lines"]}})
        return message
