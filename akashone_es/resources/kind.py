"""A resource kind, declared once.

Twenty kinds of cloud resource share one shape: an owner and its organization, perhaps a
CloudStack id, perhaps a lifecycle state, tags, a creation time and perhaps a sync time; they
are created, read, listed, updated and deleted. A ``Kind`` declares what differs: its fields
(a pydantic model: types, required/default, ``Literal`` values, bounds and rules), which fields
an update may change, its unique keys, secret fields, lifecycle, feature flag and methods.
From the declaration come the rest:

- the events (``akashone_es.domain.resources.Resource``, one aggregate for every kind, its
  events carrying the kind's name and the validated fields);
- the create input (the fields plus ``user_id`` and the CloudStack id) and the update check
  (only the updatable fields, the merged record validated again as a whole);
- the read table with its indexes and unique keys, and the row model;
- the projection's statements (``projections/resources.py``);
- the ``Storage`` methods with AkashOne's names (``storage/resources.py``).

A kind with real behaviour (a VM's lifecycle, volume attach/detach, ...) adds only that.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Union, get_args, get_origin
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, create_model

from akashone_es.storage import limits as lim
from akashone_es.storage.inputs import Input
from akashone_es.storage.limits import JsonObject

Method = Literal["list", "get", "by_cloudstack_id", "create", "update", "delete", "observe"]
ALL_METHODS: frozenset[Method] = frozenset(
    ("list", "get", "by_cloudstack_id", "create", "update", "delete"))
#: columns every resource row has, whatever its kind; a kind's fields may not reuse them
COMMON_COLUMNS = ("id", "user_id", "organization_id")


class Fields(Input):
    """Base of a kind's fields: strict input (unknown fields refused, text stripped and
    checked for what PostgreSQL cannot store)."""


class Tagged(Fields):
    """Fields of a kind whose rows carry free-form ``tags`` (bounded JSON)."""

    tags: JsonObject | None = None


@dataclass(frozen=True)
class Unique:
    """A unique key: its columns or expressions (``user_id`` scopes it to an owner) and the
    field a ``DuplicateError`` names; ``where`` makes it partial (e.g. only ids that are
    present); ``name`` names the index when the columns are expressions."""

    columns: tuple[str, ...]
    field: str
    where: str | None = None
    name: str | None = None


#: the tenant of a row: its organization, or its owner when it has none
TENANT = "coalesce(organization_id, user_id)"


@dataclass(frozen=True)
class Parent:
    """A kind whose rows belong to a row of another kind (a DNS record to its domain, a VM
    snapshot to its VM): created only under a parent of the same owner, listed by parent,
    deleted with it; ``count`` is a column of the parent kept equal to its number of
    children, ``stamp`` a column of the parent set at every change of a child."""

    kind: str
    field: str
    count: str | None = None
    stamp: str | None = None
    #: the parent's lifecycle states a child may be created in (None: any)
    states: frozenset[str] | None = None


@dataclass(frozen=True)
class Meter:
    """What a kind bills while it exists: ``quantity`` is a SQL expression over its row, the
    units per hour (0 or NULL: nothing billed), e.g. ``CASE WHEN state = 'Running' THEN 1
    END`` for a VM or ``size`` (GB) for a volume; ``resource_type`` keys the rate table."""

    resource_type: str
    quantity: str
    metric: str = "usage"
    #: the row's fields ``quantity`` reads: what is billed is set by the platform only
    #: (provisioning, or what CloudStack reports), never by the tenant's own update
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Lifecycle:
    """A state field set only by transitions: its initial value and the moves allowed."""

    initial: str
    transitions: Mapping[str, frozenset[str]]
    field: str = "state"
    #: ``update_<name>`` may move the state (each move checked); else only actions do
    by_update: bool = False
    #: states only the kind's own actions enter or leave (attach, detach, ...)
    reserved: frozenset[str] = frozenset()

    def states(self) -> frozenset[str]:
        found = {self.initial, *self.transitions}
        for targets in self.transitions.values():
            found |= targets
        return frozenset(found)

    def allows(self, old: str, new: str) -> bool:
        return new in self.transitions.get(old, frozenset())


def moves(**transitions: str) -> dict[str, frozenset[str]]:
    """``moves(Creating="Ready Error", Ready="Attached")``: each state's allowed targets."""
    return {state: frozenset(targets.split()) for state, targets in transitions.items()}


