"""akashone-es: event-sourced PostgreSQL persistence for the AkashOne cloud portal."""

from akashone_es.context import acting_as
from akashone_es.errors import (
    AkashOneError,
    ConfigurationError,
    ConflictError,
    DuplicateError,
    NotFoundError,
    PermissionDeniedError,
    ProjectionError,
    ValidationError,
)
from akashone_es.settings import Settings
from akashone_es.storage import Storage, open_storage

__all__ = [
    "AkashOneError", "ConfigurationError", "ConflictError", "DuplicateError", "NotFoundError",
    "PermissionDeniedError", "ProjectionError", "Settings", "Storage", "ValidationError",
    "acting_as", "open_storage",
]
