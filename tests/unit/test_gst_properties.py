"""Hypothesis properties of the tax split, line pricing, allocation and basis-point rounding."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from hypothesis import given
from hypothesis import strategies as st

from akashone_es.domain.billing import price_lines
from akashone_es.gst import STATE_CODES, UT_WITHOUT_LEGISLATURE, TaxTreatment, tax_treatment
from akashone_es.money import allocate, apply_bp

HEADS = ("cgst_amount", "sgst_amount", "utgst_amount", "igst_amount")
POS_CODES = [*sorted(STATE_CODES), "96"]
taxables = st.integers(min_value=0, max_value=10**12)
rates = st.sampled_from([0, 500, 1200, 1800, 2800]) | st.integers(min_value=0, max_value=10_000)


@st.composite
def treatments(draw: st.DrawFn) -> TaxTreatment:
    """Any treatment: a supplier state, a place of supply, a rate, SEZ and LUT flags."""
    supplier = draw(st.sampled_from(sorted(STATE_CODES)))
    pos = draw(st.sampled_from([supplier, *POS_CODES]))
    return tax_treatment(supplier_state=supplier, place_of_supply_code=pos,
                         rate_bp=draw(rates), sez=draw(st.booleans()), lut=draw(st.booleans()))


@st.composite
def invoice_lines(draw: st.DrawFn) -> list[dict[str, int | str]]:
    """One to twenty lines with non-negative paise amounts."""
    amounts = draw(st.lists(st.integers(min_value=0, max_value=10**10), min_size=1,
                            max_size=20))
    return [{"id": f"line-{i}", "amount": amount} for i, amount in enumerate(amounts)]


class TestTaxSplit:
    @given(taxable=taxables, state=st.sampled_from(sorted(STATE_CODES)), rate_bp=rates)
    def test_intra_state_halves_are_always_equal(self, taxable: int, state: str,
                                                 rate_bp: int) -> None:
        """CGST equals SGST (or UTGST) on every intra-state line, whatever the amount."""
        treatment = tax_treatment(supplier_state=state, place_of_supply_code=state,
                                  rate_bp=rate_bp)
        tax = treatment.tax(taxable)
        second = "utgst" if state in UT_WITHOUT_LEGISLATURE else "sgst"
        assert tax["cgst"] == tax[second]
        assert 0 == tax["igst"]

    @given(taxable=taxables, treatment=treatments())
    def test_tax_is_never_negative_on_a_non_negative_taxable(
            self, taxable: int, treatment: TaxTreatment) -> None:
        """No head goes below zero for a non-negative taxable value."""
        assert all(amount >= 0 for amount in treatment.tax(taxable).values())

    @given(taxable=taxables, treatment=treatments())
    def test_only_one_route_is_charged(self, taxable: int, treatment: TaxTreatment) -> None:
        """A line carries either IGST or a CGST pair, never both."""
        tax = treatment.tax(taxable)
        assert tax["igst"] == 0 or tax["cgst"] + tax["sgst"] + tax["utgst"] == 0


class TestPriceLines:
    @given(lines=invoice_lines(), discount=st.integers(min_value=0, max_value=10**11),
           treatment=treatments())
    def test_header_totals_are_sums_of_lines(self, lines: list[dict[str, int | str]],
                                             discount: int, treatment: TaxTreatment) -> None:
        """Each head's header total is the sum of its line amounts (R8)."""
        priced, totals = price_lines(lines, discount, treatment)
        for key in ("taxable_amount", "discount_amount", *HEADS):
            assert totals[key] == sum(line[key] for line in priced)

    @given(lines=invoice_lines(), discount=st.integers(min_value=0, max_value=10**11),
           treatment=treatments())
    def test_discount_is_allocated_exactly_and_within_each_line(
            self, lines: list[dict[str, int | str]], discount: int,
            treatment: TaxTreatment) -> None:
        """The allocated discount sums to the discount (capped at the subtotal), and no
        line's discount is negative or exceeds its amount."""
        priced, totals = price_lines(lines, discount, treatment)
        subtotal = sum(int(line["amount"]) for line in lines)
        assert min(discount, subtotal) == sum(line["discount_amount"] for line in priced)
        for line in priced:
            assert 0 <= line["discount_amount"] <= line["amount"]
            assert line["amount"] - line["discount_amount"] == line["taxable_amount"]
        assert subtotal == totals["subtotal_amount"]

    @given(lines=invoice_lines(), discount=st.integers(min_value=0, max_value=10**11),
           treatment=treatments())
    def test_total_is_taxable_plus_every_head(self, lines: list[dict[str, int | str]],
                                              discount: int, treatment: TaxTreatment) -> None:
        """Grand total = taxable + CGST + SGST + UTGST + IGST; no round-off is hidden."""
        _, totals = price_lines(lines, discount, treatment)
        expected = totals["taxable_amount"] + sum(totals[key] for key in HEADS)
        assert expected == totals["total_amount"]
        assert 0 == totals["round_off_amount"]

    @given(lines=invoice_lines(), treatment=treatments())
    def test_each_line_is_taxed_on_its_taxable_value(
            self, lines: list[dict[str, int | str]], treatment: TaxTreatment) -> None:
        """Every line's heads are the treatment's tax on that line's taxable value."""
        priced, _ = price_lines(lines, 0, treatment)
        for line in priced:
            expected = treatment.tax(line["taxable_amount"])
            assert expected == {head: line[f"{head}_amount"] for head in expected}


class TestAllocate:
    @given(total=st.integers(min_value=-10**12, max_value=10**12),
           weights=st.lists(st.integers(min_value=0, max_value=10**9), min_size=1,
                            max_size=30).filter(lambda ws: sum(ws) > 0))
    def test_shares_always_sum_to_the_total(self, total: int, weights: list[int]) -> None:
        """Not a paisa is lost or invented, whatever the weights."""
        shares = allocate(total, weights)
        assert len(weights) == len(shares)
        assert total == sum(shares)

    @given(total=st.integers(min_value=0, max_value=10**12),
           weights=st.lists(st.integers(min_value=0, max_value=10**9), min_size=1,
                            max_size=30).filter(lambda ws: sum(ws) > 0))
    def test_shares_are_within_a_paisa_of_the_exact_proportion(
            self, total: int, weights: list[int]) -> None:
        """Largest remainder: each share is the floor or the ceiling of its exact share."""
        whole = sum(weights)
        for weight, share in zip(weights, allocate(total, weights), strict=True):
            assert total * weight // whole <= share <= -(-total * weight // whole)


class TestApplyBp:
    @given(amount=st.integers(min_value=-10**13, max_value=10**13),
           rate_bp=st.integers(min_value=0, max_value=10_000))
    def test_matches_decimal_half_up(self, amount: int, rate_bp: int) -> None:
        """Integer basis-point tax equals Decimal ROUND_HALF_UP of amount * bp / 10000."""
        exact = Decimal(amount) * Decimal(rate_bp) / Decimal(10_000)
        expected = int(exact.to_integral_value(rounding=ROUND_HALF_UP))
        assert expected == apply_bp(amount, rate_bp)
