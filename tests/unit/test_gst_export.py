"""Addresses abroad take place of supply 96 and export rules; Issued events gained GSTINs."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import orjson
import pytest
from eventsourcing.utils import get_topic

from akashone_es.application import OrjsonTranscoder, PydanticMapper
from akashone_es.domain.billing import AdjustmentNote, Invoice
from akashone_es.errors import ValidationError
from akashone_es.gst import (
    address_pos_code,
    address_state_code_error,
    is_india,
    place_of_supply,
    tax_treatment,
)
from akashone_es.storage import billing_inputs as bi
from akashone_es.storage import inputs as i


class TestIsIndia:
    @pytest.mark.parametrize("country", ["India", "IN", " india ", "IND", "in"])
    def test_names_of_india(self, country: str) -> None:
        """India by name or ISO code, in any case."""
        assert is_india(country)

    @pytest.mark.parametrize("country", ["Singapore", "US", "Indonesia", "British Indian Ocean"])
    def test_other_countries(self, country: str) -> None:
        """Anything else is abroad, even a name that starts like India."""
        assert not is_india(country)


class TestAddressStateCode:
    @pytest.mark.parametrize(("country", "code", "expected"), [
        ("Singapore", None, "96"), ("Singapore", "96", "96"), ("India", "29", "29"),
        ("IN", "38", "38")])
    def test_accepted_codes(self, country: str, code: str | None, expected: str) -> None:
        """India keeps its state code; abroad, omitted or explicit, the code is 96."""
        assert address_pos_code(country=country, state_code=code) == expected

    @pytest.mark.parametrize(("country", "code", "rule"), [
        ("India", "96", "outside India, not in India"),
        ("India", None, "needs its GST state code"),
        ("India", "42", "unknown state code"),
        ("Germany", "27", "takes place-of-supply code 96")])
    def test_refused_codes(self, country: str, code: str | None, rule: str) -> None:
        """96 in India, no code in India, an unknown code, an Indian code abroad: refused."""
        problem = address_state_code_error(country=country, state_code=code)
        assert problem is not None
        assert rule in problem
        with pytest.raises(ValidationError) as info:
            address_pos_code(country=country, state_code=code)
        assert info.value.fields == ["state_code"]


def address_input(**fields: Any) -> dict[str, Any]:
    return {"user_id": uuid4(), "address_line1": "1 Raffles Place", "city": "Singapore",
            "postal_code": "048616", **fields}


class TestBillingAddressInput:
    def test_foreign_address_needs_no_state_code(self) -> None:
        """Abroad, state_code may be omitted (storage records 96)."""
        parsed = i.parse(bi.InsertBillingAddress, address_input(country="Singapore"))
        assert (parsed.country, parsed.state_code) == ("Singapore", None)

    def test_foreign_address_takes_96(self) -> None:
        """96 is accepted with a country other than India."""
        parsed = i.parse(bi.InsertBillingAddress,
                         address_input(country="Singapore", state_code="96"))
        assert parsed.state_code == "96"

    @pytest.mark.parametrize(("fields", "field"), [
        ({"state_code": "96"}, "state_code"),
        ({"country": "India"}, "state_code"),
        ({"country": "Japan", "state_code": "29"}, "state_code"),
        ({"country": " ", "state_code": "29"}, "country")])
    def test_refused_combinations(self, fields: dict[str, Any], field: str) -> None:
        """India (the default country) refuses 96 and needs a code; a blank country is no
        country (it would otherwise read as abroad and bill an export)."""
        with pytest.raises(ValidationError) as info:
            i.parse(bi.InsertBillingAddress, address_input(**fields))
        assert info.value.fields == [field]

    def test_update_accepts_96_for_a_check_against_the_country(self) -> None:
        """An update may name 96; storage checks it against the address's country."""
        assert i.parse(bi.UpdateBillingAddress, {"state_code": "96"}).state_code == "96"
        with pytest.raises(ValidationError):
            i.parse(bi.UpdateBillingAddress, {"state_code": "42"})


class TestExportTreatment:
    def test_foreign_address_is_place_of_supply_96(self) -> None:
        """Abroad the place of supply is 96 whatever the state code."""
        assert place_of_supply(customer_gstin=None, address_state_code="96",
                               country="Singapore") == "96"

    @pytest.mark.parametrize(("lut", "igst"), [(False, 1800), (True, 0)])
    def test_export_is_igst_or_zero_rated_under_lut(self, lut: bool, igst: int) -> None:
        """An export: IGST 18 % without a LUT; zero-rated, no tax at all, with one."""
        treatment = tax_treatment(supplier_state="27", place_of_supply_code="96",
                                  rate_bp=1800, lut=lut)
        assert (treatment.kind, treatment.zero_rated, treatment.tax(10000)) == (
            "export", lut, {"cgst": 0, "sgst": 0, "utgst": 0, "igst": igst})


@pytest.fixture
def mapper() -> PydanticMapper:
    return PydanticMapper(transcoder=OrjsonTranscoder())


class TestIssuedEventVersions:
    def test_invoice_issued_v1_reads_without_buyer_gstin(self, mapper: PydanticMapper) -> None:
        """An Issued event stored before v2 (no buyer_gstin) is upcast with None."""
        state = {"timestamp": "2026-04-01T00:00:00+00:00", "invoice_number": "INV/2627/000001",
                 "fy": "2026-27", "issued_at": "2026-04-01T00:00:00+00:00",
                 "supplier_gstin": "27AAPFU0939F1ZV", "supplier_state_code": "27",
                 "place_of_supply": "29", "tax_type": "inter_state", "zero_rated": False,
                 "rate_bp": 1800, "heads_bp": {"igst": 1800}, "sac_code": "998315",
                 "lines": [], "totals": {}, "coupon_code": None, "discount_percentage": 0}
        event = mapper.decode(get_topic(Invoice.Issued), uuid4(), 2, orjson.dumps(state))
        assert (type(event), event.buyer_gstin) == (Invoice.Issued, None)

    def test_note_issued_v1_reads_without_supplier_gstin(self, mapper: PydanticMapper
                                                         ) -> None:
        """A note stored before v2 is upcast with no supplier GSTIN (its invoice's is used)."""
        state = {"timestamp": "2026-04-01T00:00:00+00:00", "originator_topic": get_topic(
            AdjustmentNote), "kind": "credit_note", "note_number": "CN/2627/000001",
            "fy": "2026-27", "invoice_id": str(uuid4()), "invoice_number": "INV/2627/000001",
            "user_id": str(uuid4()), "organization_id": None, "reason": "goodwill",
            "tax_type": "inter_state", "heads_bp": {"igst": 1800}, "lines": [], "totals": {}}
        event = mapper.decode(get_topic(AdjustmentNote.Issued), uuid4(), 1,
                              orjson.dumps(state))
        assert event.supplier_gstin is None

    def test_new_events_record_class_version_two(self, mapper: PydanticMapper) -> None:
        """Both Issued events are stored as version 2 with the GSTIN they carry."""
        note = AdjustmentNote(kind="credit_note", note_number="CN/2627/000001", fy="2026-27",
                              invoice_id=str(uuid4()), invoice_number="INV/2627/000001",
                              user_id=str(uuid4()), organization_id=None, reason="goodwill",
                              tax_type="export", heads_bp={}, lines=[], totals={},
                              supplier_gstin="27AAPFU0939F1ZV")
        [created] = note.collect_events()
        state = orjson.loads(mapper.to_stored_event(created).state)
        assert (state["class_version"], state["supplier_gstin"]) == (2, "27AAPFU0939F1ZV")
