"""A valid create input for every declared resource kind (tests and the sample AkashOne dump).

``SAMPLES[kind](tag)`` gives the fields of a new resource whose unique values (addresses,
names) are derived from ``tag``, so every call makes a distinct resource.
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


def _n(tag: str, modulo: int) -> int:
    return int(hashlib.sha256(tag.encode()).hexdigest(), 16) % modulo


def _ipv6(tag: str) -> str:
    """A documentation address (2001:db8::/32) unique per tag."""
    h = hashlib.sha256(tag.encode()).hexdigest()
    return "2001:db8:" + ":".join(h[i:i + 4] for i in range(0, 24, 4))


def self_signed(names: tuple[str, ...] = ("www.example.com", "example.com"),
                days: int = 90, *, expired: bool = False) -> tuple[str, str]:
    """A PEM certificate covering ``names`` and its private key (``expired``: valid for
    ``days`` up to a month ago)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.now(UTC) - (timedelta(days=days + 30) if expired else timedelta())
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


SSH_PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh"
                  "2l9GKJl sample@example")


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
