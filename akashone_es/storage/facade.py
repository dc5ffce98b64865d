"""The IStorage-equivalent facade and ``open_storage()``, the one composition root (the
package exposes them: ``from akashone_es.storage import Storage, open_storage``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from eventsourcing.persistence import OperationalError as LibraryOperationalError

from akashone_es.application import AkashOneApplication
from akashone_es.domain import identity as identity_domain
from akashone_es.domain.billing import DocumentSeries
from akashone_es.domain.catalog import DiscountCoupon
from akashone_es.errors import ConfigurationError, NotFoundError, first_line
from akashone_es.logging import configure_logging, get_logger
from akashone_es.persistence.database import ensure_database, eventsourcing_env, parse_dsn
from akashone_es.persistence.embedded import EmbeddedServer, embedded_exists
from akashone_es.persistence.recorder import AkashOneRecorder
from akashone_es.persistence.replica import Standby
from akashone_es.persistence.roles import (
    app_dsn,
    app_password,
    app_role_name,
    ensure_app_role,
)
from akashone_es.secrets import key_directory, load_key
from akashone_es.settings import Settings, load_settings
from akashone_es.storage.activity import ActivityStorage
from akashone_es.storage.billing import BillingStorage
from akashone_es.storage.catalog import CatalogStorage
from akashone_es.storage.cloud import CloudStorage
from akashone_es.storage.erasure import ErasureStorage
from akashone_es.storage.metering import MeteringStorage
from akashone_es.storage.past import moment_of, open_past
from akashone_es.storage.policy import guard
from akashone_es.storage.setup import (
    bring_current,
    create_library_tables,
    create_schema,
    missing_tables,
    schema_lock,
)
from projections.activity import ActivityProjection
from projections.billing import BillingProjection
from projections.engine import InlineProjections, Projection
from projections.identity import IdentityProjection
from projections.resources import ResourcesProjection

log = get_logger(__name__)
PROJECTIONS: tuple[type[Projection], ...] = (IdentityProjection, BillingProjection,
                                              ResourcesProjection, ActivityProjection)
EMBEDDED_DATABASE = "akashone"


@guard
class Storage(CloudStorage, MeteringStorage, BillingStorage, CatalogStorage, ActivityStorage,
              ErasureStorage):
    """Snake_case equivalents of AkashOne's ``IStorage`` methods, on the event log.

    Every public method is classified in ``storage.policy`` and guarded by it.
    """

    def as_of(self, moment: datetime | int) -> Storage:
        """The same read methods over the log as it stood at ``moment``: a time (every event
        whose timestamp is at or before it) or a log position. Use it as a context manager
        (``with storage.as_of(t) as past: past.get_invoice(i)``); it holds one connection
        and temporary tables until closed. Writes through it are refused. It replays the
        log up to the moment, as a rebuild does: for auditors and operators (platform only).
        """
        past: Storage = open_past(self, moment_of(moment))
        return past

    def projection(self, name: str) -> Projection:
        for projection in self.projections:
            if projection.name == name:
                return projection
        raise NotFoundError("projection", name, "name")


def resolve_dsn(settings: Settings) -> tuple[str, EmbeddedServer | None]:
    """``DATABASE_URL`` when set; else the embedded server's ``akashone`` database."""
    if settings.database_url:
        return settings.database_url, None
    server = EmbeddedServer(settings.data_dir)
    return server.dsn(EMBEDDED_DATABASE), server


def open_storage(settings: Settings | None = None, *, dsn: str | None = None,
                 create_schema_objects: bool = True, create_database: bool = True,
                 projections: Sequence[type[Projection]] = PROJECTIONS) -> Storage:
    """Connect (or start the embedded server), create the schema if needed, return Storage.

    ``create_database=False`` (read-only callers) raises ``ConfigurationError`` when the
    database is missing instead of creating it: a mistyped name must not look empty.
    """
    settings = settings or load_settings()
    configure_logging(settings.log_format, settings.log_level)
    server = None
    if dsn is None and not settings.database_url and not create_database:
        embedded_exists(settings.data_dir)  # else a new, empty server would start here
    if not settings.secret_key and create_database:  # a key file that cannot be kept
        key_directory(settings.data_dir)
    if dsn is None:
        dsn, server = resolve_dsn(settings)
    try:
        ensure_database(dsn, create=create_database)
        if not settings.secret_key and not create_database:  # reading: a key to read with
            load_key(None, settings.data_dir, create=False)
    except ConfigurationError:
        if server is not None:
            server.stop()
        raise
    try:
        storage = _set_up(settings, dsn, projections, server,
                          create_schema_objects=create_schema_objects)
    except BaseException:
        if server is not None:
            server.stop()
        raise
    log.debug("storage.opened", embedded=server is not None)
    return storage


