"""Resource read tables: one per declared kind, built from its declaration.

Inline, so the unique keys (CloudStack ids, reserved addresses, bucket names, SSH key names
per owner) are decided by unique indexes inside the append transaction. Every event names
its kind; the handler applies it to that kind's table with statements rendered once per
kind (updates: once per set of changed columns).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from akashone_es.domain.resources import Resource
from akashone_es.resources import KINDS
from akashone_es.resources.kind import Kind
from projections.engine import Batch, Projection, Table, handles

#: the most distinct column sets of updates kept rendered per kind
MAX_RENDERED = 64


def kind_table(kind: Kind) -> Table:
    """The read table of ``kind``: its columns, owner indexes and unique keys."""
    columns = ", ".join(f"{name} {sql}" for name, sql in kind.columns().items())
    indexes = [f"CREATE INDEX IF NOT EXISTS {kind.table}_user_id_idx ON {{table}} (user_id)",
               f"CREATE INDEX IF NOT EXISTS {kind.table}_organization_id_idx"
               f" ON {{table}} (organization_id)"]
    for key in kind.unique_keys():
        where = f" WHERE {key.where}" if key.where else ""
        indexes.append(f"CREATE UNIQUE INDEX IF NOT EXISTS {kind.constraint(key)}"
                       f" ON {{table}} ({', '.join(key.columns)}){where}")
    indexes += list(kind.indexes)
    return Table(kind.table, columns, indexes)


def _value(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict) else value


class ResourcesProjection(Projection):
    """Inline: every resource kind's table."""

    name = "resources"
    mode = "inline"
    tables = tuple(kind_table(kind) for kind in KINDS.values())
    unique_constraints = {kind.constraint(key): (kind.name, key.field)
                          for kind in KINDS.values() for key in kind.unique_keys()}

    def prepare(self) -> None:
        self._inserts: dict[str, tuple[bytes, list[str]]] = {}
        self._updates: dict[tuple[str, tuple[str, ...]], bytes] = {}
        self._deletes: dict[str, bytes] = {}
        for kind in KINDS.values():
            columns = kind.field_columns()
            stamps = [kind.created_column, *(["last_synced"] if kind.synced else [])]
            names = ["id", "user_id", "organization_id", *columns, *stamps]
            self._inserts[kind.name] = (self.q(
                "INSERT INTO {t} (" + ", ".join(names) + ") VALUES ("
                + ", ".join(["%s"] * len(names)) + ") ON CONFLICT (id) DO NOTHING RETURNING *",
                t=kind.table), columns)
            self._deletes[kind.name] = self.q("DELETE FROM {t} WHERE id = %s", t=kind.table)

    def _update(self, kind: Kind, columns: Sequence[str]) -> bytes:
        key = (kind.name, tuple(columns))
        query = self._updates.get(key)
        if query is None:
            sets = [f"{c} = %s" for c in columns]
            if kind.synced:
                sets.append("last_synced = %s")
            query = self.q("UPDATE {t} SET " + ", ".join(sets) + " WHERE id = %s RETURNING *",
                           t=kind.table)
            if len(self._updates) < MAX_RENDERED * len(KINDS):
                self._updates[key] = query
        return query

    @handles(Resource.Created)
    def created(self, e: Resource.Created, position: int, b: Batch) -> None:
        kind = KINDS[e.kind]
        query, columns = self._inserts[kind.name]
        stamps: list[datetime] = [e.timestamp] * (2 if kind.synced else 1)
        b.add(query, [e.originator_id, e.user_id, e.organization_id,
                      *(_value(e.fields.get(c)) for c in columns), *stamps],
              returns=(kind.table, e.originator_id))

    @handles(Resource.Updated, Resource.Transitioned)
    def changed(self, e: Resource.Updated | Resource.Transitioned, position: int,
                b: Batch) -> None:
        kind = KINDS[e.kind]
        known = set(kind.field_columns())
        columns = sorted(c for c in e.changes if c in known)
        if not columns:
            return
        params: list[Any] = [_value(e.changes[c]) for c in columns]
        if kind.synced:
            params.append(e.timestamp)
        b.add(self._update(kind, columns), [*params, e.originator_id],
              returns=(kind.table, e.originator_id))

    @handles(Resource.Deleted)
    def deleted(self, e: Resource.Deleted, position: int, b: Batch) -> None:
        b.add(self._deletes[e.kind], [e.originator_id])
