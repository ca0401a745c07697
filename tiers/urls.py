from django.urls import path

from . import api

urlpatterns = [
    path("tiers", api.TierListCreateApi.as_view(), name="tier-list"),
    path("tiers/<slug:code>", api.TierDetailApi.as_view(), name="tier-detail"),
    path("tier-settings", api.TierSettingsApi.as_view(), name="tier-settings"),
    path("members/<int:member_id>/tier", api.MemberTierApi.as_view(), name="member-tier"),
    path(
        "members/<int:member_id>/tier/history", api.MemberTierHistoryApi.as_view(), name="member-tier-history"
    ),
    path(
        "members/<int:member_id>/tier/activity",
        api.MemberTierActivityApi.as_view(),
        name="member-tier-activity",
    ),
]
