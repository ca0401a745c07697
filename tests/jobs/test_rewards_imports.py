"""The ``rewards`` catalog kind and the reward's ``tier_tags``: imported from a
|-separated cell, written back the same way by the job export and the admin export, and
listed in the template."""

from __future__ import annotations

import pytest

from jobs import services
from rewards.imports import reward_rows
from rewards.models import Reward
from rewards.resources import RewardExportResource

from .conftest import csv_bytes, outcomes, report

pytestmark = pytest.mark.django_db

REWARD = {"name": "Lounge pass", "kind": "amount_voucher", "costs": "PTS:500", "voucher_amount": "5.00"}


def test_rewards_import_sets_and_updates_tier_tags(import_and_run, program):
    job = import_and_run(
        "rewards",
        csv_bytes(
            [
                {"code": "lounge", **REWARD, "tier_tags": "lounge|spa"},
                {"code": "plain", **REWARD},
                {"code": "bad", **REWARD, "tier_tags": "not a tag"},
                {"code": "twice", **REWARD, "tier_tags": "spa|spa"},
            ]
        ),
    )
    assert outcomes(job) == [
        (1, "created", ""),
        (2, "created", ""),
        (3, "failed", "invalid_reward"),
        (4, "failed", "invalid_reward"),
    ]
    assert [line["error_fields"] for line in report(job)][2:] == ["tier_tags", "tier_tags"]
    assert Reward.objects.get(code="lounge").tier_tags == ["lounge", "spa"]
    assert Reward.objects.get(code="plain").tier_tags == []
    assert not Reward.objects.filter(code__in=["bad", "twice"]).exists()

    again = import_and_run(
        "rewards",
        csv_bytes([{"code": "lounge", "tier_tags": " gold | lounge "}, {"code": "plain", "name": "Plain"}]),
    )
    assert outcomes(again) == [(1, "updated", ""), (2, "updated", "")]
    assert Reward.objects.get(code="lounge").tier_tags == ["gold", "lounge"]
    assert Reward.objects.get(code="plain").tier_tags == []  # an empty cell leaves them as they are


def test_rewards_exports_write_tier_tags_as_the_import_reads_them(import_and_run, program):
    import_and_run("rewards", csv_bytes([{"code": "lounge", **REWARD, "tier_tags": "lounge|spa"}]))
    (row,) = list(reward_rows(program.pk, {}))
    assert row["tier_tags"] == "lounge|spa"

    dataset = RewardExportResource().export(queryset=Reward.objects.all())
    assert dataset.dict[0]["tier_tags"] == "lounge|spa"

    Reward.objects.update(tier_tags=[])
    back = import_and_run("rewards", csv_bytes([{name: row[name] for name in ("code", "tier_tags")}]))
    assert outcomes(back) == [(1, "updated", "")]
    assert Reward.objects.get().tier_tags == ["lounge", "spa"]


def test_rewards_template_has_the_tier_tags_column():
    header = services.import_template_csv(services.import_kind_get("rewards")).splitlines()[0]
    assert "tier_tags" in header.split(",")
