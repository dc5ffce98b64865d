"""A valid create input and a valid update for every declared resource kind.

``create(kind, tag)`` gives the fields of a new resource whose unique values (CloudStack id,
address, names) are derived from ``tag``, so every call makes a distinct resource
(``akashone_es.resources.samples``). A kind declared without a sample fails
``test_every_kind_has_a_sample``.
"""

from __future__ import annotations

from typing import Any

from akashone_es.resources import KINDS
from akashone_es.resources.kind import Kind
from akashone_es.resources.samples import CERTIFICATE, PRIVATE_KEY, SAMPLES, self_signed

#: a change every kind with an update accepts
UPDATES: dict[str, dict[str, Any]] = {
    "virtual_machine": {"display_name": "Web server"},
    "volume": {"display_name": "Data disk"},
    "kubernetes_cluster": {"auto_scaling": True},
    "database": {"backup_enabled": False},
    "dns_domain": {"dnssec": True},
    "dns_record": {"ttl": 300},
    "iso_image": {"is_ready": True},
    "vpc": {"display_name": "Renamed VPC"},
    "firewall_rule": {"end_port": 23},
    "reserved_ip": {"purpose": "Firewall"},
    "nat_gateway": {"vm_name": "web-1"},
    "ipsec_tunnel": {"dpd": False},
}


#: an observation CloudStack could report of a new resource, for each kind that has one
OBSERVATIONS: dict[str, dict[str, Any]] = {
    "virtual_machine": {"state": "Running", "ip_address": "10.1.0.7"},
    "vm_snapshot": {"state": "Error"},
    "volume": {"size": 60},
    "object_storage_bucket": {"size": 5 * 1024**3, "object_count": 12},
    "reserved_ip": {"state": "Reserved"},
    "vpc": {"state": "Disabled"},
    "firewall_rule": {"state": "Inactive"},
    "ipsec_tunnel": {"state": "Connected"},
    "load_balancer": {"state": "Inactive"},
    "ssl_certificate": {"status": "Revoked"},
    "cdn_distribution": {"status": "Deploying"},
}


def needs(kind: Kind) -> dict[str, str]:
    """What a new resource of ``kind`` must name (field -> kind): its parent, and the
    references its input requires."""
    found = {field: target for field, target in kind.refs.items()
             if kind.fields.model_fields[field].is_required()}
    if kind.parent is not None:
        found[kind.parent.field] = kind.parent.kind
    return found


def create(kind: Kind, tag: str, user_id: Any, parent: Any = None,
           named: dict[str, Any] | None = None) -> dict[str, Any]:
    """A create input for ``kind`` owned by ``user_id``; ``parent`` is a child kind's parent
    id, ``named`` the ids of what it must name (by kind name)."""
    data = {**SAMPLES[kind.name](tag), "user_id": user_id}
    if kind.cloudstack != "none":
        data[kind.cloudstack_column] = f"cs-{kind.name}-{tag}"
    for field, target in needs(kind).items():
        data[field] = (named or {}).get(target, parent)
    return data


def fresh_input(storage: Any, kind: Kind, tag: str, user_id: Any) -> dict[str, Any]:
    """A create input (with a new parent and new named resources of the same owner)."""
    named = {target: make(storage, KINDS[target], f"{tag}-{field}", user_id).id
             for field, target in needs(kind).items()}
    if kind.parent is not None and kind.parent.states is not None:
        # a child made only under a parent in some states (a VM snapshot: its VM running)
        parent = KINDS[kind.parent.kind]
        assert parent.lifecycle is not None
        row = method(storage, parent, "get")(named[parent.name])
        # what metering bills (a VM's state) is the platform's to record
        with storage.acting_as(system="provisioning", organization_id=row.organization_id):
            method(storage, parent, "update")(named[parent.name], {
                parent.lifecycle.field: sorted(kind.parent.states)[0]})
    return create(kind, tag, user_id, named=named)


def make(storage: Any, kind: Kind, tag: str, user_id: Any) -> Any:
    """A new resource of ``kind`` (and, for a child kind, a new parent of the same owner)."""
    return method(storage, kind, "create")(fresh_input(storage, kind, tag, user_id))


def listed(storage: Any, kind: Kind, row: Any, user_id: Any = None) -> list[Any]:
    """The list ``row`` belongs in: its owner's (or, for a child kind, its parent's)."""
    if kind.name == "vm_snapshot":
        return storage.get_vm_snapshots(row.vm_id, user_id or row.user_id)  # type: ignore[no-any-return]
    if kind.name == "dns_record":
        return storage.get_dns_records(row.domain_id)  # type: ignore[no-any-return]
    return method(storage, kind, "list")(user_id or row.user_id)  # type: ignore[no-any-return]


def method(storage: Any, kind: Kind, name: str) -> Any:
    return getattr(storage, kind.method_names()[name])


__all__ = ["CERTIFICATE", "KINDS", "OBSERVATIONS", "PRIVATE_KEY", "SAMPLES", "UPDATES", "create",
           "fresh_input", "listed", "make", "self_signed"]
