"""AkashOne's tables beyond users and RBAC: team members, activities, the catalogue, customer
records, the twenty resource kinds and usage.

Each record is validated by the storage API's own input model (camelCase fields read as
snake_case), with the API's derivations (an address's state code, a resource's generated
values); what AkashOne computed and kept (a certificate's expiry, a bucket's keys) is taken
from the record. References name records imported before (``_ref``), so tables are imported
in dependency order (``TABLES``).
"""

from __future__ import annotations

import functools
import graphlib
import re
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import akashone_es.storage  # noqa: F401 - before the kinds: the storage imports them
from akashone_es import gst
from akashone_es.domain import billing as billing_domain
from akashone_es.domain import catalog as catalog_domain
from akashone_es.domain import identity as identity_domain
from akashone_es.domain import usage as usage_domain
from akashone_es.domain.base import Aggregate
from akashone_es.domain.resources import Resource
from akashone_es.legacy.base import Refused, _moment, legacy_id
from akashone_es.resources import KINDS
from akashone_es.storage import billing_inputs as bi
from akashone_es.storage import inputs as i
from akashone_es.storage.customers import address_state_name
from akashone_es.storage.flags import InsertFeatureFlag
from akashone_es.storage.resources import STATEMENTS
from akashone_es.storage.teams import _token_hash

if TYPE_CHECKING:
    from akashone_es.resources.kind import Kind

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake(name: str) -> str:
    """``addressLine1`` -> ``address_line1``."""
    return _CAMEL.sub("_", name).lower()


def camel(name: str) -> str:
    """``address_line1`` -> ``addressLine1``."""
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def resource_order() -> list[Kind]:
    """The resource kinds with every kind after those it names (its parent, its refs)."""
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for kind in KINDS.values():
        named = set(kind.refs.values()) | ({kind.parent.kind} if kind.parent else set())
        named |= {target for (owner, _), target in COMPUTED_REFS.items() if owner == kind.name}
        sorter.add(kind.name, *sorted(named))
    return [KINDS[name] for name in sorter.static_order()]


#: a computed text column's bound (keys, endpoints, issuers, paths)
TEXT_MAX = 4096
#: computed columns naming another resource (kind, column) -> kind (set by actions)
COMPUTED_REFS = {("volume", "attached_vm_id"): "virtual_machine"}

#: the tables of a dump, in the order they are imported (a record names only earlier ones)
IDENTITY_TABLES = ("users", "permissions", "roles", "rolePermissions", "userRoles",
                   "teamMembers", "userActivities")
RECORD_TABLES = ("hsnCodes", "servicePlans", "discountCoupons", "featureFlags",
                 "billingAddresses", "paymentMethods")
RESOURCE_TABLES = {camel(kind.plural): kind for kind in resource_order()}
USAGE_TABLES = ("usageRecords",)
TABLES = (*IDENTITY_TABLES, *RECORD_TABLES, *RESOURCE_TABLES, *USAGE_TABLES)


def _values(record: dict[str, Any], *skip: str) -> dict[str, Any]:
    """The record's fields in snake_case, without ``id`` and the ``skip`` ones."""
    return {snake(k): v for k, v in record.items() if k != "id" and k not in skip}


def _only(values: dict[str, Any], model: Any) -> dict[str, Any]:
    """The values an input model takes (AkashOne's other columns are checked apart)."""
    return {k: v for k, v in values.items() if k in model.model_fields}


