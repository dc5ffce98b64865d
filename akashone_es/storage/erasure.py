"""Erasure of personal data by destroying its keys: on request, and when retention ends."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Literal
from uuid import UUID

from psycopg import sql
from pydantic import BaseModel

from akashone_es import context
from akashone_es import personal as pii
from akashone_es.domain.base import Aggregate
from akashone_es.domain.identity import User
from akashone_es.domain.operations import Erasure
from akashone_es.domain.reasons import ERASURE_REASONS
from akashone_es.errors import (
    ConcurrentWriteError,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from akashone_es.gst import financial_year, ist_date
from akashone_es.storage import inputs as i
from akashone_es.storage.users import UsersStorage
from projections.engine import Query

#: the records of a user that hold its personal data under keys of their own
OWNED_SUBJECTS: Query = sql.SQL(
    "SELECT DISTINCT originator_id FROM public.akashone_events WHERE topic = ANY(%s)"
    " AND convert_from(state, 'UTF8')::jsonb ->> 'user_id' = %s")
OWNED_TOPICS = ["akashone_es.domain.identity:TeamMember.Accepted",
                "akashone_es.domain.billing:BillingAddress.Created",
                # the same records brought in from AkashOne (an imported member names its
                # user when it had accepted)
                "akashone_es.domain.identity:TeamMember.Imported",
                "akashone_es.domain.billing:BillingAddress.Imported",
                "akashone_es.domain.billing:PaymentMethod.Created",
                "akashone_es.domain.billing:PaymentMethod.Imported"]
#: which of the subjects have their keys destroyed already, and when
DESTROYED: Query = sql.SQL(
    "SELECT subject, destroyed_at FROM public.akashone_subject_keys"
    " WHERE subject = ANY(%s) AND sealed_key IS NULL")
FY = re.compile(r"\d{4}-\d{2}")
YEAR_KEYS: Query = sql.SQL(
    "SELECT subject, sealed_key IS NULL AS destroyed FROM public.akashone_subject_keys"
    " WHERE subject LIKE 'fy:%%' ORDER BY subject")
#: the documents that carry buyer details sealed under the key of the year their invoice
#: was drafted in: the invoices, and the credit and debit notes issued against them (a note
#: names its invoice's buyer), with the financial year each is dated in
ISSUED: Query = sql.SQL(
    "SELECT fy, created_at FROM invoices WHERE fy IS NOT NULL"
    " UNION ALL SELECT n.fy, i.created_at FROM adjustment_notes n"
    " JOIN invoices i ON i.id = n.invoice_id")


class ErasureReport(BaseModel):
    """What an erasure destroyed: key subjects, never the data."""

    erasure_id: UUID
    user_id: UUID
    subjects: list[str]


class RetentionYear(BaseModel):
    """One financial year's key for buyer details on tax documents."""

    fy: str
    #: the last day the year's documents (and those drafted in it, issued in a later year)
    #: must be kept
    kept_until: date
    state: Literal["kept", "held", "destroyed now", "destroyed earlier"]


class ErasureStorage(UsersStorage):
    """``erase_personal_data`` and the retention sweep (platform only)."""

    def erase_personal_data(self, user_id: UUID | str,
                            reason: str = "data principal request") -> ErasureReport:
        """Destroy the keys of a person's data (their account, memberships and address
        book) and record an erasure naming only the key subjects. Their email, addresses,
        IP addresses and user agents then read as ``[erased]`` everywhere: read tables,
        ``history``, exports, snapshots, a rebuild; the hash chain still verifies. Buyer
        details on their tax invoices stay under the year's retention key (GST law). The
        account is suspended by the platform in the same transaction: an erased person no
        longer acts (a context naming them is refused).

        A person erased before is refused (``ConflictError``, nothing written): a second
        erasure would record a destruction that did not happen. Only a record made for
        them since (a new address) has a key left to destroy, and is erased alone."""
        if reason not in ERASURE_REASONS:
            raise ValidationError.single("reason",
                                         f"must be one of: {', '.join(ERASURE_REASONS)}")
        uid = i.parse_id(user_id, "user_id")
        if self.get_user(uid) is None:
            raise NotFoundError("user", uid)
        owned = [row["originator_id"]
                 for row in self._rows(OWNED_SUBJECTS, (OWNED_TOPICS, str(uid)))]
        subjects = [pii.person(uid), *sorted(pii.person(o) for o in owned)]
        destroyed = {row["subject"]: row["destroyed_at"]
                     for row in self._rows(DESTROYED, (subjects,))}
        if len(destroyed) == len(subjects):
            on = destroyed[pii.person(uid)].astimezone(UTC)
            raise ConflictError(f"{uid}'s personal data is already erased (on {on:%Y-%m-%d})")
        subjects = [s for s in subjects if s not in destroyed]
        for _ in range(5):
            with context.command():
                erasure = Erasure(kind="request", subjects=subjects, reason=reason)
                saved: list[Aggregate] = [erasure]
                account = self._load(User, uid, "user")
                if not account.suspended_by_platform:  # an erased person acts no more
                    account.update({"status": "suspended"}, by_platform=True)
                    saved.append(account)
                try:
                    self._save(*saved)
                except ConcurrentWriteError:  # the account changed meanwhile, or the
                    # database's ``DESTROYED_ONCE`` refused: nothing written either way
                    if self._rows(DESTROYED, ([pii.person(uid)],)):
                        raise ConflictError(f"{uid}'s personal data was erased by another "
                                            f"request at the same time") from None
                    continue
            return ErasureReport(erasure_id=erasure.id, user_id=uid, subjects=subjects)
        raise ConflictError(f"{uid} kept changing while it was erased; erase it again")

    def retention_sweep(self, today: date | None = None,
                        holds: Iterable[str] = ()) -> list[RetentionYear]:
        """Destroy each financial year's buyer-details key once the year's GST retention
        ended (72 months after its annual return is due; a document drafted in one year and
        issued in a later one, or credited or debited by a note of a later one, keeps the key
        until the later year's end). Years in ``holds`` (a legal hold: an appeal, an
        investigation) are kept. ``today``: the date in India (the default), or an earlier
        one; never a later one."""
        now = ist_date(datetime.now(UTC))
        today = now if today is None else today
        if not isinstance(today, date) or isinstance(today, datetime):
            raise ValidationError.single("today", "must be a date")
        if today > now:  # keys destroyed are gone for good: never ahead of the calendar
            raise ValidationError.single("today", f"must not be later than today in India "
                                                  f"({now.isoformat()})")
        held = set(holds)
        for year in held:
            if not isinstance(year, str) or not FY.fullmatch(year):
                raise ValidationError.single("holds", "each must be a financial year such "
                                                      "as 2026-27")
        latest: dict[str, str] = {}
        for row in self._rows(ISSUED, ()):
            drafted = financial_year(row["created_at"])
            latest[drafted] = max(latest.get(drafted, drafted), row["fy"])
        years = []
        for row in self._rows(YEAR_KEYS, ()):
            fy = row["subject"].removeprefix("fy:")
            until = pii.retention_end(latest.get(fy, fy))
            if row["destroyed"]:
                state = "destroyed earlier"
            elif fy in held:
                state = "held"
            elif today > until:
                state = "destroyed now"
                with context.command():
                    try:
                        self._save(Erasure(kind="retention", subjects=[row["subject"]],
                                           reason="retention ended"))
                    except ConcurrentWriteError:  # a sweep alongside destroyed it first
                        state = "destroyed earlier"
            else:
                state = "kept"
            years.append(RetentionYear(fy=fy, kept_until=until, state=state))
        return years
