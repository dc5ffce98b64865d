"""Bounded input: every field of every input model has a limit; JSON fields hold only JSON a
projection can store; quantities and prices cannot overflow an invoice; gateway answers keep
no secret."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from akashone_es.domain.billing import price_lines
from akashone_es.errors import ValidationError
from akashone_es.gst import TaxTreatment
from akashone_es.storage import billing_inputs as bi
from akashone_es.storage import inputs as i
from akashone_es.storage import limits as lim
from akashone_es.storage.gateway_response import (
    KEPT_FIELDS,
    SECRET_NAME,
    sanitize_gateway_response,
)

#: str fields bounded otherwise than by max_length, and why
BOUNDED_OTHERWISE = {
    "email": "refused over 254 characters before EmailStr parses it",
    "state_code": "must be one of the GST state codes",
    "supplier_state_code": "must be one of the GST state codes",
    "customer_state_code": "must be one of the GST state codes",
}
#: the free-form JSON fields
JSON_FIELDS = {"metadata", "gateway_response", "tags"}
AT = datetime(2025, 4, 1, tzinfo=UTC)


def input_models() -> list[type[i.Input]]:
    """Every input model (subclasses of Input, at any depth)."""
    found: list[type[i.Input]] = []
    todo = list(i.Input.__subclasses__())
    while todo:
        model = todo.pop()
        found.append(model)
        todo.extend(model.__subclasses__())
    return sorted(found, key=lambda model: model.__name__)


def fields() -> list[tuple[type[i.Input], str]]:
    return [(model, name) for model in input_models() for name in model.model_fields]


def schema_nodes(schema: Any) -> list[dict[str, Any]]:
    """The core-schema nodes of one field, not descending into nested models."""
    if isinstance(schema, list):
        return [node for item in schema for node in schema_nodes(item)]
    if not isinstance(schema, dict) or schema.get("type") in ("model", "definition-ref"):
        return []
    nodes = [schema] if "type" in schema else []
    if schema.get("type") == "dict":  # its keys and values are checked as JSON, by path
        return nodes
    for key, value in schema.items():
        if key not in ("metadata", "serialization", "function"):
            nodes.extend(schema_nodes(value))
    return nodes


def field_nodes(model: type[i.Input], name: str) -> list[dict[str, Any]]:
    schema = model.__pydantic_core_schema__
    while "fields" not in schema:
        schema = schema["schema"]
    return schema_nodes(schema["fields"][name]["schema"])


def rejected(model: type[Any], data: dict[str, Any]) -> list[dict[str, str]]:
    with pytest.raises(ValidationError) as info:
        i.parse(model, data)
    return info.value.errors


def rules_on(model: type[Any], data: dict[str, Any], field: str) -> list[str]:
    return [e["rule"] for e in rejected(model, data) if e["field"] == field]


class TestEveryFieldIsBounded:
    """Generated over every input model: a field added later without a bound fails here."""

    def test_models_are_found(self) -> None:
        """The enumeration sees the models of both input modules."""
        names = {model.__name__ for model in input_models()}
        assert {"InsertUser", "InsertUserActivity", "InsertInvoice", "InsertUsageRecord",
                "InsertPaymentTransaction", "InsertServicePlan"} <= names

    @pytest.mark.parametrize(("model", "name"), fields(),
                             ids=[f"{m.__name__}.{n}" for m, n in fields()])
    def test_text_and_lists_have_a_max_length(self, model: type[i.Input], name: str) -> None:
        """Every str and list in a field's schema carries max_length (or a listed reason)."""
        unbounded = [node["type"] for node in field_nodes(model, name)
                     if node["type"] in ("str", "list") and "max_length" not in node]
        if name in BOUNDED_OTHERWISE:
            unbounded = [kind for kind in unbounded if kind != "str"]
        assert [] == unbounded

    @pytest.mark.parametrize(("model", "name"), fields(),
                             ids=[f"{m.__name__}.{n}" for m, n in fields()])
    def test_huge_values_are_refused(self, model: type[i.Input], name: str) -> None:
        """Whatever its type, no field takes a 100,000-character string, 2^64, 10^20 or a
        100 kB object: each is refused on that field."""
        kinds = {node["type"] for node in field_nodes(model, name)}
        huge: list[Any] = ["x" * 100_000, "9" * 100_000, 2**64, Decimal(10) ** 20,
                           {"k": "x" * 100_000}, ["x"] * 100_000]
        if "str" in kinds or "list" in kinds or "dict" in kinds or "int" in kinds \
                or "decimal" in kinds:
            for value in huge:
                named = [e["field"] for e in rejected(model, {name: value})]
                assert any(f == name or f.startswith(f"{name}.") for f in named), value

    @pytest.mark.parametrize(("model", "name"), fields(),
                             ids=[f"{m.__name__}.{n}" for m, n in fields()])
    def test_free_form_objects_are_checked_json(self, model: type[i.Input], name: str) -> None:
        """Only the known JSON fields take an object, and each refuses a NUL inside it."""
        if not any(node["type"] == "dict" for node in field_nodes(model, name)):
            return
        assert name in JSON_FIELDS
        assert ["must not contain NUL characters"] == rules_on(
            model, {name: {"a": {"b": "x\x00"}}}, f"{name}.a.b")

    @pytest.mark.parametrize(("model", "name"), fields(),
                             ids=[f"{m.__name__}.{n}" for m, n in fields()])
    def test_text_inside_lists_is_storable(self, model: type[i.Input], name: str) -> None:
        """A list of texts (a VM's network ids, say) refuses a NUL in any item, on that
        field: an input model built directly and handed to a method is not checked again,
        and PostgreSQL would refuse it with an error naming no field."""
        if not any(node["type"] == "list" and node.get("items_schema", {}).get("type") == "str"
                   for node in field_nodes(model, name)):
            return
        named = [e["field"] for e in rejected(model, {name: ["x\x00y"]})]
        assert any(field == name or field.startswith(f"{name}.") for field in named), named

    def test_lists_of_text_are_found(self) -> None:
        from akashone_es.resources import KINDS
        KINDS["virtual_machine"].create_input()
        assert [n for m, n in fields() if n == "network_ids"]

    @pytest.mark.parametrize("model", [i.InsertUser, i.InsertTeamMember])
    def test_email_over_254_characters_is_refused(self, model: type[i.Input]) -> None:
        """An address of 255 characters (syntactically fine) is refused on email."""
        email = "a" * 64 + "@" + ".".join(["b" * 60] * 4) + ".in"
        assert len(email) > lim.EMAIL_MAX
        assert [f"an email address has at most {lim.EMAIL_MAX} characters"
                ] == rules_on(model, {"email": email}, "email")


