from django.urls import include, path

from . import api

urlpatterns = [
    path("currencies", api.CurrencyListCreateApi.as_view(), name="points-currency-list"),
    path("currencies/<str:code>", api.CurrencyDetailApi.as_view(), name="points-currency-detail"),
    path("members/<int:member_id>/balances", api.MemberBalancesApi.as_view(), name="points-balances"),
    path(
        "members/<int:member_id>/transactions",
        api.MemberTransactionsApi.as_view(),
        name="points-transactions",
    ),
    path("members/<int:member_id>/expiring", api.MemberExpiringApi.as_view(), name="points-expiring"),
    path("members/<int:member_id>/points/earn", api.EarnApi.as_view(), name="points-earn"),
    path("members/<int:member_id>/points/redeem", api.RedeemApi.as_view(), name="points-redeem"),
    path("members/<int:member_id>/points/adjust", api.AdjustApi.as_view(), name="points-adjust"),
    path("members/<int:member_id>/points/transfer", api.TransferApi.as_view(), name="points-transfer"),
    path("members/<int:member_id>/holds", api.MemberHoldsApi.as_view(), name="points-holds"),
    path("transactions/<int:transaction_id>", api.TransactionDetailApi.as_view(), name="points-transaction"),
    path(
        "transactions/<int:transaction_id>/reverse",
        api.ReverseApi.as_view(),
        name="points-transaction-reverse",
    ),
    path("holds/<int:hold_id>", api.HoldDetailApi.as_view(), name="points-hold"),
    path("holds/<int:hold_id>/capture", api.HoldCaptureApi.as_view(), name="points-hold-capture"),
    path("holds/<int:hold_id>/release", api.HoldReleaseApi.as_view(), name="points-hold-release"),
    # Purchases, refunds, earning rules, campaigns, earning settings, referrals.
    path("", include("points.earning.urls")),
]
