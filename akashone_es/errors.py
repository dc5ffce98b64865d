"""The one error tree of akashone-es.

Every error the package raises on purpose descends from ``AkashOneError``::

    AkashOneError
     ├── ValidationError        bad input: names the field and the rule; nothing was written
     ├── NotFoundError          no such record (or not visible to the acting tenant)
     ├── DuplicateError         a unique value is taken (username, email, permission key, ...)
     ├── ConflictError          a stale concurrent write lost the race; reload and retry
     ├── PermissionDeniedError  the rule forbids the change (e.g. editing a system role)
     │    └── ContextError      the acting context is refused: none given, an unknown actor,
     │                          one who is not active, or another tenant named
     ├── ConfigurationError     settings or the database are not usable
     ├── UnavailableError       the database cannot be reached now (reads are retried once)
     ├── ProjectionError        a projection could not be built, verified or swapped
     └── InternalError          an unexpected failure inside akashone-es (logged with its cause)

Library errors are translated at the boundary (``storage`` and ``persistence``), so callers
catch these and nothing else.
"""

from __future__ import annotations

from typing import Any


def first_line(exc: BaseException) -> str:
    """An exception's message as one line (its first, whitespace collapsed): how a library's
    multi-line error is quoted in ours; its type's name when it has no message."""
    return " ".join(str(exc).strip().split("\n")[0].split()) or type(exc).__name__


class AkashOneError(Exception):
    """Base of every error raised by akashone-es."""


class ValidationError(AkashOneError, ValueError):
    """Input broke a rule; ``errors`` lists ``{"field", "rule"}`` pairs."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        text = "; ".join(f"{e['field']}: {e['rule']}" for e in errors)
        super().__init__(f"invalid input: {text}")

    @classmethod
    def single(cls, field: str, rule: str) -> ValidationError:
        return cls([{"field": field, "rule": rule}])

    @property
    def fields(self) -> list[str]:
        return [e["field"] for e in self.errors]


class NotFoundError(AkashOneError, LookupError):
    """The record does not exist, or the acting tenant may not see it."""

    def __init__(self, kind: str, key: Any, field: str = "id") -> None:
        self.kind = kind
        self.key = key
        self.field = field
        super().__init__(f"{kind} not found: {field}={key}")


class DuplicateError(AkashOneError):
    """A value that must be unique is already taken."""

    def __init__(self, kind: str, field: str, value: Any = None) -> None:
        self.kind = kind
        self.field = field
        self.value = value
        shown = f"={value!r}" if value is not None else ""
        super().__init__(f"{kind} already exists with {field}{shown}")


class ConflictError(AkashOneError):
    """The record's current state refuses the change: a concurrent write changed it first
    (the stale write was rejected), or its lifecycle does not allow the move (a VM that is
    not running cannot take a volume)."""


class ConcurrentWriteError(ConflictError):
    """Another writer changed one of the records first (its version moved): trying again
    against what is there now may succeed."""


class PermissionDeniedError(AkashOneError, PermissionError):
    """The change is not allowed by a business rule."""


class FeatureDisabledError(PermissionDeniedError):
    """The feature a call needs is switched off (or was never set up) on this platform."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        super().__init__(f"feature {key!r} {reason}")


class ContextError(PermissionDeniedError):
    """The acting context cannot be vouched for; nothing was read or written."""


class ConfigurationError(AkashOneError):
    """Settings or the database are not usable as configured."""


class ProjectionError(AkashOneError):
    """A projection could not be built, verified or swapped."""


class UnavailableError(AkashOneError):
    """The database could not be reached (connection refused or dropped); try again later."""


class InternalError(AkashOneError):
    """An unexpected failure of a library below akashone-es; the cause is logged."""
