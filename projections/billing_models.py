"""Billing read models: one pydantic model per table row (columns as fields)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from projections.models import Row


class BillingAddress(Row):
    id: UUID
    user_id: UUID
    address_line1: str
    address_line2: str | None
    city: str
    state: str
    state_code: str
    postal_code: str
    country: str
    gst_number: str | None
    is_sez: bool
    lut_number: str | None
    is_default: bool
    created_at: datetime
    updated_at: datetime


class Invoice(Row):
    id: UUID
    invoice_number: str | None
    fy: str | None
    user_id: UUID
    organization_id: UUID | None
    billing_address_id: UUID
    billing_period_start: datetime
    billing_period_end: datetime
    subtotal_amount: int
    discount_amount: int
    taxable_amount: int
    cgst_amount: int
    sgst_amount: int
    utgst_amount: int
    igst_amount: int
    round_off_amount: int
    total_amount: int
    amount_paid: int
    tax_type: str | None
    gst_rate: Decimal
    hsn_code: str | None
    sac_code: str | None
    place_of_supply: str | None
    place_of_supply_code: str | None
    supplier_gstin: str | None
    supplier_state_code: str | None
    buyer_gstin: str | None
    zero_rated: bool
    coupon_code: str | None
    discount_percentage: int
    einvoice_irn: str | None
    einvoice_ack_no: str | None
    einvoice_ack_date: datetime | None
    einvoice_qr_code: str | None
    einvoice_enabled: bool
    status: str
    issued_at: datetime | None
    due_date: datetime
    paid_at: datetime | None
    notes: str | None
    currency: str
    created_at: datetime
    updated_at: datetime


class InvoiceLineItem(Row):
    id: UUID
    invoice_id: UUID
    line_number: int
    resource_type: str
    resource_id: str | None
    resource_name: str
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: int
    discount_amount: int
    taxable_amount: int
    cgst_amount: int
    sgst_amount: int
    utgst_amount: int
    igst_amount: int
    sac_code: str | None
    usage_start: datetime | None
    usage_end: datetime | None
    created_at: datetime


class AdjustmentNote(Row):
    id: UUID
    kind: str
    note_number: str
    fy: str
    invoice_id: UUID
    invoice_number: str
    user_id: UUID
    organization_id: UUID | None
    reason: str
    tax_type: str
    taxable_amount: int
    cgst_amount: int
    sgst_amount: int
    utgst_amount: int
    igst_amount: int
    total_amount: int
    lines: list[dict[str, Any]]
    issued_at: datetime
    supplier_gstin: str | None = None  # the invoice's; None only on a row made before v2


class UsageRecord(Row):
    id: UUID
    user_id: UUID
    organization_id: UUID | None
    resource_type: str
    resource_id: str
    resource_name: str
    metric_type: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    total_cost: Decimal
    recorded_at: datetime
    period_start: datetime
    period_end: datetime
    invoice_id: UUID | None
    billed: bool
    metadata: dict[str, Any] | None
    created_at: datetime


class PaymentMethod(Row):
    id: UUID
    user_id: UUID
    gateway: str
    gateway_method_id: str | None
    type: str
    card_last4: str | None
    card_brand: str | None
    card_exp_month: int | None
    card_exp_year: int | None
    upi_id: str | None
    is_default: bool
    status: str
    created_at: datetime
    updated_at: datetime


class PaymentTransaction(Row):
    id: UUID
    invoice_id: UUID
    user_id: UUID
    payment_method_id: UUID | None
    gateway: str
    gateway_transaction_id: str | None
    gateway_order_id: str | None
    amount: int
    currency: str
    status: str
    payment_method: str | None
    gateway_response: dict[str, Any] | None
    error_code: str | None
    error_message: str | None
    initiated_at: datetime
    completed_at: datetime | None
    refunded_at: datetime | None
    created_at: datetime


class TaxCalculation(Row):
    id: UUID
    invoice_id: UUID
    user_id: UUID
    supplier_state: str
    supplier_state_code: str
    customer_state: str
    customer_state_code: str
    tax_type: str
    taxable_amount: int
    cgst_rate: Decimal
    sgst_rate: Decimal
    utgst_rate: Decimal
    igst_rate: Decimal
    cgst_amount: int
    sgst_amount: int
    utgst_amount: int
    igst_amount: int
    total_tax_amount: int
    gst_rate: Decimal
    hsn_sac_code: str
    calculated_at: datetime
    created_at: datetime


class HsnCode(Row):
    id: UUID
    service_type: str
    hsn_code: str
    sac_code: str
    description: str
    gst_rate: Decimal
    is_active: bool
    created_at: datetime
    updated_at: datetime


class DiscountCoupon(Row):
    id: UUID
    code: str
    name: str
    description: str | None
    discount_type: str
    discount_value: int
    duration_type: str
    duration_months: int | None
    max_uses: int | None
    times_used: int
    min_order_amount: int | None
    valid_from: datetime | None
    valid_until: datetime | None
    is_active: bool
    created_by: UUID | None
    created_at: datetime


class ServicePlan(Row):
    id: UUID
    name: str
    description: str | None
    cpu: int
    memory: int
    storage: int
    bandwidth: int | None
    cloudstack_offering_id: str | None
    price: int
    is_active: bool
    is_public: bool
    organization_id: UUID | None
    sort_order: int
    created_at: datetime
    updated_at: datetime


class CouponValidation(Row):
    valid: bool
    error: str | None = None
    coupon: DiscountCoupon | None = None
