"""Console routes of the inventory, included at /dashboard/skus/."""

from django.urls import path

from inventory import views

app_name = "inventory_console"

urlpatterns = [
    path("", views.sku_list_view, name="sku-list"),
]
