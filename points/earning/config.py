"""Writes of the earning configuration: earning settings, earning rules and campaigns.

Rules and campaigns share their fields (``RULE_FIELDS``); campaigns add a budget. Every
change is recorded by django-simple-history (``audited_history``)."""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction

from members.models import Label
from members.services import PROFILE_FIELDS
from membership_site.actors import Actor
from programs.currencies import money_quantum
from programs.models import Location, Program
from tiers.models import Tier

from ..errors import UnknownLocationError
from ..models import Campaign, Currency, EarningRule, EarningSettings, PointsAward, RuleBase
from ..selectors import default_currency
from ..services import MAX_POINTS
from .errors import InvalidEarningSettingsError, InvalidRuleError, RuleCodeTakenError, RuleInUseError

E = RuleBase.Effect
S = RuleBase.Stacking

RULE_FIELDS = (
    "name",
    "description",
    "is_active",
    "priority",
    "currency",
    "effect",
    "scope",
    "value",
    "stacking",
    "starts_on",
    "ends_on",
    "hours_from",
    "hours_to",
    "weekdays",
    "locations",
    "skus",
    "categories",
    "min_spend",
    "tiers",
    "labels",
    "first_purchase_only",
    "max_points_per_purchase",
    "max_points_per_member_day",
    "max_points_per_member_month",
)
CAMPAIGN_FIELDS = (*RULE_FIELDS, "budget_points")
SETTINGS_FIELDS = (
    "return_window_days",
    "bonus_currency",
    "enrolment_bonus",
    "birthday_bonus",
    "birthday_mode",
    "referral_referrer_bonus",
    "referral_referee_bonus",
    "profile_completion_bonus",
    "profile_completion_fields",
)
# Fields a profile-completion bonus may ask for (personal data a member fills in).
COMPLETION_FIELDS = tuple(name for name in PROFILE_FIELDS if name not in ("preferences", "external_ref"))
MAX_RATE = Decimal("100000")
MAX_MULTIPLIER = Decimal("100")
MAX_RETURN_WINDOW_DAYS = 365
_LIST_FIELDS = ("weekdays", "locations", "skus", "categories", "tiers", "labels")


# --- Earning settings --------------------------------------------------------------------


@transaction.atomic
def earning_settings_update(*, program: Program, actor: Actor, **fields: Any) -> EarningSettings:
    """Change the program's earning settings (``SETTINGS_FIELDS``); only those given."""
    unknown = set(fields) - set(SETTINGS_FIELDS)
    if unknown:
        raise TypeError(f"Unknown earning settings: {sorted(unknown)}")
    settings_, _ = EarningSettings.objects.select_for_update().get_or_create(program=program)
    for name, value in fields.items():
        setattr(settings_, name, value)
    earning_settings_check(settings_)
    settings_.save()
    return settings_


def earning_settings_check(settings_: EarningSettings) -> None:
    """Raise ``InvalidEarningSettingsError`` (naming the field) for values that do not fit."""
    if not 0 <= (settings_.return_window_days or 0) <= MAX_RETURN_WINDOW_DAYS:
        raise InvalidEarningSettingsError(
            f"The return window is 0 to {MAX_RETURN_WINDOW_DAYS} days.", field="return_window_days"
        )
    for name in (
        "enrolment_bonus",
        "birthday_bonus",
        "referral_referrer_bonus",
        "referral_referee_bonus",
        "profile_completion_bonus",
    ):
        value = getattr(settings_, name)
        if not isinstance(value, int) or not 0 <= value <= MAX_POINTS:
            raise InvalidEarningSettingsError(f"Bonuses are 0 to {MAX_POINTS} points.", field=name)
    if settings_.birthday_mode not in EarningSettings.BirthdayMode.values:
        raise InvalidEarningSettingsError("birthday_mode is day or month.", field="birthday_mode")
    if settings_.bonus_currency_id and settings_.bonus_currency.program_id != settings_.program_id:
        raise InvalidEarningSettingsError("The currency belongs to another program.", field="bonus_currency")
    fields = settings_.profile_completion_fields or []
    if not isinstance(fields, list) or not all(name in COMPLETION_FIELDS for name in fields):
        raise InvalidEarningSettingsError(
            f"Profile fields are among: {', '.join(COMPLETION_FIELDS)}.", field="profile_completion_fields"
        )
    settings_.profile_completion_fields = list(dict.fromkeys(fields))
    if settings_.profile_completion_bonus and not fields:
        raise InvalidEarningSettingsError(
            "A profile completion bonus needs the fields to fill.", field="profile_completion_fields"
        )


# --- Rules and campaigns -----------------------------------------------------------------


