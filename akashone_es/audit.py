"""A hash chain over the whole log: seal, digest, verify.

Each event has a leaf, ``L(n) = SHA-256(position || originator id || version || topic ||
state)`` (fixed-width integers, topic and state length-prefixed), and a seal,
``H(n) = SHA-256(H(n-1) || L(n))``, starting from 32 zero bytes. The state is the event's
stored bytes, which hold its timestamp, its fields and its metadata, so the seal covers all
of them (and, once personal data is encrypted, the ciphertext: erasing a key never breaks the
chain). An export shows the leaf of an event it leaves out, so its chain can still be
checked. Seals are written in the log's reading order (transaction id, then position: see
``persistence.database.LOG_ORDER_DDL``) by ``seal`` into ``akashone_chain`` (append-only, as
the log is, each seal with its event's transaction id), behind the writers, as an async
projection that never skips: it seals only below the oldest running transaction.

A digest (position, head hash, time) kept outside the database is what an auditor holds:
``verify`` recomputes the chain from the log and reports the first position that does not
match its seal, and whether the log still reaches the digest's position with its hash.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from akashone_es.persistence.database import CHAIN_TABLE
from akashone_es.persistence.names import EVENTS_TABLE
from akashone_es.personal import ERASURE_TOPIC, KEYS_TABLE
from projections.positions import START, Key, head

GENESIS = bytes(32)
#: sealers take turns (a transaction-scoped advisory lock)
SEAL_LOCK = "akashone:chain"
BATCH = 5000

EVENTS = sql.SQL(
    "SELECT notification_id, originator_id, originator_version, topic, state, transaction_id"
    " FROM {} WHERE (transaction_id, notification_id) > (%s, %s)"
    " AND (transaction_id, notification_id) <= (%s, %s)"
    " ORDER BY transaction_id, notification_id LIMIT %s").format(
        sql.Identifier(EVENTS_TABLE))
HEAD = sql.SQL("SELECT transaction_id, position, hash FROM {}"
               " ORDER BY transaction_id DESC, position DESC LIMIT 1").format(
    sql.Identifier(CHAIN_TABLE))
INSERT = sql.SQL("INSERT INTO {} (transaction_id, position, hash) VALUES (%s, %s, %s)").format(
    sql.Identifier(CHAIN_TABLE))
#: every event and every seal, side by side in the log's reading order (a seal without its
#: event, or an event below the sealed head without a seal, is itself a finding)
SIDE_BY_SIDE = sql.SQL(
    "SELECT coalesce(e.notification_id, c.position), e.originator_id, e.originator_version,"
    " e.topic, e.state, c.hash, coalesce(c.transaction_id, e.transaction_id),"
    " e.transaction_id FROM {} e FULL JOIN {} c ON c.position = e.notification_id"
    " ORDER BY 7, 1").format(sql.Identifier(EVENTS_TABLE), sql.Identifier(CHAIN_TABLE))
COUNT_AFTER = sql.SQL(
    "SELECT count(*) FROM {} WHERE (transaction_id, position) > (%s, %s)").format(
    sql.Identifier(CHAIN_TABLE))


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


def seal(conn: psycopg.Connection[Any], batch: int = BATCH, *,
         stop: Callable[[], bool] = lambda: False) -> tuple[int, bytes]:
    """Seal every event not sealed yet, in the log's reading order, up to the last event no
    running transaction can still precede (so the chain never passes one that commits
    later); returns the sealed head (position, hash). Safe to run from several processes:
    they take turns. ``stop`` is asked after each batch (a runner asked to stop returns
    there, whatever the writers append meanwhile)."""
    while True:
        with conn.transaction():
            last = head(conn)  # first: before this transaction holds an id of its own
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (SEAL_LOCK,))
            at, previous = _sealed(conn)
            events = conn.execute(EVENTS, (*at, *last, batch)).fetchall()
            seals = []
            for position, originator_id, version, topic, state, tx in events:
                previous = link(previous, position, originator_id, version, topic, bytes(state))
                seals.append((tx, position, previous))
                at = Key(tx, position)
            if seals:
                with conn.cursor() as cur:
                    cur.executemany(INSERT, seals)
        if len(events) < batch or stop():
            return at.position, previous


def _sealed(conn: psycopg.Connection[Any]) -> tuple[Key, bytes]:
    """The sealed head's key and hash (``START`` and the genesis hash when none)."""
    row = conn.execute(HEAD).fetchone()
    if row is None:
        return START, GENESIS
    return Key(int(row[0]), int(row[1])), bytes(row[2])


