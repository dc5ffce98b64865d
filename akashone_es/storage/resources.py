"""Cloud resources on the storage facade: the methods of every declared kind.

``install`` gives ``ResourceStorage`` each kind's methods with AkashOne's names (``get_vpcs``,
``create_vpc``, ...), all made of the few generic operations below, so twenty kinds share one
piece of code. Tenancy is billing's: a row carries its owner and the owner's organization; a
tenant sees, changes and deletes only its organization's rows (another's read as absent), and
creates them only for users it can see. The CloudStack id and other unique keys are decided by
unique indexes inside the append transaction (``DuplicateError`` names the field).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from psycopg import sql
from pydantic import BaseModel

from akashone_es import context
from akashone_es.domain.resources import Resource
from akashone_es.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from akashone_es.logging import get_logger
from akashone_es.resources import KINDS
from akashone_es.resources.kind import Kind, Method
from akashone_es.storage import inputs as i
from akashone_es.storage.billing_base import BillingBase, racing
from akashone_es.storage.flags import FlagStorage

Row = BaseModel
log = get_logger(__name__)
#: how far ahead of this host's clock a report's time may be (CloudStack's hosts' clocks)
CLOCK_SKEW = timedelta(minutes=5)


#: when CloudStack last confirmed each resource: written by every observation, also one
#: that changes nothing, so a poll every 2 s appends no event; outside the log (it is not a
#: change of the resource), so rebuilds and verify leave it alone
SYNC_STAMPS = "akashone_sync_stamps"
SYNC_STAMPS_DDL = sql.SQL(
    "CREATE TABLE IF NOT EXISTS {} (resource_id uuid PRIMARY KEY,"
    " observed_at timestamptz NOT NULL)").format(sql.Identifier("public", SYNC_STAMPS))
#: the time of the latest report (CloudStack's, else when it was recorded): never back
STAMP_OBSERVED = sql.SQL(
    "INSERT INTO {} (resource_id, observed_at) VALUES (%s, coalesce(%s, now()))"
    " ON CONFLICT (resource_id) DO UPDATE SET observed_at ="
    " greatest({}.observed_at, excluded.observed_at)").format(
    sql.Identifier(SYNC_STAMPS), sql.Identifier(SYNC_STAMPS))
OBSERVED_AT = sql.SQL("SELECT observed_at FROM {} WHERE resource_id = %s").format(
    sql.Identifier(SYNC_STAMPS))


#: a new resource's owner and the kind's feature flag, in one round trip
OWNER_AND_FLAG = sql.SQL(
    "SELECT u.id, u.organization_id, f.enabled, f.name FROM users u"
    " LEFT JOIN feature_flags f ON f.key = %s WHERE u.id = %s")


#: rows read ahead for ``ResourceStorage._resource`` (``_rows_read_ahead``), by (kind, id)
_known_rows: ContextVar[dict[tuple[str, UUID], Any] | None] = ContextVar(
    "akashone_known_rows", default=None)


class _Statements:
    """A kind's read queries and models, built once."""

    def __init__(self, kind: Kind) -> None:
        rows = sql.SQL("{} t").format(sql.Identifier(kind.table))
        if kind.observed:
            rows = sql.SQL("{} t LEFT JOIN {} s ON s.resource_id = t.id").format(
                sql.Identifier(kind.table), sql.Identifier(SYNC_STAMPS))
        select = sql.SQL("SELECT t.*{} FROM {}").format(
            sql.SQL(", s.observed_at") if kind.observed else sql.SQL(""), rows)
        self.model: type[Any] = kind.row_model()
        self.create_input: type[Any] = kind.create_input()
        # rendered once: psycopg caches the conversion of a query given as bytes
        self.by_id = sql.SQL("{} WHERE t.id = %s").format(select).as_bytes(None)
        self.by_ids = sql.SQL("{} WHERE t.id = ANY(%s::uuid[])").format(select).as_bytes(None)
        self.of_user = sql.SQL("{} WHERE t.user_id = %s ORDER BY t.{}, t.id").format(
            select, sql.Identifier(kind.created_column)).as_bytes(None)
        self.by_cloudstack_id = sql.SQL("{} WHERE t.{} = %s").format(
            select, sql.Identifier(kind.cloudstack_column)).as_bytes(None)
        #: child kinds (rows deleted with this one) and the query for their ids
        self.children = [(child, sql.SQL("SELECT id FROM {} WHERE {} = %s ORDER BY id").format(
            sql.Identifier(child.table), sql.Identifier(child.parent.field)))
            for child in KINDS.values() if child.parent and child.parent.kind == kind.name]
        #: the kinds that name this one, and the query finding one that does
        self.named_by = [(other, field, sql.SQL("SELECT id FROM {} WHERE {} = %s{} LIMIT 1").format(
            sql.Identifier(other.table), sql.Identifier(field),
            sql.SQL("::text" if other.columns()[field].startswith("text") else "")))
            for other in KINDS.values() for field, target in other.refs.items()
            if target == kind.name]
        if kind.parent is not None:
            self.of_parent = sql.SQL("{} WHERE t.{} = %s ORDER BY t.{}, t.id").format(
                select, sql.Identifier(kind.parent.field),
                sql.Identifier(kind.created_column)).as_bytes(None)


