"""Async projections: batched catch-up from a checkpoint, one active runner per projection."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from akashone_es.application import EVENTS_TABLE
from akashone_es.logging import get_logger
from projections.engine import (
    LOCK_CHECKPOINT,
    REGISTER_CHECKPOINT,
    SET_CHECKPOINTS,
    Batch,
    Projection,
)
from projections.log import LogReader, head

log = get_logger(__name__)
Progress = Callable[[str, int, int], None]


def advisory_key(name: str) -> str:
    return f"akashone:projection:{name}"


def catch_up_step(conn: psycopg.Connection[Any], projection: Projection, reader: LogReader,
                  batch_size: int) -> tuple[int, int]:
    """Apply one batch in one transaction with its checkpoint; returns (position, head).

    The checkpoint row is locked FOR UPDATE, so two runners never apply the same batch:
    the second waits, then reads the new checkpoint.
    """
    with conn.transaction():
        conn.execute(REGISTER_CHECKPOINT, (projection.name,))
        row = conn.execute(LOCK_CHECKPOINT, (projection.name,)).fetchone()
        position = int(row[0] if isinstance(row, tuple) else row["position"])  # type: ignore[index]
        last = head(conn)
        if position >= last:
            return position, last
        events, reached = reader.read(conn, position, last, batch_size, projection.topics())
        batch = Batch()
        projection.apply(events, batch)
        batch.add(SET_CHECKPOINTS, (reached, [projection.name]))
        with conn.cursor() as cur, conn.pipeline():
            batch.execute(cur)
    return reached, last


def catch_up(conn: psycopg.Connection[Any], projection: Projection, reader: LogReader, *,
             batch_size: int = 2000, progress: Progress | None = None) -> int:
    """Apply every pending event, batch by batch; returns the final checkpoint."""
    while True:
        position, last = catch_up_step(conn, projection, reader, batch_size)
        if progress:
            progress(projection.name, position, last)
        if position >= last:
            log.debug("projection.caught_up", projection=projection.name, position=position)
            return position


class Runner:
    """Follows the log for async projections: takes each one's advisory lock (others wait as
    hot standbys), catches up in batches, then sleeps until NOTIFY says there is more."""

    def __init__(self, dsn: str, projections: Sequence[Projection], reader: LogReader, *,
                 batch_size: int = 2000, poll_seconds: float = 1.0) -> None:
        self.dsn = dsn
        self.projections = list(projections)
        self.reader = reader
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.stopping = threading.Event()

    def stop(self) -> None:
        self.stopping.set()

    def _take_locks(self, conn: psycopg.Connection[Any], owned: set[str]) -> None:
        for projection in self.projections:
            if projection.name in owned:
                continue
            row = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))",
                               (advisory_key(projection.name),)).fetchone()
            if row and row[0]:
                owned.add(projection.name)
                log.info("projection.runner_active", projection=projection.name)
            else:
                log.info("projection.runner_standby", projection=projection.name)

    def run(self, *, once: bool = False, progress: Progress | None = None) -> None:
        """Catch up once (safe beside an active runner), or follow until ``stop()``."""
        if once:
            with psycopg.connect(self.dsn, autocommit=True) as work:
                for projection in self.projections:
                    catch_up(work, projection, self.reader, batch_size=self.batch_size,
                             progress=progress)
            return
        owned: set[str] = set()
        with psycopg.connect(self.dsn, autocommit=True) as locks, \
                psycopg.connect(self.dsn, autocommit=True) as work:
            locks.execute(sql.SQL("LISTEN {}").format(sql.Identifier(EVENTS_TABLE)))
            while not self.stopping.is_set():
                self._take_locks(locks, owned)
                for projection in self.projections:
                    if projection.name in owned:
                        catch_up(work, projection, self.reader, batch_size=self.batch_size,
                                 progress=progress)
                for _ in locks.notifies(timeout=self.poll_seconds, stop_after=1):
                    pass

