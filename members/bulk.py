"""Creating and updating many members at once (imports), set-based.

``members_upsert_many`` applies the rules of ``services.member_create`` /
``member_update`` / ``label_assign`` to a list of rows with a fixed number of queries
per call instead of several per row: the same normalisation (``normalized_profile``,
``normalize_member_number``, ``normalize_card_number``), the same uniqueness rules, the
same events, history rows, ``members_created`` hook (once, with the list) and
``members_updated`` hook (once, with the members whose profile changed: the list form of
the ``member_updated`` hook that ``member_update`` runs).

Each row is validated completely before anything is written, so a bad row leaves nothing
behind. If the bulk write still loses a race to a concurrent writer (a unique value taken
meanwhile), the whole call is redone row by row through the per-row services, each row
in its own savepoint: the result is the same, only slower.
"""

from __future__ import annotations

import csv
import io
import json
import operator
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Q
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from membership_site.actors import Actor
from membership_site.errors import DomainError, InvalidInputError
from programs.models import Program
from webhooks.services import EventInput, event_record_many

from . import hooks, services
from .errors import (
    CardNumberTakenError,
    DuplicateMemberError,
    IllegalStatusTransitionError,
    MemberNotFoundError,
    MemberTerminatedError,
    UnknownLabelError,
)
from .events import member_payload
from .models import Card, Label, Member, MemberLabel
from .normalize import (
    generate_member_number,
    normalize_card_number,
    normalize_email,
    normalize_member_number,
)

MATCH_FIELDS = ("number", "email", "external_ref")
ACTIONS = ("create", "update", "upsert")
_UNIQUE_FIELDS = ("number", "email", "phone", "external_ref")


def pg_array(values: Iterable[Any]) -> str:
    """A PostgreSQL array literal of ``values`` (as text), sent as one parameter:
    ``column = ANY(%s::text[])`` is planned like an ``IN`` list of constants (the index is
    used), without building, quoting and parsing one placeholder per value, which costs
    more than running the query for a thousand values. Inside double quotes only ``"``
    and ``\\`` need escaping."""
    items = (str(value).replace("\\", "\\\\").replace('"', '\\"') for value in values)
    return "{" + ",".join(f'"{item}"' for item in items) + "}"


def member_key(match: str, value: str) -> str:
    """The stored form of a member key read from a file (``match``: number, email or
    external_ref), for finding members; '' when empty. Raises the domain error of a
    malformed number or e-mail (``invalid_member_number``, ``invalid_email``)."""
    value = (value or "").strip()
    if not value:
        return ""
    if match == "number":
        return normalize_member_number(value)
    if match == "email":
        return normalize_email(value)
    return value


def members_by_key(*, program: Program, match: str, keys: Iterable[str]) -> dict[str, Member]:
    """The program's members whose ``match`` field is one of ``keys`` (stored forms, see
    ``member_key``), by that value, in one query; ``member.program`` is set without a join."""
    if match not in MATCH_FIELDS:
        raise ValueError(f"match must be one of {MATCH_FIELDS}")
    members = Member.objects.filter(program=program, **{f"{match}__in": {key for key in keys if key}})
    found = {}
    for member in members:
        member.program = program
        found[getattr(member, match)] = member
    return found


@dataclass
class MemberInput:
    """One row: profile values given (names of ``services.PROFILE_FIELDS``; absent means
    "leave as it is"), and what applies when the row creates a member."""

    profile: dict[str, Any]
    number: str = ""
    status: str = Member.Status.ACTIVE
    joined_at: datetime | None = None
    labels: list[str] = field(default_factory=list)
    card: str = ""


@dataclass
class UpsertResult:
    outcome: str  # created, updated, unchanged, failed
    member: Member | None = None
    error: DomainError | None = None


class _Fallback(Exception):
    pass


class MemberNumberMismatchError(InvalidInputError):
    code = "number_mismatch"
    title = "A member's number cannot be changed"


