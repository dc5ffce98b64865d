"""AkashOne's tables beyond users and RBAC: team members, activities, the catalogue, customer
records, the nineteen resource kinds, invoices with their line items, payments, tax
calculations and usage.

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
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import pydantic

import akashone_es.storage  # noqa: F401 - before the kinds: the storage imports them
from akashone_es import gst
from akashone_es.domain import billing as billing_domain
from akashone_es.domain import catalog as catalog_domain
from akashone_es.domain import identity as identity_domain
from akashone_es.domain import payments as payments_domain
from akashone_es.domain import usage as usage_domain
from akashone_es.domain.base import Aggregate
from akashone_es.domain.resources import Resource
from akashone_es.errors import AkashOneError
from akashone_es.legacy.base import Refused, _moment, _not_before, _text, legacy_id
from akashone_es.money import round_half_up
from akashone_es.personal import MARKER
from akashone_es.resources import KINDS
from akashone_es.storage import billing_inputs as bi
from akashone_es.storage import inputs as i
from akashone_es.storage import limits as lim
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


def named_by(kind: Kind) -> list[tuple[str, str]]:
    """The (field, kind) pairs a record of ``kind`` names other resources by: its refs, its
    parent and the computed columns naming one (``COMPUTED_REFS``)."""
    return [*kind.refs.items(), *([(kind.parent.field, kind.parent.kind)] if kind.parent else []),
            *[(column, target) for (owner, column), target in COMPUTED_REFS.items()
              if owner == kind.name]]


def resource_order() -> list[Kind]:
    """The resource kinds with every kind after those it names (its parent, its refs)."""
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for kind in KINDS.values():
        sorter.add(kind.name, *sorted({target for _, target in named_by(kind)}))
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
BILLING_TABLES = ("invoices", "invoiceLineItems", "paymentTransactions", "taxCalculations",
                  "usageRecords")
TABLES = (*IDENTITY_TABLES, *RECORD_TABLES, *RESOURCE_TABLES, *BILLING_TABLES)
INVOICE_STATUSES = ("draft", "issued", "paid", "overdue", "cancelled")
#: an AkashOne invoice's amounts (integer paise)
INVOICE_AMOUNTS = ("subtotalAmount", "discountAmount", "cgstAmount", "sgstAmount",
                   "igstAmount", "totalAmount")
#: what a draft's buyer carries (as ``storage/invoices.py`` keeps it)
BUYER = {"gst_number", "state_code", "state", "country", "is_sez", "address_line1", "city",
         "postal_code"}
#: AkashOne names the place of supply (a state's name): its code
STATE_NAMES = {name.casefold(): code for code, name in gst.STATE_CODES.items()}


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
        super_admins: set[UUID]
        started: datetime
        lines: dict[str, list[Any]]
        new_lines: set[str]
        pending: dict[UUID, Aggregate]
        registered: dict[UUID, int]
        #: the billing addresses read ahead for the invoices table
        addresses: dict[UUID, Any]

        def _ref(self, table: str, source: Any, what: str) -> UUID: ...
        def _exists(self, oid: UUID) -> bool: ...
        def _add(self, aggregate: Aggregate, table: str, source: str) -> None: ...
        def _organization(self, named: str, people: dict[str, Any], *,
                          joining: str | None = None) -> UUID: ...
        def _load(self, oid: UUID) -> Any: ...

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], bool]]:
        found: dict[str, Callable[[dict[str, Any]], bool]] = {
            "teamMembers": self._team_member, "userActivities": self._activity,
            "hsnCodes": lambda r: self._catalog(r, "hsnCodes", catalog_domain.HsnCode,
                                                bi.InsertHsnCode),
            "servicePlans": self._service_plan, "discountCoupons": self._coupon,
            "featureFlags": self._flag,
            "billingAddresses": self._address, "paymentMethods": self._payment_method,
            "invoices": self._invoice, "invoiceLineItems": self._invoice_line,
            "paymentTransactions": self._transaction, "taxCalculations": self._tax,
            "usageRecords": self._usage}
        for table, kind in RESOURCE_TABLES.items():
            found[table] = functools.partial(self._resource, kind)
        return found

    def read_ahead(self, table: str, records: list[Any]) -> AbstractContextManager[None]:
        """For a resource table, the rows its records name (their parents, the resources
        they name) read at once before its records are checked (``_resource``); for the
        invoices, the billing addresses they name (``_invoice``)."""
        if table == "invoices":
            return self._addresses_ahead(records)
        kind = RESOURCE_TABLES.get(table)
        if kind is None:
            return nullcontext()
        wanted: dict[str, list[UUID]] = {}
        for field, target in named_by(kind):
            plural = camel(KINDS[target].plural)
            for record in records:
                if isinstance(record, dict) and record.get(camel(field)) is not None:
                    found = self.ids.get((plural, str(record[camel(field)])))
                    if found is not None:
                        wanted.setdefault(target, []).append(found)
        return self.storage._rows_read_ahead(wanted) if wanted else nullcontext()

    @contextmanager
    def _addresses_ahead(self, records: list[Any]) -> Iterator[None]:
        """The addresses the invoices name, saved before them, in one read (an address not
        found is read when asked for, as before)."""
        named = (self.ids.get(("billingAddresses", str(record.get("billingAddressId"))))
                 for record in records if isinstance(record, dict))
        self.addresses = self.storage._billing_addresses(a for a in named if a is not None)
        try:
            yield
        finally:
            self.addresses = {}

    def _billing_address(self, address_id: UUID) -> Any:
        found = self.addresses.get(address_id)
        return found if found is not None else self.storage.get_billing_address(address_id)

    # -- one record, one aggregate ---------------------------------------------------------
    def _new(self, table: str, record: dict[str, Any], aggregate: type[Aggregate],
             created: datetime | None = None, **event: Any) -> bool:
        """Append ``aggregate``'s Imported event for ``record`` (False: already in the log)."""
        source = str(record["id"])
        oid = legacy_id(table, source)
        when = created or self._created(record)
        if self._exists(oid):
            self.ids[(table, source)] = oid
            return False
        self._add(aggregate._create(aggregate.Imported, id=oid, timestamp=when,  # type: ignore[attr-defined]
                                    source=f"{table}:{source}", **event), table, source)
        self.ids[(table, source)] = oid  # once it is whole
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
        # an erased member (the way back writes the marker) is checked with a stand-in
        values, erased = stand_ins({"email": record.get("email")},
                                   {"email": "erased@example.com"})
        member = i.parse(i.InsertTeamMember, {
            **values, "organization_id": organization,
            "invited_by": invited_by, "status": record.get("status") or "invited"})
        user = record.get("userId")
        user_id = self._ref("users", user, "userId") if user else None
        if user_id is None and member.status != "invited":
            raise Refused(f"status: {member.status} without a userId (only an invitation "
                          "not yet accepted has no user)")
        token = _free_text(record, "invitationToken", lim.SECRET_MAX)
        if token is not None and len(token) < 16:
            raise Refused("invitationToken: at least 16 characters")
        if user_id is not None and self.orgs.get(user_id) != organization:
            raise Refused("userId: the user is not of this organization")
        if self.orgs.get(invited_by) != organization and invited_by not in self.super_admins:
            raise Refused("invitedBy: the inviter is not of this organization (nor a super "
                          "admin)")
        joined = _moment(record, "joinedAt", required=False)
        return self._new("teamMembers", record, identity_domain.TeamMember,
                         self._created(record, "invitedAt"),
                         email=MARKER if erased else str(member.email),
                         organization_id=str(organization), invited_by=str(invited_by),
                         token_hash=_token_hash(token) if token and user_id is None else "",
                         status=member.status,
                         identity_unique=True, user_id=str(user_id) if user_id else None,
                         token=self.storage.secrets.seal(token) if token and user_id is None
                         else None,
                         joined_at=joined or (self._created(record, "invitedAt")
                                              if user_id else None))

    def _activity(self, record: dict[str, Any]) -> bool:
        """An activity; one without a user (AkashOne's system actions) stays so."""
        user = self._owner(record)[0] if record.get("userId") is not None else None
        data = i.parse(i.InsertUserActivity, {**_only(_values(record), i.InsertUserActivity),
                                              "user_id": user})
        return self._new("userActivities", record, identity_domain.Activity,
                         user_id=str(user) if user else None, username=data.username,
                         action=data.action,
                         resource_type=data.resource_type, resource_id=data.resource_id,
                         resource_name=data.resource_name, ip_address=data.ip_address,
                         user_agent=data.user_agent, details=data.metadata)

    # -- the catalogue ---------------------------------------------------------------------
    def _catalog(self, record: dict[str, Any], table: str, aggregate: type[Aggregate],
                 model: Any, *skip: str, **extra: Any) -> bool:
        values = _values(record, "createdAt", *skip)
        fields = i.parse(model, _only({**values, **extra}, model)).model_dump(mode="json")
        return self._new(table, record, aggregate, fields=fields, stamps=_updated(record))

    def _flag(self, record: dict[str, Any]) -> bool:
        """A feature flag; one our seeding made under the same key takes AkashOne's values
        (an ordinary update: AkashOne's switches are the ones its users had)."""
        flag = i.parse(InsertFeatureFlag, _only(_values(record), InsertFeatureFlag))
        seeded = self.storage.get_feature_flag_by_key(flag.key)
        if seeded is None or seeded.id == legacy_id("featureFlags", str(record["id"])):
            return self._catalog(record, "featureFlags", catalog_domain.FeatureFlag,
                                 InsertFeatureFlag, "updatedAt")
        self.ids[("featureFlags", str(record["id"]))] = seeded.id
        values = flag.model_dump(mode="json")
        changes = {k: v for k, v in values.items() if getattr(seeded, k) != v}
        if not changes:
            return False
        aggregate = self._load(seeded.id)
        aggregate.update(changes)
        self._add(aggregate, "featureFlags", str(record["id"]))
        return True

    def _service_plan(self, record: dict[str, Any]) -> bool:
        org = record.get("organizationId")
        organization = self._organization(str(org), self.people) if org else None
        return self._catalog(record, "servicePlans", catalog_domain.ServicePlan,
                             bi.InsertServicePlan, "updatedAt",
                             organization_id=str(organization) if organization else None)

    def _coupon(self, record: dict[str, Any]) -> bool:
        coupon = i.parse(bi.InsertDiscountCoupon, _only(_values(record), bi.InsertDiscountCoupon))
        used = record.get("timesUsed", 0)
        if isinstance(used, bool) or not isinstance(used, int) or not 0 <= used <= lim.INT4_MAX:
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
        values, erased = stand_ins(_only(_values(record), bi.InsertBillingAddress),
                                   ADDRESS_STAND_INS)
        address = i.parse(bi.InsertBillingAddress, {**values, "user_id": user})
        fields = {**address.model_dump(mode="json", exclude={"user_id"}),
                  **dict.fromkeys(erased, MARKER)}
        fields["state_code"] = gst.address_pos_code(country=address.country,
                                                    state_code=address.state_code)
        fields["state"] = address_state_name(fields["state"], fields["state_code"],
                                                 address.country)
        self._default_once("billingAddresses", user, address.is_default)
        return self._new("billingAddresses", record, billing_domain.BillingAddress,
                         user_id=str(user), fields=fields, stamps=_updated(record))

    def _payment_method(self, record: dict[str, Any]) -> bool:
        user, _ = self._owner(record)
        values, erased = stand_ins(_only(_values(record), bi.InsertPaymentMethod),
                                   {"upi_id": "erased@erased"})
        method = i.parse(bi.InsertPaymentMethod, {**values, "user_id": user})
        self._default_once("paymentMethods", user, method.is_default)
        return self._new("paymentMethods", record, billing_domain.PaymentMethod,
                         user_id=str(user), stamps=_updated(record),
                         fields={**method.model_dump(mode="json", exclude={"user_id"}),
                                 **dict.fromkeys(erased, MARKER)})

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
        parsed: Any = i.parse(model, {**_only(values, model), "user_id": user}, i.HISTORY)
        fields = parsed.model_dump(mode="json", exclude={"user_id"})
        kept = self._kept(kind, values, user)
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
            if not isinstance(state, str) or state not in states:
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
                         fields=fields, metered_from=self.started,
                         stamps=_updated(record, kind.stamp) if kind.stamp else {})

    def _kept(self, kind: Kind, values: dict[str, Any], user: UUID) -> dict[str, Any]:
        """The computed values AkashOne kept; one naming a resource (a volume's VM) names
        one of the same owner's."""
        kept = {c: values[c] for c in kind.computed if values.get(c) is not None}
        for (owner, column), target in COMPUTED_REFS.items():
            if owner == kind.name and column in kept:
                named = self._ref(camel(KINDS[target].plural), kept[column], camel(column))
                row = self.storage._resource(KINDS[target], named)
                if row is None or row.user_id != user:
                    raise Refused(f"{camel(column)}: not a {KINDS[target].title} of this user")
                kept[column] = str(named)
        return kept

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

    # -- invoices, payments, tax, usage ---------------------------------------------------
    def _invoice(self, record: dict[str, Any]) -> bool:
        """An invoice as AkashOne numbered, taxed and settled it: its amounts must add up
        (and to its line items, saved with it), but are never recomputed."""
        user, organization = self._owner(record)
        address_id = self._ref("billingAddresses", record.get("billingAddressId"),
                               "billingAddressId")
        address = self._billing_address(address_id)
        if address is None or address.user_id != user:
            raise Refused("billingAddressId: another user's address")
        number = self._invoice_number(record)
        status = record.get("status") or "draft"
        if status not in INVOICE_STATUSES:
            raise Refused(f"status: one of {', '.join(INVOICE_STATUSES)}")
        amounts = {name: _amount(record, name) for name in INVOICE_AMOUNTS}
        taxable = amounts["subtotalAmount"] - amounts["discountAmount"]
        _tax_adds_up(record.get("taxType"), taxable, amounts)
        lines = self._invoice_lines(record, amounts["subtotalAmount"])
        rate = record.get("gstRate", 18)
        if isinstance(rate, bool) or not isinstance(rate, int) or not 0 <= rate <= 28:
            raise Refused("gstRate: a whole percentage from 0 to 28")
        place = self._place(record)
        created = self._created(record)
        start, end = (self._created(record, "billingPeriodStart"),
                      self._created(record, "billingPeriodEnd"))
        if end < start:
            raise Refused("billingPeriodEnd: before billingPeriodStart")
        paid_at = _moment(record, "paidAt", required=status == "paid")
        buyer = address.model_dump(mode="json", include=BUYER)
        person = self.people.get(str(record.get("userId")), {})
        buyer["gst_number"] = address.gst_number or person.get("gstNumber")
        buyer["name"] = person.get("username")
        notes = _free_text(record, "notes", lim.DESCRIPTION_MAX)
        self.ids[("invoice-number", number.upper())] = user
        updated = _moment(record, "updatedAt", required=False) or created
        new = self._new(
            "invoices", record, billing_domain.Invoice, created, user_id=str(user),
            organization_id=str(organization) if organization else None,
            billing_address_id=str(address_id), buyer=buyer, billing_period_start=start,
            billing_period_end=end, due_date=_moment(record, "dueDate", future=True),
            currency="INR", notes=notes, lines=[], invoice_number=number,
            fy=gst.financial_year(created), status=status, akashone={
                **place, "issued_at": None if status == "draft" else created.isoformat(),
                "rate_bp": rate * 100,
                "hsn_code": _pattern(record, "hsnCode", r"\d{4,8}", "4 to 8 digits"),
                "sac_code": _pattern(record, "sacCode", r"99\d{4}", "99 and 4 digits"),
                "amount_paid": amounts["totalAmount"] if status == "paid" else 0,
                "paid_at": paid_at.isoformat() if paid_at else None,
                "einvoice": _einvoice(record), "updated_at": updated.isoformat(), "totals": {
                    "subtotal_amount": amounts["subtotalAmount"],
                    "discount_amount": amounts["discountAmount"], "taxable_amount": taxable,
                    "cgst_amount": amounts["cgstAmount"], "sgst_amount": amounts["sgstAmount"],
                    "utgst_amount": 0, "igst_amount": amounts["igstAmount"],
                    "round_off_amount": 0, "total_amount": amounts["totalAmount"]}})
        self._add_lines(new, record, lines)
        return new

    def _add_lines(self, new: bool, record: dict[str, Any],
                   lines: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """A new invoice's line items, as events of it (saved with it)."""
        invoice = self._load(self.ids[("invoices", str(record["id"]))]) if new else None
        for line, values in lines:
            self.ids[("invoiceLineItems", str(line["id"]))] = UUID(values["id"])
            if invoice is not None:
                self.new_lines.add(values["id"])
                invoice.trigger_event(billing_domain.Invoice.LineImported, line=values,
                                      source=f"invoiceLineItems:{line['id']}",
                                      timestamp=_not_before(self._created(line), invoice))

    def _invoice_number(self, record: dict[str, Any]) -> str:
        number = _text(record, "invoiceNumber")
        problem = gst.document_number_error(number)
        if problem:
            raise Refused(f"invoiceNumber: {problem}")
        if ("invoice-number", number.upper()) in self.ids:
            raise Refused(f"invoiceNumber: {number} is another invoice's too (AkashOne "
                          "numbered by counting, and two invoices made at once took one)")
        return number

    def _invoice_lines(self, record: dict[str, Any], subtotal: int
                       ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """The invoice's line items, each checked; they add up to its subtotal."""
        lines = []
        for line in self.lines.get(str(record["id"]), []):
            try:
                lines.append((line, self._line_values(line)))
            except (Refused, AkashOneError, pydantic.ValidationError) as exc:
                raise Refused(f"invoiceLineItems {str(line.get('id'))[:60]}: "
                              f"{_reason(exc)}") from None
        if lines and sum(v["amount"] for _, v in lines) != subtotal:
            raise Refused("subtotalAmount: is not the sum of its line items")
        return lines

    def _place(self, record: dict[str, Any]) -> dict[str, Any]:
        """Where the supply went (AkashOne names the state) and from where: our supplier
        GSTIN's state, which decides the tax type."""
        tax_type = record.get("taxType")
        pos_code = STATE_NAMES.get(str(record.get("placeOfSupply")).casefold())
        if pos_code is None:
            raise Refused(f"placeOfSupply: {str(record.get('placeOfSupply'))[:40]!r} names "
                          "no Indian state or union territory")
        supplier, supplier_state = self.storage._supplier()
        if (pos_code == supplier_state) != (tax_type == "intra_state"):
            raise Refused(f"taxType: {tax_type} for a supply from state {supplier_state} to "
                          f"{pos_code} (the state of AKASHONE_SUPPLIER_GSTIN decides)")
        return {"supplier_gstin": supplier, "supplier_state_code": supplier_state,
                "place_of_supply": record.get("placeOfSupply"),
                "place_of_supply_code": pos_code, "tax_type": tax_type}

    def _line_values(self, record: dict[str, Any]) -> dict[str, Any]:
        """A line item as its invoice's event carries it (its amount checked)."""
        _text(record, "id")
        line = i.parse(bi.InsertInvoiceLine, _only(_values(record), bi.InsertInvoiceLine))
        amount = _amount(record, "amount")
        if amount != round_half_up(line.quantity * line.unit_price):
            raise Refused(f"amount: {amount} is not quantity x unitPrice")
        self._created(record)
        return {**line.model_dump(mode="json"), "amount": amount,
                "id": str(legacy_id("invoiceLineItems", str(record["id"])))}

    def _invoice_line(self, record: dict[str, Any]) -> bool:
        """A line item: imported with its invoice (``_invoice``); here it is counted, or
        skipped with its own defect or its invoice's."""
        values = self._line_values(record)
        self._ref("invoices", record.get("invoiceId"), "invoiceId")
        if ("invoiceLineItems", str(record["id"])) not in self.ids:
            raise Refused("invoiceId: the invoice's line items do not name it")
        return values["id"] in self.new_lines

    def _billed(self, record: dict[str, Any]) -> tuple[UUID, UUID]:
        """The invoice a record names, and the user it and the record belong to."""
        invoice_id = self._ref("invoices", record.get("invoiceId"), "invoiceId")
        user, _ = self._owner(record)
        if self._load(invoice_id).user_id != str(user):
            raise Refused("invoiceId: another user's invoice")
        return invoice_id, user

    def _transaction(self, record: dict[str, Any]) -> bool:
        invoice_id, user = self._billed(record)
        method = record.get("paymentMethodId")
        method_id = self._ref("paymentMethods", method, "paymentMethodId") if method else None
        data = i.parse(bi.InsertPaymentTransaction, {
            **_only(_values(record), bi.InsertPaymentTransaction), "invoice_id": invoice_id,
            "user_id": user, "payment_method_id": method_id})
        fields = data.model_dump(mode="json", exclude={"invoice_id", "user_id",
                                                       "gateway_response"})
        extra: dict[str, Any] = {}
        for name, limit in (("errorCode", lim.CODE_MAX), ("errorMessage", lim.DESCRIPTION_MAX)):
            value = _free_text(record, name, limit)
            if value is not None:
                extra[snake(name)] = value
        completed = _moment(record, "completedAt", required=False)
        if completed:
            extra["completed_at"] = completed.isoformat()
        if data.gateway_response is not None:
            extra["gateway_response"] = data.gateway_response
        created = self._created(record)
        initiated = _moment(record, "initiatedAt", required=False)
        if initiated and initiated != created:  # the event's time is the record's creation
            extra["initiated_at"] = initiated.isoformat()
        invoice = self._load(invoice_id) if data.status == "success" else None
        registered = self.registered.get(invoice_id, 0) + data.amount
        if invoice is not None and max(invoice.amount_paid, registered) > lim.PAISE_MAX:
            raise Refused(f"amount: the invoice's payments would come to more than "
                          f"{lim.PAISE_MAX} paise")
        new = self._new("paymentTransactions", record, payments_domain.PaymentTransaction,
                        created, invoice_id=str(invoice_id), user_id=str(user),
                        fields=fields, extra=extra)
        if new and invoice is not None:  # the invoice knows it, to refund it
            # AkashOne kept no amount paid: an invoice it marked paid comes in at its total,
            # any other at 0. Each payment it lists is registered once, and the amount paid
            # never falls below the sum registered, so refunding all of them ends at 0 (a
            # paid invoice charged twice, an AkashOne defect, is paid twice its total)
            self.registered[invoice.id] = registered
            paid = max(invoice.amount_paid, registered)
            invoice.trigger_event(
                billing_domain.Invoice.PaymentImported,
                transaction_id=str(self.ids[("paymentTransactions", str(record["id"]))]),
                amount=data.amount, amount_paid=paid, source=f"paymentTransactions:"
                f"{record['id']}", timestamp=_not_before(created, invoice))
            self.pending[invoice.id] = invoice  # counted with its transaction
        return new

    def _tax(self, record: dict[str, Any]) -> bool:
        invoice_id, user = self._billed(record)
        data = i.parse(bi.InsertTaxCalculation, {
            **_only(_values(record), bi.InsertTaxCalculation), "invoice_id": invoice_id,
            "user_id": user})
        return self._new("taxCalculations", record, payments_domain.TaxCalculation,
                         invoice_id=str(invoice_id), user_id=str(user),
                         fields=data.model_dump(mode="json", exclude={"invoice_id", "user_id"}))

    def _usage(self, record: dict[str, Any]) -> bool:
        billed = record.get("billed") or record.get("invoiceId")
        invoice_id = self._billed(record)[0] if billed else None
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
            period_end=usage.period_end, metadata_json=usage.metadata,
            invoice_id=str(invoice_id) if invoice_id else None)


def _amount(record: dict[str, Any], name: str) -> int:
    """An amount in integer paise, as AkashOne keeps them."""
    value = record.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not (
            0 <= value <= lim.INVOICE_TOTAL_MAX):
        raise Refused(f"{name}: a whole number of paise from 0")
    return value


def _free_text(record: dict[str, Any], name: str, limit: int) -> str | None:
    """A text field checked by hand: at most ``limit`` characters PostgreSQL can store."""
    value = record.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise Refused(f"{name}: text of at most {limit} characters")
    problem = lim.text_problem(value)
    if problem:
        raise Refused(f"{name}: {problem}")
    return value


def _pattern(record: dict[str, Any], name: str, pattern: str, rule: str) -> str | None:
    value = record.get(name)
    if value is not None and (not isinstance(value, str) or not re.fullmatch(pattern, value)):
        raise Refused(f"{name}: {rule}")
    return value


def _reason(exc: Exception) -> str:
    """A refusal's reason, as the summary gives it."""
    if isinstance(exc, pydantic.ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                         for e in exc.errors())
    return str(exc)


def _tax_adds_up(tax_type: Any, taxable: int, amounts: dict[str, int]) -> None:
    """AkashOne's amounts add up, each tax head as its tax type takes."""
    if taxable < 0:
        raise Refused("discountAmount: above the subtotal")
    if tax_type == "intra_state":
        if amounts["igstAmount"] or amounts["cgstAmount"] != amounts["sgstAmount"]:
            raise Refused("taxType: intra_state takes equal CGST and SGST and no IGST")
    elif tax_type == "inter_state":
        if amounts["cgstAmount"] or amounts["sgstAmount"]:
            raise Refused("taxType: inter_state takes IGST only")
    else:
        raise Refused("taxType: intra_state or inter_state")
    total = taxable + amounts["cgstAmount"] + amounts["sgstAmount"] + amounts["igstAmount"]
    if amounts["totalAmount"] != total:
        raise Refused(f"totalAmount: {amounts['totalAmount']} is not subtotal - discount + "
                      f"taxes ({total})")


def _einvoice(record: dict[str, Any]) -> dict[str, Any]:
    """AkashOne's e-invoice placeholders (text, a time, a flag)."""
    einvoice: dict[str, Any] = {snake(k): _free_text(record, k, TEXT_MAX) for k in (
        "einvoiceIrn", "einvoiceAckNo", "einvoiceQrCode")}
    ack = _moment(record, "einvoiceAckDate", required=False)
    einvoice.update(einvoice_ack_date=ack.isoformat() if ack else None,
                    einvoice_enabled=record.get("einvoiceEnabled") is True)
    return einvoice


def _updated(record: dict[str, Any], column: str = "updated_at") -> dict[str, datetime]:
    """A record's later time (``updatedAt``, a resource's ``lastSynced``), when it has one."""
    moment = _moment(record, camel(column), required=False)
    return {column: moment} if moment else {}


#: what an erased person's address fields stand in as while the record is checked (the way
#: back to AkashOne writes them as the marker; they come back as the marker)
ADDRESS_STAND_INS = {"address_line1": "erased", "address_line2": None, "postal_code": "000",
                     "gst_number": None}


def stand_ins(values: dict[str, Any], replacements: dict[str, Any]
              ) -> tuple[dict[str, Any], list[str]]:
    """``values`` with each field that holds the erasure marker replaced for the checks, and
    the names of those fields (the record keeps the marker in them)."""
    erased = [name for name in replacements if values.get(name) == MARKER]
    return {**values, **{name: replacements[name] for name in erased}}, erased
