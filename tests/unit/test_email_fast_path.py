"""The email fast path (``inputs.plain_email``) accepts only what ``email_validator`` (through
pydantic's ``EmailStr``) accepts, and exactly as it would normalize it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, EmailStr
from pydantic import ValidationError as PydanticError

from akashone_es.errors import ValidationError
from akashone_es.storage import inputs as i


class Library(BaseModel):
    email: EmailStr


def library(value: str) -> str | None:
    """What the library makes of ``value`` (None: refused)."""
    try:
        return str(Library(email=value).email)
    except PydanticError:
        return None


ATOM = st.text(alphabet="abcXYZ019_+-.", min_size=0, max_size=8)
LABEL = st.text(alphabet="abz09-AZ", min_size=0, max_size=6)
TLD = st.sampled_from(["in", "com", "test", "local", "onion", "IN", "c0m", "x", "arpa",
                       "xn--p1ai", "localhost", "example"])
ANY_ADDRESS = st.builds(lambda local, labels, tld: f"{local}@{'.'.join([*labels, tld])}",
                        ATOM, st.lists(LABEL, min_size=0, max_size=3), TLD)
#: mostly well-formed: dot-separated atoms, non-empty labels (edge cases at their ends)
NEAR_VALID = st.builds(
    lambda atoms, labels, tld: f"{'.'.join(atoms)}@{'.'.join([*labels, tld])}",
    st.lists(st.text(alphabet="abcXYZ019_+-", min_size=1, max_size=66), min_size=1,
             max_size=3),
    st.lists(st.text(alphabet="abz09-", min_size=1, max_size=64), min_size=1, max_size=3),
    TLD)
ADDRESS = st.one_of(NEAR_VALID, ANY_ADDRESS)


@settings(max_examples=3000, deadline=None)
@given(ADDRESS)
def test_the_fast_path_accepts_only_what_the_library_keeps_as_it_is(value: str) -> None:
    if i.plain_email(value):
        assert library(value) == value


@pytest.mark.parametrize(("value", "fast"), [
    ("alice@akashone.in", True),
    ("a.b+tag@mail.akashone.co.in", True),
    ("Alice@akashone.in", True),             # the local part keeps its case
    ("alice@AkashOne.in", False),            # the library lower-cases the domain
    ("alice@host.test", False),              # special-use domains are refused
    ("alice@xn--80ak6aa92e.com", False),     # IDNA: left to the library
    ("a..b@akashone.in", False),
    (".a@akashone.in", False),
    ("alice@akashone", False),
    ("alice@-akashone.in", False),
    ("a" * 65 + "@akashone.in", False),
    ("\u0430lice@akashone.in", False),       # Cyrillic a
])
def test_examples(value: str, fast: bool) -> None:
    assert i.plain_email(value) is fast
    if fast:
        assert library(value) == value


def test_every_address_the_model_takes_goes_through_the_same_rules() -> None:
    """Through the input model, an address off the fast path still gets the library's
    verdict: a refused one names the field."""
    with pytest.raises(ValidationError, match="email"):
        i.parse(i.InsertUser, {"username": "bob", "email": "bob@host.test",
                               "password": "long enough"})
    user = i.parse(i.InsertUser, {"username": "bob", "email": "Bob@AkashOne.IN",
                                  "password": "long enough"})
    assert user.email == "Bob@akashone.in"