def _number_change_error() -> MemberNumberMismatchError:
    return MemberNumberMismatchError(
        "The row's number is not the number of the member it matches; numbers never change.",
        field="number",
    )


def _history_user(actor: Actor):
    return get_user_model()(pk=actor.user_id) if actor.user_id else None


@dataclass
class _Row:
    index: int
    input: MemberInput
    key: str = ""
    fields: dict[str, Any] = field(default_factory=dict)  # normalised values to write
    member: Member | None = None
    changed: list[str] = field(default_factory=list)
    new_labels: list[Label] = field(default_factory=list)
    card: str = ""
    result: UpsertResult | None = None

    def fail(self, error: DomainError) -> None:
        self.result = UpsertResult("failed", error=error)


@transaction.atomic
def members_upsert_many(
    *, program: Program, rows: list[MemberInput], match: str, action: str, actor: Actor
) -> list[UpsertResult]:
    """Create, update or upsert (``action``) members found by ``match`` (number, email
    or external_ref); one result per row, in order. Rows that fail raise nothing: their
    result holds the domain error."""
    if match not in MATCH_FIELDS or action not in ACTIONS:
        raise ValueError(f"match must be one of {MATCH_FIELDS} and action one of {ACTIONS}")
    try:
        with transaction.atomic():
            return _bulk(program, rows, match, action, actor)
    except (IntegrityError, _Fallback):
        return [_one_by_one(program, row, match, action, actor) for row in rows]


def _normalise(program: Program, row: _Row, match: str) -> None:
    data = row.input
    unknown = set(data.profile) - set(services.PROFILE_FIELDS)
    if unknown:
        raise TypeError(f"Unknown member fields: {sorted(unknown)}")
    row.fields = services.normalized_profile(program, data.profile)
    if data.number:
        row.fields["number"] = normalize_member_number(data.number)
    row.key = row.fields.get(match, "")
    if data.card:
        row.card = normalize_card_number(data.card)


