from decimal import Decimal

from rest_framework import serializers

from membership_site.api.serializers import StrictSerializer

from .currencies import money_quantum
from .models import Location, Program


class MoneyField(serializers.DecimalField):
    """Program money: at most 3 decimals in, rendered with the currency's decimals
    (``context["currency"]``, the program's money currency)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_digits", 16)
        kwargs.setdefault("decimal_places", 3)
        super().__init__(**kwargs)

    def to_representation(self, value):
        currency = self.context.get("currency")
        if value is not None and currency:
            return str(Decimal(value).quantize(money_quantum(currency)))
        return super().to_representation(value)


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
