"""Reads from a hot standby (``AKASHONE_READ_URL``), with read-your-writes kept.

What runs where: the storage facade marks each outermost public call as a read (``get_...``,
``has_...``, ``verify_...``, ``validate_...``) or not. A read's queries take a connection to
the standby; everything else (commands, the reads a command makes to decide, acting contexts,
time travel, the activity log, which is caught up on the primary) uses the primary.

Read-your-writes: a *session* is one acting party (a user, or a named system context) of one
``Storage``. A command that wrote marks its session; the session's next read asks the
primary's WAL position (at or past the commit records of its writes: it is taken after
them), and goes to the standby only once the standby has replayed that far: it waits for
that, polling, for at most ``read_wait_seconds``, and then reads from the primary. Sessions
that have not written read the standby at once.

A standby that is down or unreachable is skipped for a few seconds (reads go to the
primary, with one warning); one that ran out of time is asked once (no wait) for a while,
so a standby lagging by minutes costs each read one quick query, not a timeout.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from akashone_es.errors import ConfigurationError, first_line
from akashone_es.logging import get_logger

log = get_logger(__name__)
#: the outermost storage call in progress (None: none)
_CALL: ContextVar[_Call | None] = ContextVar("akashone_call", default=None)
#: how long an unreachable standby is skipped, and a lagging one not waited for
BACK_OFF_SECONDS = 5.0
#: how long a read waits for a connection to the standby before using the primary
CONNECT_SECONDS = 2.0
#: how often a read waiting for the standby's replay asks again
POLL_SECONDS = 0.002
#: sessions remembered one by one; past this, all read after one position
MAX_SESSIONS = 10_000
REPLAYED = "SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn AS lsn"
#: at or past every commit record that has returned: a synchronous commit returns once
#: flushed; an asynchronous one (synchronous_commit = off) once inserted, and the WAL writer
#: flushes it soon. Not the insert position always: records no commit has flushed (a
#: vacuum's, say) can sit unsent until someone commits, and a wait for them would stall.
COMMITTED = ("SELECT CASE WHEN current_setting('synchronous_commit') = 'off'"
             " THEN pg_current_wal_insert_lsn() ELSE pg_current_wal_flush_lsn() END"
             " - '0/0'::pg_lsn AS lsn")
IDENTITY = ("SELECT pg_is_in_recovery() AS recovering, current_database() AS database,"
            " (SELECT system_identifier FROM pg_control_system()) AS system")


@dataclass
class _Call:
    """One outermost storage call: may its queries go to the standby; has it written."""

    read: bool
    wrote: bool = False


@contextmanager
def call(read: bool, after_write: Callable[[], None]) -> Iterator[None]:
    """Run the storage calls inside as one outermost call (a read or not); when it has
    written, ``after_write`` runs once at its end, whether it then succeeded or not."""
    if _CALL.get() is not None:
        yield
        return
    state = _Call(read)
    token = _CALL.set(state)
    try:
        yield
    finally:
        _CALL.reset(token)
        if state.wrote:
            after_write()


def reading() -> bool:
    """Whether the queries now made belong to a read (and may go to the standby)."""
    state = _CALL.get()
    return state is not None and state.read


def on_primary() -> None:
    """Send the rest of the call in progress to the primary (the async activity log is
    caught up there, so read there)."""
    state = _CALL.get()
    if state is not None:
        state.read = False


def written() -> None:
    """The call in progress has committed a write."""
    state = _CALL.get()
    if state is not None:
        state.wrote = True


class Standby:
    """A pool of connections to a hot standby, and each session's last write position."""

    def __init__(self, dsn: str, primary: Callable[[], AbstractContextManager[Any]], *,
                 pool_size: int, wait_seconds: float) -> None:
        """``primary`` gives a connection to the primary (to ask its WAL position)."""
        self._primary = primary
        self.wait_seconds = wait_seconds
        self.pool: ConnectionPool[Any] = ConnectionPool(
            dsn, kwargs={"row_factory": dict_row, "autocommit": True}, min_size=1,
            max_size=pool_size, open=False, timeout=CONNECT_SECONDS, name="standby")
        #: each session's position to read after: a WAL position, or (negative) a write
        #: whose position is asked at the next read
        self._written: dict[str, int] = {}
        #: a position every session reads after (negative: asked at the next read)
        self._floor = 0
        self._tick = 0
        self._replayed = 0
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._behind_until = 0.0
        #: where reads went: "standby" (at once), "waited" (to the standby, after waiting for
        #: it to replay the session's writes), "lagging" and "down" (to the primary)
        self.counts: Counter[str] = Counter()

    def check(self, owner_dsn: str, primary: psycopg.Connection[Any]) -> None:
        """Refuse a read URL that is not a hot standby of ``primary``'s database; then wait
        (briefly) for it to replay what the primary has now (the application role and the
        schema the set-up may just have created)."""
        try:
            with psycopg.connect(owner_dsn, autocommit=True, row_factory=dict_row,
                                 connect_timeout=5) as conn:
                there = _identity(conn)
                here = _identity(primary)
                if not there["recovering"]:
                    raise ConfigurationError("AKASHONE_READ_URL must name a hot standby of "
                                             "the primary: that server is not in recovery")
                if None not in (there["system"], here["system"]) and (
                        there["system"] != here["system"]):
                    raise ConfigurationError(
                        "AKASHONE_READ_URL names a standby of another server (its system "
                        "identifier differs from the primary's)")
                if there["database"] != here["database"]:
                    raise ConfigurationError(
                        f"AKASHONE_READ_URL names database {there['database']!r}, the "
                        f"primary's is {here['database']!r}")
                target = _lsn(primary, COMMITTED)
                deadline = time.monotonic() + CONNECT_SECONDS
                while (replayed := _lsn(conn, REPLAYED)) < target:
                    if time.monotonic() >= deadline:  # reads find out, and go to the primary
                        log.warning("standby.behind_at_start", bytes_behind=target - replayed,
                                    waited_seconds=CONNECT_SECONDS)
                        break
                    time.sleep(POLL_SECONDS)
        except psycopg.OperationalError as exc:
            from akashone_es.persistence.database import (  # noqa: PLC0415 - errors only
                connect_problem,
                parse_dsn,
                server_of,
            )

            where = server_of(parse_dsn(owner_dsn, "AKASHONE_READ_URL"))
            # unreachable at start is refused, as a wrong server is: reads go to the primary
            # only when a standby that was checked goes away later
            raise ConfigurationError(
                f"AKASHONE_READ_URL: cannot connect to the standby at {where}: "
                f"{connect_problem(exc)}; the standby must answer at start (reads fall "
                "back to the primary only when it goes away later): start it or unset "
                "AKASHONE_READ_URL") from None

    def close(self) -> None:
        self.pool.close()

    # -- sessions -------------------------------------------------------------------------
    def wrote(self, session: str) -> None:
        """Remember that ``session`` has written. The primary's position is asked at the
        session's next read (a session that writes many times before it reads asks once)."""
        with self._lock:
            self._tick += 1
            self._written[session] = -self._tick  # written, position not yet known
            if len(self._written) > MAX_SESSIONS:
                # too many to remember one by one: every session now reads after one
                # position, asked at the next read, so past all of their writes
                self._written = {}
                self._floor = -self._tick

    def _needed(self, session: str) -> int:
        """How far the standby must have replayed for ``session`` to read its own writes."""
        floor, needed = self._floor, self._written.get(session, 0)
        if floor < 0 or needed < 0:
            with self._primary() as conn:  # taken after the commits: past their records
                lsn = _lsn(conn, COMMITTED)
            with self._lock:
                if floor < 0 and self._floor == floor:  # no overflow since
                    self._floor = lsn
                if needed < 0 and self._written.get(session) == needed:  # no write since
                    self._written[session] = lsn
            floor, needed = (lsn if floor < 0 else floor), (lsn if needed < 0 else needed)
        return max(floor, needed)

    # -- reads ----------------------------------------------------------------------------
    @contextmanager
    def connection(self, session: str) -> Iterator[psycopg.Connection[Any] | None]:
        """A standby connection that has replayed the session's writes; None: use the
        primary (the standby is down, or did not replay them in time)."""
        now = time.monotonic()
        if now < self._down_until:
            self._count("down")
            yield None
            return
        needed = self._needed(session)
        with ExitStack() as stack:
            try:
                self.pool.open(wait=False)
                conn = stack.enter_context(self.pool.connection())
                where = "standby" if needed <= self._replayed else self._replay(conn, needed,
                                                                                 now)
            except (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self.down(exc)
                where = "down"
            self._count(where)
            yield conn if where in ("standby", "waited") else None

    def _count(self, where: str) -> None:
        with self._lock:  # reads run on many threads; ``+=`` on a Counter is not atomic
            self.counts[where] += 1

    def _replay(self, conn: psycopg.Connection[Any], needed: int, now: float) -> str:
        """Wait (up to ``wait_seconds``; not at all while known to lag) for the standby to
        replay up to ``needed``: "standby" (it had), "waited" (it has now), "lagging"."""
        deadline = now + (0.0 if now < self._behind_until else self.wait_seconds)
        where = "standby"
        while True:
            replayed = _lsn(conn, REPLAYED)
            with self._lock:
                self._replayed = max(self._replayed, replayed)
            if replayed >= needed:
                return where
            if time.monotonic() >= deadline:
                if now >= self._behind_until:
                    log.warning("standby.lagging", behind_bytes=needed - replayed,
                                waited=self.wait_seconds, reads="primary")
                self._behind_until = time.monotonic() + BACK_OFF_SECONDS
                return "lagging"
            where = "waited"
            time.sleep(POLL_SECONDS)

    def down(self, exc: BaseException) -> None:
        """The standby failed: reads go to the primary for ``BACK_OFF_SECONDS``."""
        if time.monotonic() >= self._down_until:
            log.warning("standby.unavailable", error=first_line(exc), reads="primary",
                        retry_in=BACK_OFF_SECONDS)
        self._down_until = time.monotonic() + BACK_OFF_SECONDS


def describe_standby(primary_dsn: str, standby_dsn: str) -> str:
    """One line for ``projections status``: how far the standby is behind the primary."""
    from akashone_es.persistence.database import (  # noqa: PLC0415 - status only
        connect_problem,
        parse_dsn,
        server_of,
    )

    try:
        where = server_of(parse_dsn(standby_dsn, "AKASHONE_READ_URL"))  # may hold a password
    except ConfigurationError as exc:
        return f"standby: {exc}"
    try:
        with psycopg.connect(standby_dsn, autocommit=True, connect_timeout=5,
                             row_factory=dict_row) as conn:
            row = conn.execute(
                "SELECT pg_is_in_recovery() AS recovering, extract(epoch FROM now()"
                " - pg_last_xact_replay_timestamp())::float AS age").fetchone()
            replayed = _lsn(conn, REPLAYED)
    except psycopg.Error as exc:
        return (f"standby: unreachable at {where} ({connect_problem(exc)}); open storages "
                "read from the primary, and a storage opening now refuses to start")
    try:
        with psycopg.connect(primary_dsn, autocommit=True, connect_timeout=5) as conn:
            flushed = _lsn(conn, COMMITTED)
    except psycopg.Error as exc:
        return f"standby: the primary is unreachable ({connect_problem(exc)})"
    assert row is not None  # noqa: S101 - a SELECT without FROM returns one row
    if not row["recovering"]:
        return "standby: not in recovery (AKASHONE_READ_URL must name a hot standby)"
    age = "no replay yet" if row["age"] is None else f"last replay {row['age']:.1f} s ago"
    return f"standby: {max(0, flushed - replayed):,} bytes behind the primary; {age}"


def _lsn(conn: psycopg.Connection[Any], query: str) -> int:
    """A WAL position as a number of bytes (0: none, e.g. a standby that replayed nothing)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query).fetchone()
    return int(row["lsn"]) if row is not None and row["lsn"] is not None else 0


def _identity(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(IDENTITY).fetchone()
    except psycopg.errors.InsufficientPrivilege:  # pg_control_system() may be refused
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute("SELECT pg_is_in_recovery() AS recovering,"
                              " current_database() AS database, NULL AS system").fetchone()
    assert row is not None  # noqa: S101 - a SELECT without FROM returns one row
    return dict(row)
