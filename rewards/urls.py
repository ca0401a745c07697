from django.urls import path

from . import api

urlpatterns = [
    path("rewards", api.RewardListCreateApi.as_view(), name="reward-list"),
    path("rewards/<slug:code>", api.RewardDetailApi.as_view(), name="reward-detail"),
    path("members/<int:member_id>/rewards", api.MemberRewardsApi.as_view(), name="member-rewards"),
    path(
        "members/<int:member_id>/rewards/<slug:code>/redeem",
        api.RedeemApi.as_view(),
        name="member-reward-redeem",
    ),
    path(
        "members/<int:member_id>/redemptions", api.MemberRedemptionsApi.as_view(), name="member-redemptions"
    ),
    path("members/<int:member_id>/vouchers", api.MemberVouchersApi.as_view(), name="member-vouchers"),
    path("members/<int:member_id>/points/pay", api.PayApi.as_view(), name="points-pay"),
    path("members/<int:member_id>/pricing", api.PricingApi.as_view(), name="member-pricing"),
    path("currencies/<str:code>/pay-rule", api.PayRuleApi.as_view(), name="currency-pay-rule"),
    path("redemptions/<int:redemption_id>", api.RedemptionDetailApi.as_view(), name="redemption-detail"),
    path(
        "redemptions/<int:redemption_id>/cancel", api.RedemptionCancelApi.as_view(), name="redemption-cancel"
    ),
    path("vouchers/<str:code>", api.VoucherDetailApi.as_view(), name="voucher-detail"),
    path("vouchers/<str:code>/use", api.VoucherUseApi.as_view(), name="voucher-use"),
    path("vouchers/<str:code>/cancel", api.VoucherCancelApi.as_view(), name="voucher-cancel"),
]