@dataclass(frozen=True)
class Kind:
    """One kind of resource. ``name`` is singular snake_case (``virtual_machine``), and the
    methods are ``get_<plural>(user_id)``, ``get_<name>(id)``,
    ``get_<name>_by_cloudstack_id(id)``, ``create_<name>(data)``,
    ``update_<name>(id, changes)`` and ``delete_<name>(id)``, as ``methods`` lists."""

    name: str
    plural: str
    fields: type[Fields]
    #: the fields ``update_<name>`` may change; empty: the kind has no update
    updatable: tuple[str, ...] = ()
    #: "required": a unique CloudStack id is part of every create; "optional": unique when
    #: present; "none": the kind has no CloudStack id
    cloudstack: Literal["required", "optional", "none"] = "required"
    cloudstack_column: str = "cloudstack_id"
    lifecycle: Lifecycle | None = None
    unique: tuple[Unique, ...] = ()
    #: sealed before they enter an event; returned in clear by the create call only
    secrets: tuple[str, ...] = ()
    #: the feature flag that must be on to create one (None: always allowed)
    flag: str | None = None
    #: a column set on creation and by every change (AkashOne's ``last_synced``, a DNS
    #: domain's ``last_modified``)
    stamp: str | None = None
    created_column: str = "created_at"
    methods: frozenset[Method] = ALL_METHODS
    #: what errors call it ("virtual machine"); defaults to the name with spaces
    label: str = ""
    #: columns computed from the fields by ``on_create`` (name -> SQL type), in the event
    computed: Mapping[str, str] = field(default_factory=dict)
    #: columns the projection keeps from other events (name -> SQL type with a DEFAULT)
    kept: Mapping[str, str] = field(default_factory=dict)
    #: extra index DDL (``{table}`` placeholder)
    indexes: tuple[str, ...] = ()
    #: fills generated values into a create's fields (after validation, before the event)
    on_create: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    #: recomputes derived values from the whole record, on creation and after an update
    derive: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    parent: Parent | None = None
    #: adjusts a row as reads show it (e.g. a certificate past its expiry reads Expired)
    on_read: Callable[[Any], Any] | None = None
    #: what it bills while it exists (metering turns these into usage records)
    meters: tuple[Meter, ...] = ()
    #: fields only the platform sets by update, each with why (what metering bills is so too)
    platform_set: Mapping[str, str] = field(default_factory=dict)
    #: fields naming another resource (field -> kind): it must exist and have the same
    #: owner when given, and it cannot be deleted while named
    refs: Mapping[str, str] = field(default_factory=dict)
    #: fields that repeat an attribute of a referenced resource (field -> (reference
    #: field, attribute)): taken from it when absent, refused when they differ
    ref_copies: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    #: what a referenced resource must be besides the owner's (reference field -> a check
    #: of its row against this record's fields, returning the problem or None)
    ref_rules: Mapping[str, Callable[[Any, dict[str, Any]], str | None]] = field(
        default_factory=dict)
    #: what CloudStack (or the service behind the kind) reports: ``observe_<name>`` takes
    #: these fields (the state among them), by CloudStack id
    observed: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        clash = [c for c in COMMON_COLUMNS if c in self.fields.model_fields]
        if clash:
            raise TypeError(f"{self.name}: fields {clash} are common to every resource")
        unknown = [f for f in self.updatable if f not in self.fields.model_fields]
        if unknown:
            raise TypeError(f"{self.name}: updatable fields {unknown} are not fields")
        state = self.lifecycle.field if self.lifecycle else None
        unknown = [f for f in self.observed if f not in self.fields.model_fields
                   and f not in self.computed and f != state]
        if unknown:
            raise TypeError(f"{self.name}: observed fields {unknown} are not fields")
        if self.observed and self.cloudstack == "none":
            raise TypeError(f"{self.name}: observations find a resource by its CloudStack id")
        unknown = [f for f in self.refs if f not in self.fields.model_fields]
        if unknown:
            raise TypeError(f"{self.name}: references {unknown} are not fields")
        unknown = [f for f in self.ref_rules if f not in self.refs]
        if unknown:
            raise TypeError(f"{self.name}: rules for {unknown}, which are not references")
        if self.secrets and self.updatable:  # an update re-validates the sealed values
            raise TypeError(f"{self.name}: a kind with secret fields has no update")
        if self.lifecycle and self.lifecycle.field in self.fields.model_fields:
            raise TypeError(f"{self.name}: the state field is set by transitions only")

    # -- names ----------------------------------------------------------------------------
    @property
    def table(self) -> str:
        return self.plural

    @property
    def billed_fields(self) -> frozenset[str]:
        """The fields metering reads (a tenant's update may not set them)."""
        return frozenset(f for meter in self.meters for f in meter.fields)

    def platform_only(self) -> dict[str, str]:
        """The fields a tenant's update may not set, each with why."""
        why = "billed by metering, so set by the platform (provisioning, or what CloudStack " \
              "reports), not by a tenant"
        return {**dict.fromkeys(sorted(self.billed_fields), why), **self.platform_set}

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ")

    def method_names(self) -> dict[Method, str]:
        names: dict[Method, str] = {
            "list": f"get_{self.plural}", "get": f"get_{self.name}",
            "by_cloudstack_id": f"get_{self.name}_by_cloudstack_id",
            "create": f"create_{self.name}", "update": f"update_{self.name}",
            "delete": f"delete_{self.name}", "observe": f"observe_{self.name}"}
        methods: set[Method] = set(self.methods)
        if self.observed:
            methods.add("observe")
        return {m: names[m] for m in sorted(methods)}

    # -- columns --------------------------------------------------------------------------
    def columns(self) -> dict[str, str]:
        """Every column of the read table and its SQL type (with constraints)."""
        cols = {"id": "uuid PRIMARY KEY", "user_id": "uuid NOT NULL",
                "organization_id": "uuid"}
        if self.cloudstack != "none":
            cols[self.cloudstack_column] = "text" + (
                " NOT NULL" if self.cloudstack == "required" else "")
        if self.lifecycle:
            cols[self.lifecycle.field] = "text NOT NULL"
        for name, info in self.fields.model_fields.items():
            cols[name] = sql_type(info.annotation)
        cols.update(self.computed)
        cols.update(self.kept)
        cols[self.created_column] = "timestamptz NOT NULL"
        if self.stamp:
            cols[self.stamp] = "timestamptz NOT NULL"
        return cols

    def field_columns(self) -> list[str]:
        """The columns a Created event's ``fields`` fills (all but id, owner and stamps)."""
        skip = {"id", "user_id", "organization_id", self.created_column, self.stamp,
                *self.kept}
        return [c for c in self.columns() if c not in skip]

    def unique_keys(self) -> tuple[Unique, ...]:
        keys = list(self.unique)
        if self.cloudstack == "required":
            keys.insert(0, Unique((self.cloudstack_column,), self.cloudstack_column))
        elif self.cloudstack == "optional":
            keys.insert(0, Unique((self.cloudstack_column,), self.cloudstack_column,
                                  where=f"{self.cloudstack_column} IS NOT NULL"))
        return tuple(keys)

    def constraint(self, key: Unique) -> str:
        """The unique index's name (so a violation names its field)."""
        return f"{self.table}_{key.name or '_'.join(key.columns)}_key"

    # -- inputs ---------------------------------------------------------------------------
    def create_input(self) -> type[BaseModel]:
        """The create input: the kind's fields, the owner and (if it has one) the CloudStack
        id; state fields are not inputs."""
        extra: dict[str, Any] = {"user_id": (UUID, ...)}
        if self.cloudstack == "required":
            extra[self.cloudstack_column] = (str, Field(min_length=1, max_length=lim.ID_MAX))
        elif self.cloudstack == "optional":
            extra[self.cloudstack_column] = (
                str | None, Field(default=None, min_length=1, max_length=lim.ID_MAX))
        return create_model(f"Create{_camel(self.name)}", __base__=self.fields, **extra)

    def row_model(self) -> type[BaseModel]:
        """The read model: every column, in plain types; secret fields are None except in a
        create's answer."""
        fields: dict[str, Any] = {}
        for column, kind in self.columns().items():
            annotation = python_type(kind)  # plain types: rows were checked on the way in
            nullable = "NOT NULL" not in kind and "PRIMARY KEY" not in kind
            secret = column in self.secrets  # None except in a create's answer
            fields[column] = ((annotation | None, None) if nullable or secret
                              else (annotation, ...))
        if self.observed:  # when CloudStack last confirmed it (kept outside the log)
            fields["observed_at"] = (datetime | None, None)
        return create_model(_camel(self.name), __config__=ROW_CONFIG, **fields)


