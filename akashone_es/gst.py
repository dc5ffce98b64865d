"""Pure GST rules: state codes and the GSTIN format with its check character (gst-india.md §4)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Final

from akashone_es.errors import ValidationError
from akashone_es.money import apply_bp

ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

#: State / UT codes valid as a GSTIN prefix (§4.3). 96 is a place-of-supply code only.
STATE_CODES: Final[dict[str, str]] = {
    "01": "Jammu and Kashmir", "02": "Himachal Pradesh", "03": "Punjab", "04": "Chandigarh",
    "05": "Uttarakhand", "06": "Haryana", "07": "Delhi", "08": "Rajasthan",
    "09": "Uttar Pradesh", "10": "Bihar", "11": "Sikkim", "12": "Arunachal Pradesh",
    "13": "Nagaland", "14": "Manipur", "15": "Mizoram", "16": "Tripura", "17": "Meghalaya",
    "18": "Assam", "19": "West Bengal", "20": "Jharkhand", "21": "Odisha",
    "22": "Chhattisgarh", "23": "Madhya Pradesh", "24": "Gujarat", "25": "Daman and Diu",
    "26": "Dadra and Nagar Haveli and Daman and Diu", "27": "Maharashtra",
    "28": "Andhra Pradesh (old)", "29": "Karnataka", "30": "Goa", "31": "Lakshadweep",
    "32": "Kerala", "33": "Tamil Nadu", "34": "Puducherry",
    "35": "Andaman and Nicobar Islands", "36": "Telangana", "37": "Andhra Pradesh",
    "38": "Ladakh", "97": "Other Territory", "99": "Centre Jurisdiction",
}
#: Codes still accepted but no longer issued (25 merged into 26; 28 is pre-2014 Andhra Pradesh).
LEGACY_STATE_CODES: Final = frozenset({"25", "28"})

_GSTIN_SHAPE: Final = re.compile(r"^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$")


def gstin_check_character(first14: str) -> str:
    """Luhn mod 36 check character of the first 14 GSTIN characters."""
    total = 0
    for i, char in enumerate(first14):
        value = ALPHABET.index(char) * (1 if i % 2 == 0 else 2)
        total += value // 36 + value % 36
    return ALPHABET[(36 - total % 36) % 36]


def gstin_error(gstin: str) -> str | None:
    """Why ``gstin`` is not a valid GSTIN, or None when it is."""
    if len(gstin) != 15:
        return "must be 15 characters"
    if not _GSTIN_SHAPE.match(gstin):
        return ("must match 2 digits, PAN (5 letters, 4 digits, letter), entity code, 'Z', "
                "check character")
    if gstin[:2] not in STATE_CODES:
        return f"unknown state code {gstin[:2]}"
    if gstin_check_character(gstin[:14]) != gstin[14]:
        return "check character does not match"
    return None


def is_valid_gstin(gstin: str) -> bool:
    """True when ``gstin`` has a known state code and a correct check character."""
    return gstin_error(gstin) is None


def is_legacy_state_code(gstin: str) -> bool:
    """True when the GSTIN's state code is one no longer issued (25, 28)."""
    return gstin[:2] in LEGACY_STATE_CODES


# -- place of supply and tax heads (gst-india.md §2, §3, §6: rules R2-R5, R8) -----------------

#: Union territories without a legislature levy UTGST instead of SGST (CGST s. 2(114)).
UT_WITHOUT_LEGISLATURE: Final = frozenset({"04", "25", "26", "31", "35", "38", "97"})
#: Place-of-supply code for a recipient outside India.
OTHER_COUNTRIES: Final = "96"
DEFAULT_SAC: Final = "998315"
STANDARD_RATE_BP: Final = 1800


class SupplyKind:
    """How a supply is taxed."""

    INTRA_STATE = "intra_state"
    INTER_STATE = "inter_state"
    SEZ = "sez"
    EXPORT = "export"


def state_code_error(code: str) -> str | None:
    """Why ``code`` is not a usable state / UT code, or None."""
    if code not in STATE_CODES:
        return f"unknown state code {code!r}"
    return None