def _bulk(program: Program, rows: list[MemberInput], match: str, action: str, actor: Actor):
    work = [_Row(index, data) for index, data in enumerate(rows)]
    for row in work:
        try:
            _normalise(program, row, match)
        except DomainError as error:
            row.fail(error)
    live = [row for row in work if row.result is None]

    # Who exists already (locked, in id order, as member_update locks).
    keys = {row.key for row in live if row.key}
    existing = {getattr(member, match): member for member in _existing(program, match, keys)}
    for member in existing.values():
        member.program = program  # for hooks and payloads, without a query per member
    label_codes = {code for row in live for code in row.input.labels}
    labels = {label.code: label for label in Label.objects.filter(program=program, code__in=label_codes)}
    current_labels: dict[int, dict[int, str]] = defaultdict(dict)
    for member_id, label_id, code in MemberLabel.objects.filter(
        member__in=[member.pk for member in existing.values()]
    ).values_list("member_id", "label_id", "label__code"):
        current_labels[member_id][label_id] = code

    for row in live:
        member = existing.get(row.key) if row.key else None
        missing = [code for code in dict.fromkeys(row.input.labels) if code not in labels]
        if member is not None and action == "create":
            row.fail(
                DuplicateMemberError(
                    f"A member with this {match.replace('_', ' ')} already exists.", field=match
                )
            )
        elif member is None and action == "update":
            row.fail(MemberNotFoundError(f"No member with this {match.replace('_', ' ')}.", field=match))
        elif missing:
            row.fail(UnknownLabelError(f"Unknown labels: {', '.join(missing)}.", field="labels"))
        elif member is None:
            if row.input.status not in (Member.Status.PENDING, Member.Status.ACTIVE):
                row.fail(
                    IllegalStatusTransitionError(
                        f"A new member starts as pending or active, not {row.input.status}."
                    )
                )
        elif member.status == Member.Status.TERMINATED:
            row.fail(MemberTerminatedError(f"Member {member.number} is terminated."))
        elif row.fields.get("number", member.number) != member.number:
            row.fail(_number_change_error())
        else:
            row.member = member
            row.changed = [
                name
                for name, value in row.fields.items()
                if name != "number" and getattr(member, name) != value
            ]
            row.new_labels = [
                labels[code]
                for code in dict.fromkeys(row.input.labels)
                if labels[code].pk not in current_labels[member.pk]
            ]
            row.card = ""  # cards are issued on creation only
    _check_unique(program, [row for row in live if row.result is None])
    _check_cards(program, [row for row in live if row.result is None and row.member is None])

    creating = [row for row in live if row.result is None and row.member is None]
    updating = [row for row in live if row.result is None and row.member is not None]
    _assign_numbers(program, creating)
    now = timezone.now()
    history = {
        "default_user": _history_user(actor),
        "custom_historical_attrs": {"history_integration_id": actor.integration_id},
    }
    events: list[EventInput] = []

    new_members = _insert_members(
        program,
        [
            {
                **row.fields,
                "status": row.input.status,
                "status_changed_at": now,
                "joined_at": row.input.joined_at or now,
            }
            for row in creating
        ],
        actor=actor,
        now=now,
    )
    links: list[MemberLabel] = []
    cards: list[Card] = []
    for row, member in zip(creating, new_members, strict=True):
        row.member = member
        codes = list(dict.fromkeys(row.input.labels))
        links += [MemberLabel(member=member, label=labels[code]) for code in codes]
        if row.card:
            cards.append(Card(program=program, member=member, number=row.card, kind=Card.Kind.PHYSICAL))
        events.append(
            EventInput(program.pk, "member.created", {"member": member_payload(member, codes)}, member.pk)
        )
        row.result = UpsertResult("created", member)

    changed_members = []
    changed_fields: set[str] = set()
    for row in updating:
        member = row.member
        if not row.changed and not row.new_labels:
            row.result = UpsertResult("unchanged", member)
            continue
        for name in row.changed:
            setattr(member, name, row.fields[name])
        member.updated_at = now
        changed_members.append(member)
        changed_fields.update(row.changed)
        codes = set(current_labels[member.pk].values()) | {label.code for label in row.new_labels}
        if row.changed:
            events.append(
                EventInput(
                    program.pk,
                    "member.updated",
                    {"member": member_payload(member, codes), "changed": sorted(row.changed)},
                    member.pk,
                )
            )
        for label in row.new_labels:
            links.append(MemberLabel(member=member, label=label))
            events.append(
                EventInput(
                    program.pk,
                    "label.assigned",
                    {"member_id": member.pk, "label": {"code": label.code, "name": label.name}},
                    member.pk,
                )
            )
        row.result = UpsertResult("updated", member)
    if changed_members:
        _update_members(changed_members, sorted(changed_fields), actor=actor, now=now, history=history)
    # As member_update runs member_updated: the members whose profile changed, after they
    # are saved, before the events (e.g. the profile-completion bonus), in one call.
    updates = [(row.member, sorted(row.changed)) for row in updating if row.changed]
    if updates:
        hooks.members_updated.run(updates=updates, actor=actor)
    if links:
        MemberLabel.objects.bulk_create(links)
    if cards:
        bulk_create_with_history(cards, Card, **history)
    if events:
        event_record_many(events=events)
    if new_members:
        hooks.members_created.run(members=new_members, actor=actor)
    return [row.result for row in work]


