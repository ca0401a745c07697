from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView
from oauth2_provider import views as oauth2_views

from .api.problems import problem_http_response
from .health import healthz


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    return problem_http_response(status=404, code="not_found", detail=f"No API endpoint at {request.path}.")


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    # OAuth2 client credentials: only the token endpoints, no authorization UI.
    path("o/token/", oauth2_views.TokenView.as_view(), name="oauth2-token"),
    path("o/revoke_token/", oauth2_views.RevokeTokenView.as_view(), name="oauth2-revoke"),
    path("api/v1/", include(("membership_site.api.urls", "api"), namespace="v1")),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="v1:schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="v1:schema"), name="redoc"),
    # Anything else under /api/ answers a 404 problem, also with DEBUG on.
    re_path(r"^api/", api_not_found),
]

admin.site.site_header = "Loyalty platform"
admin.site.site_title = "Loyalty platform"
admin.site.index_title = "Programs, members and points"