class TestFreeFormJson:
    """Activity metadata (as every JSON field): only values a jsonb projection can store."""

    @staticmethod
    def refused(metadata: Any) -> list[dict[str, str]]:
        return rejected(i.InsertUserActivity, {"action": "login", "metadata": metadata})

    @pytest.mark.parametrize(("metadata", "field", "rule"), [
        ({"a": {"b": ["ok", "x\x00y"]}}, "metadata.a.b.1", "must not contain NUL characters"),
        ({"a": {"k\x00": 1}}, "metadata.a.k\\x00", "key must not contain NUL characters"),
        ({"a": "\ud800"}, "metadata.a", "must not contain lone surrogates (not valid Unicode)"),
        ({"a": {"\udfff": 1}}, "metadata.a.\\udfff",
         "key must not contain lone surrogates (not valid Unicode)"),
        ({"n": float("nan")}, "metadata.n", "must be a finite number"),
        ({"n": [float("inf")]}, "metadata.n.0", "must be a finite number"),
        ({"n": 2**63}, "metadata.n", "integer out of the 64-bit range"),
        ({"n": -(2**63) - 1}, "metadata.n", "integer out of the 64-bit range"),
        ({"d": {1: "x"}}, "metadata.d", "object keys must be strings"),
        ({"t": AT}, "metadata.t", "not a JSON value (datetime): use a string, number, boolean,"
                                  " null, list or object"),
        ({"b": b"raw"}, "metadata.b", "not a JSON value (bytes): use a string, number, boolean,"
                                      " null, list or object"),
        ({"s": "x" * (lim.JSON_STRING_MAX + 1)}, "metadata.s",
         f"longer than {lim.JSON_STRING_MAX} characters"),
        ({"k" * (lim.JSON_KEY_MAX + 1): 1}, "metadata." + "k" * lim.JSON_KEY_MAX,
         f"key longer than {lim.JSON_KEY_MAX} characters"),
    ])
    def test_refuses_what_jsonb_or_the_log_cannot_hold(self, metadata: Any, field: str,
                                                       rule: str) -> None:
        """Each bad value is refused at its own path inside the field, with its rule."""
        assert [{"field": field, "rule": rule}] == self.refused(metadata)

    def test_refuses_nesting_deeper_than_the_bound(self) -> None:
        """Nine levels of nesting are refused at the ninth; eight are accepted."""
        deep: Any = "leaf"
        for _ in range(lim.JSON_DEPTH_MAX):
            deep = {"d": deep}
        accepted = i.parse(i.InsertUserActivity, {"action": "a", "metadata": deep})
        assert deep == accepted.metadata
        field = "metadata" + ".d" * (lim.JSON_DEPTH_MAX + 1)
        assert [{"field": field, "rule": f"nested deeper than {lim.JSON_DEPTH_MAX} levels"}
                ] == self.refused({"d": deep})

    def test_refuses_more_values_than_the_bound(self) -> None:
        """An object of 1,000 values (itself included) passes; 1,001 are refused."""
        assert i.parse(i.InsertUserActivity, {"action": "a", "metadata": {
            str(n): n for n in range(lim.JSON_NODES_MAX - 1)}})
        errors = self.refused({str(n): n for n in range(lim.JSON_NODES_MAX)})
        assert [f"more than {lim.JSON_NODES_MAX} values in all"] == [e["rule"] for e in errors]

    def test_refuses_a_document_over_the_encoded_size(self) -> None:
        """Many strings each within bounds, 20 kB together: refused on the field itself."""
        metadata = {str(n): "x" * 1000 for n in range(20)}
        size = len(orjson.dumps(metadata))
        assert [{"field": "metadata",
                 "rule": f"{size} bytes encoded, more than {lim.JSON_BYTES_MAX}"}
                ] == self.refused(metadata)

    def test_accepts_ordinary_json_unchanged(self) -> None:
        """Nested objects, lists, numbers, booleans and null pass as they are."""
        metadata = {"browser": {"name": "firefox", "v": 128.0}, "tags": ["a", None, True],
                    "count": 2**63 - 1, "": "empty keys are JSON too"}
        assert metadata == i.parse(i.InsertUserActivity, {"action": "a",
                                                          "metadata": metadata}).metadata

    def test_usage_metadata_has_the_same_rules(self) -> None:
        """Usage records' metadata is the same checked JSON."""
        assert ["must not contain NUL characters"] == rules_on(
            bi.InsertUsageRecord, {"metadata": {"vm": ["\x00"]}}, "metadata.vm.0")


