"""Validated inputs of the billing and catalogue storage API."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BeforeValidator,
    Field,
    StrictInt,
    field_validator,
    model_validator,
)

from akashone_es.gst import STATE_CODES
from akashone_es.storage.inputs import Input, check_gstin


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError("money and quantities must not be floats (inexact): use an int, a "
                         "Decimal or a numeric string")
    return value


INT4_MAX = 2**31 - 1  # integer columns
PAISE_MAX = 2**62  # bigint columns, and what the JSON encoder of events holds exactly
DECIMAL_MAX = Decimal(10) ** 15  # quantities and unit prices (paise)

ExactDecimal = Annotated[Decimal, BeforeValidator(_no_float), Field(le=DECIMAL_MAX)]
Paise = Annotated[StrictInt, Field(ge=0, le=PAISE_MAX, description="integer paise")]




def _state_code(value: str | None) -> str | None:
    if value is not None and value not in STATE_CODES:
        raise ValueError(f"unknown state code {value!r} (use the 2-digit GST code, e.g. '27')")
    return value


class InsertBillingAddress(Input):
    user_id: UUID
    address_line1: str = Field(min_length=1, max_length=200)
    address_line2: str | None = None
    city: str = Field(min_length=1, max_length=100)
    state: str | None = None
    state_code: str | None = None
    postal_code: str = Field(min_length=3, max_length=12)
    country: str = "India"
    gst_number: str | None = None
    is_sez: bool = False
    lut_number: str | None = None
    is_default: bool = False

    _gst = field_validator("gst_number")(check_gstin)
    _code = field_validator("state_code")(_state_code)

    @model_validator(mode="after")
    def _india_needs_a_state(self) -> InsertBillingAddress:
        if self.country.strip().lower() in ("india", "in") and not self.state_code:
            raise ValueError("state_code: an address in India needs its GST state code")
        return self


class UpdateBillingAddress(Input):
    address_line1: str | None = Field(default=None, min_length=1, max_length=200)
    address_line2: str | None = None
    city: str | None = Field(default=None, min_length=1, max_length=100)
    state: str | None = None
    state_code: str | None = None
    postal_code: str | None = Field(default=None, min_length=3, max_length=12)
    country: str | None = None
    gst_number: str | None = None
    is_sez: bool | None = None
    lut_number: str | None = None

    _gst = field_validator("gst_number")(check_gstin)
    _code = field_validator("state_code")(_state_code)

    @model_validator(mode="after")
    def _required_stay_set(self) -> UpdateBillingAddress:
        for name in ("address_line1", "city", "state", "state_code", "postal_code", "country"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name}: is required and cannot be cleared")
        return self


class InsertInvoiceLine(Input):
    resource_type: str = Field(min_length=1)
    resource_id: str | None = None
    resource_name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    quantity: ExactDecimal = Field(gt=0)
    unit: str = Field(min_length=1)
    unit_price: ExactDecimal = Field(ge=0, description="paise per unit")
    sac_code: str | None = Field(default=None, pattern=r"^99\d{4}$")
    usage_start: AwareDatetime | None = None
    usage_end: AwareDatetime | None = None


class InsertInvoice(Input):
    user_id: UUID
    billing_address_id: UUID
    billing_period_start: AwareDatetime
    billing_period_end: AwareDatetime
    due_date: AwareDatetime | None = None
    currency: Literal["INR"] = "INR"
    notes: str | None = None
    lines: list[InsertInvoiceLine] = []

    @model_validator(mode="after")
    def _period(self) -> InsertInvoice:
        if self.billing_period_end < self.billing_period_start:
            raise ValueError("billing_period_end: must not be before billing_period_start")
        return self


class UpdateInvoice(Input):
    due_date: AwareDatetime | None = None
    notes: str | None = None
    billing_period_start: AwareDatetime | None = None
    billing_period_end: AwareDatetime | None = None


class InsertUsageRecord(Input):
    user_id: UUID
    resource_type: str = Field(min_length=1)
    resource_id: str = Field(min_length=1)
    resource_name: str = Field(min_length=1)
    metric_type: str = Field(min_length=1)
    quantity: ExactDecimal = Field(ge=0)
    unit: str | None = None
    unit_price: ExactDecimal | None = Field(default=None, ge=0, description="paise per unit")
    recorded_at: AwareDatetime | None = None
    period_start: AwareDatetime
    period_end: AwareDatetime
    metadata: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _period(self) -> InsertUsageRecord:
        if self.period_end < self.period_start:
            raise ValueError("period_end: must not be before period_start")
        return self


class InsertPaymentMethod(Input):
    user_id: UUID
    gateway: Literal["razorpay", "cashfree", "stripe"]
    gateway_method_id: str | None = None
    type: Literal["card", "upi", "netbanking", "wallet"]
    card_last4: str | None = Field(default=None, pattern=r"^\d{4}$")
    card_brand: str | None = None
    card_exp_month: int | None = Field(default=None, ge=1, le=12)
    card_exp_year: int | None = Field(default=None, ge=2000, le=2200)
    upi_id: str | None = Field(default=None, max_length=100,
                               pattern=r"^[A-Za-z0-9._-]+@[A-Za-z]+$")
    is_default: bool = False
    status: Literal["active", "expired", "removed"] = "active"


class UpdatePaymentMethod(Input):
    gateway_method_id: str | None = None
    card_brand: str | None = None
    card_exp_month: int | None = Field(default=None, ge=1, le=12)
    card_exp_year: int | None = Field(default=None, ge=2000, le=2200)
    upi_id: str | None = None
    status: Literal["active", "expired", "removed"] | None = None


TransactionStatus = Literal["pending", "processing", "success", "failed", "refunded"]


class InsertPaymentTransaction(Input):
    invoice_id: UUID
    user_id: UUID | None = None
    payment_method_id: UUID | None = None
    gateway: Literal["razorpay", "cashfree", "stripe"]
    gateway_transaction_id: str | None = Field(default=None, min_length=1, max_length=200)
    gateway_order_id: str | None = None
    amount: Annotated[StrictInt, Field(gt=0, le=PAISE_MAX, description="integer paise")]
    currency: Literal["INR"] = "INR"
    status: TransactionStatus = "pending"
    payment_method: str | None = None
    gateway_response: dict[str, Any] | None = None


class UpdatePaymentTransaction(Input):
    status: TransactionStatus | None = None
    gateway_transaction_id: str | None = None
    gateway_order_id: str | None = None
    gateway_response: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None


class InsertTaxCalculation(Input):
    invoice_id: UUID
    user_id: UUID
    supplier_state: str
    supplier_state_code: str
    customer_state: str
    customer_state_code: str
    tax_type: str
    taxable_amount: Paise
    cgst_rate: ExactDecimal = Decimal(0)
    sgst_rate: ExactDecimal = Decimal(0)
    utgst_rate: ExactDecimal = Decimal(0)
    igst_rate: ExactDecimal = Decimal(0)
    cgst_amount: Paise = 0
    sgst_amount: Paise = 0
    utgst_amount: Paise = 0
    igst_amount: Paise = 0
    total_tax_amount: Paise
    gst_rate: ExactDecimal = Decimal(18)
    hsn_sac_code: str = "998315"
    calculated_at: AwareDatetime | None = None

    _codes = field_validator("supplier_state_code", "customer_state_code")(_state_code)


class InsertHsnCode(Input):
    service_type: str = Field(min_length=1, max_length=50)
    hsn_code: str = Field(pattern=r"^\d{4,8}$")
    sac_code: str = Field(pattern=r"^99\d{4}$")
    description: str = Field(min_length=1)
    gst_rate: ExactDecimal = Field(default=Decimal(18), ge=0, le=28)
    is_active: bool = True


class UpdateHsnCode(Input):
    hsn_code: str | None = Field(default=None, pattern=r"^\d{4,8}$")
    sac_code: str | None = Field(default=None, pattern=r"^99\d{4}$")
    description: str | None = None
    gst_rate: ExactDecimal | None = Field(default=None, ge=0, le=28)
    is_active: bool | None = None


class InsertDiscountCoupon(Input):
    code: str = Field(min_length=3, max_length=50, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(min_length=1)
    description: str | None = None
    discount_type: Literal["percentage", "fixed"]
    discount_value: Annotated[StrictInt, Field(gt=0, le=INT4_MAX,
                                               description="percent, or paise if fixed")]
    duration_type: Literal["once", "forever", "repeating"] = "once"
    duration_months: int | None = Field(default=None, ge=1, le=INT4_MAX)
    max_uses: int | None = Field(default=None, ge=1, le=INT4_MAX)
    min_order_amount: Paise | None = None
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    is_active: bool = True

    @field_validator("code")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @model_validator(mode="after")
    def _percentage(self) -> InsertDiscountCoupon:
        if self.discount_type == "percentage" and self.discount_value > 100:
            raise ValueError("discount_value: a percentage is at most 100")
        return self


class UpdateDiscountCoupon(Input):
    name: str | None = None
    description: str | None = None
    max_uses: int | None = Field(default=None, ge=1, le=INT4_MAX)
    min_order_amount: Paise | None = None
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    is_active: bool | None = None


class InsertServicePlan(Input):
    name: str = Field(min_length=1)
    description: str | None = None
    cpu: int = Field(gt=0, le=INT4_MAX)
    memory: int = Field(gt=0, le=INT4_MAX, description="MB")
    storage: int = Field(gt=0, le=INT4_MAX, description="GB")
    bandwidth: int | None = Field(default=None, ge=0, le=INT4_MAX)
    cloudstack_offering_id: str | None = None
    price: int = Field(default=0, ge=0, le=INT4_MAX, description="whole rupees per month")
    is_active: bool = True
    is_public: bool = True
    organization_id: UUID | None = None
    sort_order: int = Field(default=0, ge=-INT4_MAX, le=INT4_MAX)


class UpdateServicePlan(Input):
    name: str | None = None
    description: str | None = None
    cpu: int | None = Field(default=None, gt=0, le=INT4_MAX)
    memory: int | None = Field(default=None, gt=0, le=INT4_MAX)
    storage: int | None = Field(default=None, gt=0, le=INT4_MAX)
    bandwidth: int | None = Field(default=None, ge=0, le=INT4_MAX)
    cloudstack_offering_id: str | None = None
    price: int | None = Field(default=None, ge=0, le=INT4_MAX)
    is_active: bool | None = None
    is_public: bool | None = None
    sort_order: int | None = Field(default=None, ge=-INT4_MAX, le=INT4_MAX)


class GenerateInvoice(Input):
    user_id: UUID
    period_start: AwareDatetime
    period_end: AwareDatetime
    coupon_code: str | None = None
    notes: str | None = None



class InvoiceFilters(Input):
    status: Literal["draft", "issued", "paid", "overdue", "cancelled"] | None = None
    start_date: AwareDatetime | None = None
    end_date: AwareDatetime | None = None


class UsageFilters(Input):
    start_date: AwareDatetime | None = None
    end_date: AwareDatetime | None = None
    billed: bool | None = None
