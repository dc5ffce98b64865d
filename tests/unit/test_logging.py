"""Logs never carry a frame's local variables (a clear password, a token)."""

from __future__ import annotations

import pytest

from akashone_es.logging import configure_logging, get_logger


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_logged_exception_shows_no_local_variables(
        fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    """An exception logged while a secret is a local variable does not print the secret."""
    configure_logging(fmt, "info")

    def create_user(password: str) -> None:
        raise RuntimeError("boom")

    secret = "-".join(("clear", "secret", "password"))  # not in any source line
    try:
        create_user(secret)
    except RuntimeError:
        get_logger("test").exception("storage.internal_error", method="create_user")
    err = capsys.readouterr().err
    assert "boom" in err
    assert "clear-secret-password" not in err
