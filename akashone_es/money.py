"""Money as integer paise (and Decimal for metering); never float."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Final

from akashone_es.errors import ValidationError

PAISE_PER_RUPEE: Final = 100
BASIS_POINTS: Final = 10_000


def require_exact(value: object, field: str) -> Decimal:
    """A Decimal from an int, Decimal or numeric string; floats are refused (they are inexact)."""
    if isinstance(value, bool | float):
        raise ValidationError.single(field, "money must be an int (paise), a Decimal or a "
                                            "numeric string, never a float")
    if isinstance(value, int | Decimal):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValidationError.single(field, f"not a number: {value!r}") from None
    else:
        raise ValidationError.single(field, f"not a money amount: {type(value).__name__}")
    if not result.is_finite():
        raise ValidationError.single(field, "must be finite")
    return result


def round_half_up(amount: Decimal) -> int:
    """Round to a whole number, halves away from zero (the GST rule, §6)."""
    return int(amount.to_integral_value(rounding=ROUND_HALF_UP))


def apply_bp(amount_paise: int, rate_bp: int) -> int:
    """``amount * rate`` in paise, half-up (away from zero for negatives), integers only."""
    magnitude = (abs(amount_paise) * rate_bp + BASIS_POINTS // 2) // BASIS_POINTS
    return magnitude if amount_paise >= 0 else -magnitude


def rupees_to_paise(rupees: object, field: str = "amount") -> int:
    """Exact conversion of a rupee amount; fractions of a paisa are refused."""
    paise = require_exact(rupees, field) * PAISE_PER_RUPEE
    if paise != paise.to_integral_value():
        raise ValidationError.single(field, "has a fraction of a paisa")
    return int(paise)


def round_off_to_rupee(total_paise: int) -> int:
    """The signed round-off that brings a total to whole rupees, half-up (|x| <= 50 paise);
    kept apart from taxable value and tax (gst-india.md §6, step 6)."""
    rupees = (abs(total_paise) + PAISE_PER_RUPEE // 2) // PAISE_PER_RUPEE
    rounded = rupees * PAISE_PER_RUPEE if total_paise >= 0 else -rupees * PAISE_PER_RUPEE
    return rounded - total_paise


def format_inr(paise: int) -> str:
    """₹ with Indian digit grouping: 12345678 paise -> '₹1,23,456.78'."""
    sign = "-" if paise < 0 else ""
    rupees, rest = divmod(abs(paise), PAISE_PER_RUPEE)
    digits = str(rupees)
    head, tail = digits[:-3], digits[-3:]
    groups: list[str] = []
    while len(head) > 2:
        groups.insert(0, head[-2:])
        head = head[:-2]
    if head:
        groups.insert(0, head)
    grouped = ",".join([*groups, tail]) if groups else tail
    return f"{sign}₹{grouped}.{rest:02d}"


def allocate(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` paise across ``weights`` proportionally, exactly (largest remainder);
    ties go to the earlier weight, so the result is deterministic."""
    if total == 0 or not weights:
        return [0] * len(weights)
    whole = sum(weights)
    if whole <= 0:
        raise ValidationError.single("amount", "cannot allocate over lines that sum to zero")
    shares = [total * w // whole for w in weights]
    remainders = [(total * w % whole, -i) for i, w in enumerate(weights)]
    for _, negative_index in sorted(remainders, reverse=True)[: total - sum(shares)]:
        shares[-negative_index] += 1
    return shares
