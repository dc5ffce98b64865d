"""Validated storage inputs: each bad value is a ValidationError naming its field."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import bcrypt
import pytest

from akashone_es.errors import ValidationError
from akashone_es.storage.inputs import (
    InsertPermission,
    InsertUser,
    UpdateUser,
    is_bcrypt_hash,
    parse,
    parse_id,
)

VALID_USER: dict[str, Any] = {
    "username": "alice",
    "email": "alice@example.com",
    "password": "correct horse",
}


def rejected_fields(model: type[Any], data: dict[str, Any]) -> list[str]:
    """The fields named by the ValidationError that ``parse`` raises for ``data``."""
    with pytest.raises(ValidationError) as info:
        parse(model, data)
    return info.value.fields


class TestInsertUser:
    def test_accepts_valid_user_with_defaults(self) -> None:
        """A username, email and password are enough; the account is an active customer."""
        user = parse(InsertUser, VALID_USER)
        assert ("alice", "customer", "active", None) == (
            user.username, user.account_type, user.status, user.gst_number)

    @pytest.mark.parametrize("email", ["alice", "alice@", "@example.com", "alice example.com"])
    def test_rejects_malformed_email(self, email: str) -> None:
        """An address that is not an email is rejected on the email field."""
        assert ["email"] == rejected_fields(InsertUser, {**VALID_USER, "email": email})

    @pytest.mark.parametrize("username", ["", "   "])
    def test_rejects_empty_username(self, username: str) -> None:
        """An empty (or blank, once stripped) username is rejected."""
        assert ["username"] == rejected_fields(InsertUser, {**VALID_USER, "username": username})

    def test_rejects_password_shorter_than_eight(self) -> None:
        """A seven-character password is rejected on the password field."""
        assert ["password"] == rejected_fields(InsertUser, {**VALID_USER, "password": "1234567"})

    def test_accepts_password_of_eight(self) -> None:
        """Eight characters is the shortest password allowed."""
        assert "12345678" == parse(InsertUser, {**VALID_USER, "password": "12345678"}).password

    def test_rejects_gstin_with_wrong_check_character(self) -> None:
        """A GSTIN whose check character does not match is rejected on gst_number."""
        data = {**VALID_USER, "gst_number": "27AAPFU0939F1ZA"}
        with pytest.raises(ValidationError) as info:
            parse(InsertUser, data)
        assert ["gst_number"] == info.value.fields
        assert "check character does not match" in info.value.errors[0]["rule"]

    def test_upper_cases_valid_gstin(self) -> None:
        """A valid GSTIN typed in lower case is stored in upper case."""
        user = parse(InsertUser, {**VALID_USER, "gst_number": "27aapfu0939f1zv"})
        assert "27AAPFU0939F1ZV" == user.gst_number

    def test_rejects_unknown_account_type(self) -> None:
        """Only the four known account types are accepted."""
        data = {**VALID_USER, "account_type": "god"}
        assert ["account_type"] == rejected_fields(InsertUser, data)

    def test_rejects_extra_field(self) -> None:
        """A field the schema does not know is rejected by name, not silently dropped."""
        assert ["nickname"] == rejected_fields(InsertUser, {**VALID_USER, "nickname": "al"})

    def test_names_every_bad_field(self) -> None:
        """Several bad values are all reported in one error."""
        data = {"username": "", "email": "nope", "password": "short"}
        assert ["username", "email", "password"] == rejected_fields(InsertUser, data)


class TestBcryptHash:
    def test_recognises_existing_bcrypt_hash(self) -> None:
        """A hash made by bcrypt is recognised, and parse keeps it as it is."""
        hashed = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(rounds=4)).decode()
        assert is_bcrypt_hash(hashed)
        assert hashed == parse(InsertUser, {**VALID_USER, "password": hashed}).password

    @pytest.mark.parametrize(
        "value",
        [
            "correct horse",
            "$2b$04$BjbmRC1vx7ebUH8PPwZtXe9HGUAWMEdOUEDAfF6LldwC5Eor6.kp",  # one short
            "$1$04$BjbmRC1vx7ebUH8PPwZtXe9HGUAWMEdOUEDAfF6LldwC5Eor6.kpO",  # not bcrypt
        ],
    )
    def test_does_not_mistake_other_text_for_a_hash(self, value: str) -> None:
        """A clear password or a malformed hash is not a bcrypt hash."""
        assert not is_bcrypt_hash(value)


class TestInsertPermission:
    def test_rejects_key_without_dot(self) -> None:
        """A permission key must be dotted, like ``vm.create``."""
        data = {"key": "vmcreate", "name": "Create VMs", "category": "vm"}
        assert ["key"] == rejected_fields(InsertPermission, data)

    def test_accepts_dotted_key(self) -> None:
        """A lower-case dotted key is accepted."""
        data = {"key": "vm.create", "name": "Create VMs", "category": "vm"}
        assert "vm.create" == parse(InsertPermission, data).key


class TestUpdateUser:
    def test_rejects_discount_over_hundred_percent(self) -> None:
        """A default discount of 101 % is rejected."""
        data = {"default_discount_percentage": 101}
        assert ["default_discount_percentage"] == rejected_fields(UpdateUser, data)

    def test_accepts_discount_of_hundred_percent(self) -> None:
        """A default discount of exactly 100 % is allowed."""
        update = parse(UpdateUser, {"default_discount_percentage": 100})
        assert 100 == update.default_discount_percentage


class TestParseId:
    def test_rejects_non_uuid_naming_the_field(self) -> None:
        """A string that is not a UUID is a ValidationError naming the given field."""
        with pytest.raises(ValidationError) as info:
            parse_id("not-a-uuid", "user_id")
        assert [{"field": "user_id", "rule": "must be a UUID"}] == info.value.errors

    def test_parses_uuid_string(self) -> None:
        """A UUID in text becomes the UUID."""
        text = "12345678-1234-5678-1234-567812345678"
        assert UUID(text) == parse_id(text, "user_id")
