"""A one-off copy of the log into a new database with its personal data encrypted.

Events written before personal data was encrypted per person hold it in clear, and the log
never changes, so destroying a person's key cannot erase those values. This copies the whole
log, in order and at the same positions, into an empty database (copy-and-replace, as event
stores migrate a log without editing it): every event as it is, except that each personal
value still in clear is encrypted under its person's key, or becomes the erasure marker when
that person's key was destroyed (an erasure made before the copy then reaches those events
too). The subject keys and resource sync stamps come along; every projection is rebuilt from
the copy and the copy's hash chain is sealed anew. Snapshots are not copied (they are made
again as aggregates are saved).

The copy is one transaction in the new database: it holds the whole copy or nothing. The
old database is left as it was; the operator points the services at the new one and keeps
the old one (with its digest, printed here beside the new one's) only as long as the law
asks, then drops it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from akashone_es import audit as chain
from akashone_es.errors import ConfigurationError, ConflictError
from akashone_es.logging import get_logger
from akashone_es.persistence.names import EVENTS_TABLE
from akashone_es.personal import KEYS_TABLE, KeyRing, saving, seal_clear
from akashone_es.storage.resources import SYNC_STAMPS
from projections.engine import NOT_LIVE, REGISTER_CHECKPOINT, SET_CHECKPOINTS
from projections.positions import START, Key, head, pending
from projections.rebuild import rebuild

log = get_logger(__name__)
#: events read and written per step
BATCH = 2000
#: (what is being done, done, of how many)
Progress = Callable[[str, int, int], None]
EVENT_COLUMNS = ("notification_id", "originator_id", "originator_version", "topic", "state",
                 "transaction_id")
KEY_COLUMNS = ("subject", "sealed_key", "created_at", "destroyed_at", "reason")
STAMP_COLUMNS = ("resource_id", "observed_at")


@dataclass
class Copied:
    """What a copy did."""

    events: int = 0  # events copied
    changed: int = 0  # events that held personal data in clear
    sealed: int = 0  # values encrypted
    erased: int = 0  # values of people whose key was destroyed, now the marker
    keys: int = 0  # subject keys carried over
    source: chain.Digest | None = None  # the old log's head when copied
    target: chain.Digest | None = None  # the new log's head, sealed anew


def same_database(one: str, other: str) -> bool:
    """Whether two connection strings name the same database on the same server."""
    def where(dsn: str) -> tuple[str, str, str]:
        info = conninfo_to_dict(dsn)
        return (str(info.get("host") or "localhost").replace("127.0.0.1", "localhost"),
                str(info.get("port") or 5432), str(info.get("dbname")))
    return where(one) == where(other)


def copy_encrypted(source: Any, target: Any, progress: Progress | None = None) -> Copied:
    """Copy ``source``'s log (a ``Storage``) into ``target``'s empty one, personal data in
    clear encrypted on the way; rebuild ``target``'s projections; seal both chains.

    The source's events table is held in SHARE mode while it is copied and its chain sealed:
    a writer waits meanwhile (and is refused after its lock timeout), so the copy and the old
    digest end at the same position. Events appended to the source after that are not in the
    copy: stop every writer first, and move them to the target afterwards. If some were
    appended by the time the target is rebuilt, the copy fails (``ConflictError``).
    """
    if same_database(source.dsn, target.dsn):
        raise ConfigurationError("the copy must go into another database than the one it "
                                 "copies")
    done = Copied()
    with psycopg.connect(source.dsn, autocommit=True) as old, \
            psycopg.connect(target.dsn, autocommit=True) as new:
        present = pending(new, START, head(new, final=True))
        if present:
            raise ConfigurationError(
                f"the target database already holds {_events(present)}: the copy "
                "goes into an empty database (drop it, or name a new one)")
        with old.transaction():
            old.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(
                sql.Identifier("public", EVENTS_TABLE)))  # writers wait; readers go on
            top = head(old, final=True)  # no writer is in flight: the lock waited
            with new.transaction():
                done.keys = _copy_table(old, new, KEYS_TABLE, KEY_COLUMNS)
                _copy_table(old, new, SYNC_STAMPS, STAMP_COLUMNS)
                keyring = target.keyring.bound_to(new)  # sees the keys copied just now
                keyring.preload()
                _copy_events(old, new, keyring, top, done, progress)
                for projection in target.projections:  # stale until rebuilt from the copy
                    new.execute(REGISTER_CHECKPOINT, (projection.name,))
                    new.execute(SET_CHECKPOINTS, (0, 0, [projection.name]))
                    new.execute(NOT_LIVE, (projection.name,))
            done.source = chain.digest(old)  # exactly to ``top``: no writer got in
        log.info("reencrypt.copied", events=done.events, changed=done.changed,
                 sealed=done.sealed, erased=done.erased)
        for projection in target.projections:
            rebuild(target.dsn, type(projection), target.reader, progress=progress)
        moved = pending(old, top, head(old, final=True))
        if moved:
            raise ConflictError(
                f"{_events(moved)} appended to the source since the copy "
                f"{'is' if moved == 1 else 'are'} not in it: stop every writer, drop the "
                "target database and copy again")
        done.target = chain.digest(new)
    return done


def _copy_events(old: psycopg.Connection[Any], new: psycopg.Connection[Any],
                 keyring: KeyRing, top: Key, done: Copied, progress: Progress | None) -> None:
    """Every event up to ``top``, at its own position, clear personal values encrypted
    (new subject keys are inserted in the same transaction). A batch is encrypted before
    its COPY starts: the key ring may read a key on ``new`` meanwhile."""
    copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier("public", EVENTS_TABLE), sql.SQL(", ").join(map(sql.Identifier,
                                                                      EVENT_COLUMNS)))
    after, total = START, pending(old, START, top)
    with saving(keyring) as save:
        while after < top:
            rows = old.execute(
                "SELECT notification_id, originator_id, originator_version, topic, state,"
                " transaction_id FROM public.akashone_events"
                " WHERE (transaction_id, notification_id) > (%s, %s)"
                " AND (transaction_id, notification_id) <= (%s, %s)"
                " ORDER BY transaction_id, notification_id LIMIT %s",
                (*after, *top, BATCH)).fetchall()
            if not rows:
                break
            sealed = [(position, originator_id, version, topic,
                       _sealed(keyring, topic, originator_id, bytes(state), done), tx)
                      for position, originator_id, version, topic, state, tx in rows]
            with new.cursor() as cur:
                for query, params in save.statements:  # keys made for this batch
                    cur.execute(query, params)
                with cur.copy(copy) as writer:
                    for row in sealed:
                        writer.write_row(row)
            save.statements.clear()
            after = Key(rows[-1][5], rows[-1][0])
            done.events += len(rows)
            if progress is not None:
                progress("copy", done.events, total)
        if total:  # the next append takes the next position
            new.execute(sql.SQL("SELECT setval(pg_get_serial_sequence({events}, 'notification_id'),"
                                " (SELECT max(notification_id) FROM {table}))").format(
                events=sql.Literal(f"public.{EVENTS_TABLE}"),
                table=sql.Identifier("public", EVENTS_TABLE)))


def _events(count: int) -> str:
    return f"{count} event{'' if count == 1 else 's'}"


def _sealed(keyring: KeyRing, topic: str, originator_id: Any, state: bytes, done: Copied
            ) -> bytes:
    """The stored state, its clear personal values encrypted (the same bytes when none)."""
    data = orjson.loads(state)
    sealed, erased = seal_clear(keyring, topic, originator_id, data)
    if not sealed and not erased:
        return state
    done.changed += 1
    done.sealed += sealed
    done.erased += erased
    return orjson.dumps(data)


def _copy_table(old: psycopg.Connection[Any], new: psycopg.Connection[Any], table: str,
                columns: tuple[str, ...]) -> int:
    """Copy ``table``'s rows as they are; how many."""
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    name = sql.Identifier("public", table)
    count = 0
    with old.cursor().copy(sql.SQL("COPY {} ({}) TO STDOUT").format(name, names)) as out, \
            new.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(name, names)) as into:
        for chunk in out:
            into.write(chunk)
            count += bytes(chunk).count(b"\n")
    return count
