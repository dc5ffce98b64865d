"""A valid create input and a valid update for every declared resource kind.

``create(kind, tag)`` gives the fields of a new resource whose unique values (CloudStack id,
address, names) are derived from ``tag``, so every call makes a distinct resource. A kind
declared without a sample fails ``test_every_kind_has_a_sample``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from akashone_es.resources import KINDS
from akashone_es.resources.kind import Kind

SSH_PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh"
                  "2l9GKJl sample@example")


def _n(tag: str, modulo: int) -> int:
    return int(hashlib.sha256(tag.encode()).hexdigest(), 16) % modulo


def _ipv6(tag: str) -> str:
    """A documentation address (2001:db8::/32) unique per tag."""
    h = hashlib.sha256(tag.encode()).hexdigest()
    return "2001:db8:" + ":".join(h[i:i + 4] for i in range(0, 24, 4))


def self_signed(names: tuple[str, ...] = ("www.example.com", "example.com"),
                days: int = 90) -> tuple[str, str]:
    """A PEM certificate covering ``names`` and its private key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


CERTIFICATE, PRIVATE_KEY = self_signed()

SAMPLES: dict[str, Callable[[str], dict[str, Any]]] = {
    "virtual_machine": lambda tag: {"name": f"vm-{tag}", "template_id": "tpl-ubuntu",
                                    "service_offering_id": "so-small", "zone_id": "zone-1",
                                    "cpu": 2, "memory": 2048},
    "vm_snapshot": lambda tag: {"name": f"snap-{tag}", "description": "before upgrade"},
    "volume": lambda tag: {"name": f"data-{tag}", "size": 50, "zone_id": "zone-1"},
    "kubernetes_cluster": lambda tag: {"name": f"k8s-{tag}", "version": "1.30",
                                       "region": "in-west-1", "instance_type": "standard-4"},
    "database": lambda tag: {"name": f"db-{_n(tag, 10**12)}", "engine": "postgresql",
                             "version": "16", "region": "in-west-1",
                             "instance_type": "standard-2"},
    "dns_domain": lambda tag: {"name": f"d{_n(tag, 10**12)}.example.com"},
    "dns_record": lambda tag: {"type": "A", "name": f"www{_n(tag, 10**6)}",
                               "value": "203.0.113.5"},
    "iso_image": lambda tag: {"name": f"ubuntu-{tag}", "os_type": "Ubuntu 24.04",
                              "url": "https://releases.example.com/ubuntu.iso"},
    "object_storage_bucket": lambda tag: {"name": f"bucket-{_n(tag, 10**12)}",
                                          "region": "in-west-1"},
    "ssl_certificate": lambda tag: {"name": f"cert-{tag}", "certificate": CERTIFICATE,
                                    "private_key": PRIVATE_KEY},
    "ssh_key": lambda tag: {"name": f"key-{tag}", "public_key": SSH_PUBLIC_KEY},
    "vpc": lambda tag: {"name": f"vpc-{tag}", "cidr": f"10.{_n(tag, 250)}.0.0/16",
                        "vpc_offering_id": "offering-1", "zone_id": "zone-1"},
    "firewall_rule": lambda tag: {"protocol": "tcp", "start_port": 22, "end_port": 22,
                                  "cidr_list": ["0.0.0.0/0"], "purpose": "Firewall"},
    "reserved_ip": lambda tag: {"ip_address": _ipv6(tag), "zone_id": "zone-1"},
    "nat_gateway": lambda tag: {"name": f"nat-{tag}", "type": "SourceNAT"},
    "ipsec_tunnel": lambda tag: {"name": f"vpn-{tag}", "customer_gateway_id": "cgw-1",
                                 "customer_gateway_ip": "198.51.100.10",
                                 "customer_cidr": "192.168.0.0/24"},
    "load_balancer": lambda tag: {"name": f"lb-{tag}", "protocol": "http", "public_port": 80,
                                  "private_port": 8080},
    "ddos_protection_rule": lambda tag: {"name": f"ddos-{tag}"},
    "cdn_distribution": lambda tag: {"name": f"cdn-{tag}", "domain": f"cdn-{tag}.example.com",
                                     "origin_server": "origin.example.com"},
}

#: a change every kind with an update accepts
UPDATES: dict[str, dict[str, Any]] = {
    "virtual_machine": {"display_name": "Web server"},
    "volume": {"display_name": "Data disk"},
    "kubernetes_cluster": {"worker_nodes": 5},
    "database": {"storage": 200},
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


__all__ = ["KINDS", "OBSERVATIONS", "SAMPLES", "UPDATES", "create", "fresh_input", "listed", "make"]
