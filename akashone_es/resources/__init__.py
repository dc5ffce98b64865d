"""The declared resource kinds (see ``kind.py`` for how a kind is declared)."""

from __future__ import annotations

from akashone_es.resources import compute, network, services
from akashone_es.resources.kind import Kind


def _in_order(kinds: tuple[Kind, ...]) -> dict[str, Kind]:
    """Every kind after its parent and the kinds it references (so samples, tables and
    tests can make what a kind needs first), otherwise in declaration order."""
    ordered: dict[str, Kind] = {}
    by_name = {kind.name: kind for kind in kinds}

    def place(kind: Kind) -> None:
        if kind.name in ordered:
            return
        needs = [*kind.refs.values(), *([kind.parent.kind] if kind.parent else [])]
        for name in needs:
            if name != kind.name:
                place(by_name[name])
        ordered[kind.name] = kind

    for kind in kinds:
        place(kind)
    return ordered


#: every kind by name, each after the kinds it needs (tables, methods and tests follow it)
KINDS: dict[str, Kind] = _in_order((*compute.KINDS, *network.KINDS, *services.KINDS))



def resource_methods(method: str | None = None) -> list[str]:
    """Every kind's ``Storage`` method names (only those of ``method``, when given)."""
    return [name for kind in KINDS.values() for m, name in kind.method_names().items()
            if method is None or m == method]


__all__ = ["KINDS", "Kind", "resource_methods"]
