"""Validated inputs of the billing and catalogue storage API."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StrictInt,
    field_validator,
    model_validator,
)

from akashone_es.gst import OTHER_COUNTRIES, STATE_CODES, address_state_code_error
from akashone_es.storage import limits as lim
from akashone_es.storage.gateway_response import sanitize_gateway_response
from akashone_es.storage.inputs import Input, check_gstin
from akashone_es.storage.limits import INT4_MAX, PAISE_MAX, Bound, JsonObject, Moment


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError("money and quantities must not be floats (inexact): use an int, a "
                         "Decimal or a numeric string")
    return value


# bounded so that no accepted line or usage record can overflow an invoice (see limits)
Quantity = Annotated[Decimal, BeforeValidator(_no_float),
                     Field(ge=0, le=lim.QUANTITY_MAX, decimal_places=lim.QUANTITY_PLACES)]
UnitPrice = Annotated[Decimal, BeforeValidator(_no_float),
                      Field(ge=0, le=lim.UNIT_PRICE_MAX, decimal_places=lim.UNIT_PRICE_PLACES,
                            description="paise per unit")]
#: a GST rate in percent: numeric(5,2) columns
Rate = Annotated[Decimal, BeforeValidator(_no_float),
                 Field(ge=0, le=lim.RATE_MAX, decimal_places=lim.RATE_PLACES)]
Paise = Annotated[StrictInt, Field(ge=0, le=PAISE_MAX, description="integer paise")]
#: a gateway's answer: bounded JSON, then trimmed to what a payment needs, secrets masked
GatewayResponse = Annotated[dict[str, Any],
                            AfterValidator(lim.check_json(lim.GATEWAY_JSON_BYTES_MAX)),
                            AfterValidator(sanitize_gateway_response)]
Code = Annotated[str, Field(min_length=1, max_length=lim.CODE_MAX)]
Name = Annotated[str, Field(min_length=1, max_length=lim.NAME_MAX)]
Description = Annotated[str, Field(min_length=1, max_length=lim.DESCRIPTION_MAX)]
Notes = Annotated[str, Field(max_length=lim.DESCRIPTION_MAX)]
ExternalId = Annotated[str, Field(min_length=1, max_length=lim.ID_MAX)]




def _state_code(value: str | None) -> str | None:
    if value is not None and value not in STATE_CODES:
        raise ValueError(f"unknown state code {value!r} (use the 2-digit GST code, e.g. '27')")
    return value


def _address_code(value: str | None) -> str | None:
    # 96 (Other Countries) is an address's code abroad; the model checks it against the country
    return value if value == OTHER_COUNTRIES else _state_code(value)


def _address_rules(country: str, state_code: str | None) -> None:
    if not country:
        raise ValueError("country: must not be empty (India, or the country abroad)")
    problem = address_state_code_error(country=country, state_code=state_code)
    if problem:
        raise ValueError(f"state_code: {problem}")


class InsertBillingAddress(Input):
    user_id: UUID
    address_line1: str = Field(min_length=1, max_length=200)
    address_line2: str | None = Field(default=None, max_length=lim.NAME_MAX)
    city: str = Field(min_length=1, max_length=100)
    state: str | None = Field(default=None, max_length=100)
    state_code: str | None = None
    postal_code: str = Field(min_length=3, max_length=12)
    country: str = Field(default="India", max_length=100)
    gst_number: str | None = Field(default=None, max_length=lim.GSTIN_MAX)
    is_sez: bool = False
    lut_number: str | None = Field(default=None, max_length=lim.CODE_MAX)
    is_default: bool = False

    _gst = field_validator("gst_number")(check_gstin)
    _code = field_validator("state_code")(_address_code)

    @model_validator(mode="after")
    def _state_code_fits_country(self) -> InsertBillingAddress:
        """India: a known state code (not 96); abroad: 96 or none (storage records 96)."""
        _address_rules(self.country, self.state_code)
        return self


class UpdateBillingAddress(Input):
    address_line1: str | None = Field(default=None, min_length=1, max_length=200)
    address_line2: str | None = Field(default=None, max_length=lim.NAME_MAX)
    city: str | None = Field(default=None, min_length=1, max_length=100)
    state: str | None = Field(default=None, max_length=100)
    state_code: str | None = None
    postal_code: str | None = Field(default=None, min_length=3, max_length=12)
    country: str | None = Field(default=None, max_length=100)
    gst_number: str | None = Field(default=None, max_length=lim.GSTIN_MAX)
    is_sez: bool | None = None
    lut_number: str | None = Field(default=None, max_length=lim.CODE_MAX)

    _gst = field_validator("gst_number")(check_gstin)
    _code = field_validator("state_code")(_address_code)  # checked with the country in storage

    @model_validator(mode="after")
    def _required_stay_set(self) -> UpdateBillingAddress:
        for name in ("address_line1", "city", "state", "state_code", "postal_code", "country"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name}: is required and cannot be cleared")
        return self


class InsertInvoiceLine(Input):
    resource_type: Code
    resource_id: ExternalId | None = None
    resource_name: Name
    description: Description
    quantity: Quantity = Field(gt=0)
    unit: Code
    unit_price: UnitPrice
    sac_code: str | None = Field(default=None, max_length=6, pattern=r"^99\d{4}$")
    usage_start: Moment | None = None
    usage_end: Moment | None = None

    @model_validator(mode="after")
    def _amount(self) -> InsertInvoiceLine:
        problem = line_amount_problem(self.quantity, self.unit_price)
        if problem:
            raise ValueError(f"quantity: {problem}")
        return self


def line_amount_problem(quantity: Decimal, unit_price: Decimal) -> str | None:
    """Why quantity x unit price is more than one line (or usage record) may amount to."""
    if quantity * unit_price > lim.LINE_AMOUNT_MAX:
        return (f"quantity x unit_price is {quantity * unit_price:.0f} paise, above the "
                f"{lim.LINE_AMOUNT_MAX} paise one line or usage record may amount to")
    return None


class InsertInvoice(Input):
    user_id: UUID
    billing_address_id: UUID
    billing_period_start: Moment
    billing_period_end: Moment
    due_date: Moment | None = None
    currency: Literal["INR"] = "INR"
    notes: Notes | None = None
    lines: list[InsertInvoiceLine] = Field(default=[], max_length=lim.INVOICE_LINES_MAX)

    @model_validator(mode="after")
    def _period(self) -> InsertInvoice:
        if self.billing_period_end < self.billing_period_start:
            raise ValueError("billing_period_end: must not be before billing_period_start")
        return self


class UpdateInvoice(Input):
    due_date: Moment | None = None
    notes: Notes | None = None
    billing_period_start: Moment | None = None
    billing_period_end: Moment | None = None


class InsertUsageRecord(Input):
    user_id: UUID
    resource_type: Code
    resource_id: ExternalId
    resource_name: Name
    metric_type: Code
    quantity: Quantity
    unit: Code | None = None
    #: the resource type's metering rate when not given; quantity x price is checked in storage
    unit_price: UnitPrice | None = None
    recorded_at: Moment | None = None
    period_start: Moment
    period_end: Moment
    metadata: JsonObject | None = None

    @model_validator(mode="after")
    def _period(self) -> InsertUsageRecord:
        if self.period_end < self.period_start:
            raise ValueError("period_end: must not be before period_start")
        return self


class InsertPaymentMethod(Input):
    user_id: UUID
    gateway: Literal["razorpay", "cashfree", "stripe"]
    gateway_method_id: ExternalId | None = None
    type: Literal["card", "upi", "netbanking", "wallet"]
    card_last4: str | None = Field(default=None, max_length=4, pattern=r"^\d{4}$")
    card_brand: Code | None = None
    card_exp_month: int | None = Field(default=None, ge=1, le=12)
    card_exp_year: int | None = Field(default=None, ge=2000, le=2200)
    upi_id: str | None = Field(default=None, max_length=100,
                               pattern=r"^[A-Za-z0-9._-]+@[A-Za-z]+$")
    is_default: bool = False
    status: Literal["active", "expired", "removed"] = "active"


class UpdatePaymentMethod(Input):
    gateway_method_id: ExternalId | None = None
    card_brand: Code | None = None
    card_exp_month: int | None = Field(default=None, ge=1, le=12)
    card_exp_year: int | None = Field(default=None, ge=2000, le=2200)
    upi_id: str | None = Field(default=None, max_length=100,
                               pattern=r"^[A-Za-z0-9._-]+@[A-Za-z]+$")
    status: Literal["active", "expired", "removed"] | None = None


TransactionStatus = Literal["pending", "processing", "success", "failed", "refunded"]


class InsertPaymentTransaction(Input):
    invoice_id: UUID
    user_id: UUID | None = None
    payment_method_id: UUID | None = None
    gateway: Literal["razorpay", "cashfree", "stripe"]
    gateway_transaction_id: ExternalId | None = None
    gateway_order_id: ExternalId | None = None
    #: no payment is larger than the largest invoice (so amount_paid stays within bigint)
    amount: Annotated[StrictInt, Field(gt=0, le=lim.INVOICE_TOTAL_MAX,
                                       description="integer paise")]
    currency: Literal["INR"] = "INR"
    status: TransactionStatus = "pending"
    payment_method: Code | None = None
    gateway_response: GatewayResponse | None = None


class UpdatePaymentTransaction(Input):
    status: TransactionStatus | None = None
    gateway_transaction_id: ExternalId | None = None
    gateway_order_id: ExternalId | None = None
    gateway_response: GatewayResponse | None = None
    error_code: Code | None = None
    error_message: Notes | None = None


class InsertTaxCalculation(Input):
    invoice_id: UUID
    user_id: UUID
    supplier_state: Name
    supplier_state_code: str
    customer_state: Name
    customer_state_code: str
    tax_type: Code
    taxable_amount: Paise
    cgst_rate: Rate = Decimal(0)
    sgst_rate: Rate = Decimal(0)
    utgst_rate: Rate = Decimal(0)
    igst_rate: Rate = Decimal(0)
    cgst_amount: Paise = 0
    sgst_amount: Paise = 0
    utgst_amount: Paise = 0
    igst_amount: Paise = 0
    total_tax_amount: Paise
    gst_rate: Rate = Decimal(18)
    hsn_sac_code: str = Field(default="998315", pattern=r"^\d{4,8}$", max_length=8)
    calculated_at: Moment | None = None

    _codes = field_validator("supplier_state_code", "customer_state_code")(_state_code)


class InsertHsnCode(Input):
    service_type: str = Field(min_length=1, max_length=50)
    hsn_code: str = Field(max_length=8, pattern=r"^\d{4,8}$")
    sac_code: str = Field(max_length=6, pattern=r"^99\d{4}$")
    description: Description
    gst_rate: Rate = Field(default=Decimal(18), le=28)
    is_active: bool = True


class UpdateHsnCode(Input):
    hsn_code: str | None = Field(default=None, max_length=8, pattern=r"^\d{4,8}$")
    sac_code: str | None = Field(default=None, max_length=6, pattern=r"^99\d{4}$")
    description: Description | None = None
    gst_rate: Rate | None = Field(default=None, le=28)
    is_active: bool | None = None


class InsertDiscountCoupon(Input):
    code: str = Field(min_length=3, max_length=50, pattern=r"^[A-Za-z0-9_-]+$")
    name: Name
    description: Notes | None = None
    discount_type: Literal["percentage", "fixed"]
    discount_value: Annotated[StrictInt, Field(gt=0, le=INT4_MAX,
                                               description="percent, or paise if fixed")]
    duration_type: Literal["once", "forever", "repeating"] = "once"
    duration_months: int | None = Field(default=None, ge=1, le=INT4_MAX)
    max_uses: int | None = Field(default=None, ge=1, le=INT4_MAX)
    min_order_amount: Paise | None = None
    valid_from: Moment | None = None
    valid_until: Moment | None = None
    is_active: bool = True

    @field_validator("code")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @model_validator(mode="after")
    def _percentage(self) -> InsertDiscountCoupon:
        if self.discount_type == "percentage" and self.discount_value > 100:
            raise ValueError("discount_value: a percentage is at most 100")
        if self.duration_type == "repeating" and self.duration_months is None:
            raise ValueError("duration_months: a repeating coupon says for how many months")
        return self


class UpdateDiscountCoupon(Input):
    name: Name | None = None
    description: Notes | None = None
    max_uses: int | None = Field(default=None, ge=1, le=INT4_MAX)
    min_order_amount: Paise | None = None
    valid_from: Moment | None = None
    valid_until: Moment | None = None
    is_active: bool | None = None


class InsertServicePlan(Input):
    name: Name
    description: Notes | None = None
    cpu: int = Field(gt=0, le=INT4_MAX)
    memory: int = Field(gt=0, le=INT4_MAX, description="MB")
    storage: int = Field(gt=0, le=INT4_MAX, description="GB")
    bandwidth: int | None = Field(default=None, ge=0, le=INT4_MAX)
    cloudstack_offering_id: ExternalId | None = None
    price: int = Field(default=0, ge=0, le=INT4_MAX, description="whole rupees per month")
    is_active: bool = True
    is_public: bool = True
    organization_id: UUID | None = None
    sort_order: int = Field(default=0, ge=-INT4_MAX, le=INT4_MAX)


class UpdateServicePlan(Input):
    name: Name | None = None
    description: Notes | None = None
    cpu: int | None = Field(default=None, gt=0, le=INT4_MAX)
    memory: int | None = Field(default=None, gt=0, le=INT4_MAX)
    storage: int | None = Field(default=None, gt=0, le=INT4_MAX)
    bandwidth: int | None = Field(default=None, ge=0, le=INT4_MAX)
    cloudstack_offering_id: ExternalId | None = None
    price: int | None = Field(default=None, ge=0, le=INT4_MAX)
    is_active: bool | None = None
    is_public: bool | None = None
    sort_order: int | None = Field(default=None, ge=-INT4_MAX, le=INT4_MAX)


class GenerateInvoice(Input):
    user_id: UUID
    period_start: Moment
    period_end: Moment
    coupon_code: str | None = Field(default=None, max_length=50)  # as coupons' codes
    notes: Notes | None = None

    @model_validator(mode="after")
    def _period(self) -> GenerateInvoice:
        if self.period_end < self.period_start:
            raise ValueError("period_end: must not be before period_start")
        return self


class InvoiceFilters(Input):
    status: Literal["draft", "issued", "paid", "overdue", "cancelled"] | None = None
    start_date: Bound | None = None
    end_date: Bound | None = None


class UsageFilters(Input):
    start_date: Bound | None = None
    end_date: Bound | None = None
    billed: bool | None = None
