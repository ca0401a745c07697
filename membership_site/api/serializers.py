"""Serializer bases for the API: unknown fields are errors, not silently dropped."""

from __future__ import annotations

from collections.abc import Mapping

from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError


class StrictMixin:
    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise ValidationError(
                    {
                        name: [ErrorDetail("This field is not part of this request.", code="unknown_field")]
                        for name in unknown
                    }
                )
        return super().to_internal_value(data)


class StrictSerializer(StrictMixin, serializers.Serializer):
    pass


class StrictModelSerializer(StrictMixin, serializers.ModelSerializer):
    pass


class ReasonSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=500)
