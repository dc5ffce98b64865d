"""akashone-es: event-sourced PostgreSQL persistence for the AkashOne cloud portal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from akashone_es.errors import (
    AkashOneError,
    ConcurrentWriteError,
    ConfigurationError,
    ConflictError,
    ContextError,
    DuplicateError,
    NotFoundError,
    PermissionDeniedError,
    ProjectionError,
    UnavailableError,
    ValidationError,
)

if TYPE_CHECKING:
    from akashone_es.settings import Settings
    from akashone_es.storage import Storage, open_storage


def __getattr__(name: str) -> Any:
    # The facade is imported on first use: ``projections`` imports this package's leaf
    # modules (errors, domain), and ``storage`` imports ``projections``.
    # ``Settings`` too: a command line that only prints help never loads pydantic-settings.
    if name in ("Storage", "open_storage"):
        from akashone_es import storage  # noqa: PLC0415 - breaks the import cycle

        return getattr(storage, name)
    if name == "Settings":
        from akashone_es import settings  # noqa: PLC0415 - loaded on first use

        return settings.Settings
    raise AttributeError(name)


__all__ = [
    "AkashOneError", "ConcurrentWriteError", "ConfigurationError", "ConflictError",
    "ContextError", "DuplicateError",
    "NotFoundError", "PermissionDeniedError", "ProjectionError", "Settings", "Storage",
    "UnavailableError", "ValidationError", "open_storage",
]