STATEMENTS = {name: _Statements(kind) for name, kind in KINDS.items()}
#: how many resources a user owns (of every kind)
OWNED_BY = sql.SQL("SELECT {}").format(sql.SQL(" + ").join(
    sql.SQL("(SELECT count(*) FROM {} WHERE user_id = %s)").format(
        sql.Identifier(kind.table)) for kind in KINDS.values()))

#: the end of a resource's last metered hour
METERED_UNTIL = sql.SQL("SELECT max(period_end) FROM usage_records WHERE resource_id = %s")
#: another active zone of a DNS name (verified: served once, whoever else has it pending)
ACTIVE_ZONE = sql.SQL("SELECT 1 FROM dns_domains WHERE lower(name) = lower(%s)"
                      " AND status = 'active' AND id <> %s")
#: resources whose hours were metered for a user (deleted ones too: their hours may not be
#: turned into usage yet, and they are billed to the organization they ran in)
METERED_FOR = sql.SQL("SELECT count(DISTINCT resource_id) FROM resource_meter_segments"
                      " WHERE user_id = %s")


class ResourceStorage(FlagStorage, BillingBase):
    """The IStorage resource groups, generated from the kinds (``akashone_es.resources``)."""

    if TYPE_CHECKING:  # the kinds' methods are made at import: type checkers see them so
        def __getattr__(self, name: str) -> Callable[..., Any]: ...

    # -- reads ----------------------------------------------------------------------------
    def _resources(self, kind: Kind, user_id: UUID | str) -> list[Any]:
        """A user's rows of ``kind``: those the acting party may see (none of a user of
        another organization)."""
        s = STATEMENTS[kind.name]
        rows = self._all(s.model, s.of_user, (i.parse_id(user_id, "user_id"),))
        return [row for row in rows if self._seen(row) is not None]

    def _resource(self, kind: Kind, resource_id: UUID | str, field: str = "id") -> Any:
        s = STATEMENTS[kind.name]
        rid = i.parse_id(resource_id, field)
        known = _known_rows.get()
        if known is not None and (kind.name, rid) in known:
            return self._seen(known[(kind.name, rid)])
        return self._seen(self._one(s.model, s.by_id, (rid,)))

    @contextmanager
    def _rows_read_ahead(self, wanted: Mapping[str, Iterable[UUID]]) -> Iterator[None]:
        """Within the block, ``_resource`` answers the ``wanted`` rows (those found) from
        one read per kind, not one read each: an import checks every record's references
        (its parent, the resources it names) against rows saved before the block. A row
        not found is read as before, when asked for. ``wanted``: ids by kind name."""
        known: dict[tuple[str, UUID], Any] = {}
        for name, ids in wanted.items():
            s = STATEMENTS[name]
            for row in self._all(s.model, s.by_ids, (list(dict.fromkeys(ids)),)):
                known[(name, row.id)] = row
        token = _known_rows.set(known)
        try:
            yield
        finally:
            _known_rows.reset(token)

    def _resource_by_cloudstack_id(self, kind: Kind, cloudstack_id: str) -> Any:
        s = STATEMENTS[kind.name]
        return self._seen(self._one(s.model, s.by_cloudstack_id, (cloudstack_id,)))

    def _seen(self, row: Any) -> Any:
        """``row`` when the acting party may see it (its organization's, or its own)."""
        return row if row is not None and self._visible_row(row.organization_id,
                                                            row.user_id) else None

    def _check_user_move(self, user_id: UUID) -> None:
        """A user who owns resources stays in its organization: its resources (and their
        metered usage) belong to that organization, whose tenants see them."""
        super()._check_user_move(user_id)
        owned = int(self._scalar(OWNED_BY, [user_id] * len(KINDS)) or 0)
        if owned:
            raise ConflictError(f"the user owns {owned} cloud resource"
                                f"{'' if owned == 1 else 's'} of its organization: delete them"
                                " (or create them anew for the other) before moving it")
        metered = int(self._scalar(METERED_FOR, (user_id,)) or 0)
        if metered:
            raise ConflictError(f"the user ran {metered} metered cloud resource"
                                f"{'' if metered == 1 else 's'} in its organization; their "
                                "hours are billed to it, so the user cannot move")

    # -- writes ---------------------------------------------------------------------------
    def _create_resource(self, kind: Kind, data: BaseModel | dict[str, Any],
                         parent: Resource | None = None) -> Any:
        """Validate, check the owner and the feature flag, seal the secrets, append Created;
        the answer carries the secrets in clear (the only time they are returned)."""
        s = STATEMENTS[kind.name]
        parsed: Any = i.parse(s.create_input, data)
        owner, organization = self._owner_with_feature(kind, parsed.user_id)
        if kind.parent is not None:
            self._parent_of(kind, getattr(parsed, kind.parent.field), owner)
        fields = parsed.model_dump(mode="json", exclude={"user_id"})
        if kind.on_create is not None:
            fields = kind.on_create(fields)
        if kind.derive is not None:
            fields = kind.derive(fields)
        if kind.lifecycle is not None:
            fields[kind.lifecycle.field] = kind.lifecycle.initial
        fields.update(self._resolve_refs(kind, fields, owner, set(kind.refs)))
        clear = {name: fields[name] for name in kind.secrets if fields.get(name) is not None}
        for name, value in clear.items():
            fields[name] = self.secrets.seal(value)
        with context.command():
            aggregate = Resource(kind=kind.name, user_id=str(owner),
                                 organization_id=str(organization) if organization else None,
                                 fields=fields)
            linked = [*self._link_parent(kind, fields, aggregate.id, "created", parent),
                      *self._link_refs(kind, fields, aggregate.id, "created", set(kind.refs))]
            row = self._must(self._save_returning(s.model, (kind.table, aggregate.id),
                                                  *linked, aggregate))
        return row.model_copy(update=clear) if clear else self._hide(kind, row)

    def _owner_with_feature(self, kind: Kind, user_id: UUID) -> tuple[UUID, UUID | None]:
        """The owner (visible to the acting party) and its organization; refused while the
        kind's feature flag is off or missing."""
        with self._cursor() as cur:
            cur.execute(OWNER_AND_FLAG, (kind.flag or "", user_id), prepare=True)
            row = cur.fetchone()
        if row is None or not self._visible_row(row["organization_id"], row["id"]):
            raise NotFoundError("user", user_id, "user_id")
        if kind.flag is not None:
            self._feature_allows(kind.flag, row["enabled"], row["name"])
        return row["id"], row["organization_id"]

    def _update_resource(self, kind: Kind, resource_id: UUID | str,
                         changes: BaseModel | dict[str, Any],
                         parent: Resource | None = None) -> Any:
        """Change updatable fields; the merged record is validated as a whole (a required
        field cannot be cleared, a port range cannot be inverted). A kind whose lifecycle
        moves by update takes its state too, each move checked."""
        values = changes.model_dump(exclude_unset=True) if isinstance(
            changes, BaseModel) else dict(changes)
        life = kind.lifecycle
        state = values.pop(life.field, None) if life and life.by_update else None
        if state is not None and not isinstance(state, str):
            raise ValidationError.single(life.field if life else "state", "must be a string")
        refused = [{"field": key_name(name), "rule": f"cannot be changed by update_{kind.name}"}
                   for name in values if name not in kind.updatable]
        if refused:
            raise ValidationError(refused)
        if self._tenant_acting():
            given = {*values, *([life.field] if state and life else [])}
            barred = {name: why for name, why in kind.platform_only().items() if name in given}
            if barred:
                raise PermissionDeniedError(f"{', '.join(barred)}: {next(iter(barred.values()))}")
        current = self._resource(kind, resource_id)
        if current is None:
            return None
        with context.command():
            aggregate = self._load_resource(kind, current.id)
            changed = self._changes(kind, aggregate, values)
            named = {f for f in changed if f in kind.refs} | {
                kind.ref_copies[f][0] for f in changed if f in kind.ref_copies}
            if named:
                changed.update(self._resolve_refs(kind, {**aggregate.fields, **changed},
                                                  UUID(aggregate.user_id), named))
                changed = {k: v for k, v in changed.items() if v != aggregate.fields.get(k)}
            if state is not None and life is not None and state != aggregate.fields.get(
                    life.field):
                self._check_move(kind, aggregate, state)
                if kind.name == "dns_domain" and state == "active" and self._scalar(
                        ACTIVE_ZONE, (aggregate.fields.get("name"), aggregate.id)):
                    # verified once: the platform serves one zone per name
                    raise ConflictError(f"{aggregate.fields.get('name')} is active for "
                                        "another tenant: a name has one active zone")
                aggregate.transition("update", life.field, state, life.transitions, changed)
            elif changed:
                aggregate.update(changed)
            else:
                return self._hide(kind, current)
            linked = [*self._link_parent(kind, aggregate.fields, current.id, "updated",
                                         parent),
                      *self._link_refs(kind, aggregate.fields, current.id, "named", named)]
            row = self._save_returning(STATEMENTS[kind.name].model, (kind.table, current.id),
                                       *linked, aggregate)
        return self._hide(kind, row) if row is not None else self._resource(kind, current.id)

    @staticmethod
    def _changes(kind: Kind, aggregate: Resource, values: dict[str, Any]) -> dict[str, Any]:
        """The fields ``values`` really change, checked against the whole merged record,
        with the kind's derived values recomputed."""
        merged = {name: aggregate.fields.get(name) for name in kind.fields.model_fields}
        merged = {k: v for k, v in merged.items() if v is not None}
        checked = i.parse(kind.fields, {**merged, **values}).model_dump(mode="json")
        if kind.derive is not None:
            checked = kind.derive(checked)
            values = {**values, **dict.fromkeys(kind.computed)}
        return {name: checked[name] for name in values
                if name in checked and checked[name] != aggregate.fields.get(name)}

    @staticmethod
    def _check_move(kind: Kind, aggregate: Resource, state: str) -> None:
        life = kind.lifecycle
        assert life is not None  # noqa: S101 - only called for kinds with a lifecycle
        if state not in life.states():
            raise ValidationError.single(life.field, "must be one of "
                                         + ", ".join(sorted(life.states())))
        current = str(aggregate.fields.get(life.field))
        if state in life.reserved or current in life.reserved:
            raise ConflictError(f"a {kind.title} {'in' if current in life.reserved else 'to'}"
                                f" state {current if current in life.reserved else state} "
                                f"moves by its own actions only")

    def _observe_resource(self, kind: Kind, cloudstack_id: str,
                          observed: BaseModel | dict[str, Any],
                          reported_at: datetime | None = None) -> Any:
        """Record what CloudStack reports: an observation that changes nothing appends no
        event (it only stamps ``observed_at``); a change appends one ``Observed`` event. The
        state may be any of the lifecycle's (CloudStack's word is the fact), the other
        fields are checked as an update's are. None when no resource has that id.

        ``reported_at``: when CloudStack reported it (its event's or job's time). A report
        older than one already recorded is stale (delivered late, out of order): it changes
        nothing, and the resource is returned as it stands."""
        values = observed.model_dump(exclude_unset=True) if isinstance(
            observed, BaseModel) else dict(observed)
        refused = [{"field": key_name(name), "rule": f"is not observed for a {kind.title}"}
                   for name in values if name not in kind.observed]
        if refused:
            raise ValidationError(refused)
        life = kind.lifecycle
        state = values.pop(life.field, None) if life else None
        if life is not None and state is not None and (
                not isinstance(state, str) or state not in life.states()):
            raise ValidationError.single(life.field, "must be one of "
                                         + ", ".join(sorted(life.states())))
        if reported_at is not None and reported_at > datetime.now(UTC) + CLOCK_SKEW:
            raise ValidationError.single("reported_at", "must not be in the future")
        row = self._resource_by_cloudstack_id(kind, cloudstack_id)
        if row is None:
            return None
        if reported_at is not None:
            latest = self._scalar(OBSERVED_AT, (row.id,))
            if latest is not None and reported_at < latest:
                log.info("resource.observation_stale", kind=kind.name, resource=str(row.id),
                         reported_at=reported_at.isoformat(), latest=latest.isoformat())
                return self._hide(kind, row)
        counted = {k: _count(k, values.pop(k)) for k in list(values) if k in kind.computed}
        with context.command():
            aggregate = self._load_resource(kind, row.id)
            changes = self._changes(kind, aggregate, values) if values else {}
            named = {f for f in changes if f in kind.refs}
            if named:  # what CloudStack reports names the owner's resources, as a write does
                changes.update(self._resolve_refs(kind, {**aggregate.fields, **changes},
                                                  UUID(aggregate.user_id), named))
            changes.update(counted)
            if life is not None and state is not None:
                changes[life.field] = state
            if aggregate.observe(changes):
                self._save(*self._link_refs(kind, aggregate.fields, row.id, "observed", named),
                           aggregate)
        with self._cursor() as cur:
            cur.execute(STAMP_OBSERVED, (row.id, reported_at))
        return self._hide(kind, self._resource(kind, row.id))

    def _resolve_refs(self, kind: Kind, fields: dict[str, Any], owner: UUID,
                      named: set[str]) -> dict[str, Any]:
        """Check the references ``named`` (each the owner's resource of its kind, when
        given) and the fields copied from them; returns the copies filled in."""
        found: dict[str, Any] = {}
        for field in named:
            value = fields.get(field)
            if value is None:
                continue
            target = KINDS[kind.refs[field]]
            row = self._resource(target, value, field)
            if row is None or row.user_id != owner:
                raise NotFoundError(target.name, value, field)
            rule = kind.ref_rules.get(field)
            problem = rule(row, fields) if rule is not None else None
            if problem is not None:
                raise ValidationError.single(field, problem)
            found[field] = row
        copies: dict[str, Any] = {}
        for copy, (field, attribute) in kind.ref_copies.items():
            row = found.get(field)
            if row is None:
                continue
            expected = getattr(row, attribute)
            given = fields.get(copy)
            if given is not None and given != expected:
                raise ValidationError.single(copy, f"is {expected} for this {field}, not "
                                                   f"{given}")
            copies[copy] = expected
        return copies

    def _refuse_if_named(self, kind: Kind, resource_id: UUID) -> None:
        """A resource other resources name cannot be deleted (detach them first)."""
        for other, field, query in STATEMENTS[kind.name].named_by:
            found = self._column(query, (resource_id,))
            if found:
                raise ConflictError(f"the {kind.title} is in use: {other.title} {found[0]} "
                                    f"names it ({field})")

    def _delete_resource(self, kind: Kind, resource_id: UUID | str) -> bool:
        current = self._resource(kind, resource_id)
        if current is None:
            return False
        with context.command():
            # loaded first: a resource naming it, made after this load, conflicts on its
            # version; one made before is found by the check below
            aggregate = self._load_resource(kind, current.id)
            self._refuse_if_named(kind, current.id)
            linked = self._link_parent(kind, aggregate.fields, current.id, "deleted")
            aggregate.delete()
            self._save(*self._cascade(kind, current), *linked, aggregate)
        return True

    def _link_refs(self, kind: Kind, fields: dict[str, Any], resource_id: UUID, change: str,
                   named: set[str]) -> list[Resource]:
        """The resources a change names (``named`` fields), each recording it: deleting one
        while it is being named conflicts instead of leaving a dangling name."""
        linked = []
        for field in sorted(named):
            value = fields.get(field)
            if value is not None:
                target = self._load_resource(KINDS[kind.refs[field]], UUID(str(value)))
                target.link(f"{kind.name}.{change}", resource_id)
                linked.append(target)
        return linked

    def _link_parent(self, kind: Kind, fields: dict[str, Any], child_id: UUID, change: str,
                     parent: Resource | None = None) -> list[Resource]:
        """A child's change, recorded on its parent too (saved together: a racing change
        under the same parent, or the parent's deletion, conflicts). ``parent``: loaded
        by a caller that checked a rule against it first."""
        if kind.parent is None:
            return []
        if parent is None:
            parent = self._load_resource(KINDS[kind.parent.kind],
                                         UUID(str(fields[kind.parent.field])))
        parent.link(f"{kind.name}.{change}", child_id)
        return [parent]

    def _cascade(self, kind: Kind, row: Any) -> list[Resource]:
        """What deleting ``row`` takes with it: its children (a domain's records, a VM's
        snapshots), each deleted by its own event in the same save."""
        doomed = []
        for child, query in STATEMENTS[kind.name].children:
            for child_id in self._column(query, (row.id,)):
                aggregate = self._load_resource(child, child_id)
                aggregate.delete()
                doomed.append(aggregate)
        return doomed

    def _parent_of(self, kind: Kind, parent_id: Any, owner_id: UUID) -> Any:
        """The parent row a child is created under: visible, and of the same owner."""
        assert kind.parent is not None  # noqa: S101 - called for child kinds only
        parent = KINDS[kind.parent.kind]
        row = self._resource(parent, parent_id)
        if row is None:
            raise NotFoundError(parent.name, parent_id, kind.parent.field)
        if row.user_id != owner_id:
            raise PermissionDeniedError(f"{kind.parent.field}: the {parent.title} belongs to "
                                        f"another user")
        if kind.parent.states is not None and parent.lifecycle is not None:
            state = getattr(row, parent.lifecycle.field)
            if state not in kind.parent.states:
                raise ConflictError(f"cannot create a {kind.title} of a {parent.title} that "
                                    f"is {state}")
        return row

    def _children(self, kind: Kind, parent_id: UUID | str, user_id: UUID | str | None = None
                  ) -> list[Any]:
        """A child kind's rows under a visible parent (of ``user_id``, when given)."""
        assert kind.parent is not None  # noqa: S101 - called for child kinds only
        parent = self._resource(KINDS[kind.parent.kind], parent_id)
        if parent is None or (user_id is not None
                              and parent.user_id != i.parse_id(user_id, "user_id")):
            return []
        s = STATEMENTS[kind.name]
        return [self._hide(kind, row) for row in self._all(s.model, s.of_parent, (parent.id,))]

    def _load_resource(self, kind: Kind, resource_id: UUID) -> Resource:
        aggregate = self._load(Resource, resource_id, kind.name)
        if aggregate.kind != kind.name:
            raise NotFoundError(kind.name, resource_id)
        if kind.meters and context.backdating():
            # history recorded late may not reach into hours already metered: they would
            # stay billed as they were
            metered = self._scalar(METERED_UNTIL, (str(resource_id),))
            if metered is not None and context.event_time() < metered:
                raise ConflictError(f"the {kind.title}'s usage is metered up to "
                                    f"{metered.isoformat()}: a change recorded before then "
                                    f"would not be billed")
        return aggregate

    @staticmethod
    def _hide(kind: Kind, row: Any) -> Any:
        """A row as reads return it: sealed secrets are never shown."""
        hidden = {name: None for name in kind.secrets if getattr(row, name) is not None}
        observed = getattr(row, "observed_at", None)
        if observed is not None and kind.stamp and observed > getattr(row, kind.stamp):
            hidden[kind.stamp] = observed  # confirmed since it last changed
        row = row.model_copy(update=hidden) if hidden else row
        return kind.on_read(row) if kind.on_read is not None else row


