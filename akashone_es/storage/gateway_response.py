"""What of a payment gateway's answer is kept: the fields a payment needs, nothing secret.

A gateway response lands in the event log, which is append-only and printed by ``history``:
a card number, CVV or API key in it could never be removed. So only allow-listed fields are
kept (at every level), and any kept text or number that still looks like a card number, a CVV
or a key is masked, before the event is created.
"""

from __future__ import annotations

import re
from typing import Any, Final

#: the fields of Razorpay, Cashfree and Stripe answers that reconcile, explain or date a
#: payment; anything else (cards, customers' contacts, signatures, keys, notes) is dropped
KEPT_FIELDS: Final = frozenset({
    # ids and references
    "id", "entity", "object", "order_id", "payment_id", "invoice_id", "transaction_id",
    "cf_payment_id", "razorpay_payment_id", "razorpay_order_id", "payment_intent",
    "latest_charge", "bank_reference", "rrn", "utr", "arn", "reference_id",
    # status
    "status", "payment_status", "captured", "refund_status", "international",
    # amounts
    "amount", "amount_refunded", "amount_received", "amount_captured", "payment_amount",
    "currency", "payment_currency", "fee", "tax",
    # method (its kind, never its number)
    "method", "payment_method", "payment_method_type", "payment_method_types",
    "payment_group", "bank", "wallet", "network", "card_network", "card_type", "brand",
    "card_brand", "funding", "issuer", "channel", "type", "last4", "card_last4",
    "acquirer_data", "card",
    # errors
    "error", "error_code", "error_description", "error_reason", "error_source", "error_step",
    "error_message", "error_details", "last_payment_error", "code", "decline_code",
    "message", "reason", "payment_message",
    # times
    "created", "created_at", "captured_at", "updated_at", "payment_time",
})
#: integers under these fields are amounts or epoch times, never card numbers
NUMERIC_FIELDS: Final = frozenset({
    "amount", "amount_refunded", "amount_received", "amount_captured", "payment_amount",
    "fee", "tax", "created", "created_at", "captured_at", "updated_at", "payment_time",
})
#: a field whose name says it holds a secret is dropped even if listed above
SECRET_NAME: Final = re.compile(
    r"secret|key|token|password|passwd|pwd|cvv|cvc|cvn|csc|pin|otp|signature|"
    r"card_?number|pan$|^number$|auth", re.IGNORECASE)
#: 13 to 19 digits, optionally split by spaces or dashes: the shape of a card number
CARD_NUMBER: Final = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)")
#: API keys of the gateways (Stripe sk_/pk_/rk_/whsec_, Razorpay rzp_), bearer tokens
API_KEY: Final = re.compile(
    r"\b(?:(?:sk|pk|rk)_(?:live|test)_|whsec_|rzp_(?:live|test)_)[A-Za-z0-9]+|"
    r"\bBearer\s+\S+", re.IGNORECASE)
#: a CVV written out in a message ("cvv 123", "CVC: 1234")
CVV_TEXT: Final = re.compile(r"\b(cvv2?|cvc2?|cvn|csc)\b\W{0,3}\d{3,4}\b", re.IGNORECASE)
MASK: Final = "[masked]"


def sanitize_gateway_response(response: dict[str, Any] | None) -> dict[str, Any] | None:
    """The kept, masked copy of ``response`` (already checked as bounded JSON)."""
    if response is None:
        return None
    return _object(response)


def _object(value: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, item in value.items():
        name = key.lower()
        if name not in KEPT_FIELDS or SECRET_NAME.search(name):
            continue
        if isinstance(item, int) and not isinstance(item, bool) and name in NUMERIC_FIELDS:
            kept[key] = item
        else:
            kept[key] = _value(item)
    return kept


def _value(value: Any) -> Any:
    if isinstance(value, dict):
        return _object(value)
    if isinstance(value, list):
        return [_value(item) for item in value]
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, int) and not isinstance(value, bool) and len(str(abs(value))) >= 13:
        return MASK  # a long number outside the amount and time fields may be a card number
    return value


def _text(value: str) -> str:
    value = CARD_NUMBER.sub(lambda match: _masked_card(match.group()), value)
    value = API_KEY.sub(MASK, value)
    return CVV_TEXT.sub(lambda match: f"{match.group(1)} {MASK}", value)


def _masked_card(number: str) -> str:
    """Keep the last four digits, as card receipts do (PCI DSS allows them)."""
    digits = re.sub(r"\D", "", number)
    return f"{MASK}{digits[-4:]}"
