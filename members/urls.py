from django.urls import path

from . import api

urlpatterns = [
    path("members", api.MemberListCreateApi.as_view(), name="member-list"),
    path("members/lookup", api.MemberLookupApi.as_view(), name="member-lookup"),
    path("members/<int:member_id>", api.MemberDetailApi.as_view(), name="member-detail"),
    *[
        path(
            f"members/<int:member_id>/{action}",
            api.member_status_view(action, summary),
            name=f"member-{action}",
        )
        for action, summary in (
            ("activate", "Activate a pending member"),
            ("suspend", "Suspend a member"),
            ("reactivate", "Reactivate a suspended member"),
            ("terminate", "Terminate a membership (final)"),
        )
    ],
    path("members/<int:member_id>/export", api.MemberExportApi.as_view(), name="member-export"),
    path("members/<int:member_id>/erase", api.MemberEraseApi.as_view(), name="member-erase"),
    path("members/<int:member_id>/cards", api.MemberCardsApi.as_view(), name="member-cards"),
    path(
        "members/<int:member_id>/cards/<str:number>/replace",
        api.CardReplaceApi.as_view(),
        name="member-card-replace",
    ),
    path(
        "members/<int:member_id>/cards/<str:number>/block",
        api.CardBlockApi.as_view(),
        name="member-card-block",
    ),
    path("members/<int:member_id>/labels", api.MemberLabelsApi.as_view(), name="member-labels"),
    path(
        "members/<int:member_id>/labels/<slug:code>",
        api.MemberLabelDetailApi.as_view(),
        name="member-label-detail",
    ),
    path("members/<int:member_id>/consents", api.MemberConsentsApi.as_view(), name="member-consents"),
    path("labels", api.LabelListCreateApi.as_view(), name="label-list"),
    path("labels/<slug:code>", api.LabelDetailApi.as_view(), name="label-detail"),
]
