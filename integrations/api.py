"""What an integration can ask about itself."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from membership_site.api.views import ApiView


class WhoAmIApi(ApiView):
    """Any valid credential may call this: it answers which integration, program and
    scopes the credential stands for (handy when setting up a till or a shop)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="The calling integration",
        responses=inline_serializer(
            "WhoAmI",
            {
                "integration": inline_serializer(
                    "WhoAmIIntegration",
                    {
                        "id": serializers.IntegerField(),
                        "name": serializers.CharField(),
                        "kind": serializers.CharField(),
                    },
                ),
                "program": serializers.CharField(),
                "scopes": serializers.ListField(child=serializers.CharField()),
                "credential": serializers.CharField(),
            },
        ),
    )
    def get(self, request):
        principal = request.auth
        integration = principal.integration
        return Response(
            {
                "integration": {"id": integration.pk, "name": integration.name, "kind": integration.kind},
                "program": integration.program.code,
                "scopes": sorted(principal.scopes),
                "credential": principal.credential.split(":")[0],
            }
        )
