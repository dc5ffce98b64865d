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

from psycopg import sql
from psycopg.types.json import Jsonb

from akashone_es.domain.base import stamp
from akashone_es.domain.resources import Resource
from akashone_es.resources import KINDS
from akashone_es.resources.kind import Kind, Meter
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


#: metered intervals: while a resource exists with a quantity (units per hour) above zero,
#: one open segment per (resource, metric); a change of quantity closes it and opens the next
SEGMENTS = Table("resource_meter_segments", """
    resource_id uuid NOT NULL, metric text NOT NULL, started_at timestamptz NOT NULL,
    ended_at timestamptz, kind text NOT NULL, resource_type text NOT NULL,
    user_id uuid NOT NULL, organization_id uuid, resource_name text NOT NULL,
    quantity numeric NOT NULL, PRIMARY KEY (resource_id, metric, started_at)""",
    ["CREATE UNIQUE INDEX IF NOT EXISTS resource_meter_segments_open_key ON {table}"
     " (resource_id, metric) WHERE ended_at IS NULL",
     "CREATE INDEX IF NOT EXISTS resource_meter_segments_span_idx ON {table}"
     " (started_at, ended_at)"],
    order_by="resource_id, metric, started_at")


def _value(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict) else value


class ResourcesProjection(Projection):
    """Inline: every resource kind's table."""

    name = "resources"
    mode = "inline"
    tables = (*(kind_table(kind) for kind in KINDS.values()), SEGMENTS)
    unique_constraints = {kind.constraint(key): (kind.name, key.field)
                          for kind in KINDS.values() for key in kind.unique_keys()}

    def prepare(self) -> None:
        self._inserts: dict[str, tuple[bytes, list[str]]] = {}
        self._updates: dict[tuple[str, tuple[str, ...]], bytes] = {}
        self._deletes: dict[str, bytes] = {}
        for kind in KINDS.values():
            columns = kind.field_columns()
            stamps = [kind.created_column, *([kind.stamp] if kind.stamp else [])]
            names = ["id", "user_id", "organization_id", *columns, *stamps]
            self._inserts[kind.name] = (self.q(
                "INSERT INTO {t} (" + ", ".join(names) + ") VALUES ("
                + ", ".join(["%s"] * len(names)) + ") ON CONFLICT (id) DO NOTHING RETURNING *",
                t=kind.table), columns)
            self._deletes[kind.name] = self.q("DELETE FROM {t} WHERE id = %s", t=kind.table)
        self._meters = {kind.name: [self._meter_statements(kind, m) for m in kind.meters]
                        for kind in KINDS.values() if kind.meters}
        self._parents: dict[str, tuple[bytes, bytes]] = {}
        for kind in KINDS.values():
            if kind.parent is not None and (kind.parent.count or kind.parent.stamp):
                self._parents[kind.name] = self._parent_statements(kind)

    def _meter_statements(self, kind: Kind, meter: Meter) -> tuple[bytes, bytes]:
        """After any event of a metered kind: close the open segment whose quantity is no
        longer the row's (or whose row is gone), then open one at the row's quantity.
        Parameters: (at, id) and (id, at, id); idempotent on replay."""
        metric = sql.Literal(meter.metric).as_string(None)
        current = (f"(SELECT {meter.quantity} FROM {{t}} WHERE id = %s)")
        close = self.q(
            "UPDATE {s} SET ended_at = %s WHERE resource_id = %s AND metric = " + metric
            + " AND ended_at IS NULL AND quantity IS DISTINCT FROM "
            + current.replace("%s", "resource_id"), s=SEGMENTS.name, t=kind.table)
        kind_name = sql.Literal(kind.name).as_string(None)
        resource_type = sql.Literal(meter.resource_type).as_string(None)
        name = "name" if "name" in kind.columns() else "id::text"
        open_ = self.q(
            "INSERT INTO {s} (resource_id, metric, started_at, kind, resource_type, user_id,"
            " organization_id, resource_name, quantity) SELECT id, " + metric + ", %s, "
            + kind_name + ", " + resource_type + ", user_id, organization_id, " + name
            + ", q FROM (SELECT *, " + meter.quantity + " AS q FROM {t} WHERE id = %s) r"
            " WHERE q > 0 AND NOT EXISTS (SELECT 1 FROM {s} WHERE resource_id = r.id AND"
            " metric = " + metric + " AND ended_at IS NULL)"
            # a segment opened and closed at this same moment (two changes at once) holds
            # no hour: the open one takes its place
            " ON CONFLICT (resource_id, metric, started_at) DO UPDATE SET ended_at = NULL,"
            " user_id = EXCLUDED.user_id, organization_id = EXCLUDED.organization_id,"
            " resource_name = EXCLUDED.resource_name, quantity = EXCLUDED.quantity"
            " WHERE {s}.ended_at = {s}.started_at",
            s=SEGMENTS.name, t=kind.table)
        return close, open_

    def _meter(self, kind: Kind, e: Any, b: Batch) -> None:
        for close, open_ in self._meters.get(kind.name, ()):
            if not isinstance(e, Resource.Created):  # a new resource has no open segment
                b.add(close, [e.timestamp, e.originator_id])
            if not isinstance(e, Resource.Deleted):  # nor one that is gone a quantity
                # an imported resource is metered from the import: AkashOne billed before
                b.add(open_, [getattr(e, "metered_from", e.timestamp), e.originator_id])

    def _parent_statements(self, kind: Kind) -> tuple[bytes, bytes]:
        """A child kind's statements on its parent's row: after a child is created or
        changed, before one is deleted (parameters: ``_parent_params``)."""
        assert kind.parent is not None  # noqa: S101 - called for child kinds only
        parent, field = KINDS[kind.parent.kind], kind.parent.field
        sets = []
        if kind.parent.stamp:
            sets.append(f"{kind.parent.stamp} = %s")
        counted = f"(SELECT count(*) FROM {{c}} c WHERE c.{field} = p.id"
        owner = f"p.id = (SELECT {field} FROM {{c}} WHERE id = %s)"
        after = list(sets)
        before = list(sets)
        if kind.parent.count:
            after.append(f"{kind.parent.count} = {counted})")
            before.append(f"{kind.parent.count} = {counted} AND c.id <> %s)")
        return (self.q(f"UPDATE {{p}} p SET {', '.join(after)} WHERE {owner}",
                       p=parent.table, c=kind.table),
                self.q(f"UPDATE {{p}} p SET {', '.join(before)} WHERE {owner}",
                       p=parent.table, c=kind.table))

    def _update(self, kind: Kind, columns: Sequence[str]) -> bytes:
        key = (kind.name, tuple(columns))
        query = self._updates.get(key)
        if query is None:
            sets = [f"{c} = %s" for c in columns]
            if kind.stamp:
                sets.append(f"{kind.stamp} = %s")
            query = self.q("UPDATE {t} SET " + ", ".join(sets) + " WHERE id = %s RETURNING *",
                           t=kind.table)
            if len(self._updates) < MAX_RENDERED * len(KINDS):
                self._updates[key] = query
        return query

    @handles(Resource.Created)
    def created(self, e: Resource.Created, position: int, b: Batch) -> None:
        kind = KINDS[e.kind]
        query, columns = self._inserts[kind.name]
        stamps: list[datetime] = [e.timestamp, *([stamp(e, kind.stamp)] if kind.stamp else [])]
        b.add(query, [e.originator_id, e.user_id, e.organization_id,
                      *(_value(e.fields.get(c)) for c in columns), *stamps],
              returns=(kind.table, e.originator_id))
        self._touch_parent(kind, e, after=True, b=b)
        self._meter(kind, e, b)

    @handles(Resource.Updated, Resource.Transitioned, Resource.Observed)
    def changed(self, e: Resource.Updated | Resource.Transitioned | Resource.Observed,
                position: int, b: Batch) -> None:
        kind = KINDS[e.kind]
        known = set(kind.field_columns())
        columns = sorted(c for c in e.changes if c in known)
        if not columns:
            return
        params: list[Any] = [_value(e.changes[c]) for c in columns]
        if kind.stamp:
            params.append(e.timestamp)
        b.add(self._update(kind, columns), [*params, e.originator_id],
              returns=(kind.table, e.originator_id))
        self._touch_parent(kind, e, after=True, b=b)
        self._meter(kind, e, b)

    @handles(Resource.Deleted)
    def deleted(self, e: Resource.Deleted, position: int, b: Batch) -> None:
        self._touch_parent(KINDS[e.kind], e, after=False, b=b)
        b.add(self._deletes[e.kind], [e.originator_id])
        self._meter(KINDS[e.kind], e, b)

    def _touch_parent(self, kind: Kind, e: Any, *, after: bool, b: Batch) -> None:
        statements = self._parents.get(kind.name)
        if statements is None or kind.parent is None:
            return
        params: list[Any] = [e.timestamp] if kind.parent.stamp else []
        if kind.parent.count and not after:
            params.append(e.originator_id)
        b.add(statements[0 if after else 1], [*params, e.originator_id])
