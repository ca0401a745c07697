"""API representations of members, cards, labels and consents."""

from __future__ import annotations

from rest_framework import serializers

from membership_site.api.serializers import StrictSerializer

from .models import Card, Consent, Label, Member, StatusChange


class AddressSerializer(StrictSerializer):
    line1 = serializers.CharField(max_length=200, required=False, allow_blank=True, source="address_line1")
    line2 = serializers.CharField(max_length=200, required=False, allow_blank=True, source="address_line2")
    city = serializers.CharField(max_length=100, required=False, allow_blank=True)
    postal_code = serializers.CharField(max_length=20, required=False, allow_blank=True)
    region = serializers.CharField(max_length=100, required=False, allow_blank=True)
    country = serializers.RegexField(r"^[A-Za-z]{2}$", required=False, allow_blank=True)


class ConsentSerializer(StrictSerializer):
    purpose = serializers.ChoiceField(choices=Consent.Purpose.choices)
    granted = serializers.BooleanField()
    source = serializers.CharField(max_length=50, required=False, allow_blank=True, default="")
    changed_at = serializers.DateTimeField(read_only=True)


class CardSerializer(serializers.ModelSerializer):
    replaced_by = serializers.CharField(
        source="replaced_by.number", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = Card
        fields = ["number", "kind", "status", "issued_at", "status_reason", "replaced_by"]
        read_only_fields = fields


class MemberSerializer(serializers.ModelSerializer):
    """The full member representation."""

    address = serializers.SerializerMethodField()
    labels = serializers.SerializerMethodField()
    consents = ConsentSerializer(many=True, read_only=True)
    cards = CardSerializer(many=True, read_only=True)

    class Meta:
        model = Member
        fields = [
            "id",
            "number",
            "status",
            "status_changed_at",
            "email",
            "phone",
            "first_name",
            "last_name",
            "birth_date",
            "language",
            "address",
            "preferences",
            "external_ref",
            "joined_at",
            "erased_at",
            "labels",
            "consents",
            "cards",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_address(self, member: Member) -> dict[str, str]:
        return {
            "line1": member.address_line1,
            "line2": member.address_line2,
            "city": member.city,
            "postal_code": member.postal_code,
            "region": member.region,
            "country": member.country,
        }

    def get_labels(self, member: Member) -> list[str]:
        return sorted(label.code for label in member.labels.all())


class MemberWriteSerializer(StrictSerializer):
    """Profile fields accepted on create and update."""

    email = serializers.CharField(max_length=254, required=False, allow_blank=True)
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True)
    first_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    birth_date = serializers.DateField(required=False, allow_null=True)
    language = serializers.RegexField(
        r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=16, required=False, allow_blank=True
    )
    address = AddressSerializer(required=False)
    preferences = serializers.DictField(required=False)
    external_ref = serializers.CharField(max_length=100, required=False, allow_blank=True)

    def profile(self) -> dict:
        """Validated data as the services' keyword arguments."""
        data = dict(self.validated_data)
        data.update(data.pop("address", {}))
        return {
            key: value
            for key, value in data.items()
            if key not in ("labels", "consents", "status", "number", "card")
        }


class MemberCreateSerializer(MemberWriteSerializer):
    number = serializers.RegexField(
        r"^\d{6,20}$", required=False, help_text="Only when migrating members who already have numbers."
    )
    status = serializers.ChoiceField(
        choices=[Member.Status.ACTIVE, Member.Status.PENDING], required=False, default=Member.Status.ACTIVE
    )
    labels = serializers.ListField(child=serializers.SlugField(), required=False, default=list)
    consents = ConsentSerializer(many=True, required=False, default=list)
    card = serializers.CharField(
        max_length=40, required=False, help_text="Number of a physical card handed over at enrolment."
    )


class StatusChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = StatusChange
        fields = ["from_status", "to_status", "reason", "at"]


class CardIssueSerializer(StrictSerializer):
    number = serializers.CharField(max_length=40, required=False, help_text="Empty: generated.")
    kind = serializers.ChoiceField(choices=Card.Kind.choices, default=Card.Kind.PHYSICAL)


class CardReplaceSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=500)
    new_number = serializers.CharField(max_length=40, required=False, help_text="Empty: generated.")
    kind = serializers.ChoiceField(choices=Card.Kind.choices, required=False)


class LabelSerializer(serializers.ModelSerializer):
    class Meta:
        model = Label
        fields = ["code", "name", "description", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


class LabelWriteSerializer(StrictSerializer):
    code = serializers.SlugField(max_length=50)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class LabelUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)


class LabelAssignSerializer(StrictSerializer):
    label = serializers.SlugField(max_length=50)


class ConsentsWriteSerializer(StrictSerializer):
    consents = ConsentSerializer(many=True, allow_empty=False)


class LookupCardSerializer(serializers.Serializer):
    number = serializers.CharField()
    kind = serializers.CharField()
    status = serializers.CharField()
    usable = serializers.BooleanField()


class MemberProfileSerializer(serializers.Serializer):
    """Compact profile for recognising a member at a till; higher apps add sections
    such as ``tier`` and ``balances``."""

    id = serializers.IntegerField()
    number = serializers.CharField()
    status = serializers.CharField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    language = serializers.CharField()
    joined_at = serializers.DateTimeField()
    labels = serializers.ListField(child=serializers.CharField())
    card = LookupCardSerializer(required=False, allow_null=True)
    # Sections added by higher apps through members.hooks.profile_sections.
    tier = serializers.DictField(required=False, allow_null=True, help_text="Current tier (tiers app).")
    balances = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="Points balances per currency (points app)."
    )
