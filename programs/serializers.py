from rest_framework import serializers

from membership_site.api.serializers import StrictSerializer

from .models import Location, Program


class ProgramSerializer(serializers.ModelSerializer):
    class Meta:
        model = Program
        fields = ["code", "name", "timezone", "currency", "phone_region", "status"]
        read_only_fields = fields


class LocationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Location
        fields = ["code", "name", "kind", "is_active", "created_at", "updated_at"]
        read_only_fields = fields


class LocationCreateSerializer(StrictSerializer):
    code = serializers.SlugField(max_length=40)
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=Location.Kind.choices, default=Location.Kind.STORE)


class LocationUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False)
    kind = serializers.ChoiceField(choices=Location.Kind.choices, required=False)
    is_active = serializers.BooleanField(required=False)