ROW_CONFIG = ConfigDict(frozen=True, extra="ignore")


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The type inside ``X | None`` and whether None was allowed."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _strip(annotation: Any) -> Any:
    """The type inside ``Annotated[...]``."""
    if get_origin(annotation) is typing.Annotated:
        return get_args(annotation)[0]
    return annotation


def sql_type(annotation: Any) -> str:
    """The column type of a field's annotation; NOT NULL unless the field takes None."""
    inner, nullable = _unwrap(annotation)
    return _base_sql_type(inner) + ("" if nullable else " NOT NULL")


_SQL_TYPES: dict[Any, str] = {str: "text", bool: "boolean", int: "bigint",
                              datetime: "timestamptz", UUID: "uuid", dict: "jsonb"}


def _base_sql_type(annotation: Any) -> str:
    inner = _strip(annotation)
    origin = get_origin(inner)
    if origin is Literal:
        return "text"
    if origin is list and _strip(get_args(inner)[0]) is str:
        return "text[]"
    found = _SQL_TYPES.get(origin or inner)
    if found is None:
        raise TypeError(f"no column type for {annotation!r}")
    return found


def python_type(column: str) -> Any:
    """The read model's type of a common or derived column."""
    base = column.partition(" ")[0]  # types have no spaces: "integer NOT NULL DEFAULT 0"
    return {"uuid": UUID, "text": str, "timestamptz": datetime, "integer": int,
            "bigint": int, "boolean": bool, "jsonb": dict[str, Any],
            "text[]": list[str]}[base]