def _codes_exist(model, program: Program, codes: list[str], field: str, error=InvalidRuleError) -> None:
    if not codes:
        return
    found = set(model.objects.filter(program=program, code__in=codes).values_list("code", flat=True))
    missing = [code for code in codes if code not in found]
    if missing:
        raise error(f"Unknown {field}: {', '.join(missing)}.", field=field)


def _string_list(values: Any, field: str, *, max_length: int = 64) -> list:
    if not isinstance(values, list) or not all(
        isinstance(value, str) and 0 < len(value) <= max_length for value in values
    ):
        raise InvalidRuleError(f"{field} is a list of codes of 1 to {max_length} characters.", field=field)
    return list(dict.fromkeys(values))


def rule_check(*, program: Program, values: dict[str, Any]) -> dict[str, Any]:
    """Check a complete set of rule or campaign values (the admin form calls it too) and
    return them normalized (lists without duplicates). Raises ``InvalidRuleError`` or
    ``UnknownLocationError`` naming the field."""
    values = dict(values)
    effect, stacking = values.get("effect"), values.get("stacking")
    is_campaign = values.get("_campaign", False)
    if effect not in E.values:
        raise InvalidRuleError(f"effect is one of {', '.join(E.values)}.", field="effect")
    if values.get("scope") not in RuleBase.Scope.values:
        raise InvalidRuleError("scope is per_line or per_purchase.", field="scope")
    if stacking not in S.values:
        raise InvalidRuleError(f"stacking is one of {', '.join(S.values)}.", field="stacking")
    value = values.get("value")
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise InvalidRuleError("value must be a positive number.", field="value")
    if effect == E.POINTS_PER_UNIT and value > MAX_RATE:
        raise InvalidRuleError(f"A rate is at most {MAX_RATE} points per unit.", field="value")
    if effect == E.MULTIPLIER and value > MAX_MULTIPLIER:
        raise InvalidRuleError(f"A multiplier is at most {MAX_MULTIPLIER}.", field="value")
    if effect == E.FIXED_BONUS and (value != value.to_integral_value() or value > MAX_POINTS):
        raise InvalidRuleError("A fixed bonus is a whole number of points.", field="value")
    if stacking == S.MULTIPLY and effect != E.MULTIPLIER:
        raise InvalidRuleError("Only multipliers multiply with the others.", field="stacking")
    if not is_campaign and effect == E.POINTS_PER_UNIT and stacking != S.ADD:
        raise InvalidRuleError(
            "Base rates do not stack: on each line the highest-priority rate applies.", field="stacking"
        )
    currency = values.get("currency")
    if not isinstance(currency, Currency) or currency.program_id != program.pk:
        raise InvalidRuleError("No such points currency in this program.", field="currency")
    starts_on, ends_on = values.get("starts_on"), values.get("ends_on")
    if starts_on and ends_on and ends_on < starts_on:
        raise InvalidRuleError("ends_on is before starts_on.", field="ends_on")
    hours_from, hours_to = values.get("hours_from"), values.get("hours_to")
    for name in ("hours_from", "hours_to"):
        if values.get(name) is not None and not isinstance(values[name], time):
            raise InvalidRuleError(f"{name} is a time of day.", field=name)
    if hours_from is not None and hours_from == hours_to:
        raise InvalidRuleError("hours_to equals hours_from: an empty window.", field="hours_to")
    for name in _LIST_FIELDS:
        values[name] = values.get(name) or []
    weekdays = values["weekdays"]
    if not isinstance(weekdays, list) or not all(
        isinstance(day, int) and not isinstance(day, bool) and 1 <= day <= 7 for day in weekdays
    ):
        raise InvalidRuleError("weekdays are 1 (Monday) to 7 (Sunday).", field="weekdays")
    values["weekdays"] = sorted(set(weekdays))
    for name in ("locations", "skus", "categories", "tiers", "labels"):
        values[name] = _string_list(values[name], name)
    _codes_exist(Location, program, values["locations"], "locations", UnknownLocationError)
    _codes_exist(Tier, program, values["tiers"], "tiers")
    _codes_exist(Label, program, values["labels"], "labels")
    min_spend = values.get("min_spend")
    if min_spend is not None:
        quantum = money_quantum(program.currency)
        if not isinstance(min_spend, Decimal) or min_spend < 0 or min_spend != min_spend.quantize(quantum):
            raise InvalidRuleError(
                f"min_spend is a {program.currency} amount of 0 or more.", field="min_spend"
            )
    caps = ["max_points_per_purchase", "max_points_per_member_day", "max_points_per_member_month"]
    if is_campaign:
        caps.append("budget_points")
    for name in caps:
        cap = values.get(name)
        if cap is not None and (not isinstance(cap, int) or not 1 <= cap <= MAX_POINTS):
            raise InvalidRuleError(f"{name} is 1 to {MAX_POINTS} points, or empty.", field=name)
    values.pop("_campaign", None)
    return values


