"""Settings read from the environment (prefix ``AKASHONE_``; ``DATABASE_URL`` as is)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from akashone_es.errors import ConfigurationError

#: a connection string's length at most (libpq's own limit is far above what a DSN needs)
DSN_MAX = 4096


class Settings(BaseSettings):
    """Everything configurable, with defaults that work on a laptop."""

    model_config = SettingsConfigDict(env_prefix="AKASHONE_", extra="ignore")

    database_url: str | None = Field(
        default=None, max_length=DSN_MAX,
        validation_alias=AliasChoices("DATABASE_URL", "AKASHONE_DATABASE_URL"),
        description="PostgreSQL DSN; unset starts the embedded server in data_dir",
    )
    read_url: str | None = Field(
        default=None, max_length=DSN_MAX,
        description="a hot standby of DATABASE_URL's server, in the same form (the owner's "
                    "URL; the storage logs in as the application role): query methods read "
                    "there, commands and everything else use the primary")
    read_wait_seconds: float = Field(
        default=1.0, ge=0, le=60,
        description="how long a read waits for the standby to replay the session's own "
                    "writes before reading from the primary instead")
    data_dir: Path = Field(default=Path(".akashone"), description="embedded PostgreSQL home")
    app_role: str | None = Field(
        default=None, pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="the role the application connects as: it can append to and read the "
                    "log and snapshots and write the read tables, nothing else; the "
                    "DATABASE_URL user (the owner) only creates and upgrades the schema; "
                    "unset: '<database>_app' (roles are server-wide: one per deployment)")
    app_password: SecretStr | None = Field(
        default=None, description="the application role's password; unset: derived from the "
                                  "owner's password in DATABASE_URL (none when it has none)")
    pool_size: int = Field(default=5, ge=1, le=100)
    pool_max_overflow: int = Field(default=5, ge=0, le=100)
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)
    snapshot_interval: int = Field(default=50, ge=2)
    batch_size: int = Field(default=2000, ge=1, le=1_000_000,
                            description="events per catch-up transaction")
    lock_timeout_seconds: int = Field(default=10, ge=0)
    supplier_gstin: str | None = Field(
        default=None, description="the GSTIN invoices are issued from; its state decides "
                                  "intra- or inter-state supply (never hard-coded)")
    invoice_due_days: int = Field(default=30, ge=0, le=365)
    invoice_round_off: bool = Field(
        default=False, description="round invoice totals to whole rupees; the difference is "
                                   "a separate round_off_amount, never tax or taxable value")
    lut_financial_years: list[str] = Field(
        default_factory=list, examples=[["2025-26"]],
        description="financial years ('2026-27') with a Letter of Undertaking on file: "
                    "exports and SEZ zero-rated")
    @field_validator("lut_financial_years")
    @classmethod
    def _financial_years(cls, years: list[str]) -> list[str]:
        """Each a financial year as GST returns name it: a malformed one would silently
        mean no LUT (and exports taxed)."""
        for year in years:
            match = re.fullmatch(r"(\d{4})-(\d{2})", year)
            if match is None or (int(match[1]) + 1) % 100 != int(match[2]):
                raise ValueError(f"{year!r} is not a financial year such as '2026-27'")
        return years

    secret_key: str | None = Field(
        default=None, repr=False, max_length=1024,
        description="Fernet key for TOTP secrets and email codes, also keying the snapshot "
                    "seals (changing it makes loads replay from events until new snapshots); "
                    "unset: a key kept in data_dir/secret.key")


#: settings whose values an error message must not repeat (passwords, keys)
UNECHOED = frozenset({"database_url", "read_url", "app_password", "secret_key"})


def variable_of(field: str) -> str:
    """The environment variable that sets ``field``."""
    return "DATABASE_URL" if field.upper() == "DATABASE_URL" else f"AKASHONE_{field.upper()}"


def unparsed_message(exc: SettingsError) -> str:
    """A value pydantic-settings could not parse (a list or a mapping is read as JSON), as
    one line naming the variable and the form expected; never the value."""
    named = re.search(r'field "(\w+)"', str(exc))
    if named is None or named[1] not in Settings.model_fields:
        return "invalid setting: a value is not valid JSON"
    field = named[1]
    examples = Settings.model_fields[field].examples
    expected = f" (expected a list such as {json.dumps(examples[0])})" if examples else ""
    return f"invalid setting {variable_of(field)}: not valid JSON{expected}"


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and ``overrides``; a bad value is one ConfigurationError
    naming the variable, the value and the rule."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except SettingsError as exc:  # before validation: a JSON value that does not parse
        raise ConfigurationError(unparsed_message(exc)) from None
    except PydanticValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "settings"
            rule = error["msg"].removeprefix("Value error, ")
            # a connection string may carry a password: never echo these
            # (the field is named by its alias when it has one: DATABASE_URL)
            shown = "" if field.lower() in UNECHOED else f"={error.get('input')!r}"
            problems.append(f"{variable_of(field)}{shown}: {rule}")
        raise ConfigurationError("invalid setting " + "; ".join(problems)) from None


def make_data_dir(data_dir: Path, purpose: str) -> Path:
    """``data_dir`` (``AKASHONE_DATA_DIR``) created if missing; a ConfigurationError naming
    it and why when it cannot be (``purpose``: what it holds, for the message)."""
    path = data_dir.expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        why = "a file that is not a directory is in the way"
    except NotADirectoryError:
        why = "a part of the path is a file, not a directory"
    except OSError as exc:
        why = (exc.strerror or type(exc).__name__).lower()
    else:
        return path
    raise ConfigurationError(f"AKASHONE_DATA_DIR {path}: cannot create {purpose}: {why}")
