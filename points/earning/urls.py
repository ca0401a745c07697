from django.urls import path

from . import api

urlpatterns = [
    path("purchases", api.PurchaseListCreateApi.as_view(), name="purchase-list"),
    # Before purchases/<reference>: "quote" is not a reference.
    path("purchases/quote", api.PurchaseQuoteApi.as_view(), name="purchase-quote"),
    path("purchases/<str:reference>", api.PurchaseDetailApi.as_view(), name="purchase-detail"),
    path("purchases/<str:reference>/refunds", api.PurchaseRefundsApi.as_view(), name="purchase-refunds"),
    path("earning-rules", api.EarningRuleListCreateApi.as_view(), name="earning-rule-list"),
    path("earning-rules/<slug:code>", api.EarningRuleDetailApi.as_view(), name="earning-rule-detail"),
    path("campaigns", api.CampaignListCreateApi.as_view(), name="campaign-list"),
    path("campaigns/<slug:code>", api.CampaignDetailApi.as_view(), name="campaign-detail"),
    path("earning-settings", api.EarningSettingsApi.as_view(), name="earning-settings"),
    path("members/<int:member_id>/referral", api.MemberReferralApi.as_view(), name="member-referral"),
]
