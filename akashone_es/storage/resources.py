"""Cloud resources on the storage facade: the methods of every declared kind.

``install`` gives ``ResourceStorage`` each kind's methods with AkashOne's names (``get_vpcs``,
``create_vpc``, ...), all made of the few generic operations below, so twenty kinds share one
piece of code. Tenancy is billing's: a row carries its owner and the owner's organization; a
tenant sees, changes and deletes only its organization's rows (another's read as absent), and
creates them only for users it can see. The CloudStack id and other unique keys are decided by
unique indexes inside the append transaction (``DuplicateError`` names the field).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from psycopg import sql
from pydantic import BaseModel

from akashone_es import context
from akashone_es.domain.resources import Resource
from akashone_es.errors import NotFoundError, ValidationError
from akashone_es.resources import KINDS
from akashone_es.resources.kind import Kind, Method
from akashone_es.storage import inputs as i
from akashone_es.storage.billing_base import BillingBase
from akashone_es.storage.flags import FlagStorage

Row = BaseModel


class _Statements:
    """A kind's read queries and models, built once."""

    def __init__(self, kind: Kind) -> None:
        table = sql.Identifier(kind.table)
        self.model: type[Any] = kind.row_model()
        self.create_input: type[Any] = kind.create_input()
        self.by_id = sql.SQL("SELECT * FROM {} WHERE id = %s").format(table)
        self.of_user = sql.SQL("SELECT * FROM {} WHERE user_id = %s ORDER BY {}, id").format(
            table, sql.Identifier(kind.created_column))
        self.by_cloudstack_id = sql.SQL("SELECT * FROM {} WHERE {} = %s").format(
            table, sql.Identifier(kind.cloudstack_column))


STATEMENTS = {name: _Statements(kind) for name, kind in KINDS.items()}


class ResourceStorage(FlagStorage, BillingBase):
    """The IStorage resource groups, generated from the kinds (``akashone_es.resources``)."""

    # -- reads ----------------------------------------------------------------------------
    def _resources(self, kind: Kind, user_id: UUID | str) -> list[Any]:
        user = self.get_user(user_id)
        if user is None:
            return []
        rows = self._all(STATEMENTS[kind.name].model, STATEMENTS[kind.name].of_user, (user.id,))
        return [row for row in rows if self._visible_row(row.organization_id, row.user_id)]

    def _resource(self, kind: Kind, resource_id: UUID | str) -> Any:
        s = STATEMENTS[kind.name]
        row = self._one(s.model, s.by_id, (i.parse_id(resource_id, "id"),))
        return row if row is not None and self._visible_row(row.organization_id,
                                                            row.user_id) else None

    def _resource_by_cloudstack_id(self, kind: Kind, cloudstack_id: str) -> Any:
        s = STATEMENTS[kind.name]
        row = self._one(s.model, s.by_cloudstack_id, (cloudstack_id,))
        return row if row is not None and self._visible_row(row.organization_id,
                                                            row.user_id) else None

    # -- writes ---------------------------------------------------------------------------
    def _create_resource(self, kind: Kind, data: BaseModel | dict[str, Any]) -> Any:
        """Validate, check the owner and the feature flag, seal the secrets, append Created;
        the answer carries the secrets in clear (the only time they are returned)."""
        s = STATEMENTS[kind.name]
        parsed: Any = i.parse(s.create_input, data)
        owner = self._user_of(parsed.user_id)
        self._require_feature(kind.flag)
        fields = parsed.model_dump(mode="json", exclude={"user_id"})
        if kind.on_create is not None:
            fields = kind.on_create(fields)
        if kind.lifecycle is not None:
            fields[kind.lifecycle.field] = kind.lifecycle.initial
        clear = {name: fields[name] for name in kind.secrets if fields.get(name) is not None}
        for name, value in clear.items():
            fields[name] = self.secrets.seal(value)
        organization = owner.organization_id
        with context.command():
            aggregate = Resource(kind=kind.name, user_id=str(owner.id),
                                 organization_id=str(organization) if organization else None,
                                 fields=fields)
            row = self._must(self._save_returning(s.model, (kind.table, aggregate.id),
                                                  aggregate))
        return row.model_copy(update=clear) if clear else self._hide(kind, row)

    def _update_resource(self, kind: Kind, resource_id: UUID | str,
                         changes: BaseModel | dict[str, Any]) -> Any:
        """Change updatable fields; the merged record is validated as a whole (a required
        field cannot be cleared, a port range cannot be inverted)."""
        values = changes.model_dump(exclude_unset=True) if isinstance(
            changes, BaseModel) else dict(changes)
        refused = [{"field": name, "rule": f"cannot be changed by update_{kind.name}"}
                   for name in values if name not in kind.updatable]
        if refused:
            raise ValidationError(refused)
        current = self._resource(kind, resource_id)
        if current is None:
            return None
        with context.command():
            aggregate = self._load_resource(kind, current.id)
            merged = {name: aggregate.fields.get(name) for name in kind.fields.model_fields}
            merged = {k: v for k, v in merged.items() if v is not None}
            checked = i.parse(kind.fields, {**merged, **values}).model_dump(mode="json")
            changed = {name: checked[name] for name in values
                       if checked[name] != aggregate.fields.get(name)}
            if not changed:
                return self._hide(kind, current)
            aggregate.update(changed)
            row = self._save_returning(STATEMENTS[kind.name].model, (kind.table, current.id),
                                       aggregate)
        return self._hide(kind, row) if row is not None else self._resource(kind, current.id)

    def _delete_resource(self, kind: Kind, resource_id: UUID | str) -> bool:
        current = self._resource(kind, resource_id)
        if current is None:
            return False
        with context.command():
            aggregate = self._load_resource(kind, current.id)
            aggregate.delete()
            self._save(aggregate)
        return True

    def _load_resource(self, kind: Kind, resource_id: UUID) -> Resource:
        aggregate = self._load(Resource, resource_id, kind.name)
        if aggregate.kind != kind.name:
            raise NotFoundError(kind.name, resource_id)
        return aggregate

    @staticmethod
    def _hide(kind: Kind, row: Any) -> Any:
        """A row as reads return it: sealed secrets are never shown."""
        hidden = {name: None for name in kind.secrets if getattr(row, name) is not None}
        return row.model_copy(update=hidden) if hidden else row


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

    def create(self: ResourceStorage, data: BaseModel | dict[str, Any]) -> Any:
        return self._create_resource(kind, data)

    def update(self: ResourceStorage, id: UUID | str,
               changes: BaseModel | dict[str, Any]) -> Any:
        return self._update_resource(kind, id, changes)

    def delete(self: ResourceStorage, id: UUID | str) -> bool:
        return self._delete_resource(kind, id)

    found: dict[Method, Callable[..., Any]] = {
        "list": list_, "get": get, "by_cloudstack_id": by_cloudstack_id, "create": create,
        "update": update, "delete": delete}
    docs = {"list": f"The {kind.title}s of a user (those the acting party may see).",
            "get": f"One {kind.title}, or None (also when it is another tenant's).",
            "by_cloudstack_id": f"The {kind.title} with this CloudStack id, or None.",
            "create": f"Record a {kind.title}; its owner is ``user_id``.",
            "update": f"Change a {kind.title}'s updatable fields; None when absent.",
            "delete": f"Delete a {kind.title}; False when absent."}
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
