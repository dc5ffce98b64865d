"""Async projections: batched catch-up from a checkpoint, one active runner per projection."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from akashone_es.errors import ProjectionError
from akashone_es.logging import get_logger
from projections.apply import apply_rows
from projections.engine import (
    LOCK_CHECKPOINT,
    REGISTER_CHECKPOINT,
    SET_CHECKPOINTS,
    Projection,
)
from projections.failures import CLEAR as CLEAR_FAILURE
from projections.failures import record_failure
from projections.log import LogReader
from projections.positions import START, Key, head, pending, read_checkpoints

log = get_logger(__name__)
Progress = Callable[[str, int, int], None]


#: the longest wait between tries to reach the server again (``Runner.run``, following)
RECONNECT_MAX_SECONDS = 10.0


def advisory_key(name: str) -> str:
    return f"akashone:projection:{name}"


def catch_up_step(conn: psycopg.Connection[Any], projection: Projection, reader: LogReader,
                  batch_size: int) -> tuple[Key, Key, int]:
    """Apply one batch in one transaction with its checkpoint; returns (checkpoint, head,
    events read).

    The head comes first, before this transaction holds a transaction id of its own: it is
    the last event no running transaction can still precede, so the batch never passes an
    event that commits later. The checkpoint row is locked FOR UPDATE, so two runners never
    apply the same batch: the second waits, then reads the new checkpoint. An event the
    projection cannot apply stops it: the events before it are committed with the
    checkpoint just below it, the failure is recorded in the same transaction, and
    ``ProjectionError`` names it.
    """
    with conn.transaction():
        last = head(conn)
        conn.execute(REGISTER_CHECKPOINT, (projection.name,))
        row = conn.execute(LOCK_CHECKPOINT, (projection.name,)).fetchone()
        values = tuple(row.values()) if isinstance(row, dict) else row
        position = Key(int(values[0]), int(values[1]))  # type: ignore[index]
        if position >= last:
            return position, last, 0
        rows, reached = reader.read_rows(conn, position, last, batch_size, projection.topics())
        skip = reader.quarantined(conn, projection.name) if rows else frozenset()
        failure = apply_rows(conn, projection, reader.mapper.decode, rows, skip, then=[
            (CLEAR_FAILURE, (projection.name, *reached)),
            (SET_CHECKPOINTS, (*reached, [projection.name]))])
        if failure is not None:
            reached = failure.key.before()
            record_failure(conn, failure)
            conn.execute(SET_CHECKPOINTS, (*reached, [projection.name]))
    if failure is not None:
        log.error("projection.stopped", projection=projection.name, position=failure.position,
                  originator_id=failure.originator_id, topic=failure.topic,
                  handler=failure.handler, error=failure.error)
        raise ProjectionError(failure.message())
    return reached, last, len(rows)


def catch_up(conn: psycopg.Connection[Any], projection: Projection, reader: LogReader, *,
             batch_size: int = 2000, progress: Progress | None = None,
             stop: Callable[[], bool] = lambda: False) -> Key:
    """Apply every pending event, batch by batch; returns the final checkpoint. Progress
    counts the events this projection reads, of those pending when it started. ``stop`` is
    asked after each batch: writers that append faster than the projection applies would
    otherwise keep it here (a runner asked to stop returns at its next batch).

    Raises ``ProjectionError`` when the projection stops at an event it cannot apply.
    """
    total = done = 0
    if progress:
        start = read_checkpoints(conn).get(projection.name, START)
        total = pending(conn, start, head(conn), projection.topics())
    while True:
        position, last, count = catch_up_step(conn, projection, reader, batch_size)
        done += count
        if progress:
            progress(projection.name, done, max(total, done))
        if position >= last:
            log.debug("projection.caught_up", projection=projection.name,
                      position=position.position)
            return position
        if stop():
            return position


class Runner:
    """Follows the log for async projections: takes each one's advisory lock (others wait as
    hot standbys), catches up in batches, then polls the head every ``poll_seconds`` until
    it moves (writers send no NOTIFY: it would serialize their commits)."""

    def __init__(self, dsn: str, projections: Sequence[Projection], reader: LogReader, *,
                 batch_size: int = 2000, poll_seconds: float = 0.05,
                 follow: Callable[..., Any] | None = None) -> None:
        self.dsn = dsn
        self.projections = list(projections)
        self.reader = reader
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        #: work that follows the log beside the projections (the hash chain's sealer), called
        #: with the connection and ``stop=``, which says when to return early
        self.follow = follow
        self.stopping = threading.Event()

    def stop(self) -> None:
        self.stopping.set()

    def _take_locks(self, conn: psycopg.Connection[Any], owned: set[str],
                    standing_by: set[str] | None = None) -> None:
        """Take each projection's lock not held yet; a spare says so once (not at every
        try), and again only after it was active."""
        standing_by = set() if standing_by is None else standing_by
        for projection in self.projections:
            if projection.name in owned:
                continue
            row = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))",
                               (advisory_key(projection.name),)).fetchone()
            if row and row[0]:
                owned.add(projection.name)
                standing_by.discard(projection.name)
                log.info("projection.runner_active", projection=projection.name)
            elif projection.name not in standing_by:
                standing_by.add(projection.name)
                log.info("projection.runner_standby", projection=projection.name)

    def run(self, *, once: bool = False, progress: Progress | None = None) -> None:
        """Catch up once (safe beside an active runner), or follow until ``stop()``.

        A projection that stops at an event it cannot apply does not stop the others: once,
        the first such error is raised after every projection had its turn; following, it is
        logged and the projection is retried on the next wake-up (a quarantine or a fixed
        handler lets it resume).
        """
        if once:
            errors: list[ProjectionError] = []
            with psycopg.connect(self.dsn, autocommit=True) as work:
                for projection in self.projections:
                    try:
                        catch_up(work, projection, self.reader, batch_size=self.batch_size,
                                 progress=progress)
                    except ProjectionError as exc:
                        errors.append(exc)
                if self.follow is not None:
                    self.follow(work, stop=self.stopping.is_set)
            if errors:
                raise errors[0]
            return
        delay = self.poll_seconds
        while not self.stopping.is_set():
            began = time.monotonic()
            try:
                self._follow(progress)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:  # the server
                # went away, and its sessions' locks with it (another runner may take over);
                # each batch was committed with its checkpoint: nothing lost or applied twice
                if time.monotonic() - began > RECONNECT_MAX_SECONDS:
                    delay = self.poll_seconds  # it had been following: start over
                log.warning("projection.runner_reconnecting",
                            error=(str(exc).splitlines() or [type(exc).__name__])[0],
                            retry_in=round(delay, 2))
                self.stopping.wait(delay)
                delay = min(delay * 2 + 0.5, RECONNECT_MAX_SECONDS)

    def _follow(self, progress: Progress | None) -> None:
        """Follow on two connections until ``stop()``; raises when a connection is lost."""
        owned: set[str] = set()
        standing_by: set[str] = set()
        stopped: set[str] = set()
        seen: Key | None = None
        with psycopg.connect(self.dsn, autocommit=True) as locks, \
                psycopg.connect(self.dsn, autocommit=True) as work:
            while not self.stopping.is_set():
                before = len(owned)
                self._take_locks(locks, owned, standing_by)
                last = head(work)
                if last == seen and len(owned) == before:
                    self.stopping.wait(self.poll_seconds)
                    continue
                moved, seen = last != seen, last
                for projection in self.projections:
                    # a stopped projection is retried when the log moves (a quarantine is an
                    # event), not every poll: that would log the same error every poll
                    if projection.name not in owned or (projection.name in stopped
                                                        and not moved):
                        continue
                    try:
                        catch_up(work, projection, self.reader, batch_size=self.batch_size,
                                 progress=progress, stop=self.stopping.is_set)
                        stopped.discard(projection.name)
                    except ProjectionError:  # logged as projection.stopped
                        stopped.add(projection.name)
                if self.follow is not None:
                    self.follow(work, stop=self.stopping.is_set)
