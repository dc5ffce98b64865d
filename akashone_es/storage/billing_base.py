"""Billing storage base: helpers shared by the billing mixins, retries on conflicts."""


from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from psycopg import sql

from akashone_es import context
from akashone_es.domain.base import Aggregate
from akashone_es.errors import (
    ConcurrentWriteError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
)
from akashone_es.gst import (
    gstin_error,
)
from akashone_es.storage import inputs as i
from akashone_es.storage.identity import IdentityStorage

T = TypeVar("T")
Q = sql.SQL
RETRIES = 30


def now() -> datetime:
    return datetime.now(UTC)


def retrying(attempt: Callable[[], T], on: type[ConflictError] = ConflictError) -> T:
    """Run ``attempt`` again after a ConflictError (a racing writer won; ``on`` narrows it):
    the loser reloads and retries, so numbering stays gapless and nothing is applied
    twice."""
    for tries in range(RETRIES):
        try:
            return attempt()
        except on:
            if tries == RETRIES - 1:
                raise
            time.sleep(random.uniform(0.001, 0.01) * (tries + 1))  # noqa: S311 - jitter only
    raise AssertionError("unreachable")  # pragma: no cover


def racing(attempt: Callable[[], T]) -> T:
    """``attempt``, tried again only after another writer changed a record first (a rule's
    refusal is not retried)."""
    return retrying(attempt, ConcurrentWriteError)



#: the billing tables whose rows belong to a user's organization through the user
BILLING_TABLES = ("invoices", "usage_records", "payment_transactions", "billing_addresses",
                  "payment_methods", "tax_calculations")
BILLING_OWNED_BY = sql.SQL("SELECT {}").format(sql.SQL(" + ").join(
    sql.SQL("(SELECT count(*) FROM {} WHERE user_id = %s)").format(sql.Identifier(table))
    for table in BILLING_TABLES))


class BillingBase(IdentityStorage):
    """Helpers of the billing mixins: owners, visibility, defaults, the supplier."""

    # -- helpers --------------------------------------------------------------------------
    def _user_of(self, user_id: UUID | str, field: str = "user_id") -> Any:
        """The user's row when the acting party may see it, else ``NotFoundError``; its
        secrets stay sealed (no billing rule reads them)."""
        user = self._visible_user(i.parse_id(user_id, field))
        if user is None:
            raise NotFoundError("user", user_id, field)
        return user

    def _check_user_move(self, user_id: UUID) -> None:
        """A user with billing records stays in its organization: its invoices, usage,
        payments, addresses and payment methods are that organization's, and are read through
        the user (``_owned``): moving it would hand them to the other organization."""
        super()._check_user_move(user_id)
        owned = int(self._scalar(BILLING_OWNED_BY, [user_id] * len(BILLING_TABLES)) or 0)
        if owned:
            raise ConflictError(f"the user has {owned} billing record{'' if owned == 1 else 's'}"
                                " (invoices, usage, payments, addresses, payment methods) of its"
                                " organization: they stay with it, so the user cannot move")

    def _owned(self, row: T | None) -> T | None:
        """``row`` when its user is visible to the acting party, else None."""
        if row is None:
            return None
        return row if self._visible_user(row.user_id) is not None else None  # type: ignore[attr-defined]

    def _load_or_none(self, cls: type[Any], aggregate_id: UUID) -> Any:
        try:
            return self.app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def _supplier(self) -> tuple[str, str]:
        gstin = self.settings.supplier_gstin
        if not gstin:
            raise ConfigurationError("set AKASHONE_SUPPLIER_GSTIN: invoices are issued from the "
                                     "supplier's own GSTIN, and its state decides the tax")
        problem = gstin_error(gstin.upper())
        if problem:
            raise ConfigurationError(f"AKASHONE_SUPPLIER_GSTIN is not valid: {problem}")
        return gstin.upper(), gstin[:2]

    def _clear_default(self, cls: type[Any], current: Any) -> list[Aggregate]:
        aggregate = self._load(cls, current.id, cls.__name__)
        aggregate.set_default(False)
        return [aggregate]

    def _set_default(self, cls: type[Any], target_id: UUID, current: Any, kind: str) -> None:
        if current is not None and current.id == target_id:
            return
        with context.command():
            cleared = self._clear_default(cls, current) if current else []
            aggregate = self._load(cls, target_id, kind)
            aggregate.set_default(True)
            self._save(*cleared, aggregate)  # cleared first: one default at every moment

