"""Sealed snapshots: an HMAC under the application's secret key, checked before each load.

Loading an aggregate starts from its latest snapshot and skips the events before it, so a
snapshot written behind the API's back (by anyone who can insert into the table, the
database owner included) would change what the application decides. Each snapshot's state
carries an HMAC-SHA256 over its aggregate id, version, topic and state, keyed from the
application's secret key, which the database never sees. A snapshot without a valid seal is
ignored when loading (the aggregate is replayed from its events instead) and reported by
``projections verify``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import EventStore, Recording, StoredEvent

from akashone_es.logging import get_logger

log = get_logger(__name__)
#: the seal is the state's last member, so the sealed bytes are still one JSON object
MARKER = b',"_seal":"'


def seal_key(secret_key: str) -> bytes:
    """The snapshot MAC key, derived from (never equal to) the Fernet secret key."""
    return hashlib.sha256(b"akashone-es snapshot seal v1\x00" + secret_key.encode()).digest()


def _mac(key: bytes, stored: StoredEvent, state: bytes) -> bytes:
    head = f"{stored.originator_id}|{stored.originator_version}|{stored.topic}|".encode()
    return hmac.new(key, head + state, hashlib.sha256).hexdigest().encode()


def seal(key: bytes, stored: StoredEvent) -> StoredEvent:
    """The same snapshot with its seal appended to the state object."""
    state = stored.state
    if not state.endswith(b"}"):  # pragma: no cover - the mapper always writes an object
        msg = "a snapshot's state must be a JSON object"
        raise ValueError(msg)
    sealed = state[:-1] + MARKER + _mac(key, stored, state) + b'"}'
    return StoredEvent(originator_id=stored.originator_id,
                       originator_version=stored.originator_version, topic=stored.topic,
                       state=sealed)


def unseal(key: bytes, stored: StoredEvent) -> StoredEvent | None:
    """The snapshot as it was before sealing, or None when its seal is missing or wrong."""
    state = bytes(stored.state)
    at = state.rfind(MARKER)
    if at < 0 or not state.endswith(b'"}'):
        return None
    original = state[:at] + b"}"
    given = state[at + len(MARKER):-2]
    if not hmac.compare_digest(given, _mac(key, stored, original)):
        return None
    return StoredEvent(originator_id=stored.originator_id,
                       originator_version=stored.originator_version, topic=stored.topic,
                       state=original)


class SealedSnapshotStore(EventStore[UUID]):
    """The application's snapshot store: once ``open_storage`` gives it the key, it seals what
    it writes and loads only what it sealed (without a key it is the library's plain store)."""

    key: bytes | None = None

    def put(self, domain_events: Sequence[DomainEventProtocol[UUID]], **kwargs: Any
            ) -> list[Recording[UUID]]:
        if self.key is None:  # no key configured (bare application): plain snapshots
            return super().put(domain_events, **kwargs)
        key = self.key
        stored = [seal(key, self.mapper.to_stored_event(e)) for e in domain_events]
        self.recorder.insert_events(stored, **kwargs)
        return []  # the application ignores snapshot recordings

    def get(self, originator_id: UUID, *, gt: int | None = None, lte: int | None = None,
            desc: bool = False, limit: int | None = None,
            ) -> Iterator[DomainEventProtocol[UUID]]:
        if self.key is None:
            yield from super().get(originator_id, gt=gt, lte=lte, desc=desc, limit=limit)
            return
        if not desc:  # oldest first (loading asks for the newest): few rows, no paging
            for stored in self.recorder.select_events(originator_id=originator_id, gt=gt,
                                                      lte=lte, limit=limit):
                opened = unseal(self.key, stored)
                if opened is not None:
                    yield self.mapper.to_domain_event(opened)
            return
        # the newest snapshots first, a page at a time: normally the first is sealed and
        # used; a forged one is read past, never hiding an older good one
        found, page, upper = 0, max(limit or 0, 1) + 1, lte
        while True:
            rows = self.recorder.select_events(originator_id=originator_id, gt=gt, lte=upper,
                                               desc=True, limit=page)
            for stored in rows:
                opened = unseal(self.key, stored)
                if opened is None:
                    log.warning("snapshot.ignored", aggregate_id=str(originator_id),
                                version=stored.originator_version,
                                reason="seal missing or wrong: loaded from its events instead")
                    continue
                yield self.mapper.to_domain_event(opened)
                found += 1
                if limit is not None and found >= limit:
                    return
            if len(rows) < page:
                return
            upper = rows[-1].originator_version - 1
            page = min(page * 4, 1000)