#: How an address names India (compared stripped and case-folded); anything else is abroad.
INDIA_NAMES: Final = frozenset({"in", "ind", "india"})


def is_india(country: str) -> bool:
    """True when an address's ``country`` is India."""
    return country.strip().casefold() in INDIA_NAMES


def address_state_code_error(*, country: str, state_code: str | None) -> str | None:
    """Why ``state_code`` cannot be the GST state code of an address in ``country``, or None.

    In India: a known state / UT code, required (place of supply for B2C, R4); 96 is refused,
    it is the code of a place outside India. Abroad: 96 (Other Countries) or nothing (R5)."""
    if is_india(country):
        if not state_code:
            return "an address in India needs its GST state code"
        if state_code == OTHER_COUNTRIES:
            return "96 (Other Countries) is for an address outside India, not in India"
        return state_code_error(state_code)
    if state_code not in (None, "", OTHER_COUNTRIES):
        return (f"an address outside India takes place-of-supply code 96 (Other Countries), "
                f"not {state_code!r}")
    return None


def address_pos_code(*, country: str, state_code: str | None) -> str:
    """The state code to store for an address: its Indian state / UT code, or 96 abroad."""
    problem = address_state_code_error(country=country, state_code=state_code)
    if problem:
        raise ValidationError.single("state_code", problem)
    return state_code if is_india(country) and state_code else OTHER_COUNTRIES


def place_of_supply(*, customer_gstin: str | None, address_state_code: str | None,
                    country: str = "IN") -> str:
    """POS state code: the GSTIN's state for a registered customer, wherever its address
    (R4: a registered customer is an Indian one, never an export); else the address's state
    (a domestic B2C invoice must have one, Circular 242/36/2024); '96' outside India."""
    if customer_gstin:
        problem = gstin_error(customer_gstin)
        if problem:
            raise ValidationError.single("gst_number", f"not a valid GSTIN: {problem}")
        return customer_gstin[:2]
    if not is_india(country):
        return OTHER_COUNTRIES
    if not address_state_code:
        raise ValidationError.single(
            "state_code", "an unregistered customer in India needs the state of the address "
                          "on record (place of supply); it must not default to the supplier's")
    problem = state_code_error(address_state_code)
    if problem:
        raise ValidationError.single("state_code", problem)
    return address_state_code


class TaxTreatment:
    """The heads (in basis points) that apply to a supply; per-line amounts via ``tax``."""

    __slots__ = ("cgst_bp", "igst_bp", "kind", "sgst_bp", "utgst_bp", "zero_rated")

    def __init__(self, kind: str, *, cgst_bp: int = 0, sgst_bp: int = 0, utgst_bp: int = 0,
                 igst_bp: int = 0, zero_rated: bool = False) -> None:
        self.kind = kind
        self.cgst_bp, self.sgst_bp, self.utgst_bp, self.igst_bp = (cgst_bp, sgst_bp, utgst_bp,
                                                                   igst_bp)
        self.zero_rated = zero_rated

    def tax(self, taxable_paise: int) -> dict[str, int]:
        """Each head's tax on one line, rounded half-up to the paisa (CGST = SGST always)."""
        return {"cgst": apply_bp(taxable_paise, self.cgst_bp),
                "sgst": apply_bp(taxable_paise, self.sgst_bp),
                "utgst": apply_bp(taxable_paise, self.utgst_bp),
                "igst": apply_bp(taxable_paise, self.igst_bp)}

    def __repr__(self) -> str:
        return (f"TaxTreatment({self.kind!r}, cgst={self.cgst_bp}, sgst={self.sgst_bp}, "
                f"utgst={self.utgst_bp}, igst={self.igst_bp}, zero_rated={self.zero_rated})")


