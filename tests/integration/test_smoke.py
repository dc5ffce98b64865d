"""The thinnest end-to-end path: command -> event -> log -> projection -> query."""

from __future__ import annotations

from akashone_es import Storage


class TestRegisterUser:
    def test_registered_user_reads_back_by_email(self, storage: Storage) -> None:
        """A registered user is queryable at once, case-insensitively by email."""
        user = storage.create_user({"username": "asha", "email": "Asha@Example.com",
                                    "password": "long-enough-1"})
        found = storage.get_user_by_email("asha@example.com")
        assert found is not None
        assert found.id == user.id
        assert found.password.startswith("$2b$")