class TestMoneyAndQuantities:
    """No accepted line or usage record can overflow an invoice."""

    LINE: dict[str, Any] = {"resource_type": "compute", "resource_name": "vm",
                            "description": "vm hours", "unit": "hours"}

    def test_the_largest_invoice_stays_within_bigint_paise(self) -> None:
        """500 lines at the line bound, taxed at 28 %: the total is at most INVOICE_TOTAL_MAX,
        below PAISE_MAX and bigint."""
        lines = [{"id": str(n), "amount": lim.LINE_AMOUNT_MAX}
                 for n in range(lim.INVOICE_LINES_MAX)]
        _, totals = price_lines(lines, 0, TaxTreatment("inter_state", igst_bp=2800))
        assert totals["total_amount"] + 50 <= lim.INVOICE_TOTAL_MAX < lim.PAISE_MAX
        assert lim.PAISE_MAX < lim.BIGINT_MAX

    def test_largest_line_is_accepted(self) -> None:
        """10^9 units at 10^6 paise is exactly the line bound: accepted."""
        line = i.parse(bi.InsertInvoiceLine, {**self.LINE, "quantity": lim.QUANTITY_MAX,
                                              "unit_price": 10**6})
        assert lim.LINE_AMOUNT_MAX == line.quantity * line.unit_price

    @pytest.mark.parametrize(("changes", "field", "rule"), [
        ({"quantity": Decimal(10) ** 15, "unit_price": 10**15}, "quantity",
         "Input should be less than or equal to 1000000000"),
        ({"quantity": "1.0000001", "unit_price": 1}, "quantity",
         "Decimal input should have no more than 6 decimal places"),
        ({"quantity": 1, "unit_price": 10**9 + 1}, "unit_price",
         "Input should be less than or equal to 1000000000"),
        ({"quantity": lim.QUANTITY_MAX, "unit_price": 10**6 + 1}, "quantity",
         "quantity x unit_price is 1000001000000000 paise, above the 1000000000000000 paise "
         "one line or usage record may amount to"),
    ])
    def test_line_over_a_bound_is_refused(self, changes: dict[str, Any], field: str,
                                          rule: str) -> None:
        """A quantity, a price, a precision or their product over its bound is refused."""
        assert [rule] == rules_on(bi.InsertInvoiceLine, {**self.LINE, **changes}, field)

    def test_usage_quantity_and_price_are_bounded(self) -> None:
        """A usage record of 10^15 x 10^15 paise is refused on quantity and unit_price."""
        errors = rejected(bi.InsertUsageRecord, {"quantity": 10**15, "unit_price": 10**15})
        assert {"quantity", "unit_price"} <= {e["field"] for e in errors}

    def test_an_invoice_takes_at_most_500_lines(self) -> None:
        """501 lines are refused on lines (the list), before any line is looked at."""
        lines = [{**self.LINE, "quantity": 1, "unit_price": 1}] * (lim.INVOICE_LINES_MAX + 1)
        rules = rules_on(bi.InsertInvoice, {"lines": lines}, "lines")
        assert ["List should have at most 500 items after validation, not 501"] == rules

    @pytest.mark.parametrize("rate", ["100.01", "-1", "18.005"])
    def test_tax_rates_fit_numeric_5_2(self, rate: str) -> None:
        """A GST rate is 0-100 with two places (numeric(5,2) columns)."""
        assert rules_on(bi.InsertTaxCalculation, {"igst_rate": rate}, "igst_rate")

    def test_a_payment_is_at_most_the_largest_invoice(self) -> None:
        """A payment above INVOICE_TOTAL_MAX is refused on amount."""
        assert rules_on(bi.InsertPaymentTransaction, {"amount": lim.INVOICE_TOTAL_MAX + 1},
                        "amount")


