"""Exact money helpers and the validated billing inputs: each bad value names its field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from akashone_es.errors import ValidationError
from akashone_es.money import format_inr, require_exact, rupees_to_paise
from akashone_es.storage.billing_inputs import (
    InsertBillingAddress,
    InsertDiscountCoupon,
    InsertInvoiceLine,
    InsertPaymentTransaction,
    InsertUsageRecord,
)
from akashone_es.storage.inputs import parse

USER_ID = "6f1c2a9e-3b7d-4c1e-9a51-2f0e8d7c6b5a"
INVOICE_ID = "0b8e5f4d-2c1a-4e3b-8d7c-6a5b4c3d2e1f"
USAGE: dict[str, Any] = {
    "user_id": USER_ID, "resource_type": "vm", "resource_id": "vm-101",
    "resource_name": "web-1", "metric_type": "compute", "quantity": "2.5",
    "period_start": "2026-05-01T00:00:00+05:30", "period_end": "2026-05-01T02:30:00+05:30",
}
ADDRESS: dict[str, Any] = {
    "user_id": USER_ID, "address_line1": "12 MG Road", "city": "Pune",
    "postal_code": "411001", "state_code": "27", "country": "India",
}
PAYMENT: dict[str, Any] = {"invoice_id": INVOICE_ID, "gateway": "razorpay", "amount": 11_800}
COUPON: dict[str, Any] = {"code": "diwali-25", "name": "Diwali", "discount_type": "percentage",
                          "discount_value": 25}
LINE: dict[str, Any] = {"resource_type": "vm", "resource_name": "web-1",
                        "description": "Virtual Machine Usage", "quantity": "10",
                        "unit": "hours", "unit_price": "500"}


def rejected_fields(model: type[Any], data: dict[str, Any]) -> list[str]:
    """The fields named by the ValidationError that ``parse`` raises for ``data``."""
    with pytest.raises(ValidationError) as info:
        parse(model, data)
    return info.value.fields


class TestRequireExact:
    @pytest.mark.parametrize("value", [1.5, 0.0, True, False])
    def test_refuses_float_and_bool_naming_the_field(self, value: object) -> None:
        """Floats are inexact and bools are not amounts; the error names the field."""
        with pytest.raises(ValidationError) as info:
            require_exact(value, "unit_price")
        assert ["unit_price"] == info.value.fields

    @pytest.mark.parametrize(("value", "expected"), [
        (150, Decimal(150)), (Decimal("1.25"), Decimal("1.25")), (" 12.50 ", Decimal("12.50")),
        ("-3", Decimal(-3)), ("0.0001", Decimal("0.0001"))])
    def test_accepts_int_decimal_and_numeric_string(self, value: object,
                                                    expected: Decimal) -> None:
        """Ints, Decimals and numeric strings become the exact Decimal."""
        assert expected == require_exact(value, "amount")

    @pytest.mark.parametrize("value", ["abc", "", "NaN", "Infinity", None, [1]])
    def test_refuses_non_numbers_and_non_finite(self, value: object) -> None:
        """Text that is not a number, NaN, infinity and other types are refused."""
        with pytest.raises(ValidationError) as info:
            require_exact(value, "amount")
        assert ["amount"] == info.value.fields


class TestRupeesToPaise:
    @pytest.mark.parametrize(("rupees", "expected"), [
        ("12.34", 1234), (5, 500), (Decimal("0.01"), 1), ("1.230", 123), ("-2.50", -250)])
    def test_converts_exactly(self, rupees: object, expected: int) -> None:
        """Rupees with at most two significant decimals become integer paise."""
        assert expected == rupees_to_paise(rupees)

    @pytest.mark.parametrize("rupees", ["1.005", Decimal("0.001"), "99.999"])
    def test_refuses_fraction_of_a_paisa(self, rupees: object) -> None:
        """A third decimal that is not zero is a fraction of a paisa."""
        with pytest.raises(ValidationError) as info:
            rupees_to_paise(rupees, "price")
        assert ["price"] == info.value.fields

    def test_refuses_float(self) -> None:
        """A float rupee amount is refused even when it looks exact."""
        with pytest.raises(ValidationError) as info:
            rupees_to_paise(12.5)
        assert ["amount"] == info.value.fields


class TestFormatInr:
    @pytest.mark.parametrize(("paise", "expected"), [
        (1_234_567_890, "₹1,23,45,678.90"), (0, "₹0.00"), (5, "₹0.05"), (99_999, "₹999.99"),
        (100_000, "₹1,000.00"), (10_000_000, "₹1,00,000.00"),
        (100_000_000_000, "₹1,00,00,00,000.00"), (-1_234_567_890, "-₹1,23,45,678.90")])
    def test_groups_digits_the_indian_way(self, paise: int, expected: str) -> None:
        """Thousands first, then groups of two (lakh, crore)."""
        assert expected == format_inr(paise)


class TestInsertUsageRecord:
    def test_keeps_quantity_exact(self) -> None:
        """A numeric string quantity becomes an exact Decimal."""
        assert Decimal("2.5") == parse(InsertUsageRecord, USAGE).quantity

    def test_rejects_float_quantity(self) -> None:
        """A float quantity is inexact."""
        assert ["quantity"] == rejected_fields(InsertUsageRecord, {**USAGE, "quantity": 2.5})

    def test_rejects_negative_quantity(self) -> None:
        """Usage cannot be negative."""
        assert ["quantity"] == rejected_fields(InsertUsageRecord, {**USAGE, "quantity": "-1"})

    def test_rejects_period_end_before_start(self) -> None:
        """A usage period cannot end before it starts."""
        with pytest.raises(ValidationError, match="period_end"):
            parse(InsertUsageRecord, {**USAGE, "period_end": "2026-04-30T23:00:00+05:30"})


class TestInsertBillingAddress:
    def test_upper_cases_a_valid_gstin(self) -> None:
        """A GSTIN typed in lower case is stored in upper case."""
        address = parse(InsertBillingAddress, {**ADDRESS, "gst_number": "27aapfu0939f1zv"})
        assert "27AAPFU0939F1ZV" == address.gst_number

    @pytest.mark.parametrize("code", ["40", "96", "7", "MH"])
    def test_rejects_unknown_state_code(self, code: str) -> None:
        """Only 2-digit GST state codes are accepted."""
        assert ["state_code"] == rejected_fields(InsertBillingAddress,
                                                 {**ADDRESS, "state_code": code})

    def test_rejects_wrong_gstin_check_character(self) -> None:
        """27AAPFU0939F1ZV is valid; ending in W is not."""
        assert ["gst_number"] == rejected_fields(
            InsertBillingAddress, {**ADDRESS, "gst_number": "27AAPFU0939F1ZW"})

    def test_requires_state_code_in_india(self) -> None:
        """An Indian address without a state code cannot give a place of supply."""
        data = {key: value for key, value in ADDRESS.items() if key != "state_code"}
        with pytest.raises(ValidationError, match="state_code"):
            parse(InsertBillingAddress, data)

    def test_foreign_address_needs_no_state_code(self) -> None:
        """An address outside India has no GST state code."""
        data = {**ADDRESS, "state_code": None, "country": "Singapore"}
        assert parse(InsertBillingAddress, data).state_code is None


class TestInsertPaymentTransaction:
    def test_rejects_float_amount(self) -> None:
        """Payment amounts are integer paise, never floats."""
        assert ["amount"] == rejected_fields(InsertPaymentTransaction,
                                             {**PAYMENT, "amount": 118.0})

    @pytest.mark.parametrize("amount", [0, -100])
    def test_rejects_amount_that_is_not_positive(self, amount: int) -> None:
        """A payment moves at least one paisa."""
        assert ["amount"] == rejected_fields(InsertPaymentTransaction,
                                             {**PAYMENT, "amount": amount})


class TestInsertDiscountCoupon:
    def test_upper_cases_the_code(self) -> None:
        """Coupon codes are case-insensitive and stored in upper case."""
        assert "DIWALI-25" == parse(InsertDiscountCoupon, COUPON).code

    def test_rejects_percentage_over_100(self) -> None:
        """A percentage coupon takes at most 100 %."""
        with pytest.raises(ValidationError, match="discount_value"):
            parse(InsertDiscountCoupon, {**COUPON, "discount_value": 101})

    def test_allows_fixed_amount_over_100(self) -> None:
        """A fixed coupon is in paise, so it may exceed 100."""
        coupon = parse(InsertDiscountCoupon, {**COUPON, "discount_type": "fixed",
                                              "discount_value": 50_000})
        assert 50_000 == coupon.discount_value


class TestInsertInvoiceLine:
    def test_rejects_float_unit_price(self) -> None:
        """A float unit price is inexact."""
        assert ["unit_price"] == rejected_fields(InsertInvoiceLine,
                                                 {**LINE, "unit_price": 500.0})

    def test_keeps_decimal_unit_price(self) -> None:
        """A fractional-paise unit price is kept exactly."""
        assert Decimal("0.125") == parse(InsertInvoiceLine, {**LINE, "unit_price": "0.125"}
                                         ).unit_price


class TestCrossFieldErrorsNameTheField:
    def test_model_level_checks_name_their_field(self) -> None:
        """A check spanning fields still reports the field it is about, not 'input'."""
        from datetime import UTC, datetime

        from akashone_es.errors import ValidationError as AkashOneValidationError
        from akashone_es.storage.billing_inputs import InsertDiscountCoupon, InsertUsageRecord
        from akashone_es.storage.inputs import parse as parse_input

        cases = [
            (InsertUsageRecord, {"user_id": "00000000-0000-0000-0000-000000000001",
                                 "resource_type": "compute", "resource_id": "vm-1",
                                 "resource_name": "vm", "metric_type": "runtime",
                                 "quantity": "1", "period_start": datetime(2026, 2, 1, tzinfo=UTC),
                                 "period_end": datetime(2026, 1, 1, tzinfo=UTC)}, "period_end"),
            (InsertDiscountCoupon, {"code": "ABC", "name": "x", "discount_type": "percentage",
                                    "discount_value": 101}, "discount_value"),
        ]
        for model, data, field in cases:
            with pytest.raises(AkashOneValidationError) as caught:
                parse_input(model, data)
            assert [field] == caught.value.fields


class TestRoundOff:
    @pytest.mark.parametrize(("total", "expected"), [
        (12_349, -49), (12_350, 50), (12_300, 0), (1, -1), (99, 1), (-12_350, -50)])
    def test_round_off_brings_the_total_to_whole_rupees_half_up(self, total: int,
                                                                 expected: int) -> None:
        """The round-off is signed, at most 50 paise, and lands on a whole rupee."""
        from akashone_es.money import round_off_to_rupee

        assert expected == round_off_to_rupee(total)
        assert 0 == (total + expected) % 100
