"""Customer records on the storage facade: billing addresses and payment methods."""


from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from uuid import UUID

from psycopg import sql
from pydantic import BaseModel

from akashone_es import context
from akashone_es.domain import billing as domain
from akashone_es.errors import (
    ConflictError,
    DuplicateError,
    NotFoundError,
    ValidationError,
)
from akashone_es.gst import (
    STATE_CODES,
    address_pos_code,
    is_india,
)
from akashone_es.storage import billing_inputs as bi
from akashone_es.storage import inputs as i
from akashone_es.storage.billing_base import BillingBase, retrying
from projections import billing_models as bm

R = TypeVar("R", bound=BaseModel)

Q = sql.SQL
ADDRESSES_OF = Q("SELECT * FROM billing_addresses WHERE user_id = %s ORDER BY created_at, id")
ADDRESS = Q("SELECT * FROM billing_addresses WHERE id = %s")
ADDRESSES = Q("SELECT * FROM billing_addresses WHERE id = ANY(%s)")
DEFAULT_ADDRESS = Q("SELECT * FROM billing_addresses WHERE user_id = %s AND is_default")
METHODS_OF = Q("SELECT * FROM payment_methods WHERE user_id = %s AND status <> 'removed'"
               " ORDER BY created_at, id")
METHOD = Q("SELECT * FROM payment_methods WHERE id = %s")
DEFAULT_METHOD = Q("SELECT * FROM payment_methods WHERE user_id = %s AND is_default")


