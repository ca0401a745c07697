"""Program configuration visible to integrations: the program and its locations."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from membership_site.api.views import ApiGenericView, ApiView

from . import selectors, services
from .models import Location
from .serializers import (
    LocationCreateSerializer,
    LocationSerializer,
    LocationUpdateSerializer,
    ProgramSerializer,
)


class ProgramApi(ApiView):
    scope_area = "config"

    @extend_schema(summary="The integration's program", responses=ProgramSerializer)
    def get(self, request):
        return Response(ProgramSerializer(self.program).data)


class LocationListCreateApi(ApiGenericView):
    scope_area = "config"
    serializer_class = LocationSerializer
    pagination_ordering = "code"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no program
            return Location.objects.none()
        return selectors.location_list(program=self.program)

    @extend_schema(summary="List locations", responses=LocationSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(LocationSerializer(page, many=True).data)

    @extend_schema(
        summary="Create a location", request=LocationCreateSerializer, responses={201: LocationSerializer}
    )
    def post(self, request):
        serializer = LocationCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        location = services.location_create(
            program=self.program, actor=self.actor, **serializer.validated_data
        )
        return Response(LocationSerializer(location).data, status=status.HTTP_201_CREATED)


class LocationDetailApi(ApiView):
    scope_area = "config"

    @extend_schema(summary="Get a location", responses=LocationSerializer)
    def get(self, request, code: str):
        return Response(LocationSerializer(selectors.location_get(program=self.program, code=code)).data)

    @extend_schema(
        summary="Update a location", request=LocationUpdateSerializer, responses=LocationSerializer
    )
    def patch(self, request, code: str):
        location = selectors.location_get(program=self.program, code=code)
        serializer = LocationUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        location = services.location_update(location=location, actor=self.actor, **serializer.validated_data)
        return Response(LocationSerializer(location).data)
