"""GST vectors: place of supply, tax heads, rounding, financial years, numbers, rates."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from akashone_es.errors import ValidationError
from akashone_es.gst import (
    DEFAULT_RATES,
    UT_WITHOUT_LEGISLATURE,
    RateTable,
    SupplyKind,
    TaxTreatment,
    document_number,
    document_number_error,
    financial_year,
    place_of_supply,
    tax_treatment,
)
from akashone_es.money import apply_bp, round_half_up

DOCUMENT_RULE = "must match ^[A-Z1-9][A-Z0-9/-]{0,15}$ (upper case; no leading 0, / or -)"


def heads(treatment: TaxTreatment) -> tuple[str, int, int, int, int, bool]:
    """The kind, the four head rates and the zero-rated flag of a treatment."""
    return (treatment.kind, treatment.cgst_bp, treatment.sgst_bp, treatment.utgst_bp,
            treatment.igst_bp, treatment.zero_rated)


def treat(supplier: str, pos: str, *, sez: bool = False, lut: bool = False) -> TaxTreatment:
    """The treatment of an 18 % supply from ``supplier`` to ``pos``."""
    return tax_treatment(supplier_state=supplier, place_of_supply_code=pos, rate_bp=1800,
                         sez=sez, lut=lut)


class TestTaxHeads:
    def test_intra_state_splits_into_equal_cgst_and_sgst(self) -> None:
        """Maharashtra to Maharashtra: CGST 9 % + SGST 9 %, equal amounts, no IGST."""
        treatment = treat("27", "27")
        assert (SupplyKind.INTRA_STATE, 900, 900, 0, 0, False) == heads(treatment)
        assert {"cgst": 900, "sgst": 900, "utgst": 0, "igst": 0} == treatment.tax(10_000)

    def test_inter_state_charges_igst_only(self) -> None:
        """Maharashtra to Karnataka: IGST 18 %."""
        treatment = treat("27", "29")
        assert (SupplyKind.INTER_STATE, 0, 0, 0, 1800, False) == heads(treatment)
        assert {"cgst": 0, "sgst": 0, "utgst": 0, "igst": 1800} == treatment.tax(10_000)

    @pytest.mark.parametrize("code", ["04", "38", "26", "35", "31", "97"])
    def test_ut_without_legislature_levies_utgst_not_sgst(self, code: str) -> None:
        """Chandigarh, Ladakh, DNH&DD, A&N, Lakshadweep, Other Territory: CGST + UTGST."""
        treatment = treat(code, code)
        assert code in UT_WITHOUT_LEGISLATURE
        assert (SupplyKind.INTRA_STATE, 900, 0, 900, 0, False) == heads(treatment)
        assert {"cgst": 450, "sgst": 0, "utgst": 450, "igst": 0} == treatment.tax(5_000)

    @pytest.mark.parametrize("code", ["07", "34", "01"])
    def test_ut_with_legislature_levies_sgst(self, code: str) -> None:
        """Delhi, Puducherry and Jammu & Kashmir count as States: CGST + SGST."""
        assert code not in UT_WITHOUT_LEGISLATURE
        assert (SupplyKind.INTRA_STATE, 900, 900, 0, 0, False) == heads(treat(code, code))

    def test_sez_in_same_state_is_inter_state_igst(self) -> None:
        """A supply to an SEZ unit is inter-state even inside the supplier's state."""
        assert (SupplyKind.SEZ, 0, 0, 0, 1800, False) == heads(treat("27", "27", sez=True))

    def test_sez_under_lut_is_zero_rated(self) -> None:
        """An SEZ supply under a Letter of Undertaking carries no tax at all."""
        treatment = treat("27", "27", sez=True, lut=True)
        assert (SupplyKind.SEZ, 0, 0, 0, 0, True) == heads(treatment)
        assert {"cgst": 0, "sgst": 0, "utgst": 0, "igst": 0} == treatment.tax(10_000)

    def test_export_without_lut_charges_igst(self) -> None:
        """A customer outside India: POS 96, IGST 18 % (refund route)."""
        pos = place_of_supply(customer_gstin=None, address_state_code=None, country="US")
        assert "96" == pos
        assert (SupplyKind.EXPORT, 0, 0, 0, 1800, False) == heads(treat("27", pos))

    def test_export_under_lut_is_zero_rated(self) -> None:
        """An export under a Letter of Undertaking is zero-rated."""
        assert (SupplyKind.EXPORT, 0, 0, 0, 0, True) == heads(treat("27", "96", lut=True))

    def test_lut_does_not_zero_rate_a_domestic_supply(self) -> None:
        """A LUT only matters for SEZ and exports; inter-state domestic still pays IGST."""
        assert (SupplyKind.INTER_STATE, 0, 0, 0, 1800, False) == heads(
            treat("27", "29", lut=True))


