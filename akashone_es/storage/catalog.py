"""The catalogue on the storage facade: HSN/SAC codes, discount coupons, service plans."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from psycopg import sql
from pydantic import BaseModel

from akashone_es import context
from akashone_es.domain.catalog import DiscountCoupon, HsnCode, Record, ServicePlan
from akashone_es.errors import DuplicateError, NotFoundError
from akashone_es.storage import billing_inputs as bi
from akashone_es.storage import inputs as i
from akashone_es.storage.base import StorageBase
from projections import billing_models as bm

R = TypeVar("R", bound=BaseModel)
Q = sql.SQL
HSN_ACTIVE = Q("SELECT * FROM hsn_codes WHERE is_active ORDER BY service_type")
HSN = Q("SELECT * FROM hsn_codes WHERE id = %s")
HSN_BY_TYPE = Q("SELECT * FROM hsn_codes WHERE service_type = %s AND is_active")
COUPONS = Q("SELECT * FROM discount_coupons ORDER BY created_at, id")
COUPON = Q("SELECT * FROM discount_coupons WHERE id = %s")
COUPON_BY_CODE = Q("SELECT * FROM discount_coupons WHERE upper(code) = upper(%s)")
#: the platform's public catalogue: a tenant's "public" plan is public to its own
#: organization only, never listed to other tenants
PLANS_PUBLIC = Q("SELECT * FROM service_plans WHERE is_active AND is_public"
                 " AND organization_id IS NULL ORDER BY sort_order, name")
PLANS_FOR_ORG = Q("SELECT * FROM service_plans WHERE is_active AND ((is_public AND"
                  " organization_id IS NULL) OR organization_id = %s) ORDER BY sort_order, name")
PLAN = Q("SELECT * FROM service_plans WHERE id = %s")

#: AkashOne's seeded plans: name, vCPU, RAM MB, disk GB, bandwidth Mbps, rupees per month
DEFAULT_PLANS = (("Micro", 1, 1024, 25, 1000, 500), ("Small", 2, 2048, 50, 2000, 1000),
                 ("Medium", 4, 4096, 100, 3000, 2000), ("Large", 8, 8192, 200, 5000, 4000),
                 ("X-Large", 16, 16384, 500, 10000, 8000))


class CatalogStorage(StorageBase):
    """The IStorage groups HSN/SAC codes (6), discount coupons (8) and service plans (6)."""

    def _create(self, cls: type[Record], model: type[R], table: str, fields: dict[str, Any]
                ) -> R:
        with context.command():
            aggregate = cls(fields=fields)
            row = self._save_returning(model, (cls.__name__, aggregate.id), aggregate)
        if row is None:  # pragma: no cover - the inline projection returns the row
            raise NotFoundError(table, aggregate.id)
        return row

    def _update(self, cls: type[Record], model: type[R], row_id: UUID, values: dict[str, Any]
                ) -> R | None:
        with context.command():
            aggregate = self._load(cls, row_id, cls.__name__)
            aggregate.update(values)
            return self._save_returning(model, (cls.__name__, row_id), aggregate)

    def _delete(self, cls: type[Record], row_id: UUID) -> None:
        with context.command():
            aggregate = self._load(cls, row_id, cls.__name__)
            aggregate.delete()
            self._save(aggregate)

    # -- HSN/SAC codes (6) ----------------------------------------------------------------
    def get_hsn_codes(self) -> list[bm.HsnCode]:
        """Active codes only."""
        return self._all(bm.HsnCode, HSN_ACTIVE, ())

    def get_hsn_code(self, code_id: UUID | str) -> bm.HsnCode | None:
        return self._one(bm.HsnCode, HSN, (i.parse_id(code_id, "code_id"),))

    def get_hsn_code_by_service_type(self, service_type: str) -> bm.HsnCode | None:
        return self._one(bm.HsnCode, HSN_BY_TYPE, (service_type,))

    def create_hsn_code(self, data: bi.InsertHsnCode | dict[str, Any]) -> bm.HsnCode:
        code = i.parse(bi.InsertHsnCode, data)
        return self._create(HsnCode, bm.HsnCode, "hsn_codes", code.model_dump(mode="json"))

    def update_hsn_code(self, code_id: UUID | str, changes: bi.UpdateHsnCode | dict[str, Any]
                        ) -> bm.HsnCode | None:
        values = i.parse(bi.UpdateHsnCode, changes).model_dump(mode="json", exclude_unset=True)
        current = self.get_hsn_code(code_id)
        if current is None or not values:
            return current
        return self._update(HsnCode, bm.HsnCode, current.id, values)

    def delete_hsn_code(self, code_id: UUID | str) -> bool:
        current = self.get_hsn_code(code_id)
        if current is None:
            return False
        self._delete(HsnCode, current.id)
        return True

    # -- discount coupons (8) -------------------------------------------------------------
    def get_discount_coupons(self) -> list[bm.DiscountCoupon]:
        return self._all(bm.DiscountCoupon, COUPONS, ())

    def get_discount_coupon(self, coupon_id: UUID | str) -> bm.DiscountCoupon | None:
        return self._one(bm.DiscountCoupon, COUPON, (i.parse_id(coupon_id, "coupon_id"),))

    def get_discount_coupon_by_code(self, code: str) -> bm.DiscountCoupon | None:
        """Case-insensitive: codes are stored upper case."""
        return self._one(bm.DiscountCoupon, COUPON_BY_CODE, (code,))

    def create_discount_coupon(self, data: bi.InsertDiscountCoupon | dict[str, Any]
                               ) -> bm.DiscountCoupon:
        coupon = i.parse(bi.InsertDiscountCoupon, data)
        if self.get_discount_coupon_by_code(coupon.code):
            raise DuplicateError("discount_coupon", "code", coupon.code)
        actor = context.current().actor_id
        fields = {**coupon.model_dump(mode="json"), "times_used": 0,
                  "created_by": str(actor) if actor else None}
        return self._create(DiscountCoupon, bm.DiscountCoupon, "discount_coupons", fields)

    def update_discount_coupon(self, coupon_id: UUID | str,
                               changes: bi.UpdateDiscountCoupon | dict[str, Any]
                               ) -> bm.DiscountCoupon | None:
        values = i.parse(bi.UpdateDiscountCoupon, changes).model_dump(mode="json",
                                                                      exclude_unset=True)
        current = self.get_discount_coupon(coupon_id)
        if current is None or not values:
            return current
        return self._update(DiscountCoupon, bm.DiscountCoupon, current.id, values)

    def delete_discount_coupon(self, coupon_id: UUID | str) -> bool:
        current = self.get_discount_coupon(coupon_id)
        if current is None:
            return False
        self._delete(DiscountCoupon, current.id)
        return True

    def increment_coupon_usage(self, coupon_id: UUID | str) -> None:
        """Count one use outside an invoice; refused once max_uses is reached."""
        current = self.get_discount_coupon(coupon_id)
        if current is None:
            raise NotFoundError("discount_coupon", coupon_id)
        from akashone_es.storage.billing import retrying  # noqa: PLC0415 - avoid a cycle

        def attempt() -> None:
            with context.command():
                coupon = self._load(DiscountCoupon, current.id, "discount_coupon")
                coupon.redeem(current.id, 2**62, datetime.now(UTC))
                self._save(coupon)

        retrying(attempt)

    def validate_coupon(self, code: str, order_amount: int | None = None
                        ) -> bm.CouponValidation:
        """AkashOne's checks in AkashOne's order; the first failure is the error."""
        row = self.get_discount_coupon_by_code(code)
        if row is None:
            return bm.CouponValidation(valid=False, error="Invalid coupon code")
        coupon = self._load(DiscountCoupon, row.id, "discount_coupon")
        error = coupon.validation_error(order_amount, datetime.now(UTC))
        return bm.CouponValidation(valid=error is None, error=error,
                                   coupon=row if error is None else None)

    # -- service plans (6) ----------------------------------------------------------------
    def get_service_plans(self, organization_id: UUID | str | None = None
                          ) -> list[bm.ServicePlan]:
        """Active plans: public ones, plus the organization's own when one is given."""
        org = i.parse_id(organization_id, "organization_id") if organization_id else None
        if self.tenant_id is not None:  # a tenant sees public plans and its own, never others'
            org = self.tenant_id
        if org is None:
            return self._all(bm.ServicePlan, PLANS_PUBLIC, ())
        return self._all(bm.ServicePlan, PLANS_FOR_ORG, (org,))

    def get_service_plan(self, plan_id: UUID | str) -> bm.ServicePlan | None:
        plan = self._one(bm.ServicePlan, PLAN, (i.parse_id(plan_id, "plan_id"),))
        if plan is None:
            return None
        published = plan.is_public and plan.organization_id is None
        return plan if published or self._visible(plan.organization_id) else None

    def create_service_plan(self, data: bi.InsertServicePlan | dict[str, Any]
                            ) -> bm.ServicePlan:
        plan = i.parse(bi.InsertServicePlan, data)
        fields = plan.model_dump(mode="json")
        if self.tenant_id is not None:  # a tenant creates plans for its own organization only
            tenant = self._own_organization()
            if plan.organization_id not in (None, tenant):
                raise NotFoundError("organization", plan.organization_id, "organization_id")
            fields["organization_id"] = str(tenant)
        return self._create(ServicePlan, bm.ServicePlan, "service_plans", fields)

    def _writable_plan(self, plan_id: UUID | str) -> bm.ServicePlan | None:
        """A plan the acting party may change: a tenant only its own organization's."""
        plan = self._one(bm.ServicePlan, PLAN, (i.parse_id(plan_id, "plan_id"),))
        return plan if plan and self._visible(plan.organization_id) else None

    def update_service_plan(self, plan_id: UUID | str,
                            changes: bi.UpdateServicePlan | dict[str, Any]
                            ) -> bm.ServicePlan | None:
        values = i.parse(bi.UpdateServicePlan, changes).model_dump(mode="json",
                                                                   exclude_unset=True)
        current = self._writable_plan(plan_id)
        if current is None or not values:
            return current
        return self._update(ServicePlan, bm.ServicePlan, current.id, values)

    def delete_service_plan(self, plan_id: UUID | str) -> bool:
        current = self._writable_plan(plan_id)
        if current is None:
            return False
        self._delete(ServicePlan, current.id)
        return True

    def initialize_default_service_plans(self) -> int:
        """Seed AkashOne's five plans once; returns how many were added."""
        if self._all(bm.ServicePlan, Q("SELECT * FROM service_plans LIMIT 1"), ()):
            return 0
        for order, (name, cpu, memory, storage, bandwidth, price) in enumerate(DEFAULT_PLANS):
            self.create_service_plan({"name": name, "cpu": cpu, "memory": memory,
                                      "storage": storage, "bandwidth": bandwidth,
                                      "price": price, "sort_order": order})
        return len(DEFAULT_PLANS)