class RecordTables:
    """The handlers of ``RECORD_TABLES``, ``RESOURCE_TABLES`` and the rest (mixed into
    ``Importer``, which has what they use)."""

    if TYPE_CHECKING:
        storage: Any
        ids: dict[tuple[str, str], UUID]
        people: dict[str, Any]
        orgs: dict[UUID, UUID | None]
        started: datetime

        def _ref(self, table: str, source: Any, what: str) -> UUID: ...
        def _exists(self, oid: UUID) -> bool: ...
        def _add(self, aggregate: Aggregate, table: str, source: str) -> None: ...
        def _organization(self, owner_source: str, people: dict[str, Any]) -> UUID: ...

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], bool]]:
        found: dict[str, Callable[[dict[str, Any]], bool]] = {
            "teamMembers": self._team_member, "userActivities": self._activity,
            "hsnCodes": lambda r: self._catalog(r, "hsnCodes", catalog_domain.HsnCode,
                                                bi.InsertHsnCode),
            "servicePlans": self._service_plan, "discountCoupons": self._coupon,
            "featureFlags": lambda r: self._catalog(r, "featureFlags",
                                                    catalog_domain.FeatureFlag,
                                                    InsertFeatureFlag, "updatedAt"),
            "billingAddresses": self._address, "paymentMethods": self._payment_method,
            "usageRecords": self._usage}
        for table, kind in RESOURCE_TABLES.items():
            found[table] = functools.partial(self._resource, kind)
        return found

    # -- one record, one aggregate ---------------------------------------------------------
    def _new(self, table: str, record: dict[str, Any], aggregate: type[Aggregate],
             created: datetime | None = None, **event: Any) -> bool:
        """Append ``aggregate``'s Imported event for ``record`` (False: already in the log)."""
        source = str(record["id"])
        oid = legacy_id(table, source)
        when = created or self._created(record)
        self.ids[(table, source)] = oid
        if self._exists(oid):
            return False
        self._add(aggregate._create(aggregate.Imported, id=oid, timestamp=when,  # type: ignore[attr-defined]
                                    source=f"{table}:{source}", **event), table, source)
        return True

    def _created(self, record: dict[str, Any], name: str = "createdAt") -> datetime:
        moment = _moment(record, name)
        assert moment is not None  # noqa: S101 - required, so given
        return moment

    def _owner(self, record: dict[str, Any], field: str = "userId"
               ) -> tuple[UUID, UUID | None]:
        """The imported user a record belongs to, and that user's organization."""
        user = self._ref("users", record.get(field), field)
        return user, self.orgs.get(user)

    def _default_once(self, table: str, user: UUID, wants: bool) -> None:
        """AkashOne has no unique default per user: a second default is a defect."""
        if wants:
            if (f"{table}-default", str(user)) in self.ids:
                raise Refused("isDefault: the user already has a default (AkashOne does not "
                              "keep one default per user)")
            self.ids[(f"{table}-default", str(user))] = user

    # -- identity --------------------------------------------------------------------------
    def _team_member(self, record: dict[str, Any]) -> bool:
        organization = self._organization(str(record.get("organizationId")), self.people) \
            if record.get("organizationId") else None
        invited_by = self._ref("users", record.get("invitedBy"), "invitedBy")
        member = i.parse(i.InsertTeamMember, {
            "email": record.get("email"), "organization_id": organization,
            "invited_by": invited_by, "status": record.get("status") or "invited"})
        user = record.get("userId")
        user_id = self._ref("users", user, "userId") if user else None
        if user_id is None and member.status != "invited":
            raise Refused(f"status: {member.status} without a userId (only an invitation "
                          "not yet accepted has no user)")
        token = record.get("invitationToken")
        joined = _moment(record, "joinedAt", required=False)
        return self._new("teamMembers", record, identity_domain.TeamMember,
                         self._created(record, "invitedAt"), email=str(member.email),
                         organization_id=str(organization), invited_by=str(invited_by),
                         token_hash=_token_hash(token) if isinstance(token, str) and token
                         and user_id is None else "", status=member.status,
                         identity_unique=True, user_id=str(user_id) if user_id else None,
                         token=self.storage.secrets.seal(token) if isinstance(token, str)
                         and token and user_id is None else None,
                         joined_at=joined or (self._created(record, "invitedAt")
                                              if user_id else None))

    def _activity(self, record: dict[str, Any]) -> bool:
        user, _ = self._owner(record)
        data = i.parse(i.InsertUserActivity, {**_only(_values(record), i.InsertUserActivity),
                                              "user_id": user})
        return self._new("userActivities", record, identity_domain.Activity,
                         user_id=str(user), username=data.username, action=data.action,
                         resource_type=data.resource_type, resource_id=data.resource_id,
                         resource_name=data.resource_name, ip_address=data.ip_address,
                         user_agent=data.user_agent, details=data.metadata)

    # -- the catalogue ---------------------------------------------------------------------
    def _catalog(self, record: dict[str, Any], table: str, aggregate: type[Aggregate],
                 model: Any, *skip: str, **extra: Any) -> bool:
        values = _values(record, "createdAt", *skip)
        fields = i.parse(model, _only({**values, **extra}, model)).model_dump(mode="json")
        return self._new(table, record, aggregate, fields=fields)

    def _service_plan(self, record: dict[str, Any]) -> bool:
        org = record.get("organizationId")
        organization = self._organization(str(org), self.people) if org else None
        return self._catalog(record, "servicePlans", catalog_domain.ServicePlan,
                             bi.InsertServicePlan, "updatedAt", organizationId=organization)

    def _coupon(self, record: dict[str, Any]) -> bool:
        coupon = i.parse(bi.InsertDiscountCoupon, _only(_values(record), bi.InsertDiscountCoupon))
        used = record.get("timesUsed", 0)
        if isinstance(used, bool) or not isinstance(used, int) or used < 0:
            raise Refused("timesUsed: must be a whole number from 0")
        if coupon.max_uses is not None and used > coupon.max_uses:
            raise Refused(f"timesUsed: {used} is above maxUses {coupon.max_uses} (AkashOne's "
                          "increment does not check the limit)")
        creator = record.get("createdBy")
        created_by = self._ref("users", creator, "createdBy") if creator else None
        fields = {**coupon.model_dump(mode="json"), "times_used": used,
                  "created_by": str(created_by) if created_by else None}
        return self._new("discountCoupons", record, catalog_domain.DiscountCoupon,
                         fields=fields)

    # -- customer records ------------------------------------------------------------------
    def _address(self, record: dict[str, Any]) -> bool:
        user, _ = self._owner(record)
        address = i.parse(bi.InsertBillingAddress,
                          {**_only(_values(record), bi.InsertBillingAddress), "user_id": user})
        fields = address.model_dump(mode="json", exclude={"user_id"})
        fields["state_code"] = gst.address_pos_code(country=address.country,
                                                    state_code=address.state_code)
        fields["state"] = address_state_name(fields["state"], fields["state_code"],
                                                 address.country)
        self._default_once("billingAddresses", user, address.is_default)
        return self._new("billingAddresses", record, billing_domain.BillingAddress,
                         user_id=str(user), fields=fields)

    def _payment_method(self, record: dict[str, Any]) -> bool:
        user, _ = self._owner(record)
        method = i.parse(bi.InsertPaymentMethod,
                         {**_only(_values(record), bi.InsertPaymentMethod), "user_id": user})
        self._default_once("paymentMethods", user, method.is_default)
        return self._new("paymentMethods", record, billing_domain.PaymentMethod,
                         user_id=str(user),
                         fields=method.model_dump(mode="json", exclude={"user_id"}))

    # -- resources -------------------------------------------------------------------------
    def _resource(self, kind: Kind, record: dict[str, Any]) -> bool:
        table = camel(kind.plural)
        user, organization = self._owner(record)
        values = _values(record)
        for field, target in [*kind.refs.items(),
                              *([(kind.parent.field, kind.parent.kind)] if kind.parent else [])]:
            if values.get(field) is not None:
                values[field] = self._ref(camel(KINDS[target].plural), values[field],
                                          camel(field))
        model = STATEMENTS[kind.name].create_input
        parsed: Any = i.parse(model, {**_only(values, model), "user_id": user})
        fields = parsed.model_dump(mode="json", exclude={"user_id"})
        kept = {c: values[c] for c in kind.computed if values.get(c) is not None}
        for (owner, column), target in COMPUTED_REFS.items():
            if owner == kind.name and column in kept:
                kept[column] = str(self._ref(camel(KINDS[target].plural), kept[column],
                                             camel(column)))
        try:
            if kind.on_create is not None:
                fields = kind.on_create(fields)
            if kind.derive is not None:
                fields = kind.derive(fields)
        except (ValueError, KeyError, TypeError) as exc:
            raise Refused(f"{kind.title}: {exc}") from None
        fields.update(self._computed(kind, kept))
        if kind.lifecycle is not None:
            state = values.get(kind.lifecycle.field) or kind.lifecycle.initial
            states = kind.lifecycle.states()
            if state not in states:
                raise Refused(f"{camel(kind.lifecycle.field)}: {str(state)[:40]!r} is not a "
                              f"state of a {kind.title} ({', '.join(sorted(states))})")
            fields[kind.lifecycle.field] = state
        fields.update(self.storage._resolve_refs(kind, fields, user, set(kind.refs)))
        if kind.parent is not None:
            self.storage._parent_of(kind, fields[kind.parent.field], user)
        for name in kind.secrets:
            if fields.get(name) is not None:
                fields[name] = self.storage.secrets.seal(fields[name])
        return self._new(table, record, Resource, self._created(record, camel(kind.created_column)),
                         kind=kind.name, user_id=str(user),
                         organization_id=str(organization) if organization else None,
                         fields=fields, metered_from=self.started)

    def _computed(self, kind: Kind, kept: dict[str, Any]) -> dict[str, Any]:
        """What AkashOne computed and kept, checked against its column's type."""
        checked: dict[str, Any] = {}
        for column, value in kept.items():
            sql_type = kind.computed[column].split()[0]
            name = camel(column)
            if sql_type in ("bigint", "integer"):
                if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2**63:
                    raise Refused(f"{name}: must be a whole number")
                checked[column] = value
            elif sql_type == "timestamptz":
                moment = _moment({name: value}, name, future=True)  # an expiry
                checked[column] = moment.isoformat() if moment else None
            elif not isinstance(value, str) or len(value) > TEXT_MAX or "\x00" in value:
                raise Refused(f"{name}: must be text of at most {TEXT_MAX} characters")
            else:
                checked[column] = value
        return checked

    # -- usage -----------------------------------------------------------------------------
    def _usage(self, record: dict[str, Any]) -> bool:
        if record.get("billed") or record.get("invoiceId"):
            raise Refused("billed: usage already on an AkashOne invoice is imported with its "
                          "invoice (invoices are not imported yet)")
        user, organization = self._owner(record)
        usage = i.parse(bi.InsertUsageRecord,
                        {**_only(_values(record), bi.InsertUsageRecord), "user_id": user})
        if usage.unit is None or usage.unit_price is None:
            raise Refused("unit, unitPrice: AkashOne's records carry both")
        problem = bi.line_amount_problem(usage.quantity, usage.unit_price)
        if problem:
            raise Refused(f"quantity: {problem}")
        total = record.get("totalCost")
        if total is not None and total != usage.quantity * usage.unit_price:
            raise Refused(f"totalCost: {total} is not quantity x unitPrice "
                          f"({usage.quantity * usage.unit_price})")
        created = self._created(record)
        return self._new(
            "usageRecords", record, usage_domain.UsageRecord, created, user_id=str(user),
            organization_id=str(organization) if organization else None,
            resource_type=usage.resource_type, resource_id=usage.resource_id,
            resource_name=usage.resource_name, metric_type=usage.metric_type,
            quantity=usage.quantity, unit=usage.unit, unit_price=usage.unit_price,
            total_cost=usage.quantity * usage.unit_price,
            recorded_at=usage.recorded_at or created, period_start=usage.period_start,
            period_end=usage.period_end, metadata_json=usage.metadata)

