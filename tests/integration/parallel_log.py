"""Processes for the parallel-writers exactness test (``test_parallel_writers``).

``python -m tests.integration.parallel_log writer DSN INDEX SEED`` appends users through the
storage API until killed: each save holds 1 to 6 users, sleeps inside its transaction (after
its events took their positions, before the commit) and is rolled back now and then.
``python -m tests.integration.parallel_log follower DSN NAME`` follows the log with a Runner
for one async projection (``activity``, or ``applied``: a projection that counts how often
each event reaches it), sealing the hash chain as it goes, until SIGTERM.
"""

from __future__ import annotations

import random
import signal
import sys
from collections.abc import Sequence
from typing import Any, ClassVar

import bcrypt

from akashone_es import audit
from akashone_es.domain.identity import User
from akashone_es.settings import Settings
from akashone_es.storage import open_storage
from projections.activity import ActivityProjection
from projections.engine import Batch, Projection, Table
from projections.runner import Runner

PASSWORD_HASH = bcrypt.hashpw(b"x", bcrypt.gensalt(4)).decode()
ROLLBACK_EVERY = 7  #: about one save in this many is rolled back by the database


class AppliedProjection(Projection):
    """One row per event, counting its applications: an event applied twice reads 2, one
    skipped has no row (deliberately not idempotent)."""

    name = "parallel_applied"
    mode = "async"
    handles_all = True
    tables: ClassVar[Sequence[Table]] = (
        Table("parallel_applied", "position bigint PRIMARY KEY, times int NOT NULL",
              order_by="position"),)

    def prepare(self) -> None:
        self.upsert = self.q(
            "INSERT INTO {t} (position, times) VALUES (%s, 1) ON CONFLICT (position)"
            " DO UPDATE SET times = {t}.times + 1", t="parallel_applied")

    def fallback(self, event: Any, position: int, batch: Batch) -> None:
        batch.add(self.upsert, (position,))


def writer(dsn: str, index: int, seed: int) -> None:
    rng = random.Random(seed)
    with open_storage(Settings(), dsn=dsn) as storage, \
            storage.acting_as(system="parallel writers test"):
        recorder = storage.app.recorder
        inline = recorder.inline_hook

        def slow(events: Sequence[Any]) -> Batch:
            batch = inline(events)
            batch.add(b"SELECT pg_sleep(%s)", (rng.choice((0, 0, 0.001, 0.01, 0.05)),))
            if rng.randrange(ROLLBACK_EVERY) == 0:
                batch.add(b"SELECT 1 / 0", ())  # the database rolls the save back
            return batch

        recorder.inline_hook = slow
        print("writing", flush=True)  # started: the test counts its time from here
        made = 0
        while True:
            users = [User(username=f"w{index}s{seed}u{made + k}",
                          email=f"w{index}s{seed}u{made + k}@parallel.example.com",
                          password_hash=PASSWORD_HASH, gst_number=None,
                          account_type="customer", organization_id=None, status="active")
                     for k in range(rng.randint(1, 6))]
            made += len(users)
            try:
                storage.app.save(*users)
            except Exception:  # noqa: BLE001, S112 - a rolled-back save: the point of the test
                continue


def follower(dsn: str, name: str) -> None:
    projection = AppliedProjection() if name == AppliedProjection.name else ActivityProjection()
    with open_storage(Settings(), dsn=dsn) as storage:
        runner = Runner(dsn, [projection], storage.reader, batch_size=50, poll_seconds=0.01,
                        follow=lambda conn, stop: audit.seal(conn, batch=40, stop=stop))
        signal.signal(signal.SIGTERM, lambda *_: runner.stop())
        print("following", flush=True)
        runner.run()


if __name__ == "__main__":
    if sys.argv[1] == "writer":
        writer(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        follower(sys.argv[2], sys.argv[3])
