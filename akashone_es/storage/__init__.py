"""The storage API: ``Storage`` (AkashOne's ``IStorage``) and ``open_storage()``.

The facade (``facade.py``) is imported on first use of one of its names: the package's leaf
modules (``limits``, ``inputs``) are imported by the resource kinds, which the facade's
access policy itself imports, so importing them must not load the facade.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from akashone_es.storage.facade import (
        EMBEDDED_DATABASE,
        PROJECTIONS,
        Storage,
        open_standby,
        open_storage,
        resolve_dsn,
    )

__all__ = ["EMBEDDED_DATABASE", "PROJECTIONS", "Storage", "open_standby", "open_storage",
           "resolve_dsn"]
#: the facade's public names
_FACADE = frozenset(__all__)


def __getattr__(name: str) -> Any:
    if name in _FACADE:
        from akashone_es.storage import facade  # noqa: PLC0415 - loaded on first use

        return getattr(facade, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

