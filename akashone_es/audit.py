"""A hash chain over the whole log: seal, digest, verify.

Each event has a leaf, ``L(n) = SHA-256(position || originator id || version || topic ||
state)`` (fixed-width integers, topic and state length-prefixed), and a seal,
``H(n) = SHA-256(H(n-1) || L(n))``, starting from 32 zero bytes. The state is the event's
stored bytes, which hold its timestamp, its fields and its metadata, so the seal covers all
of them (and, once personal data is encrypted, the ciphertext: erasing a key never breaks the
chain). An export shows the leaf of an event it leaves out, so its chain can still be
checked. Seals are written in log order by ``seal`` into ``akashone_chain`` (append-only, as
the log is), behind the writers, as an async projection that never skips.

A digest (position, head hash, time) kept outside the database is what an auditor holds:
``verify`` recomputes the chain from the log and reports the first position that does not
match its seal, and whether the log still reaches the digest's position with its hash.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from akashone_es.application import EVENTS_TABLE
from akashone_es.persistence.database import CHAIN_TABLE

GENESIS = bytes(32)
#: sealers take turns (a transaction-scoped advisory lock)
SEAL_LOCK = "akashone:chain"
BATCH = 5000

EVENTS = sql.SQL(
    "SELECT notification_id, originator_id, originator_version, topic, state FROM {}"
    " WHERE notification_id > %s ORDER BY notification_id LIMIT %s").format(
        sql.Identifier(EVENTS_TABLE))
HEAD = sql.SQL("SELECT position, hash FROM {} ORDER BY position DESC LIMIT 1").format(
    sql.Identifier(CHAIN_TABLE))
INSERT = sql.SQL("INSERT INTO {} (position, hash) VALUES (%s, %s)").format(
    sql.Identifier(CHAIN_TABLE))
#: every event and every seal, side by side in log order (a seal without its event, or an
#: event below the sealed head without a seal, is itself a finding)
SIDE_BY_SIDE = sql.SQL(
    "SELECT coalesce(e.notification_id, c.position), e.originator_id, e.originator_version,"
    " e.topic, e.state, c.hash FROM {} e FULL JOIN {} c ON c.position = e.notification_id"
    " ORDER BY 1").format(sql.Identifier(EVENTS_TABLE), sql.Identifier(CHAIN_TABLE))


def leaf(position: int, originator_id: UUID, version: int, topic: str, state: bytes) -> bytes:
    """One event's leaf: what an export gives in place of an event it leaves out, so the
    chain can still be recomputed through it."""
    topic_bytes = topic.encode()
    return hashlib.sha256(b"".join((
        struct.pack(">Q", position), originator_id.bytes, struct.pack(">Q", version),
        struct.pack(">I", len(topic_bytes)), topic_bytes, struct.pack(">I", len(state)),
        state))).digest()


def chain(previous: bytes, leaf_hash: bytes) -> bytes:
    """The seal after ``previous`` of an event whose leaf is ``leaf_hash``."""
    return hashlib.sha256(previous + leaf_hash).digest()


def link(previous: bytes, position: int, originator_id: UUID, version: int, topic: str,
         state: bytes) -> bytes:
    """One event's seal."""
    return chain(previous, leaf(position, originator_id, version, topic, state))


def seal(conn: psycopg.Connection[Any], batch: int = BATCH) -> tuple[int, bytes]:
    """Seal every event not sealed yet, in log order; returns the sealed head (position,
    hash). Safe to run from several processes: they take turns."""
    while True:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (SEAL_LOCK,))
            row = conn.execute(HEAD).fetchone()
            position, previous = (row[0], bytes(row[1])) if row else (0, GENESIS)
            events = conn.execute(EVENTS, (position, batch)).fetchall()
            seals = []
            for at, originator_id, version, topic, state in events:
                previous = link(previous, at, originator_id, version, topic, bytes(state))
                seals.append((at, previous))
                position = at
            if seals:
                with conn.cursor() as cur:
                    cur.executemany(INSERT, seals)
        if len(events) < batch:
            return position, previous


@dataclass(frozen=True)
class Digest:
    """What an auditor keeps: the sealed head at a moment."""

    position: int
    hash: str
    at: str

    def dumps(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def loads(cls, text: str) -> Digest:
        data = json.loads(text)
        return cls(position=int(data["position"]), hash=str(data["hash"]), at=str(data["at"]))


def digest(conn: psycopg.Connection[Any]) -> Digest:
    """Seal what is pending, then the digest of the sealed head."""
    position, head = seal(conn)
    return Digest(position, head.hex(), datetime.now(UTC).isoformat(timespec="seconds"))


@dataclass(frozen=True)
class Verdict:
    ok: bool
    events: int
    position: int | None = None
    problem: str | None = None


def verify(conn: psycopg.Connection[Any], expected: Digest | None = None) -> Verdict:
    """Recompute the chain from the log and compare it with the seals (and the digest)."""
    previous, count, at_digest = GENESIS, 0, None
    sealed = None
    for position, originator_id, version, topic, state, stored in _rows(conn):
        if originator_id is None:
            return Verdict(False, count, position, "a sealed event is missing (deleted)")
        if stored is None:
            sealed = sealed if sealed is not None else sealed_head(conn)
            if position <= sealed:
                return Verdict(False, count, position,
                               "an event without a seal below the sealed head (inserted)")
            break  # the unsealed tail: written after the last seal
        previous = link(previous, position, originator_id, version, topic, bytes(state))
        if previous != bytes(stored):
            return Verdict(False, count, position,
                           "the event does not match its seal (its content, metadata or "
                           "place changed)")
        count += 1
        if expected is not None and position == expected.position:
            at_digest = previous
    if expected is not None:
        if at_digest is None:
            return Verdict(False, count, expected.position,
                           "the log no longer reaches the digest's position (events removed)")
        if at_digest.hex() != expected.hash:
            return Verdict(False, count, expected.position,
                           "the chain at the digest's position differs from the digest "
                           "(the log was rewritten)")
    return Verdict(True, count)


def _rows(conn: psycopg.Connection[Any]) -> Iterator[tuple[Any, ...]]:
    with conn.cursor(name="akashone_verify") as cur:
        cur.itersize = BATCH
        cur.execute(SIDE_BY_SIDE)
        yield from cur


def sealed_head(conn: psycopg.Connection[Any]) -> int:
    """The last sealed position (0 when nothing is sealed)."""
    row = conn.execute(HEAD).fetchone()
    return int(row[0]) if row else 0


def seal_tail(conn: psycopg.Connection[Any]) -> int:
    """Seal what was written since the last seal; how many events that was."""
    before = sealed_head(conn)
    seal(conn)
    row = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE position > %s").format(
        sql.Identifier(CHAIN_TABLE)), (before,)).fetchone()
    conn.commit()
    return int(row[0]) if row else 0
