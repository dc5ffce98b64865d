"""Compute kinds: virtual machines, VM snapshots, volumes, SSH keys, ISO images, Kubernetes
clusters, managed databases."""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Literal
from uuid import UUID

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from pydantic import Field, field_validator

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
from akashone_es.resources.rules import Bytes, Code, ExternalId, IpAddress, Name, Text, Url


def ssh_fingerprint(public_key: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key line (``ssh-ed25519 AAAA... comment``)."""
    blob = base64.b64decode(public_key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _public_key(value: str) -> str:
    try:
        serialization.load_ssh_public_key(value.encode())
    except (ValueError, IndexError, TypeError, UnsupportedAlgorithm) as exc:
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



# -- virtual machines ---------------------------------------------------------------------
#: CloudStack's VM states and the moves it really makes (deploy, start, stop, migrate,
#: destroy, recover, expunge; Error from anywhere a job can fail)
VM_STATES = moves(
    Creating="Starting Running Stopped Error",
    Starting="Running Stopped Error",
    Running="Stopping Stopped Migrating Error Destroyed",
    Stopping="Stopped Running Error",
    Stopped="Starting Running Destroyed Error",
    Migrating="Running Error",
    Error="Destroyed Expunging",  # CloudStack only destroys or expunges a VM in Error
    Destroyed="Expunging Stopped",
)


class VirtualMachineFields(Tagged):
    name: Name
    display_name: Name | None = None
    template_id: ExternalId
    template_name: Name | None = None
    service_offering_id: ExternalId
    service_offering_name: Name | None = None
    zone_id: ExternalId
    zone_name: Name | None = None
    cpu: int = Field(ge=1, le=1024)
    memory: int = Field(ge=1, le=16 * 1024 * 1024)  # MB
    disk_size: int | None = Field(default=None, ge=1, le=1024 * 1024)  # GB
    ip_address: IpAddress | None = None
    public_ip: IpAddress | None = None
    network_ids: list[ExternalId] = Field(default=[], max_length=64)


def _display_name(fields: dict[str, Any]) -> dict[str, Any]:
    return {**fields, "display_name": fields.get("display_name") or fields["name"]}


VIRTUAL_MACHINE = Kind(
    name="virtual_machine", plural="virtual_machines", fields=VirtualMachineFields,
    flag="virtual_machines", stamp="last_synced", on_create=_display_name,
    updatable=("display_name", "ip_address", "public_ip", "network_ids", "cpu", "memory",
               "disk_size", "tags"),
    lifecycle=Lifecycle("Creating", VM_STATES, by_update=True),
    observed=("state", "ip_address", "public_ip", "cpu", "memory", "disk_size"),
    meters=(Meter("compute", "CASE WHEN state = 'Running' THEN 1 END", "hours", ("state",)),))


class VmSnapshotFields(Fields):
    vm_id: UUID
    name: str = Field(min_length=1, max_length=255)
    description: Text | None = None
    snapshot_memory: bool = True


VM_SNAPSHOT = Kind(
    name="vm_snapshot", plural="vm_snapshots", label="VM snapshot", fields=VmSnapshotFields,
    cloudstack_column="cloudstack_snapshot_id",
    methods=frozenset(("list", "get", "by_cloudstack_id", "create", "delete")),
    # CloudStack snapshots a VM that is Running or Stopped
    parent=Parent("virtual_machine", "vm_id", states=frozenset({"Running", "Stopped"})),
    observed=("state",),
    # created once CloudStack's job has made it; reverting to it changes the VM, not it
    lifecycle=Lifecycle("Ready", moves(Ready="Expunging Error", Error="Expunging")))


# -- volumes ------------------------------------------------------------------------------
class VolumeFields(Tagged):
    name: Name
    display_name: Name | None = None
    type: Literal["DATADISK", "ROOT"] = "DATADISK"
    size: int = Field(ge=1, le=64 * 1024)  # GB
    disk_offering_id: ExternalId | None = None
    disk_offering_name: Name | None = None
    zone_id: ExternalId
    zone_name: Name | None = None
    storage_type: Literal["local", "shared", "networked"] | None = None


VOLUME = Kind(
    name="volume", plural="volumes", fields=VolumeFields, flag="volumes", stamp="last_synced",
    updatable=("name", "display_name", "size", "disk_offering_id", "disk_offering_name",
               "storage_type", "tags"),
    # set by attach_volume and detach_volume only
    computed={"attached_vm_id": "uuid", "attached_vm_name": "text", "device_id": "bigint",
              "path": "text"},
    lifecycle=Lifecycle("Creating", moves(Creating="Ready Allocated Error",
                                          Ready="Attached Error", Allocated="Attached Ready",
                                          Attached="Ready", Error="Ready"),
                        by_update=True, reserved=frozenset({"Attached"})),
    # every volume is billed, whatever its state (AkashOne's rule)
    meters=(Meter("block_storage", "size", "storage", ("size",)),), observed=("size",),
    unique=(Unique(("attached_vm_id", "device_id"), "device_id",
                   where="attached_vm_id IS NOT NULL"),))


# -- managed services ---------------------------------------------------------------------
#: a managed service is billed while it runs, being updated included (it still runs then)
SERVICE_RUNS = "status IN ('running', 'updating')"
#: one status vocabulary for the managed services
SERVICE_STATES = moves(creating="running error", running="updating stopped error",
                       updating="running error", stopped="running error",
                       error="running stopped")
NODE_CPUS, NODE_MEMORY_GB = 4, 16


class KubernetesClusterFields(Fields):
    name: Name
    version: Code
    region: Code
    instance_type: Code
    master_nodes: int = Field(default=3, ge=1, le=15)
    worker_nodes: int = Field(default=3, ge=0, le=1000)
    auto_healing: bool = True
    auto_scaling: bool = False


def _cluster_totals(fields: dict[str, Any]) -> dict[str, Any]:
    """AkashOne's derivation: 4 vCPUs and 16 GB per node, masters included."""
    nodes = fields["master_nodes"] + fields["worker_nodes"]
    return {**fields, "cpu_total": NODE_CPUS * nodes, "memory_total": NODE_MEMORY_GB * nodes}


def _new_cluster(fields: dict[str, Any]) -> dict[str, Any]:
    return {**fields, "cpu_used": 0, "memory_used": 0, "pods_running": 0, "pods_total": 250,
            "health": "healthy"}


KUBERNETES_CLUSTER = Kind(
    name="kubernetes_cluster", plural="kubernetes_clusters", label="Kubernetes cluster",
    fields=KubernetesClusterFields, flag="kubernetes", cloudstack="none",
    methods=frozenset(("list", "get", "create", "update", "delete")),
    updatable=("name", "version", "instance_type", "master_nodes", "worker_nodes",
               "auto_healing", "auto_scaling"),
    unique=(Unique((TENANT, "name"), "name", name="tenant_name"),),
    computed={"cpu_total": "bigint NOT NULL", "memory_total": "bigint NOT NULL",
              "cpu_used": "bigint NOT NULL", "memory_used": "bigint NOT NULL",
              "pods_running": "bigint NOT NULL", "pods_total": "bigint NOT NULL",
              "health": "text NOT NULL"},
    on_create=_new_cluster, derive=_cluster_totals,
    lifecycle=Lifecycle("creating", SERVICE_STATES, field="status", by_update=True),
    meters=(Meter("kubernetes",
                  f"CASE WHEN {SERVICE_RUNS} THEN master_nodes + worker_nodes END", "nodes",
                  ("status", "master_nodes", "worker_nodes")),))

#: per engine: port and connection limit (AkashOne's table; other engines are refused)
ENGINES = {"mysql": (3306, 200), "postgresql": (5432, 500), "mongodb": (27017, 100),
           "redis": (6379, 1000)}


class DatabaseFields(Fields):
    #: part of the endpoint's host name
    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    engine: Literal["mysql", "postgresql", "mongodb", "redis"]
    version: Code
    region: Code
    instance_type: Code
    storage: int = Field(default=100, ge=10, le=64 * 1024)  # GB
    cpu: int = Field(default=2, ge=1, le=256)
    memory: int = Field(default=8, ge=1, le=4096)  # GB
    backup_enabled: bool = True
    multi_az: bool = False


def _endpoint(fields: dict[str, Any]) -> dict[str, Any]:
    port, connections = ENGINES[fields["engine"]]
    return {**fields, "endpoint": f"{fields['name']}.akashone.com", "port": port,
            "connections_max": connections}


DATABASE = Kind(
    name="database", plural="databases", label="managed database", fields=DatabaseFields,
    flag="database", cloudstack="none",
    methods=frozenset(("list", "get", "create", "update", "delete")),
    updatable=("version", "instance_type", "storage", "cpu", "memory", "backup_enabled",
               "multi_az"),
    unique=(Unique(("endpoint",), "name"),),
    computed={"endpoint": "text NOT NULL", "port": "bigint NOT NULL",
              "connections_max": "bigint NOT NULL", "connections_current": "bigint NOT NULL"},
    on_create=lambda fields: {**fields, "connections_current": 0}, derive=_endpoint,
    lifecycle=Lifecycle("creating", SERVICE_STATES, field="status", by_update=True),
    meters=(Meter("database", f"CASE WHEN {SERVICE_RUNS} THEN 1 END", "hours", ("status",)),
            Meter("database_storage", f"CASE WHEN {SERVICE_RUNS} THEN storage END", "storage",
                  ("status", "storage"))))

KINDS = (VIRTUAL_MACHINE, VM_SNAPSHOT, VOLUME, SSH_KEY, ISO_IMAGE, KUBERNETES_CLUSTER,
         DATABASE)
