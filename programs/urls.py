from django.urls import path

from . import api

urlpatterns = [
    path("program", api.ProgramApi.as_view(), name="program"),
    path("locations", api.LocationListCreateApi.as_view(), name="location-list"),
    path("locations/<slug:code>", api.LocationDetailApi.as_view(), name="location-detail"),
]
