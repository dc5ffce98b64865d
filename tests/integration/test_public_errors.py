"""No library exception crosses the public API: bad lookups, dropped connections, no server."""

from __future__ import annotations

import inspect
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from akashone_es import Settings, Storage, UnavailableError, ValidationError, open_storage
from akashone_es.storage.policy import POLICY, Access, public_methods
from tests.conftest import TEST_SETTINGS, log_size

#: methods whose first parameter is a string or an id looked up in the read tables
LOOKUPS = sorted(
    name for name in public_methods(Storage)
    if POLICY[name] is not Access.SESSION
    and (params := list(inspect.signature(
        getattr(getattr(Storage, name), "__wrapped__", getattr(Storage, name))
    ).parameters.values())[1:])
    and str(params[0].annotation) in ("str", "UUID | str", "UUID | str | None")
    and all(p.default is not inspect.Parameter.empty or p.kind is p.KEYWORD_ONLY
            for p in params[2:]))

BAD_VALUES = [
    pytest.param(12345, id="int"),
    pytest.param(["a"], id="list"),
    pytest.param("lone \ud800 surrogate", id="surrogate"),
    pytest.param("nul \x00 char", id="nul"),
]


def call(storage: Storage, name: str, value: Any) -> Any:
    method = getattr(storage, name)
    params = list(inspect.signature(method).parameters.values())
    extra = ["x"] * sum(1 for p in params[1:] if p.default is inspect.Parameter.empty
                        and p.kind is not p.KEYWORD_ONLY)
    return method(value, *extra)


class TestBadLookups:
    def test_there_are_lookups_to_check(self) -> None:
        """The generated list covers the string and id lookups (guards the generator)."""
        assert {"get_user", "get_user_by_email", "get_user_by_username", "get_invoice",
                "get_invoice_by_number", "get_permission_by_key"} <= set(LOOKUPS)
        assert len(LOOKUPS) >= 40

    @pytest.mark.parametrize("value", BAD_VALUES)
    def test_every_lookup_refuses_a_bad_value_naming_its_parameter(
            self, storage: Storage, dsn: str, value: Any) -> None:
        """Wrong types, NUL and lone surrogates are a ValidationError naming the parameter,
        never a driver error, and nothing is written."""
        before = log_size(dsn)
        escaped = []
        for name in LOOKUPS:
            method = getattr(storage, name)
            parameter = next(iter(inspect.signature(method).parameters))
            try:
                call(storage, name, value)
            except ValidationError as exc:
                if parameter not in exc.fields:
                    escaped.append(f"{name}: names {exc.fields}, not {parameter}")
                continue
            except Exception as exc:  # noqa: BLE001 - collected and reported below
                escaped.append(f"{name}: {type(exc).__module__}.{type(exc).__name__}: {exc}")
            else:
                escaped.append(f"{name}: accepted {value!r}")
        assert [] == escaped
        assert before == log_size(dsn)


class TestDroppedConnections:
    def test_a_read_after_the_server_dropped_every_connection_is_retried(
            self, storage: Storage, dsn: str) -> None:
        """Connections killed by the server (a restart, a failover): the read is retried on a
        fresh connection and answers; no OperationalError reaches the caller."""
        storage.create_organization({"name": "Still Here"})
        for _ in range(2):  # fill the pool with idle connections first
            storage.get_organizations()
        with psycopg.connect(dsn, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()
        assert killed is not None
        assert killed[0] >= 1
        assert ["Still Here"] == [o.name for o in storage.get_organizations()]

    def test_no_server_is_an_unavailable_error(self, storage: Storage, dsn: str) -> None:
        """When the database cannot be reached at all, reads raise UnavailableError."""
        settings = Settings(**{**TEST_SETTINGS, "pool_size": 1, "pool_max_overflow": 0})  # type: ignore[arg-type]
        other = open_storage(settings, dsn=dsn)
        try:
            with other.acting_as(system="tests"):
                pool = other._datastore.pool
                pool.close()  # what a vanished server looks like to the application
                with pytest.raises(UnavailableError, match="unavailable"):
                    other.get_organizations()
        finally:
            other.close()


class TestContextFields:
    @pytest.mark.parametrize(("field", "value"), [
        ("user_agent", "agent\x00nul"), ("user_agent", "u" * 1_000_000),
        ("ip", "not-an-ip"), ("system", ""), ("correlation_id", "not-a-uuid"),
    ])
    def test_bad_context_field_is_refused_before_anything_runs(
            self, storage: Storage, dsn: str, field: str, value: str) -> None:
        """A NUL, a megabyte user agent or a malformed ip never reaches an event's metadata:
        acting_as raises a ValidationError naming the field, and nothing is written."""
        before = log_size(dsn)
        args: dict[str, Any] = {"system": "tests", field: value}
        with pytest.raises(ValidationError) as caught:
            storage.acting_as(**args)
        assert [field] == caught.value.fields
        assert before == log_size(dsn)


class TestMoreBadArguments:
    def test_an_input_that_is_not_an_object_names_its_parameter(self, storage: Storage) -> None:
        """A list where an input's fields are expected is a ValidationError, not a TypeError
        from deep inside."""
        with pytest.raises(ValidationError) as caught:
            storage.create_invoice_line_item([1, 2])  # type: ignore[arg-type]
        assert ["data"] == caught.value.fields

    @pytest.mark.parametrize("call", [
        lambda s: s.get_user(),  # too few
        lambda s: s.get_user(uuid4(), "extra"),  # too many
        lambda s: s.get_user(uuid4(), user_id=uuid4()),  # twice
        lambda s: s.get_user(user=uuid4()),  # no such parameter
    ])
    def test_a_call_that_fits_no_signature_is_a_type_error_before_anything_runs(
            self, storage: Storage, call: Any) -> None:
        """As a plain method would: the policy's shortcut for positional arguments leaves
        every other call to ``Signature.bind``."""
        with pytest.raises(TypeError):
            call(storage)

    def test_positional_and_keyword_arguments_are_checked_alike(self, storage: Storage
                                                                ) -> None:
        for call in (lambda: storage.get_user_by_username("a\x00"),
                     lambda: storage.get_user_by_username(username="a\x00")):
            with pytest.raises(ValidationError) as caught:
                call()
            assert ["username"] == caught.value.fields

    @pytest.mark.parametrize("url", ["postgresql://postgres@127.0.0.1:5432/",
                                     "postgresql://postgres@127.0.0.1:5432/template1"])
    def test_a_dsn_naming_no_application_database_is_refused(self, url: str) -> None:
        """libpq would fall back to the maintenance database: refused before connecting."""
        from akashone_es import ConfigurationError

        with pytest.raises(ConfigurationError, match="names no application database"):
            open_storage(Settings(**TEST_SETTINGS), dsn=url)  # type: ignore[arg-type]

    def test_acting_as_after_the_server_dropped_connections_is_retried(
            self, storage: Storage, dsn: str) -> None:
        """Resolving the actor is a read: it survives killed pool connections too."""
        admin = storage.create_user({"username": "root", "email": "root@example.com",
                                     "password": "long-enough-1", "account_type": "super_admin"})
        for _ in range(2):
            storage.get_organizations()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        with storage.acting_as(actor_id=admin.id):
            assert [] == storage.get_organizations()
