from django.urls import path

from . import api

urlpatterns = [path("me", api.WhoAmIApi.as_view(), name="whoami")]
