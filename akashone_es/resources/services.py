"""Service kinds: object storage buckets, SSL certificates, DNS domains and records."""

from __future__ import annotations

import ipaddress
import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from pydantic import Field, ValidationInfo, field_validator, model_validator

from akashone_es.resources.kind import (
    TENANT,
    Fields,
    Kind,
    Lifecycle,
    Meter,
    Parent,
    Tagged,
    Unique,
    moves,
)
from akashone_es.resources.rules import DomainName, Name, domain_name

#: S3's bucket naming: 3-63 lower-case letters, digits, dots and hyphens, a letter or digit
#: at each end (the name becomes a host name: ``{name}.s3.{region}.akashone.com``)
BUCKET_NAME = re.compile(r"^(?!.*\.\.)(?!xn--)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
PEM_MAX = 65_536


class BucketFields(Tagged):
    name: str = Field(min_length=3, max_length=63)
    region: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    versioning: bool = False
    public_access: bool = False
    encryption: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        labels = value.split(".")
        if not BUCKET_NAME.match(value) or not all(LABEL.match(x) for x in labels):
            raise ValueError("3-63 lower-case letters, digits, dots and hyphens; each part "
                             "between dots starts and ends with a letter or digit (the name "
                             "is part of a host name)")
        if all(x.isdigit() for x in labels):
            raise ValueError("must not look like an IP address")
        return value


def _bucket_credentials(fields: dict[str, Any]) -> dict[str, Any]:
    """AkashOne's generated values: an access key, a secret key (sealed before the event)
    and the endpoint; a new bucket holds nothing."""
    return {**fields, "access_key": "AK" + secrets.token_hex(10).upper(),
            "secret_key": f"{uuid.uuid4()}{uuid.uuid4()}",
            "endpoint": f"https://{fields['name']}.s3.{fields['region']}.akashone.com",
            "size": 0, "object_count": 0}


OBJECT_STORAGE_BUCKET = Kind(
    name="object_storage_bucket", plural="object_storage_buckets",
    label="object storage bucket", fields=BucketFields, flag="object_storage",
    cloudstack="optional", methods=frozenset(("list", "get", "create", "delete")),
    unique=(Unique(("name",), "name"),), secrets=("secret_key",),
    computed={"access_key": "text NOT NULL", "secret_key": "text NOT NULL",
              "endpoint": "text NOT NULL", "size": "bigint NOT NULL",
              "object_count": "bigint NOT NULL"},
    on_create=_bucket_credentials,
    meters=(Meter("object_storage", "size::numeric / 1073741824", "storage", ("size",)),),
    observed=("size", "object_count"))


PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")


def _certificate(pem: str) -> x509.Certificate:
    blocks = PEM_BLOCK.findall(pem)
    if blocks != ["CERTIFICATE"]:
        raise ValueError("one PEM certificate, and nothing else (a private key goes in "
                         "private_key)")
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise ValueError("not a PEM certificate") from None


def _chain(pem: str) -> list[x509.Certificate]:
    if set(PEM_BLOCK.findall(pem)) != {"CERTIFICATE"}:
        raise ValueError("chain: PEM certificates only")
    try:
        return x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise ValueError("chain: not PEM certificates") from None


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _names(cert: x509.Certificate) -> list[str]:
    """The DNS names a certificate covers (subject alternative names, else a CN that is a
    domain name)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = san.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return [n.lower() for n in names if _is_name(n.lower().removeprefix("*."))]


def _is_name(value: str) -> bool:
    try:
        domain_name(value)
    except ValueError:
        return False
    return True


def covers(pattern: str, domain: str) -> bool:
    """Whether a certificate name (``*.example.com`` allowed) covers ``domain``."""
    if pattern.startswith("*."):
        head, _, rest = domain.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == domain


def certificate_covers(certificate: Any, fields: dict[str, Any]) -> str | None:
    """A CDN's rule for the certificate it names: it covers the CDN's domain."""
    names = _names(_certificate(certificate.certificate))
    domain = fields.get("domain")
    if domain is None or any(covers(name, domain) for name in names):
        return None
    return f"the certificate covers {', '.join(names) or 'no domain name'}, not {domain}"


class SslCertificateFields(Tagged):
    name: Name
    #: optional: the certificate's first name when absent; when given, it must cover it
    domain: DomainName | None = None
    certificate: str = Field(max_length=PEM_MAX)
    private_key: str = Field(max_length=PEM_MAX)
    chain: str | None = Field(default=None, max_length=PEM_MAX)
    auto_renew: bool = False

    @field_validator("certificate")
    @classmethod
    def _pem(cls, value: str) -> str:
        _certificate(value)
        return value

    @model_validator(mode="after")
    def _key_matches(self, info: ValidationInfo) -> SslCertificateFields:
        cert = _certificate(self.certificate)
        history = bool((info.context or {}).get("history"))  # imported: it may have expired
        if cert.not_valid_after_utc <= datetime.now(UTC) and not history:
            raise ValueError(f"certificate: expired on {cert.not_valid_after_utc:%Y-%m-%d}")
        if not _names(cert):
            raise ValueError("certificate: names no DNS domain (no subject alternative name"
                             " or common name that is a domain name)")
        try:
            key = serialization.load_pem_private_key(self.private_key.encode(), password=None)
        except (ValueError, TypeError):
            raise ValueError("private_key: not an unencrypted PEM private key") from None
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        if key.public_key().public_bytes(serialization.Encoding.DER, public) != \
                cert.public_key().public_bytes(serialization.Encoding.DER, public):
            raise ValueError("private_key: does not match the certificate's public key")
        names = _names(cert)
        if self.domain is not None and not any(covers(n, self.domain) for n in names):
            raise ValueError(f"domain: the certificate covers {', '.join(names)}, "
                             f"not {self.domain}")
        if self.chain is not None:
            _chain(self.chain)
        return self


def _certificate_facts(fields: dict[str, Any]) -> dict[str, Any]:
    """What the certificate says: its domain, issuer and expiry (never typed in)."""
    cert = _certificate(fields["certificate"])
    chain = fields.get("chain")
    return {**fields, "domain": fields.get("domain") or _names(cert)[0],
            # stored as re-encoded: only the certificates' own bytes reach the log
            "certificate": _pem(cert),
            "chain": "".join(_pem(c) for c in _chain(chain)) if chain else None,
            "issuer": cert.issuer.rfc4514_string(),
            "expires_at": cert.not_valid_after_utc.isoformat()}


def _expired(row: Any) -> Any:
    """A certificate past its expiry reads Expired (no event: time alone changed it)."""
    if row.status == "Active" and row.expires_at <= datetime.now(UTC):
        return row.model_copy(update={"status": "Expired"})
    return row


SSL_CERTIFICATE = Kind(
    name="ssl_certificate", plural="ssl_certificates", label="SSL certificate",
    fields=SslCertificateFields, flag="ssl_certificates",
    methods=frozenset(("list", "get", "create", "delete")), secrets=("private_key",),
    computed={"issuer": "text NOT NULL", "expires_at": "timestamptz NOT NULL"},
    on_create=_certificate_facts, on_read=_expired,
    lifecycle=Lifecycle("Active", moves(Active="Expired Revoked", Expired="Active"),
                        field="status"),
    observed=("status",))



# -- DNS ----------------------------------------------------------------------------------
DEFAULT_NAMESERVERS = ["ns1.akashone.com", "ns2.akashone.com"]


class DnsDomainFields(Fields):
    name: DomainName
    dnssec: bool = False
    nameservers: list[DomainName] = Field(
        default_factory=lambda: list(DEFAULT_NAMESERVERS), min_length=1, max_length=13)


DNS_DOMAIN = Kind(
    name="dns_domain", plural="dns_domains", label="DNS domain", fields=DnsDomainFields,
    flag="dns", cloudstack="none", stamp="last_modified",
    methods=frozenset(("list", "get", "create", "update", "delete")),
    updatable=("dnssec", "nameservers"),
    # a domain once per tenant; active (verified by the platform) once on the platform
    unique=(Unique((TENANT, "name"), "name", name="tenant_name"),),
    platform_set={"status": "set by the platform once it has verified that the tenant "
                            "holds the domain (a tenant's word makes no zone active)"},
    kept={"record_count": "integer NOT NULL DEFAULT 0"},
    lifecycle=Lifecycle("pending", moves(pending="active failed", active="suspended",
                                         suspended="active", failed="pending"),
                        field="status", by_update=True))

#: a record's name within its domain: "@" (the apex), or labels, the first may be "*"
RECORD_NAME = re.compile(r"^(@|(\*|[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)"
                         r"(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*)$")
CAA = re.compile(r'^(0|128) (issue|issuewild|iodef) "[^"]{0,255}"$')
SRV = re.compile(r"^\d{1,5} \d{1,5} \S+$")


def _record_value(kind: str, value: str) -> str:
    """A record's value checked (and normalized) for its type."""
    if kind in ("A", "AAAA"):
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"value: an {kind} record holds an IPv{4 if kind == 'A' else 6}"
                             " address") from None
        if address.version != (4 if kind == "A" else 6):
            raise ValueError(f"value: an {kind} record holds an IPv{4 if kind == 'A' else 6}"
                             " address")
        return str(address)
    if kind in ("CNAME", "NS", "MX"):
        try:
            return domain_name(value)
        except ValueError:
            raise ValueError(f"value: a {kind} record holds a domain name") from None
    if kind == "SRV":
        weight, port, target = [*value.split(), "", "", ""][:3]
        if not SRV.match(value) or int(weight) > 65535 or not 0 < int(port) <= 65535:
            raise ValueError("value: an SRV record holds 'weight port target'")
        return f"{weight} {port} {domain_name(target)}"
    if kind == "CAA":
        if not CAA.match(value):
            raise ValueError('value: a CAA record holds \'flags tag "value"\' (e.g. '
                             '0 issue "letsencrypt.org")')
        return value
    return value  # TXT: any text within the field's bound