def _set_up(settings: Settings, dsn: str, projections: Sequence[type[Projection]],
            server: EmbeddedServer | None, *, create_schema_objects: bool) -> Storage:
    """As the owner (``dsn``), under the schema lock: the application role, the library's
    tables and ours, grants; the pool itself logs in as the application role."""
    role = app_role_name(settings, dsn)
    storage: Storage | None = None
    try:
        with psycopg.connect(dsn, autocommit=True) as conn, schema_lock(conn):
            if create_schema_objects:
                ensure_app_role(conn, role, app_password(settings, dsn))
            try:
                app = AkashOneApplication(env=eventsourcing_env(
                    app_dsn(dsn, settings), pool_size=settings.pool_size,
                    max_overflow=settings.pool_max_overflow,
                    lock_timeout=settings.lock_timeout_seconds, create_table=False))
            except (psycopg.OperationalError, LibraryOperationalError) as exc:
                raise ConfigurationError(
                    f"cannot connect as the application role {role!r} "
                    f"(AKASHONE_APP_ROLE); run akashone-es init: {first_line(exc)}") from None
            storage = _compose(app, settings, dsn, projections, server)
            if create_schema_objects:
                create_library_tables(conn, app)
                dropped = missing_tables(conn, storage.projections)
                create_schema(conn, storage.projections, app_role=role)
            storage.keyring.check()  # before any replay: a wrong key must not read as erased
            if create_schema_objects:
                bring_current(dsn, conn, storage.projections, storage.reader, dropped)
            if settings.read_url:
                storage._standby = open_standby(storage, conn)
    except BaseException:
        if storage is not None:
            # the pool, and this storage's claim on the embedded server: after the owner's
            # connection has let go of the schema lock (closing may stop the embedded
            # server, whose ended connection would otherwise hide the error raised here)
            storage.close()
        raise
    return storage


def open_standby(storage: Storage, primary: psycopg.Connection[Any]) -> Standby:
    """The hot standby at ``AKASHONE_READ_URL``, checked against the primary (``primary``,
    the owner's connection); its pool logs in as the application role, as the primary's."""
    settings = storage.settings
    assert settings.read_url is not None  # noqa: S101 - the caller checked
    parse_dsn(settings.read_url, "AKASHONE_READ_URL")
    standby = Standby(app_dsn(settings.read_url, settings), storage._datastore.get_connection,
                      pool_size=settings.pool_size, wait_seconds=settings.read_wait_seconds)
    standby.check(settings.read_url, primary)
    return standby


def _compose(app: AkashOneApplication, settings: Settings, dsn: str,
             projections: Sequence[type[Projection]], server: EmbeddedServer | None) -> Storage:
    app.snapshotting_intervals = {  # type: ignore[misc] # per-instance, from settings
        identity_domain.User: settings.snapshot_interval,
        identity_domain.Role: settings.snapshot_interval,
        identity_domain.Organization: settings.snapshot_interval,
        DocumentSeries: settings.snapshot_interval,
        DiscountCoupon: settings.snapshot_interval,
    }
    instances = [cls() for cls in projections]
    storage = Storage(app, settings, dsn, instances,
                      on_close=server.stop if server else None)
    recorder = app.recorder
    assert isinstance(recorder, AkashOneRecorder)  # noqa: S101 - set by eventsourcing_env
    recorder.inline_hook = InlineProjections([p for p in instances if p.mode == "inline"])
    return storage


__all__ = ["PROJECTIONS", "Storage", "open_storage"]
