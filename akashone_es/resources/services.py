"""Service kinds: object storage buckets, SSL certificates."""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID, NameOID
from pydantic import Field, field_validator, model_validator

from akashone_es.resources.kind import Kind, Lifecycle, Tagged, Unique, moves
from akashone_es.resources.rules import DomainName, Name

#: S3's bucket naming: 3-63 lower-case letters, digits, dots and hyphens, a letter or digit
#: at each end (the name becomes a host name: ``{name}.s3.{region}.akashone.com``)
BUCKET_NAME = re.compile(r"^(?!.*\.\.)(?!xn--)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
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
        if not BUCKET_NAME.match(value):
            raise ValueError("3-63 lower-case letters, digits, dots and hyphens, starting and "
                             "ending with a letter or digit (the name is part of a host name)")
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
    on_create=_bucket_credentials)


def _certificate(pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise ValueError("not a PEM certificate") from None


def _names(cert: x509.Certificate) -> list[str]:
    """The DNS names a certificate covers (subject alternative names, else its CN)."""
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
        names = san.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return [n.lower() for n in names]


def covers(pattern: str, domain: str) -> bool:
    """Whether a certificate name (``*.example.com`` allowed) covers ``domain``."""
    if pattern.startswith("*."):
        head, _, rest = domain.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == domain


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
    def _key_matches(self) -> SslCertificateFields:
        cert = _certificate(self.certificate)
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
            try:
                x509.load_pem_x509_certificates(self.chain.encode())
            except ValueError:
                raise ValueError("chain: not PEM certificates") from None
        return self


def _certificate_facts(fields: dict[str, Any]) -> dict[str, Any]:
    """What the certificate says: its domain, issuer and expiry (never typed in)."""
    cert = _certificate(fields["certificate"])
    return {**fields, "domain": fields.get("domain") or _names(cert)[0],
            "issuer": cert.issuer.rfc4514_string(),
            "expires_at": cert.not_valid_after_utc.isoformat()}


SSL_CERTIFICATE = Kind(
    name="ssl_certificate", plural="ssl_certificates", label="SSL certificate",
    fields=SslCertificateFields, flag="ssl_certificates",
    methods=frozenset(("list", "get", "create", "delete")), secrets=("private_key",),
    computed={"issuer": "text NOT NULL", "expires_at": "timestamptz NOT NULL"},
    on_create=_certificate_facts,
    lifecycle=Lifecycle("Active", moves(Active="Expired Revoked", Expired="Active"),
                        field="status"))

KINDS = (OBJECT_STORAGE_BUCKET, SSL_CERTIFICATE)