class DnsRecordFields(Fields):
    domain_id: UUID
    type: Literal["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SRV", "CAA"]
    name: str = Field(min_length=1, max_length=253)
    value: str = Field(min_length=1, max_length=2048)
    ttl: int = Field(default=3600, ge=60, le=7 * 86400)
    priority: int | None = Field(default=None, ge=0, le=65535)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        name = value.lower().removesuffix(".")
        if not RECORD_NAME.match(name):
            raise ValueError("'@' for the domain itself, or labels of letters, digits, "
                             "hyphens and underscores (the first may be '*')")
        return name

    @model_validator(mode="after")
    def _value(self) -> DnsRecordFields:
        object.__setattr__(self, "value", _record_value(self.type, self.value))
        needs_priority = self.type in ("MX", "SRV")
        if needs_priority and self.priority is None:
            raise ValueError(f"priority: a {self.type} record needs one")
        if not needs_priority and self.priority is not None:
            raise ValueError(f"priority: only MX and SRV records have one, not {self.type}")
        return self


DNS_RECORD = Kind(
    name="dns_record", plural="dns_records", label="DNS record", fields=DnsRecordFields,
    cloudstack="none", methods=frozenset(("list", "get", "create", "update", "delete")),
    updatable=("type", "name", "value", "ttl", "priority"),
    parent=Parent("dns_domain", "domain_id", count="record_count", stamp="last_modified"),
    # a CNAME is alone at its name (the other half of the rule is checked on create)
    unique=(Unique(("domain_id", "name"), "name", where="type = 'CNAME'", name="cname"),))

KINDS = (OBJECT_STORAGE_BUCKET, SSL_CERTIFICATE, DNS_DOMAIN, DNS_RECORD)
