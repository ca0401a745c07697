"""Responses match the OpenAPI schema the API serves (what a generated client relies on)."""

import re
from decimal import Decimal
from urllib.parse import urlsplit

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from rewards import services as reward_services
from rewards.models import Reward
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db

# jsonschema checks "uri" only with an optional package; an absolute URI has a scheme.
FORMATS = jsonschema.FormatChecker()
FORMATS.checks("uri")(lambda value: not isinstance(value, str) or bool(urlsplit(value).scheme))
# ... and "time" (RFC 3339 full-time: with an offset) only with another.
FORMATS.checks("time")(
    lambda value: (
        not isinstance(value, str)
        or bool(re.fullmatch(r"\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", value))
    )
)


def _openapi_to_jsonschema(node):
    """OpenAPI 3.0 ``nullable`` becomes a JSON Schema ``null`` alternative."""
    if isinstance(node, list):
        return [_openapi_to_jsonschema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _openapi_to_jsonschema(value) for key, value in node.items()}
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


def assert_matches(client, component: str, data) -> None:
    spec = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    document = _openapi_to_jsonschema(spec)
    registry = Registry().with_resource(
        "urn:api", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"urn:api#/components/schemas/{component}"},
        registry=registry,
        format_checker=FORMATS,
    )
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]
    assert errors == []


def test_card_never_replaced_matches_schema(api, make_member):
    member = make_member(card_number="1111222233334444")
    cards = api.get(f"/api/v1/members/{member.pk}/cards").json()
    assert cards[0]["replaced_by"] is None
    assert_matches(api, "Card", cards[0])
    assert_matches(api, "Member", api.get(f"/api/v1/members/{member.pk}").json())


def test_reward_without_image_or_period_matches_schema(api, program, member):
    from points.models import Currency

    pts = Currency.objects.get(program=program, code="PTS")
    reward_services.reward_create(
        program=program,
        code="coffee-5",
        name="Coffee",
        kind=Reward.Kind.AMOUNT_VOUCHER,
        voucher_amount=Decimal("5.00"),
        costs={pts: 500},
        actor=SYSTEM,
    )
    body = api.get("/api/v1/rewards/coffee-5").json()
    assert body["image_url"] == "" and body["limit_period"] == ""
    assert_matches(api, "Reward", body)
    listed = api.get(f"/api/v1/members/{member.pk}/rewards?include_unavailable=true").json()
    assert [row["code"] for row in listed["results"]] == ["coffee-5"]
    assert_matches(api, "MemberReward", listed["results"][0])


def test_earning_rule_and_campaign_hours_match_schema(api):
    # Program-local wall-clock times: no offset, which format "time" would demand.
    body = {"code": "evening", "name": "Evening", "value": "2", "hours_from": "18:30", "hours_to": "00:00"}
    rule = api.post("/api/v1/earning-rules", body, format="json")
    assert rule.status_code == 201, rule.content
    assert (rule.json()["hours_from"], rule.json()["hours_to"]) == ("18:30:00", "00:00:00")
    assert_matches(api, "Rule", rule.json())
    campaign = api.post("/api/v1/campaigns", body, format="json")
    assert campaign.status_code == 201, campaign.content
    assert_matches(api, "Campaign", campaign.json())
