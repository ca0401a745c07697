"""Event bonuses (enrolment, birthday, referral, profile completion) and referrals.

Invariants:
- A bonus is given once per (member, kind, key): ``key`` is empty for the once-ever bonuses
  (enrolment, profile completion, referee), the year for birthdays and the referee's
  member id for the referrer's bonus. The unique constraint makes re-runs harmless.
- A member has at most one referral code (unique in the program) and is referred at most
  once, by a member of the same program other than themself.
"""

from __future__ import annotations

from django.db import models

from programs.models import Program

from .ledger import Currency, Transaction


class BonusAward(models.Model):
    class Kind(models.TextChoices):
        ENROLMENT = "enrolment", "Enrolment"
        BIRTHDAY = "birthday", "Birthday"
        REFERRER = "referrer", "Referral (referrer)"
        REFEREE = "referee", "Referral (referee)"
        PROFILE = "profile", "Profile completion"

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+", db_index=False)
    member = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="+", db_index=False)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    key = models.CharField(max_length=40, blank=True, default="")
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="+", db_index=False)
    points = models.BigIntegerField()
    transaction = models.OneToOneField(Transaction, on_delete=models.PROTECT, related_name="bonus_award")
    awarded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["member", "kind", "key"], name="points_bonus_once"),
        ]
        indexes = [models.Index(fields=["program", "kind", "awarded_at"], name="points_bonus_program_kind")]

    def __str__(self) -> str:
        return f"{self.kind} {self.key} {self.points}".strip()


class ReferralCode(models.Model):
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+", db_index=False)
    member = models.OneToOneField("members.Member", on_delete=models.CASCADE, related_name="referral_code")
    code = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["program", "code"], name="points_referral_code_unique")
        ]

    def __str__(self) -> str:
        return self.code


class Referral(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for the first purchase"
        COMPLETED = "completed", "Bonuses given"

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+", db_index=False)
    referrer = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="referrals_made")
    referee = models.OneToOneField("members.Member", on_delete=models.PROTECT, related_name="referral")
    code = models.CharField(max_length=16)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    purchase = models.ForeignKey(
        "points.Purchase", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(referrer=models.F("referee")), name="points_referral_not_self"
            )
        ]

    def __str__(self) -> str:
        return f"{self.referrer_id} → {self.referee_id} ({self.status})"
