"""Encryption of secrets that must be readable later but never enter the log in clear."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from akashone_es.errors import ConfigurationError
from akashone_es.logging import get_logger

log = get_logger(__name__)
PREFIX = "enc:v1:"
#: fields of events that hold secrets: never printed, even hashed or sealed (a hash still
#: lets an attacker guess offline)
SECRET_FIELDS = frozenset({"password", "password_hash", "token_hash", "two_factor_secret",
                           "email_verification_code", "private_key", "secret_key"})
KEY_FILE = "secret.key"


class SecretBox:
    """Fernet (AES-128-CBC with HMAC-SHA256) with a key from settings."""

    def __init__(self, key: str | bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError as exc:
            raise ConfigurationError(
                "AKASHONE_SECRET_KEY must be 32 url-safe base64-encoded bytes "
                "(make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')") from exc

    def seal(self, value: str | None) -> str | None:
        """Encrypt ``value`` (None stays None)."""
        if value is None:
            return None
        return PREFIX + self._fernet.encrypt(value.encode()).decode()

    def open(self, value: str | None) -> str | None:
        """Decrypt a sealed value; plain values (never sealed) are returned as they are."""
        if value is None or not value.startswith(PREFIX):
            return value
        try:
            return self._fernet.decrypt(value[len(PREFIX):].encode()).decode()
        except InvalidToken:
            # one unreadable value must not break every read of its table
            log.error("secrets.cannot_open", hint="AKASHONE_SECRET_KEY changed?")
            return None


def key_directory(data_dir: Path) -> Path:
    """The directory of ``secret.key`` (made if missing); a ConfigurationError naming
    AKASHONE_DATA_DIR and why when it cannot be."""
    from akashone_es.settings import make_data_dir  # noqa: PLC0415 - settings load pydantic

    return make_data_dir(data_dir, "the directory of secret.key (AKASHONE_SECRET_KEY is unset)")


def key_source(configured: str | None, data_dir: Path) -> str:
    """Where the key comes from, as errors name it."""
    if configured:
        return "AKASHONE_SECRET_KEY"
    path = (data_dir.expanduser() / KEY_FILE).absolute()
    return f"the key in {path} (AKASHONE_SECRET_KEY is unset)"


def load_key(configured: str | None, data_dir: Path, *, create: bool = True) -> str:
    """The configured key, else one kept in ``data_dir/secret.key`` (created once, 0600;
    ``create=False``: a missing file is a ConfigurationError, as a command that only reads
    must not seal nothing under a new key in whatever directory it was run from)."""
    if configured:
        return configured
    path = data_dir.expanduser() / KEY_FILE
    if path.exists():
        return path.read_text().strip()
    if not create:
        path = path.absolute()  # the message says where it looked
        raise ConfigurationError(
            f"AKASHONE_SECRET_KEY is unset and there is no {path}: set it to the key this "
            "data was sealed with, or AKASHONE_DATA_DIR to the directory that holds its "
            "secret.key")
    key_directory(data_dir)
    key = Fernet.generate_key().decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    log.warning("secrets.key_created", path=str(path),
                hint="set AKASHONE_SECRET_KEY in production and keep it safe")
    return key