class TestPlaceOfSupply:
    def test_registered_customer_uses_gstin_state_not_address(self) -> None:
        """A Karnataka GSTIN billed at a Maharashtra address: POS is Karnataka (29)."""
        assert "29" == place_of_supply(customer_gstin="29AAGCG6253J1Z8",
                                       address_state_code="27")

    def test_unregistered_customer_uses_address_state(self) -> None:
        """B2C in India: the state of the address on record."""
        assert "33" == place_of_supply(customer_gstin=None, address_state_code="33")

    @pytest.mark.parametrize("country", ["IN", "India", "india"])
    def test_india_in_any_spelling_is_domestic(self, country: str) -> None:
        """'IN' and 'India' (any case) are domestic supplies."""
        assert "07" == place_of_supply(customer_gstin=None, address_state_code="07",
                                       country=country)

    def test_rejects_domestic_b2c_without_state(self) -> None:
        """A B2C customer in India must give a state; it never defaults to the supplier's."""
        with pytest.raises(ValidationError) as info:
            place_of_supply(customer_gstin=None, address_state_code=None)
        assert ["state_code"] == info.value.fields

    @pytest.mark.parametrize("code", ["00", "40", "96", "7"])
    def test_rejects_unknown_state_code(self, code: str) -> None:
        """A state code that is not in the GST table is rejected."""
        with pytest.raises(ValidationError) as info:
            place_of_supply(customer_gstin=None, address_state_code=code)
        assert ["state_code"] == info.value.fields

    def test_rejects_invalid_customer_gstin(self) -> None:
        """A GSTIN with a wrong check character cannot decide the place of supply."""
        with pytest.raises(ValidationError) as info:
            place_of_supply(customer_gstin="29AAGCG6253J1Z9", address_state_code="29")
        assert ["gst_number"] == info.value.fields


class TestRounding:
    @pytest.mark.parametrize(("taxable", "cgst_plus_sgst", "igst"), [(50, 10, 9), (105, 18, 19)])
    def test_intra_and_inter_state_may_differ_by_a_paisa(
            self, taxable: int, cgst_plus_sgst: int, igst: int) -> None:
        """§6: taxable 50 p -> 5 + 5 but IGST 9; 105 p -> 9 + 9 but IGST 19."""
        intra, inter = treat("27", "27").tax(taxable), treat("27", "29").tax(taxable)
        assert intra["cgst"] == intra["sgst"]
        assert cgst_plus_sgst == intra["cgst"] + intra["sgst"]
        assert igst == inter["igst"]

    @pytest.mark.parametrize(("paise", "bp", "expected"), [
        (50, 900, 5), (49, 1000, 5), (44, 1000, 4), (45, 1000, 5), (1, 5000, 1),
        (-50, 900, -5), (-105, 1800, -19), (-45, 1000, -5), (-44, 1000, -4), (0, 1800, 0)])
    def test_apply_bp_rounds_half_away_from_zero(self, paise: int, bp: int,
                                                 expected: int) -> None:
        """Half a paisa rounds up, and for credit notes (negatives) away from zero."""
        assert expected == apply_bp(paise, bp)

    @pytest.mark.parametrize(("amount", "expected"), [
        ("2.5", 3), ("2.4999", 2), ("-2.5", -3), ("-0.5", -1), ("-2.4", -2), ("7", 7)])
    def test_round_half_up_rounds_halves_away_from_zero(self, amount: str,
                                                        expected: int) -> None:
        """Decimal amounts round to whole paise, halves away from zero."""
        assert expected == round_half_up(Decimal(amount))