def tax_treatment(*, supplier_state: str, place_of_supply_code: str, rate_bp: int,
                  sez: bool = False, lut: bool = False) -> TaxTreatment:
    """Intra-state: CGST + SGST (CGST + UTGST in a UT without legislature). Inter-state, SEZ,
    export: IGST, or zero-rated under a Letter of Undertaking (SEZ and export only)."""
    if place_of_supply_code == OTHER_COUNTRIES or sez:
        kind = SupplyKind.EXPORT if place_of_supply_code == OTHER_COUNTRIES else SupplyKind.SEZ
        if lut:
            return TaxTreatment(kind, zero_rated=True)
        return TaxTreatment(kind, igst_bp=rate_bp)
    if place_of_supply_code != supplier_state:
        return TaxTreatment(SupplyKind.INTER_STATE, igst_bp=rate_bp)
    half = rate_bp // 2
    if place_of_supply_code in UT_WITHOUT_LEGISLATURE:
        return TaxTreatment(SupplyKind.INTRA_STATE, cgst_bp=half, utgst_bp=half)
    return TaxTreatment(SupplyKind.INTRA_STATE, cgst_bp=half, sgst_bp=half)


# -- document numbers (R7) and rates as data (R1, R2) -------------------------------------------

DOCUMENT_NUMBER: Final = re.compile(r"^[A-Z1-9][A-Z0-9/-]{0,15}$")
DOCUMENT_PREFIXES: Final = {"invoice": "INV", "credit_note": "CN", "debit_note": "DN"}


#: Indian Standard Time (no daylight saving): documents are dated in India
IST: Final = timezone(timedelta(hours=5, minutes=30), "IST")


def financial_year(on: date | datetime) -> str:
    """The Indian financial year (1 April - 31 March) of a date, or of a moment taken in IST
    (00:30 IST on 1 April is 19:00 UTC on 31 March, and already the new year): '2026-27'."""
    if isinstance(on, datetime):
        on = ist_date(on)
    start = on.year if on.month >= 4 else on.year - 1
    return f"{start}-{(start + 1) % 100:02d}"


def credit_note_deadline(fy: str) -> date:
    """The last day a credit note may be issued for a supply of financial year ``fy``
    ('2024-25'): 30 November after the year ends (CGST s. 34(2) as amended in 2022; R10).
    The annual return's date, when it is filed earlier, is not known here."""
    return date(int(fy[:4]) + 1, 11, 30)


def ist_date(at: datetime) -> date:
    """The date in India of a moment (documents are dated in IST)."""
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(IST).date()


def document_number_error(number: str) -> str | None:
    """Why ``number`` cannot be a GST document number (Rule 46(b), IRP rules), or None."""
    if len(number) > 16:
        return "at most 16 characters"
    if not DOCUMENT_NUMBER.match(number):
        return "must match ^[A-Z1-9][A-Z0-9/-]{0,15}$ (upper case; no leading 0, / or -)"
    return None


def document_number(kind: str, fy: str, sequence: int) -> str:
    """'INV/2627/000123': prefix, financial year, 6-digit serial (15 characters)."""
    number = f"{DOCUMENT_PREFIXES[kind]}/{fy[2:4]}{fy[5:7]}/{sequence:06d}"
    problem = document_number_error(number)
    if problem:
        raise ValidationError.single("invoice_number", problem)
    return number


class RateTable:
    """GST rates per SAC as data with effective-from dates (rates change: 22 Sep 2025)."""

    def __init__(self, rows: list[tuple[str, date, int]]) -> None:
        self._rows = sorted(rows, key=lambda row: (row[0], row[1]))

    def codes(self) -> list[str]:
        """The SACs with a rate."""
        return sorted({code for code, _, _ in self._rows})

    def knows(self, sac: str) -> bool:
        return any(code == sac for code, _, _ in self._rows)

    def rate_bp(self, sac: str, on: date) -> int:
        """The rate in force for ``sac`` on ``on``."""
        found = [bp for code, start, bp in self._rows if code == sac and start <= on]
        if not found:
            raise ValidationError.single("sac_code", f"no GST rate for SAC {sac} on {on}")
        return found[-1]


#: IT infrastructure services stayed at 18 % across the 22 Sep 2025 change (gst-india.md §1).
DEFAULT_RATES: Final = RateTable([
    ("998313", date(2017, 7, 1), 1800), ("998314", date(2017, 7, 1), 1800),
    ("998315", date(2017, 7, 1), 1800), ("998316", date(2017, 7, 1), 1800),
    ("998315", date(2025, 9, 22), 1800), ("998316", date(2025, 9, 22), 1800),
])