def _insert_members(
    program: Program, rows: list[dict[str, Any]], *, actor: Actor, now: datetime
) -> list[Member]:
    """Insert new members and their "created" history rows. On PostgreSQL with COPY
    (ids taken from the table's sequence first), which is several times faster than
    ``bulk_create`` for thousands of rows; elsewhere with ``bulk_create_with_history``."""
    if not rows:
        return []
    base = {"program_id": program.pk, "created_at": now, "updated_at": now}
    if connection.vendor != "postgresql":
        members = [Member(**base, **row) for row in rows]
        bulk_create_with_history(
            members,
            Member,
            default_user=_history_user(actor),
            custom_historical_attrs={"history_integration_id": actor.integration_id},
        )
        for member in members:
            member.program = program
        return members
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [Member._meta.db_table, len(rows)],
        )
        ids = [pk for (pk,) in cursor.fetchall()]
    fields = Member._meta.concrete_fields
    attnames = [field.attname for field in fields]
    in_order = _in_field_order(fields)
    values = [in_order({**base, **row, "id": pk}) for pk, row in zip(ids, rows, strict=True)]
    _copy(Member, fields, values)
    _insert_history(ids, "+", actor=actor, now=now)
    members = []
    for row in values:
        member = Member.from_db(connection.alias, attnames, row)
        member.program = program
        members.append(member)
    return members


def _update_members(
    members: list[Member], fields: list[str], *, actor: Actor, now: datetime, history: dict[str, Any]
) -> None:
    """Write the changed ``fields`` (and ``updated_at``) of ``members`` and their "changed"
    history rows. On PostgreSQL in two statements: one ``UPDATE ... FROM`` a row set made
    of one array parameter per column, and the history rows copied from the updated
    member rows by the server. ``bulk_update`` builds a ``CASE WHEN id = ...`` expression
    per row and field, which cost most of an update import's time. Elsewhere, or for a
    field that is not text or a date, ``bulk_update_with_history``."""
    model_fields = [Member._meta.get_field(name) for name in fields]
    if connection.vendor != "postgresql" or not all(
        isinstance(model_field, models.CharField | models.TextField) or type(model_field) is models.DateField
        for model_field in model_fields
    ):
        bulk_update_with_history(members, Member, fields=[*fields, "updated_at"], **history)
        return
    quote = connection.ops.quote_name
    assignments = [
        f"{quote(model_field.column)} = v.{quote(model_field.column)}" for model_field in model_fields
    ]
    columns = [
        f"unnest(%s::{model_field.db_type(connection)}[]) AS {quote(model_field.column)}"
        for model_field in model_fields
    ]
    ids = [member.pk for member in members]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Member._meta.db_table} m SET {', '.join(assignments)}, "
            f"{quote(Member._meta.get_field('updated_at').column)} = %s "
            f"FROM (SELECT unnest(%s::bigint[]) AS id, {', '.join(columns)}) v WHERE m.id = v.id",
            [
                Member._meta.get_field("updated_at").get_db_prep_save(now, connection),
                ids,
                *(
                    [
                        model_field.get_db_prep_save(getattr(member, model_field.attname), connection)
                        for member in members
                    ]
                    for model_field in model_fields
                ),
            ],
        )
    _insert_history(ids, "~", actor=actor, now=now)


def _insert_history(ids: list[int], history_type: str, *, actor: Actor, now: datetime) -> None:
    """History rows of ``history_type`` ("+" created, "~" changed) for members, copied
    from their rows as they are now by the server in one statement (what
    ``bulk_create_with_history`` / ``bulk_update_with_history`` write, without sending
    every value a second time)."""
    history_model = Member.history.model
    member_columns = {field.column for field in Member._meta.concrete_fields}
    extra = {
        "history_date": now,
        "history_change_reason": None,
        "history_type": history_type,
        "history_user_id": actor.user_id,
        "history_integration_id": actor.integration_id,
    }
    columns, selected, params = [], [], []
    for history_field in history_model._meta.concrete_fields:
        if history_field.attname == "history_id":
            continue
        column = connection.ops.quote_name(history_field.column)
        columns.append(column)
        if history_field.attname in extra or history_field.column not in member_columns:
            value = extra.get(history_field.attname, history_field.get_default())
            selected.append("%s")
            params.append(history_field.get_db_prep_save(value, connection))
        else:
            selected.append(f"m.{column}")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {history_model._meta.db_table} ({', '.join(columns)}) "
            f"SELECT {', '.join(selected)} FROM {Member._meta.db_table} m "
            "WHERE m.id = ANY(%s::bigint[]) ORDER BY m.id",
            [*params, pg_array(ids)],
        )