class TestGatewayResponse:
    """A gateway's answer keeps the fields a payment needs, and no card number, CVV or key."""

    RAW: dict[str, Any] = {
        "id": "pay_29QQoUBi66xm2f", "status": "captured", "amount": 11800,
        "currency": "INR", "method": "card", "order_id": "order_9A33XWu170gUtm",
        "created_at": 1400826750, "error_code": None,
        "card": {"number": "4111 1111 1111 1111", "cvv": "123", "last4": "1111",
                 "network": "Visa", "expiry_month": 12, "name": "Asha Rao"},
        "card_number": "4111111111111111", "cvv": "123", "cvc": "4321",
        "api_key": "rzp_live_ILgsfZCZoFIKMb", "key_secret": "s3cr3t", "token": "tok_abc",
        "email": "asha@example.com", "contact": "+919900000000",
        "notes": {"anything": "the merchant wrote"},
        "description": "paid with 4111-1111-1111-1111 cvv 123 using sk_live_abcDEF123",
    }

    def test_keeps_only_the_fields_a_payment_needs(self) -> None:
        """Ids, status, amount, currency, method, times and the card's network and last
        four digits are kept; the card number, CVV, keys, contacts and notes are dropped."""
        assert {"id": "pay_29QQoUBi66xm2f", "status": "captured", "amount": 11800,
                "currency": "INR", "method": "card", "order_id": "order_9A33XWu170gUtm",
                "created_at": 1400826750, "error_code": None,
                "card": {"last4": "1111", "network": "Visa"}} == sanitize_gateway_response(
            {k: v for k, v in self.RAW.items() if k != "description"})

    def test_masks_card_numbers_cvvs_and_keys_in_kept_text(self) -> None:
        """A kept message that quotes a card number, a CVV or a key is masked (the card
        keeps its last four digits)."""
        kept = sanitize_gateway_response({"error_description": self.RAW["description"],
                                          "message": "card 4111111111111111 declined"})
        assert {"error_description": "paid with [masked]1111 cvv [masked] using [masked]",
                "message": "card [masked]1111 declined"} == kept

    def test_long_numbers_outside_amounts_and_times_are_masked(self) -> None:
        """A card number sent as a number under a kept id field is masked; amounts and
        epoch times (13 digits in milliseconds) are not."""
        assert {"id": "[masked]", "created": 1_700_000_000_000, "amount": 10**15} == (
            sanitize_gateway_response({"id": 4111111111111111, "created": 1_700_000_000_000,
                                       "amount": 10**15}))

    def test_no_kept_field_is_named_like_a_secret(self) -> None:
        """The allow-list itself holds no card, CVV, key or token field."""
        assert [] == [name for name in KEPT_FIELDS if SECRET_NAME.search(name)]

    def test_the_input_model_sanitizes_before_anything_is_stored(self) -> None:
        """Parsing a payment already trims its gateway_response (create and update)."""
        for model, data in ((bi.InsertPaymentTransaction,
                             {"invoice_id": "00000000-0000-0000-0000-000000000001",
                              "gateway": "razorpay", "amount": 1}),
                            (bi.UpdatePaymentTransaction, {"status": "failed"})):
            parsed = i.parse(model, {**data, "gateway_response": self.RAW})
            text = orjson.dumps(parsed.gateway_response).decode()
            for secret in ("4111 1111 1111 1111", "4111111111111111", "4111-1111", "s3cr3t",
                           "rzp_live", "sk_live", "tok_abc", "asha@example.com", '"123"',
                           "4321"):
                assert secret not in text

    def test_gateway_response_is_bounded_before_it_is_trimmed(self) -> None:
        """A NUL anywhere (even in a dropped field) is refused, naming its path."""
        assert ["must not contain NUL characters"] == rules_on(
            bi.UpdatePaymentTransaction, {"gateway_response": {"notes": {"x": "\x00"}}},
            "gateway_response.notes.x")