def _values_of(obj: RuleBase, fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in fields}


def _code_taken(model, program: Program, code: str) -> bool:
    return model.objects.filter(program=program, code=code).exists()


def _create(model, fields_allowed, *, program: Program, code: str, name: str, value, fields: dict[str, Any]):
    unknown = set(fields) - set(fields_allowed)
    if unknown:
        raise TypeError(f"Unknown fields: {sorted(unknown)}")
    fields.setdefault("currency", None)
    if fields["currency"] is None:
        fields["currency"] = default_currency(program_id=program.pk)
    obj = model(program=program, code=code, name=name, value=value, **fields)
    checked = rule_check(
        program=program, values={**_values_of(obj, fields_allowed), "_campaign": model is Campaign}
    )
    for field, checked_value in checked.items():
        setattr(obj, field, checked_value)
    if _code_taken(model, program, code):
        raise RuleCodeTakenError(f"'{code}' already exists in this program.", field="code")
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError:
        raise RuleCodeTakenError(f"'{code}' already exists in this program.", field="code") from None
    return obj


def _update(model, fields_allowed, obj: RuleBase, changes: dict[str, Any], prepare=None):
    unknown = set(changes) - set(fields_allowed)
    if unknown:
        raise TypeError(f"Unknown fields: {sorted(unknown)}")
    obj = model.objects.select_for_update().select_related("program", "currency").get(pk=obj.pk)
    if "currency" in changes and changes["currency"] is None:
        changes["currency"] = default_currency(program_id=obj.program_id)
    values = {**_values_of(obj, fields_allowed), **changes, "_campaign": model is Campaign}
    checked = rule_check(program=obj.program, values=values)
    if prepare is not None:
        prepare(obj, checked)
    for field in changes:
        setattr(obj, field, checked[field])
    obj.save()
    return obj


def _delete(obj: RuleBase, kind: str) -> None:
    if PointsAward.objects.filter(**{kind: obj}).exists():
        raise RuleInUseError(f"'{obj.code}' has awarded points; set is_active to false instead.")
    obj.delete()


@transaction.atomic
def earning_rule_create(
    *, program: Program, code: str, name: str, value: Decimal, actor: Actor, **fields: Any
) -> EarningRule:
    """Create an earning rule (``RULE_FIELDS`` besides code, name and value; the currency
    defaults to the program's default)."""
    return _create(
        EarningRule, RULE_FIELDS, program=program, code=code, name=name, value=value, fields=fields
    )


@transaction.atomic
def earning_rule_update(*, rule: EarningRule, actor: Actor, **changes: Any) -> EarningRule:
    """Change the fields given; purchases already recorded keep their points."""
    return _update(EarningRule, RULE_FIELDS, rule, changes)


@transaction.atomic
def earning_rule_delete(*, rule: EarningRule, actor: Actor) -> None:
    """Delete a rule that never awarded points (otherwise deactivate it)."""
    _delete(rule, "rule")


@transaction.atomic
def campaign_create(
    *, program: Program, code: str, name: str, value: Decimal, actor: Actor, **fields: Any
) -> Campaign:
    """Create a campaign (``CAMPAIGN_FIELDS`` besides code, name and value)."""
    return _create(
        Campaign, CAMPAIGN_FIELDS, program=program, code=code, name=name, value=value, fields=fields
    )


def campaign_budget_used(campaign: Campaign) -> int:
    """The points a budget set on ``campaign`` now starts from: what it counted so far, or,
    without a budget until now, every point it issued."""
    if campaign.budget_points is not None:
        return campaign.budget_used
    issued = PointsAward.objects.filter(campaign=campaign).values_list("points", flat=True)
    return max(sum(issued), 0)


@transaction.atomic
def campaign_update(*, campaign: Campaign, actor: Actor, **changes: Any) -> Campaign:
    """Change the fields given. Setting a budget counts the points the campaign already
    issued against it; a budget below them is refused."""

    def count_budget(locked: Campaign, checked: dict[str, Any]) -> None:
        if "budget_points" not in changes:
            return
        budget = checked["budget_points"]
        if budget is None:
            locked.budget_used = 0
            return
        locked.budget_used = campaign_budget_used(locked)
        if budget < locked.budget_used:
            raise InvalidRuleError(
                f"The campaign already issued {locked.budget_used} points.",
                field="budget_points",
                budget_used=locked.budget_used,
            )

    return _update(Campaign, CAMPAIGN_FIELDS, campaign, changes, prepare=count_budget)


@transaction.atomic
def campaign_delete(*, campaign: Campaign, actor: Actor) -> None:
    """Delete a campaign that never awarded points (otherwise deactivate it)."""
    _delete(campaign, "campaign")
