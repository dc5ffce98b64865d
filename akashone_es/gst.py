"""Pure GST rules: state codes and the GSTIN format with its check character (gst-india.md §4)."""

from __future__ import annotations

import re
from typing import Final

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