class CustomerRecordsStorage(BillingBase):
    """The IStorage groups billing addresses (7) and payment methods (7)."""

    def _create_owned(self, cls: type[domain.OwnedRecord], model: type[R], table: str,
                      user_id: UUID, fields: dict[str, Any], wants_default: bool,
                      default_of: Callable[[UUID], Any]) -> R:
        """Create an address or payment method. A default one (or the user's first) clears
        the current default in the same save; if a racing writer made another default first,
        the partial unique index refuses this save and it is retried against the new state."""

        def attempt() -> R:
            current = default_of(user_id)
            values = {**fields, "is_default": wants_default or current is None}
            with context.command():
                aggregate = cls(user_id=str(user_id), fields=values)
                cleared = self._clear_default(cls, current) if (
                    values["is_default"] and current) else []
                try:
                    row = self._save_returning(model, (table, aggregate.id), *cleared,
                                               aggregate)
                except DuplicateError as exc:
                    if exc.field != "is_default":
                        raise
                    raise ConflictError("another default was set first") from None
            return self._must(row)

        return retrying(attempt)

    def _update_owned(self, cls: type[domain.OwnedRecord], model: type[R], table: str,
                      current: R, values: dict[str, Any]) -> R | None:
        if not values:
            return current
        row_id = current.id  # type: ignore[attr-defined]
        with context.command():
            aggregate = self._load(cls, row_id, cls.__name__)
            aggregate.update(values)
            row = self._save_returning(model, (table, row_id), aggregate)
        return row or self._one(model, sql.SQL("SELECT * FROM {} WHERE id = %s").format(
            sql.Identifier(table)), (row_id,))

    def _delete_owned(self, cls: type[domain.OwnedRecord], row_id: UUID) -> bool:
        with context.command():
            aggregate = self._load(cls, row_id, cls.__name__)
            aggregate.delete()
            self._save(aggregate)
        return True

    # -- billing addresses (7) ------------------------------------------------------------
    def get_billing_addresses(self, user_id: UUID | str) -> list[bm.BillingAddress]:
        user = self.get_user(user_id)
        return self._all(bm.BillingAddress, ADDRESSES_OF, (user.id,)) if user else []

    def get_billing_address(self, address_id: UUID | str) -> bm.BillingAddress | None:
        return self._owned(self._one(bm.BillingAddress, ADDRESS,
                                     (i.parse_id(address_id, "address_id"),)))

    def _billing_addresses(self, ids: Iterable[UUID]) -> dict[UUID, bm.BillingAddress]:
        """The addresses among ``ids`` that ``get_billing_address`` would return, in one
        read (internal: an import's read-ahead of the addresses its invoices name)."""
        rows = self._all(bm.BillingAddress, ADDRESSES, (list(dict.fromkeys(ids)),))
        visible = self._visible_users(row.user_id for row in rows)  # ``_owned``, at once
        return {row.id: row for row in rows if row.user_id in visible}

    def get_default_billing_address(self, user_id: UUID | str) -> bm.BillingAddress | None:
        user = self.get_user(user_id)
        return self._one(bm.BillingAddress, DEFAULT_ADDRESS, (user.id,)) if user else None

    def create_billing_address(self, data: bi.InsertBillingAddress | dict[str, Any]
                               ) -> bm.BillingAddress:
        """Add an address; a default one (or the user's first) clears the other defaults."""
        address = i.parse(bi.InsertBillingAddress, data)
        user = self._user_of(address.user_id)
        fields = address.model_dump(mode="json", exclude={"user_id"})
        fields["state_code"] = address_pos_code(country=address.country,
                                                state_code=address.state_code)
        fields["state"] = address_state_name(fields["state"], fields["state_code"],
                                             address.country)
        sez_check(address.is_sez, address.gst_number, user)
        return self._create_owned(domain.BillingAddress, bm.BillingAddress, "billing_addresses",
                                  user.id, fields, address.is_default,
                                  self.get_default_billing_address)

    def update_billing_address(self, address_id: UUID | str,
                               changes: bi.UpdateBillingAddress | dict[str, Any]
                               ) -> bm.BillingAddress | None:
        update = i.parse(bi.UpdateBillingAddress, changes)
        current = self.get_billing_address(address_id)
        if current is None:
            return None
        values = address_changes(current, update.model_dump(mode="json", exclude_unset=True))
        if values.get("is_sez", current.is_sez):
            sez_check(True, values.get("gst_number", current.gst_number),
                      self.get_user(current.user_id))
        return self._update_owned(domain.BillingAddress, bm.BillingAddress,
                                  "billing_addresses", current, values)

    def delete_billing_address(self, address_id: UUID | str) -> bool:
        current = self.get_billing_address(address_id)
        return current is not None and self._delete_owned(domain.BillingAddress, current.id)

    def set_default_billing_address(self, user_id: UUID | str,
                                    address_id: UUID | str) -> None:
        """Make one address the default; every other address of the user stops being one."""
        user = self._user_of(user_id)
        target = self.get_billing_address(address_id)
        if target is None or target.user_id != user.id:
            raise NotFoundError("billing_address", address_id, "address_id")
        self._set_default(domain.BillingAddress, target.id,
                          self.get_default_billing_address(user.id), "billing_address")

    # -- payment methods (7) --------------------------------------------------------------
    def get_payment_methods(self, user_id: UUID | str) -> list[bm.PaymentMethod]:
        user = self.get_user(user_id)
        return self._all(bm.PaymentMethod, METHODS_OF, (user.id,)) if user else []

    def get_payment_method(self, method_id: UUID | str) -> bm.PaymentMethod | None:
        return self._owned(self._one(bm.PaymentMethod, METHOD,
                                     (i.parse_id(method_id, "method_id"),)))

    def get_default_payment_method(self, user_id: UUID | str) -> bm.PaymentMethod | None:
        user = self.get_user(user_id)
        return self._one(bm.PaymentMethod, DEFAULT_METHOD, (user.id,)) if user else None

    def create_payment_method(self, data: bi.InsertPaymentMethod | dict[str, Any]
                              ) -> bm.PaymentMethod:
        method = i.parse(bi.InsertPaymentMethod, data)
        user = self._user_of(method.user_id)
        fields = method.model_dump(mode="json", exclude={"user_id"})
        return self._create_owned(domain.PaymentMethod, bm.PaymentMethod, "payment_methods",
                                  user.id, fields, method.is_default,
                                  self.get_default_payment_method)

    def update_payment_method(self, method_id: UUID | str,
                              changes: bi.UpdatePaymentMethod | dict[str, Any]
                              ) -> bm.PaymentMethod | None:
        update = i.parse(bi.UpdatePaymentMethod, changes)
        current = self.get_payment_method(method_id)
        if current is None:
            return None
        return self._update_owned(domain.PaymentMethod, bm.PaymentMethod, "payment_methods",
                                  current, update.model_dump(mode="json", exclude_unset=True))

    def delete_payment_method(self, method_id: UUID | str) -> bool:
        current = self.get_payment_method(method_id)
        if current is None or current.status == "removed":
            return False
        return self._delete_owned(domain.PaymentMethod, current.id)

    def set_default_payment_method(self, user_id: UUID | str, method_id: UUID | str) -> None:
        user = self._user_of(user_id)
        target = self.get_payment_method(method_id)
        if target is None or target.user_id != user.id or target.status == "removed":
            raise NotFoundError("payment_method", method_id, "method_id")
        self._set_default(domain.PaymentMethod, target.id,
                          self.get_default_payment_method(user.id), "payment_method")


def sez_check(is_sez: bool | None, gstin: str | None, user: Any) -> None:
    """An SEZ unit or developer is a registered person: an address flagged SEZ needs a
    GSTIN, its own or its customer's (without one, its supply is taxed as any other)."""
    if is_sez and not (gstin or getattr(user, "gst_number", None)):
        raise ValidationError.single("is_sez", "an SEZ unit or developer is registered for "
                                               "GST: give the address's GSTIN (or the "
                                               "customer's) first")


def address_state_name(state: str | None, state_code: str, country: str) -> str:
    """The state as written, else the name of its GST code; abroad (96), the country."""
    return state or STATE_CODES.get(state_code) or country


def address_changes(current: bm.BillingAddress, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` checked against the address they change: the state code must fit the
    (possibly new) country; a move abroad without a code takes 96, one into India needs one."""
    if "country" not in values and "state_code" not in values:
        return values
    country = values.get("country", current.country)
    if not country:
        raise ValidationError.single("country", "must not be empty (India, or the country "
                                                "abroad)")
    moved = "country" in values and is_india(country) != is_india(current.country)
    code = values.get("state_code", None if moved else current.state_code)
    checked = address_pos_code(country=country, state_code=code)
    if checked != current.state_code or "state_code" in values:
        values["state_code"] = checked
    if "state" not in values and (checked != current.state_code or moved):
        values["state"] = address_state_name(None, checked, country)
    return values
