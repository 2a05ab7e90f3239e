"""Console routes of one SKU, included at /dashboard/skus/ (the search is the inventory's)."""

from django.urls import path

from channels.views import skus

app_name = "skus"

urlpatterns = [
    path("<str:code>/", skus.sku_detail_view, name="detail"),
    path("<str:code>/safety-stock/", skus.safety_stock_view, name="safety-stock"),
]