@dataclass(frozen=True)
class Digest:
    """What an auditor keeps: the sealed head at a moment."""

    position: int
    hash: str
    at: str

    def dumps(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def loads(cls, text: str | bytes) -> Digest:
        """A digest saved by ``dumps``; a ``ValueError`` saying what is wrong otherwise."""
        try:
            data = json.loads(text)
        except ValueError as exc:  # not JSON, or not UTF-8
            raise ValueError(f"not JSON ({exc})") from None
        names = [f.name for f in fields(cls)]
        if not isinstance(data, dict):
            raise ValueError(f"not a digest: expected a JSON object with {', '.join(names)}")
        missing = [name for name in names if name not in data]
        if missing:
            raise ValueError(f"it lacks {', '.join(map(repr, missing))} (a digest has "
                             f"{', '.join(names)})")
        position = data["position"]
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise ValueError(f"'position' is {position!r}, not a log position (a whole number)")
        return cls(position=position, hash=str(data["hash"]), at=str(data["at"]))


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


def _digest_problem(expected: Digest, at_digest: bytes | None) -> str | None:
    """Why the chain recomputed at the digest's position is not the digest's, or None."""
    if at_digest is None:
        return "the log no longer reaches the digest's position (events removed)"
    if at_digest.hex() != expected.hash:
        return "the chain at the digest's position differs from the digest (the log was " \
               "rewritten)"
    return None


def verify(conn: psycopg.Connection[Any], expected: Digest | None = None  # noqa: PLR0911
           ) -> Verdict:
    """Recompute the chain from the log and compare it with the seals (and the digest)."""
    previous, count, at_digest = GENESIS, 0, None
    sealed = None
    tail = False
    for (position, originator_id, version, topic, state, stored, tx,
         event_tx) in _rows(conn):
        if originator_id is None:
            return Verdict(False, count, position, "a sealed event is missing (deleted)")
        if stored is None:
            if not tail:
                sealed = _sealed(conn)[0]
                if Key(tx, position) <= sealed:
                    return Verdict(False, count, position,
                                   "an event without a seal below the sealed head (inserted)")
            if expected is None or at_digest is not None or position > expected.position:
                break  # the unsealed tail: written after the last seal
            # unsealed here, but the digest vouches for it (a database restored from a dump
            # taken before its events were sealed): the chain is recomputed up to it
            tail = True
            previous = link(previous, position, originator_id, version, topic, bytes(state))
            count += 1
            if position == expected.position:
                at_digest = previous
            continue
        previous = link(previous, position, originator_id, version, topic, bytes(state))
        if previous != bytes(stored):
            return Verdict(False, count, position,
                           "the event does not match its seal (its content, metadata or "
                           "place changed)")
        if event_tx != tx:
            return Verdict(False, count, position,
                           "the event's transaction id differs from its seal's (its place in "
                           "the reading order changed)")
        count += 1
        if expected is not None and position == expected.position:
            at_digest = previous
    if expected is not None and (problem := _digest_problem(expected, at_digest)):
        return Verdict(False, count, expected.position, problem)
    lost = unrecorded_erasures(conn)
    if lost:
        return Verdict(False, count, None, f"{len(lost)} key{'s were' if len(lost) > 1 else ' was'}"
                                           f" destroyed with no erasure in the log naming "
                                           f"{'them' if len(lost) > 1 else 'it'} (the first: "
                                           f"{lost[0]}): data was made unreadable behind the "
                                           f"log's back")
    return Verdict(True, count)


#: destroyed subject keys that no erasure event names (a key is destroyed only by storing an
#: erasure, in the same transaction: any other way is tampering)
UNRECORDED_ERASURES = sql.SQL(
    "WITH named AS (SELECT jsonb_array_elements_text(convert_from(state, 'UTF8')::jsonb"
    " -> 'subjects') AS subject FROM {events} WHERE topic = {topic})"
    " SELECT k.subject FROM {keys} k WHERE k.sealed_key IS NULL"
    " AND k.subject NOT IN (SELECT subject FROM named WHERE subject IS NOT NULL)"
    " ORDER BY k.subject LIMIT 100")


def unrecorded_erasures(conn: psycopg.Connection[Any]) -> list[str]:
    """Subjects whose keys were destroyed with no erasure naming them (at most 100)."""
    found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{KEYS_TABLE}",)
                         ).fetchone()
    if not (found and found[0]):
        return []
    query = UNRECORDED_ERASURES.format(
        keys=sql.Identifier("public", KEYS_TABLE), events=sql.Identifier(EVENTS_TABLE),
        topic=sql.Literal(ERASURE_TOPIC))
    return [row[0] for row in conn.execute(query).fetchall()]


def _rows(conn: psycopg.Connection[Any]) -> Iterator[tuple[Any, ...]]:
    with conn.cursor(name="akashone_verify") as cur:
        cur.itersize = BATCH
        cur.execute(SIDE_BY_SIDE)
        yield from cur


def sealed_count(conn: psycopg.Connection[Any]) -> int:
    """How many events are sealed."""
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
        sql.Identifier(CHAIN_TABLE))).fetchone()
    return int(row[0]) if row else 0


def sealed_head(conn: psycopg.Connection[Any]) -> int:
    """The last sealed position (0 when nothing is sealed)."""
    return _sealed(conn)[0].position


def seal_tail(conn: psycopg.Connection[Any]) -> int:
    """Seal what was written since the last seal; how many events that was."""
    before, _ = _sealed(conn)
    conn.commit()
    seal(conn)
    row = conn.execute(COUNT_AFTER, before).fetchone()
    conn.commit()
    return int(row[0]) if row else 0
