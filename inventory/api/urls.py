"""Routes of the inventory API, included under /api/v1/ by nventory/urls.py."""

from django.urls import path

from inventory.api import apis

app_name = "inventory_api"

urlpatterns = [
    path("skus/", apis.SkuListCreateApi.as_view(), name="sku-list"),
    path("skus/<code:code>/", apis.SkuDetailApi.as_view(), name="sku-detail"),
    path("skus/<code:code>/stock/", apis.SkuStockApi.as_view(), name="sku-stock"),
    path("locations/", apis.LocationListCreateApi.as_view(), name="location-list"),
    path("locations/<code:code>/", apis.LocationDetailApi.as_view(), name="location-detail"),
    path("events/", apis.EventListApi.as_view(), name="event-list"),
    path("receipts/", apis.ReceiptCreateApi.as_view(), name="receipt-create"),
    path("adjustments/", apis.AdjustmentCreateApi.as_view(), name="adjustment-create"),
    path("transfers/", apis.TransferCreateApi.as_view(), name="transfer-create"),
    path("reservations/", apis.ReservationCreateApi.as_view(), name="reservation-create"),
    path(
        "reservations/<int:reservation_id>/",
        apis.ReservationDetailApi.as_view(),
        name="reservation-detail",
    ),
    path(
        "reservations/<int:reservation_id>/confirm/",
        apis.ReservationConfirmApi.as_view(),
        name="reservation-confirm",
    ),
    path(
        "reservations/<int:reservation_id>/release/",
        apis.ReservationReleaseApi.as_view(),
        name="reservation-release",
    ),
    path("orders/commit/", apis.OrderCommitApi.as_view(), name="order-commit"),
    path("orders/cancel/", apis.OrderCancelApi.as_view(), name="order-cancel"),
    path("orders/ship/", apis.OrderShipApi.as_view(), name="order-ship"),
    path("orders/return/", apis.OrderReturnApi.as_view(), name="order-return"),
]