class TestFinancialYear:
    @pytest.mark.parametrize(("on", "expected"), [
        (date(2026, 3, 31), "2025-26"), (date(2026, 4, 1), "2026-27"),
        (date(2027, 1, 1), "2026-27"), (date(2099, 4, 1), "2099-00"),
        (date(2000, 3, 31), "1999-00")])
    def test_year_runs_from_april_to_march(self, on: date, expected: str) -> None:
        """31 March closes a financial year and 1 April opens the next."""
        assert expected == financial_year(on)


class TestDocumentNumber:
    @pytest.mark.parametrize(("kind", "sequence", "expected"), [
        ("invoice", 1, "INV/2627/000001"), ("credit_note", 42, "CN/2627/000042"),
        ("debit_note", 123_456, "DN/2627/123456"), ("invoice", 9_999_999, "INV/2627/9999999")])
    def test_formats_prefix_year_and_serial(self, kind: str, sequence: int,
                                            expected: str) -> None:
        """Prefix, the FY's two 2-digit years and a zero-padded serial."""
        assert expected == document_number(kind, "2026-27", sequence)

    def test_rejects_a_number_past_sixteen_characters(self) -> None:
        """Serial 10,000,000 would give a 17-character invoice number."""
        with pytest.raises(ValidationError) as info:
            document_number("invoice", "2026-27", 10_000_000)
        assert ["invoice_number"] == info.value.fields

    @pytest.mark.parametrize("number", ["A" * 16, "INV/2627/000001", "9-A/B", "1"])
    def test_accepts_valid_number(self, number: str) -> None:
        """Up to 16 upper-case letters, digits, '/' and '-' not starting with 0."""
        assert document_number_error(number) is None

    def test_rejects_seventeen_characters(self) -> None:
        """Rule 46(b): at most 16 characters."""
        assert "at most 16 characters" == document_number_error("INV/2627/00000001")

    @pytest.mark.parametrize("number", ["0INV/1", "/INV/1", "-INV/1", "inv/2627/000001",
                                        "INV 2627", "INV_1", ""])
    def test_rejects_number_outside_the_irp_pattern(self, number: str) -> None:
        """No leading 0, / or -; upper case; only letters, digits, '/' and '-'."""
        assert DOCUMENT_RULE == document_number_error(number)


class TestRateTable:
    TABLE = RateTable([("998315", date(2017, 7, 1), 1800), ("998315", date(2025, 9, 22), 500),
                       ("998313", date(2017, 7, 1), 1200)])

    @pytest.mark.parametrize(("on", "expected"), [
        (date(2017, 7, 1), 1800), (date(2025, 9, 21), 1800), (date(2025, 9, 22), 500),
        (date(2030, 1, 1), 500)])
    def test_picks_the_rate_in_force_on_the_date(self, on: date, expected: int) -> None:
        """The latest row that started on or before the date applies."""
        assert expected == self.TABLE.rate_bp("998315", on)

    def test_keeps_rates_per_sac(self) -> None:
        """Each SAC has its own rows."""
        assert 1200 == self.TABLE.rate_bp("998313", date(2026, 1, 1))

    @pytest.mark.parametrize(("sac", "on"), [("998319", date(2026, 1, 1)),
                                             ("998315", date(2017, 6, 30))])
    def test_rejects_sac_without_a_rate(self, sac: str, on: date) -> None:
        """An unknown SAC, or a date before any rate, has no rate."""
        with pytest.raises(ValidationError) as info:
            self.TABLE.rate_bp(sac, on)
        assert ["sac_code"] == info.value.fields

    @pytest.mark.parametrize("on", [date(2025, 9, 21), date(2025, 9, 22), date(2026, 4, 1)])
    def test_hosting_stays_at_18_percent_across_2025_change(self, on: date) -> None:
        """SAC 998315 is 18 % before and after 22 Sep 2025."""
        assert 1800 == DEFAULT_RATES.rate_bp("998315", on)


class TestFinancialYearInIndia:
    def test_a_moment_belongs_to_the_financial_year_of_its_indian_date(self) -> None:
        """19:00 UTC on 31 March is 00:30 IST on 1 April: the new financial year."""
        from datetime import UTC, datetime

        assert ("2026-27", "2027-28") == (
            financial_year(datetime(2027, 3, 31, 18, 0, tzinfo=UTC)),
            financial_year(datetime(2027, 3, 31, 19, 0, tzinfo=UTC)))
