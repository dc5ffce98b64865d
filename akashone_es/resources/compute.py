"""Compute kinds: SSH keys, ISO images."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from cryptography.hazmat.primitives import serialization
from pydantic import Field, field_validator

from akashone_es.resources.kind import Fields, Kind, Unique
from akashone_es.resources.rules import Bytes, ExternalId, Name, Text, Url


def ssh_fingerprint(public_key: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key line (``ssh-ed25519 AAAA... comment``)."""
    blob = base64.b64decode(public_key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _public_key(value: str) -> str:
    try:
        serialization.load_ssh_public_key(value.encode())
    except (ValueError, IndexError, TypeError) as exc:
        raise ValueError(f"not an OpenSSH public key ({exc})") from None
    return value


class SshKeyFields(Fields):
    name: Name
    public_key: str = Field(max_length=16_384)
    private_key: str | None = Field(default=None, max_length=16_384)

    _key = field_validator("public_key")(_public_key)


def _fingerprint(fields: dict[str, Any]) -> dict[str, Any]:
    return {**fields, "fingerprint": ssh_fingerprint(fields["public_key"])}


SSH_KEY = Kind(
    name="ssh_key", plural="ssh_keys", label="SSH key", fields=SshKeyFields, flag="ssh_keys",
    cloudstack="none", methods=frozenset(("list", "get", "create", "delete")),
    unique=(Unique(("user_id", "name"), "name"),), secrets=("private_key",),
    computed={"fingerprint": "text"}, on_create=_fingerprint)



class IsoImageFields(Fields):
    name: Name
    display_text: Text | None = None
    os_type: Name | None = None
    os_type_id: ExternalId | None = None
    size: Bytes | None = None
    is_public: bool = False
    bootable: bool = True
    is_extractable: bool = False
    is_featured: bool = False
    is_ready: bool = False
    url: Url | None = None
    zone_id: ExternalId | None = None
    zone_name: Name | None = None


ISO_IMAGE = Kind(
    name="iso_image", plural="iso_images", label="ISO image", fields=IsoImageFields,
    flag="images_templates",
    updatable=("name", "display_text", "os_type", "os_type_id", "size", "is_public",
               "bootable", "is_extractable", "is_featured", "is_ready", "url"))

KINDS = (SSH_KEY, ISO_IMAGE)
