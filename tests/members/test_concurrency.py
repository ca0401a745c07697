"""Two enrolments racing for one e-mail, with real threads and transactions."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from members import services
from members.errors import DuplicateMemberError
from members.models import Member
from membership_site.actors import Actor
from tests.db_support import wait_for_lock_waiter

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


@pytest.mark.django_db(transaction=True)
def test_label_assign_while_a_points_adjust_commits_does_not_deadlock(program, member):
    # Found fuzzing the API with two workers: the adjust holds the member's event-sequence
    # row; label_assign locked the member row FOR UPDATE and then waited for that row; the
    # adjust's deferred foreign-key checks at COMMIT need KEY SHARE on the member row, which
    # FOR UPDATE blocks: "deadlock detected", a 500. Member locks are FOR NO KEY UPDATE now.
    from points.earning import qualifying

    services.label_create(program=program, code="vip", name="VIP", actor=SYSTEM)
    adjusted, release = threading.Event(), threading.Event()
    outcomes: dict[str, object] = {}

    def adjust() -> None:
        try:
            with transaction.atomic():
                qualifying.points_adjust_qualifying(member=member, amount=10, reason="Goodwill", actor=SYSTEM)
                adjusted.set()
                release.wait(10)  # commit only once label_assign is waiting
            outcomes["adjust"] = "ok"
        except Exception as error:  # recorded and asserted below
            outcomes["adjust"] = error
        finally:
            connection.close()

    def assign() -> None:
        try:
            services.label_assign(member=member, label_code="vip", actor=SYSTEM)
            outcomes["label"] = "ok"
        except Exception as error:  # recorded and asserted below
            outcomes["label"] = error
        finally:
            connection.close()

    adjuster = threading.Thread(target=adjust)
    adjuster.start()
    assert adjusted.wait(10)
    assigner = threading.Thread(target=assign)
    assigner.start()
    # Until label_assign waits for a lock the adjust holds.
    wait_for_lock_waiter("label_assign never waited for the adjust", timeout=10)
    release.set()
    adjuster.join(30)
    assigner.join(30)
    assert outcomes == {"adjust": "ok", "label": "ok"}
    assert list(member.labels.values_list("code", flat=True)) == ["vip"]
