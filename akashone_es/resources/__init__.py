"""The declared resource kinds (see ``kind.py`` for how a kind is declared)."""

from __future__ import annotations

from akashone_es.resources import compute, network, services
from akashone_es.resources.kind import Kind

#: every kind by name, in declaration order (tables, methods and tests follow it)
KINDS: dict[str, Kind] = {kind.name: kind for kind in (*compute.KINDS, *network.KINDS,
                                                          *services.KINDS)}



def resource_methods(method: str | None = None) -> list[str]:
    """Every kind's ``Storage`` method names (only those of ``method``, when given)."""
    return [name for kind in KINDS.values() for m, name in kind.method_names().items()
            if method is None or m == method]


__all__ = ["KINDS", "Kind", "resource_methods"]