#: the largest observed counter (bytes, objects): 10^18 bytes is 10^9 GB, so an hour of it
#: is a usage quantity within its bound
COUNT_MAX = 10**18


def _count(field: str, value: Any) -> int:
    """An observed counter (bytes, objects): a whole number up to ``COUNT_MAX``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= COUNT_MAX:
        raise ValidationError.single(field, f"must be a whole number from 0 to {COUNT_MAX}")
    return value


def _methods(kind: Kind) -> dict[Method, Callable[..., Any]]:
    """The kind's public methods (closures over the generic operations)."""

    def list_(self: ResourceStorage, user_id: UUID | str) -> list[Any]:
        return [self._hide(kind, row) for row in self._resources(kind, user_id)]

    def get(self: ResourceStorage, id: UUID | str) -> Any:
        row = self._resource(kind, id)
        return self._hide(kind, row) if row is not None else None

    def by_cloudstack_id(self: ResourceStorage, cloudstack_id: str) -> Any:
        row = self._resource_by_cloudstack_id(kind, cloudstack_id)
        return self._hide(kind, row) if row is not None else None

    # a write that meets a racing change of a resource it names (a parent, a reference)
    # conflicts; it is tried again against what is there now
    def create(self: ResourceStorage, data: BaseModel | dict[str, Any]) -> Any:
        return racing(lambda: self._create_resource(kind, data))

    def update(self: ResourceStorage, id: UUID | str,
               changes: BaseModel | dict[str, Any]) -> Any:
        return racing(lambda: self._update_resource(kind, id, changes))

    def delete(self: ResourceStorage, id: UUID | str) -> bool:
        return racing(lambda: self._delete_resource(kind, id))

    def observe(self: ResourceStorage, cloudstack_id: str,
                observed: BaseModel | dict[str, Any],
                reported_at: datetime | None = None) -> Any:
        return self._observe_resource(kind, cloudstack_id, observed, reported_at)

    found: dict[Method, Callable[..., Any]] = {
        "list": list_, "get": get, "by_cloudstack_id": by_cloudstack_id, "create": create,
        "update": update, "delete": delete, "observe": observe}
    docs = {"list": f"The {kind.title}s of a user (those the acting party may see).",
            "get": f"One {kind.title}, or None (also when it is another tenant's).",
            "by_cloudstack_id": f"The {kind.title} with this CloudStack id, or None.",
            "create": f"Record a {kind.title}; its owner is ``user_id``.",
            "update": f"Change a {kind.title}'s updatable fields; None when absent.",
            "delete": f"Delete a {kind.title}; False when absent.",
            "observe": f"Record what CloudStack reports of a {kind.title} (by CloudStack id);"
                       " no event when nothing changed; a report older than one recorded"
                       " (``reported_at``) changes nothing. The CloudStack sync's (platform)."}
    methods = {}
    for method, name in kind.method_names().items():
        fn = found[method]
        fn.__name__ = fn.__qualname__ = name
        fn.__doc__ = docs[method]
        methods[method] = fn
    return methods


def install(cls: type, kinds: dict[str, Kind]) -> dict[str, str]:
    """Give ``cls`` every kind's methods (a method the class defines itself is kept: a kind
    with behaviour overrides one); returns method name -> kind name."""
    installed = {}
    for kind in kinds.values():
        for method, fn in _methods(kind).items():
            name = kind.method_names()[method]
            if name not in vars(cls):
                setattr(cls, name, fn)
            installed[name] = kind.name
    return installed


RESOURCE_METHODS = install(ResourceStorage, KINDS)


def key_name(key: Any) -> str:
    """A key refused in a change, as the field an error names: text, and short."""
    text = key if isinstance(key, str) else repr(key)
    return text if len(text) <= KEY_SHOWN else text[:KEY_SHOWN] + "..."


#: how much of a refused key an error shows
KEY_SHOWN = 64
