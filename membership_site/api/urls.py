"""Routes of /api/v1/. Each app contributes its ``urls.py``."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("", include("integrations.urls")),
    path("", include("programs.urls")),
    path("", include("members.urls")),
    path("", include("tiers.urls")),
    path("", include("points.urls")),
    path("", include("rewards.urls")),
    path("", include("webhooks.urls")),
    path("", include("jobs.urls")),
]
