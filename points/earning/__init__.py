"""Earning: purchases and refunds, earning rules and campaigns, event bonuses, and the
qualifying activity the ledger records for tiers.

Modules:
- ``compute``: the points of a basket, a pure function (no database) shared by the quote
  and the purchase so they cannot diverge;
- ``basket``: validation of a purchase's money and lines;
- ``config``: services for earning settings, rules and campaigns;
- ``purchases``: services recording purchases and refunds;
- ``bonuses``: enrolment, birthday, referral and profile-completion bonuses;
- ``qualifying``: tier-aware wrappers of the ledger services (earn, adjust, reverse) and
  the lock order they keep;
- ``selectors``, ``api``, ``serializers``, ``filters``, ``urls``, ``admin``, ``events``,
  ``errors``, ``tasks``: the usual layers.
"""
