"""Two enrolments racing for one e-mail, with real threads and transactions."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from members import services
from members.errors import DuplicateMemberError
from members.models import Member
from membership_site.actors import Actor

SYSTEM = Actor.system("tests")


@pytest.mark.django_db(transaction=True)
def test_member_create_race_for_one_email_is_one_member_and_one_409(program, monkeypatch):
    # Both writers pass the pre-check before either inserts: the loser meets the unique
    # constraint and must get the same DuplicateMemberError, not a database error.
    both_checked = threading.Barrier(2, timeout=10)
    checked_once = threading.local()
    original = services._check_unique

    def check_then_wait(*args, **kwargs):
        original(*args, **kwargs)
        if not getattr(checked_once, "done", False):
            checked_once.done = True
            both_checked.wait()

    monkeypatch.setattr(services, "_check_unique", check_then_wait)
    outcomes: list[object] = []

    def enrol(index: int) -> None:
        try:
            member = services.member_create(
                program=program, actor=SYSTEM, email="race@example.com", first_name=f"Writer {index}"
            )
            outcomes.append(member.pk)
        except Exception as error:  # recorded and asserted below
            outcomes.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=enrol, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    errors = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    assert len(outcomes) == 2 and len(errors) == 1, outcomes
    assert isinstance(errors[0], DuplicateMemberError) and errors[0].field == "email"
    assert Member.objects.filter(email="race@example.com").count() == 1
