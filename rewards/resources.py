"""django-import-export resources for the admin: the catalog import runs the ``rewards``
job kind (the same code as ``POST /api/v1/imports/rewards``); the export writes the same
columns, so an export can be edited and imported back."""

from __future__ import annotations

from import_export import fields, resources

from jobs.admin_import import JobKindResource

from .imports import COLUMNS
from .models import Reward

_COMPUTED = (
    "costs",
    "eligible_tiers",
    "eligible_labels",
    "tier_tags",
    "locations",
    "voucher_skus",
    "target_currency",
)


class RewardImportResource(JobKindResource):
    kind = "rewards"


def _codes(objects) -> str:
    return "|".join(sorted(obj.code for obj in objects))


class RewardExportResource(resources.ModelResource):
    costs = fields.Field(column_name="costs")
    eligible_tiers = fields.Field(column_name="eligible_tiers")
    eligible_labels = fields.Field(column_name="eligible_labels")
    tier_tags = fields.Field(column_name="tier_tags")
    locations = fields.Field(column_name="locations")
    voucher_skus = fields.Field(column_name="voucher_skus")
    target_currency = fields.Field(column_name="target_currency")

    class Meta:
        model = Reward
        fields = tuple(column.name for column in COLUMNS)
        export_order = fields

    def filter_export(self, queryset, **kwargs):
        return queryset.select_related("target_currency").prefetch_related(
            "costs__currency", "eligible_tiers", "eligible_labels", "locations"
        )

    def dehydrate_costs(self, reward: Reward) -> str:
        return "|".join(f"{cost.currency.code}:{cost.points}" for cost in reward.costs.all())

    def dehydrate_eligible_tiers(self, reward: Reward) -> str:
        return _codes(reward.eligible_tiers.all())

    def dehydrate_eligible_labels(self, reward: Reward) -> str:
        return _codes(reward.eligible_labels.all())

    def dehydrate_tier_tags(self, reward: Reward) -> str:
        return "|".join(reward.tier_tags)

    def dehydrate_locations(self, reward: Reward) -> str:
        return _codes(reward.locations.all())

    def dehydrate_voucher_skus(self, reward: Reward) -> str:
        return "|".join(reward.voucher_skus)

    def dehydrate_target_currency(self, reward: Reward) -> str:
        return reward.target_currency.code if reward.target_currency else ""