def _in_field_order(fields) -> Callable[[dict[str, Any]], tuple]:
    """A function giving a row's values in ``fields`` order, missing ones the field's
    default. Constant defaults are looked up once per call, not once per row and field;
    a callable default (e.g. ``dict`` for a JSON field) is still called for each row, so
    no two rows share a mutable value."""
    constant: dict[str, Any] = {}
    per_row = []
    for model_field in fields:
        if model_field.has_default() and callable(model_field.default):
            per_row.append(model_field)
        else:
            constant[model_field.attname] = model_field.get_default()
    pick = operator.itemgetter(*(model_field.attname for model_field in fields))

    def in_order(values: dict[str, Any]) -> tuple:
        row = {**constant, **values}
        for model_field in per_row:
            if model_field.attname not in values:
                row[model_field.attname] = model_field.get_default()
        return pick(row)

    return in_order


def _copy(model, fields, rows: Iterable[tuple]) -> None:
    """COPY rows (values in ``fields`` order) into ``model``'s table, as CSV written by
    the C csv module in one piece: far cheaper per row than formatting each value in
    Python. In CSV, an unquoted empty cell is NULL: FORCE_NOT_NULL reads it as '' for the
    text columns that cannot be NULL (Django stores "no value" there as '')."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(model_field.column) for model_field in fields)
    not_null_text = [
        quote(model_field.column)
        for model_field in fields
        if not model_field.null and isinstance(model_field, models.CharField | models.TextField)
    ]
    json_fields = [
        (index, field) for index, field in enumerate(fields) if isinstance(field, models.JSONField)
    ]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        if json_fields:
            row = list(row)
            for index, json_field in json_fields:
                row[index] = json.dumps(row[index], cls=json_field.encoder)
        writer.writerow(row)
    options = "FORMAT csv" + (f", FORCE_NOT_NULL ({', '.join(not_null_text)})" if not_null_text else "")
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {model._meta.db_table} ({columns}) FROM STDIN ({options})") as copy,
    ):
        copy.write(out.getvalue())


def _check_unique(program: Program, rows: list[_Row]) -> None:
    """The pre-check of ``services._check_unique`` for many rows, in one query: a value
    another member has (or an earlier row of this call takes) fails the row, naming the
    field."""

    def writes(row: _Row, name: str) -> bool:
        return bool(
            row.result is None and row.fields.get(name) and (row.member is None or name in row.changed)
        )

    values = {name: {row.fields[name] for row in rows if writes(row, name)} for name in _UNIQUE_FIELDS}
    if not any(values.values()):
        return
    owners: dict[str, dict[str, int]] = {name: {} for name in _UNIQUE_FIELDS}
    for pk, *stored in _holders(program, values):
        for name, value in zip(_UNIQUE_FIELDS, stored, strict=True):
            if value in values[name]:
                owners[name][value] = pk
    for name in _UNIQUE_FIELDS:
        taken_here: set[str] = set()
        for row in rows:
            if not writes(row, name):
                continue
            value = row.fields[name]
            owner = owners[name].get(value)
            mine = row.member.pk if row.member is not None else None
            if (owner is not None and owner != mine) or value in taken_here:
                row.fail(
                    DuplicateMemberError(
                        f"Another member of this program already has this {name.replace('_', ' ')}.",
                        field=name,
                    )
                )
            else:
                taken_here.add(value)


def _holders(program: Program, values: dict[str, set[str]]) -> list[tuple]:
    """(pk, number, email, phone, external_ref) of the program's members holding any of
    ``values[field]``, in one query."""
    if connection.vendor != "postgresql":
        wanted = [Q(**{f"{name}__in": found}) for name, found in values.items() if found]
        return list(
            Member.objects.filter(Q(program=program) & reduce(operator.or_, wanted)).values_list(
                "pk", *_UNIQUE_FIELDS
            )
        )
    conditions, params = [], [program.pk]
    for name, found in values.items():
        if found:
            conditions.append(f"{connection.ops.quote_name(name)} = ANY(%s::text[])")
            params.append(pg_array(found))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, {', '.join(_UNIQUE_FIELDS)} FROM {Member._meta.db_table} "
            f"WHERE program_id = %s AND ({' OR '.join(conditions)})",
            params,
        )
        return cursor.fetchall()


def _existing(program: Program, match: str, keys: set[str]) -> list[Member]:
    """The members whose ``match`` field is one of ``keys``, locked in id order (as
    ``member_update`` locks them)."""
    if not keys:
        return []
    if connection.vendor != "postgresql":
        return list(
            Member.objects.select_for_update(no_key=True)
            .filter(program=program, **{f"{match}__in": keys})
            .order_by("pk")
        )
    return list(
        Member.objects.raw(
            f"SELECT * FROM {Member._meta.db_table} WHERE program_id = %s "
            f"AND {connection.ops.quote_name(match)} = ANY(%s::text[]) ORDER BY id FOR NO KEY UPDATE",
            [program.pk, pg_array(keys)],
        )
    )


def _check_cards(program: Program, rows: list[_Row]) -> None:
    with_card = [row for row in rows if row.card]
    if not with_card:
        return
    taken = set(
        Card.objects.filter(program=program, number__in={row.card for row in with_card}).values_list(
            "number", flat=True
        )
    )
    for row in with_card:
        if row.card in taken:
            row.fail(CardNumberTakenError(f"Card number {row.card} is already in use.", field="card"))
        taken.add(row.card)


def _assign_numbers(program: Program, rows: list[_Row]) -> None:
    needing = [row for row in rows if not row.fields.get("number")]
    reserved = {row.fields["number"] for row in rows if row.fields.get("number")}
    for _ in range(20):
        if not needing:
            return
        candidates = {}
        for row in needing:
            number = generate_member_number()
            if number not in reserved and number not in candidates:
                candidates[number] = row
        used = set(
            Member.objects.filter(program=program, number__in=list(candidates)).values_list(
                "number", flat=True
            )
        )
        for number, row in candidates.items():
            if number not in used:
                row.fields["number"] = number
                reserved.add(number)
        needing = [row for row in needing if not row.fields.get("number")]
    raise RuntimeError("Could not find unused member numbers in 20 attempts.")


def _one_by_one(program: Program, data: MemberInput, match: str, action: str, actor: Actor) -> UpsertResult:
    """One row through the per-row services, in its own savepoint."""
    row = _Row(0, data)
    try:
        with transaction.atomic():
            _normalise(program, row, match)
            member = (
                Member.objects.select_for_update(no_key=True)
                .filter(program=program, **{match: row.key})
                .first()
                if row.key
                else None
            )
            if member is not None and action == "create":
                raise DuplicateMemberError(
                    f"A member with this {match.replace('_', ' ')} already exists.", field=match
                )
            if member is None and action == "update":
                raise MemberNotFoundError(f"No member with this {match.replace('_', ' ')}.", field=match)
            if member is None:
                profile = {name: value for name, value in row.fields.items() if name != "number"}
                created = services.member_create(
                    program=program,
                    actor=actor,
                    number=row.fields.get("number"),
                    status=data.status,
                    joined_at=data.joined_at,
                    labels=data.labels,
                    card_number=row.card or None,
                    **profile,
                )
                return UpsertResult("created", created)
            changes = {name: value for name, value in row.fields.items() if name != "number"}
            if row.fields.get("number", member.number) != member.number:
                raise _number_change_error()
            before = {name: getattr(member, name) for name in changes}
            member = services.member_update(member=member, actor=actor, **changes)
            changed = any(getattr(member, name) != value for name, value in before.items())
            for code in dict.fromkeys(data.labels):
                changed = services.label_assign(member=member, label_code=code, actor=actor) or changed
            return UpsertResult("updated" if changed else "unchanged", member)
    except DomainError as error:
        return UpsertResult("failed", error=error)
