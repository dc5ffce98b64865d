"""GSTIN structure, state codes and the Luhn mod 36 check character (gst-india.md §4)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from akashone_es.gst import (
    ALPHABET,
    STATE_CODES,
    gstin_check_character,
    gstin_error,
    is_legacy_state_code,
    is_valid_gstin,
)

#: Published GSTINs whose check characters were verified by hand (gst-india.md §4.2).
REAL_GSTINS = ("27AAPFU0939F1ZV", "29AAGCG6253J1Z8", "29AAFCC9980M1ZR")


def with_check(first14: str) -> str:
    """A GSTIN made of ``first14`` and its computed check character."""
    return first14 + gstin_check_character(first14)


@st.composite
def valid_gstins(draw: st.DrawFn) -> str:
    """A well-formed GSTIN assembled from random parts."""
    state = draw(st.sampled_from(sorted(STATE_CODES)))
    letters = draw(st.text(string.ascii_uppercase, min_size=5, max_size=5))
    digits = draw(st.text(string.digits, min_size=4, max_size=4))
    last_pan = draw(st.sampled_from(string.ascii_uppercase))
    entity = draw(st.sampled_from(ALPHABET[1:]))
    return with_check(f"{state}{letters}{digits}{last_pan}{entity}Z")


class TestGstinCheckCharacter:
    @pytest.mark.parametrize("gstin", REAL_GSTINS)
    def test_computes_check_character_of_real_gstin(self, gstin: str) -> None:
        """The check character of a published GSTIN is the one printed on it."""
        assert gstin[14] == gstin_check_character(gstin[:14])

    @pytest.mark.parametrize("gstin", REAL_GSTINS)
    def test_accepts_real_gstin(self, gstin: str) -> None:
        """A published GSTIN is valid and has no error."""
        assert (True, None) == (is_valid_gstin(gstin), gstin_error(gstin))

    @pytest.mark.parametrize("wrong", ["0", "A", "U", "W", "Z"])
    def test_rejects_wrong_check_character(self, wrong: str) -> None:
        """Any check character other than the computed one is rejected."""
        gstin = "27AAPFU0939F1Z" + wrong
        assert "check character does not match" == gstin_error(gstin)
        assert not is_valid_gstin(gstin)


class TestGstinStateCode:
    @pytest.mark.parametrize("code", ["00", "39", "40", "96", "98"])
    def test_rejects_unknown_state_code(self, code: str) -> None:
        """A prefix that is not a GSTIN state code is rejected (96 is only a place of supply)."""
        gstin = with_check(f"{code}AAPFU0939F1Z")
        assert f"unknown state code {code}" == gstin_error(gstin)

    @pytest.mark.parametrize("code", ["38", "97", "99"])
    def test_accepts_ladakh_other_territory_and_centre(self, code: str) -> None:
        """Ladakh (38), Other Territory (97) and Centre Jurisdiction (99) are valid prefixes."""
        gstin = with_check(f"{code}AAPFU0939F1Z")
        assert is_valid_gstin(gstin)
        assert not is_legacy_state_code(gstin)

    @pytest.mark.parametrize("code", ["25", "28"])
    def test_accepts_legacy_state_code_but_flags_it(self, code: str) -> None:
        """Daman and Diu (25) and old Andhra Pradesh (28) are valid but flagged legacy."""
        gstin = with_check(f"{code}AAPFU0939F1Z")
        assert (True, True) == (is_valid_gstin(gstin), is_legacy_state_code(gstin))

    @pytest.mark.parametrize("gstin", REAL_GSTINS)
    def test_current_state_code_is_not_legacy(self, gstin: str) -> None:
        """Maharashtra (27) and Karnataka (29) are not legacy codes."""
        assert not is_legacy_state_code(gstin)


class TestGstinShape:
    @pytest.mark.parametrize(
        "gstin", ["", "27AAPFU0939F1Z", "27AAPFU0939F1ZVV", " 27AAPFU0939F1ZV"])
    def test_rejects_wrong_length(self, gstin: str) -> None:
        """Anything but 15 characters is rejected for its length."""
        assert "must be 15 characters" == gstin_error(gstin)

    @pytest.mark.parametrize(
        "gstin",
        [
            "27aapfu0939f1zv",  # lower case
            "2AAAPFU0939F1ZV",  # state code not two digits
            "27AAPF10939F1ZV",  # PAN letters contain a digit
            "27AAPFU093AF1ZV",  # PAN digits contain a letter
            "27AAPFU093991ZV",  # PAN ends in a digit
            "27AAPFU0939F0ZV",  # entity code 0
            "27AAPFU0939F1YV",  # 14th character not Z
            "27AAPFU0939F1Z-",  # check character not alphanumeric
        ],
    )
    def test_rejects_wrong_shape(self, gstin: str) -> None:
        """Fifteen characters in the wrong pattern are rejected for their shape."""
        error = gstin_error(gstin)
        assert error is not None
        assert error.startswith("must match 2 digits")


class TestGstinProperties:
    @given(valid_gstins())
    def test_assembled_gstin_is_valid(self, gstin: str) -> None:
        """State code, PAN, entity code, 'Z' and the computed check character make a valid GSTIN."""
        assert None is gstin_error(gstin)

    @given(valid_gstins(), st.integers(min_value=0, max_value=14), st.data())
    def test_rejects_every_single_substitution(self, gstin: str, position: int,
                                               data: st.DataObject) -> None:
        """Changing any one character to any other character makes the GSTIN invalid."""
        replacement = data.draw(
            st.sampled_from(ALPHABET + string.ascii_lowercase + "-/ ").filter(
                lambda char: char != gstin[position]))
        changed = gstin[:position] + replacement + gstin[position + 1:]
        assert not is_valid_gstin(changed)
