"""The resource kinds' own behaviour, beyond what their declarations give.

Volume attach and detach, a VM's destroy (its volumes detached, its static NAT released, its
snapshots removed, each by its own event in the same transaction), snapshot restore, the
lookups AkashOne keys differently (snapshots by VM, records by domain, SSH keys by name,
reserved IPs by address) and the CNAME rule of DNS records.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from uuid import UUID

from psycopg import sql
from pydantic import BaseModel

from akashone_es import context
from akashone_es.domain.resources import Resource
from akashone_es.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from akashone_es.resources import KINDS
from akashone_es.storage import inputs as i
from akashone_es.storage import limits as lim
from akashone_es.storage.billing_base import racing
from akashone_es.storage.resources import STATEMENTS, ResourceStorage

VM, VOLUME, SNAPSHOT = KINDS["virtual_machine"], KINDS["volume"], KINDS["vm_snapshot"]
NAT, DNS_RECORD, SSH_KEY = KINDS["nat_gateway"], KINDS["dns_record"], KINDS["ssh_key"]
DNS_DOMAIN = KINDS["dns_domain"]
RESERVED_IP = KINDS["reserved_ip"]
#: the VM states whose disks may be attached or detached
VM_USABLE = frozenset({"Running", "Stopped"})
#: states of a VM with no running state left to restore into
VM_GONE = frozenset({"Destroyed", "Expunging"})
ALL_STATES = frozenset(VM.lifecycle.states()) if VM.lifecycle else frozenset()

Q = sql.SQL
VOLUMES_OF_VM = Q("SELECT id FROM volumes WHERE attached_vm_id = %s ORDER BY id")
DEVICES_OF_VM = Q("SELECT coalesce(max(device_id), 0) FROM volumes WHERE attached_vm_id = %s")
ROOT_OF_VM = Q("SELECT name FROM volumes WHERE attached_vm_id = %s AND type = 'ROOT' LIMIT 1")
NATS_OF_VM = Q("SELECT id FROM nat_gateways WHERE vm_id = %s ORDER BY id")
#: a reserved IP names its VM by id in a text column
IPS_OF_VM = Q("SELECT id FROM reserved_ips WHERE associated_vm_id = %s::text ORDER BY id")
#: what a reserved IP says of the VM it was associated with, cleared when that VM goes
UNASSOCIATED = {"associated_vm_id": None, "associated_vm_name": None, "is_static_nat": False}
SSH_KEY_BY_NAME = Q("SELECT * FROM ssh_keys WHERE user_id = %s AND name = %s")
RESERVED_IP_BY_ADDRESS = Q("SELECT * FROM reserved_ips WHERE ip_address = %s")
RECORDS_AT_NAME = Q("SELECT id, type FROM dns_records WHERE domain_id = %s AND name = %s")


class CloudStorage(ResourceStorage):
    """Behaviour of VMs, volumes, snapshots, DNS records; AkashOne's other lookups."""

    # -- lookups --------------------------------------------------------------------------
    def get_vm_snapshots(self, vm_id: UUID | str, user_id: UUID | str) -> list[Any]:
        """The snapshots of one VM owned by ``user_id`` (none when the VM is not theirs)."""
        return self._children(SNAPSHOT, vm_id, user_id)

    def get_dns_records(self, domain_id: UUID | str) -> list[Any]:
        """The records of a domain the acting party may see."""
        return self._children(DNS_RECORD, domain_id)

    def get_ssh_key_by_name(self, name: str, user_id: UUID | str) -> Any:
        """A user's key by its name (names are unique per user)."""
        user = self.get_user(user_id)
        if user is None:
            return None
        row = self._one(STATEMENTS[SSH_KEY.name].model, SSH_KEY_BY_NAME, (user.id, name))
        return self._hide(SSH_KEY, row) if row is not None else None

    def get_reserved_ip_by_address(self, ip_address: str) -> Any:
        """The reserved IP holding an address, in any spelling of it (a tenant finds only
        its own)."""
        try:
            ip_address = str(ipaddress.ip_address(ip_address))
        except ValueError:
            return None
        return self._seen(self._one(STATEMENTS[RESERVED_IP.name].model,
                                    RESERVED_IP_BY_ADDRESS, (ip_address,)))

    # -- volumes --------------------------------------------------------------------------
    def attach_volume(self, volume_id: UUID | str, vm_id: UUID | str,
                      vm_name: str | None = None) -> Any:
        """Attach a volume to a VM (see ``_attach``); tried again after a racing change."""
        return racing(lambda: self._attach(volume_id, vm_id, vm_name))

    def _attach(self, volume_id: UUID | str, vm_id: UUID | str,
                vm_name: str | None = None) -> Any:
        """Attach a volume to a VM of the same owner in the same zone. Refused when either
        is missing (or another tenant's), the volume is attached already, or the VM is not
        running or stopped. None when the volume is absent. (Two attaches racing for one VM
        cannot take one device id: a unique index refuses the second.)"""
        if vm_name is not None and not 0 < len(vm_name) <= lim.NAME_MAX:
            raise ValidationError.single("vm_name", f"1 to {lim.NAME_MAX} characters")
        volume = self._resource(VOLUME, volume_id, "volume_id")
        if volume is None:
            return None
        vm = self._resource(VM, vm_id, "vm_id")
        if vm is None:
            raise NotFoundError(VM.name, vm_id, "vm_id")
        if vm.user_id != volume.user_id:
            raise PermissionDeniedError("vm_id: the VM belongs to another user")
        if vm.zone_id != volume.zone_id:
            raise ConflictError(f"the volume is in zone {volume.zone_id}, the VM in "
                                f"{vm.zone_id}: a volume attaches in its own zone")
        if vm.state not in VM_USABLE:
            raise ConflictError(f"cannot attach a volume to a VM that is {vm.state}")
        if volume.state == "Attached":
            where = volume.attached_vm_name or volume.attached_vm_id
            raise ConflictError(f"the volume is attached to {where} already")
        if volume.type == "ROOT":
            root = self._scalar(ROOT_OF_VM, (vm.id,))
            if root is not None:
                raise ConflictError(f"the VM has a ROOT volume already ({root}); a VM boots "
                                    "from one")
        device = int(self._scalar(DEVICES_OF_VM, (vm.id,)) or 0) + 1
        return self._act(VOLUME, volume.id, "attach", "Attached", {
            "attached_vm_id": str(vm.id), "attached_vm_name": vm_name or vm.name,
            "device_id": device}, linked=vm.id)

    def detach_volume(self, volume_id: UUID | str) -> Any:
        """Detach a data disk (a ROOT volume stays with its VM); None when absent."""
        return racing(lambda: self._detach(volume_id))

    def _detach(self, volume_id: UUID | str) -> Any:
        volume = self._resource(VOLUME, volume_id, "volume_id")
        if volume is None:
            return None
        if volume.type == "ROOT":
            raise ConflictError("a ROOT volume is never detached from its VM")
        return self._act(VOLUME, volume.id, "detach", "Ready", DETACHED,
                         linked=volume.attached_vm_id)

    def delete_volume(self, id: UUID | str) -> bool:
        """Delete a volume that is not attached (a ROOT volume on its VM goes with the VM).
        False when absent."""
        return racing(lambda: self._delete_volume(id))

    def _delete_volume(self, id: UUID | str) -> bool:
        volume = self._resource(VOLUME, id)
        if volume is None:
            return False
        with context.command():
            aggregate = self._load_resource(VOLUME, volume.id)  # checked as it is now
            if aggregate.fields.get("state") == "Attached":
                raise ConflictError("a ROOT volume is deleted with its VM"
                                    if aggregate.fields.get("type") == "ROOT"
                                    else "detach the volume first")
            aggregate.delete()
            self._save(aggregate)
        return True

    # -- VMs ------------------------------------------------------------------------------
    def delete_virtual_machine(self, id: UUID | str) -> bool:
        """Destroy a VM (see ``_destroy``); tried again after a racing change."""
        return racing(lambda: self._destroy(id))

    def _destroy(self, id: UUID | str) -> bool:
        """Destroy a VM: its data disks are detached, its ROOT volume deleted, its static
        NAT released, the reserved IPs associated with it freed of it and its snapshots
        removed, each by its own event, in one transaction with the VM's own deletion.
        False when absent."""
        vm = self._resource(VM, id)
        if vm is None:
            return False
        with context.command():
            # loaded first: an attach committed after this load conflicts on the VM's
            # version; one committed before it is seen by the query below
            aggregate = self._load_resource(VM, vm.id)
            affected: list[Resource] = []
            for volume_id in self._column(VOLUMES_OF_VM, (vm.id,)):
                volume = self._load_resource(VOLUME, volume_id)
                if volume.fields.get("type") == "ROOT":
                    volume.delete()
                else:
                    volume.transition("detach", "state", "Ready",
                                      VOLUME.lifecycle.transitions if VOLUME.lifecycle else {},
                                      DETACHED)
                affected.append(volume)
            for nat_id in self._column(NATS_OF_VM, (vm.id,)):
                nat = self._load_resource(NAT, nat_id)
                nat.delete()
                affected.append(nat)
            for ip_id in self._column(IPS_OF_VM, (vm.id,)):
                address = self._load_resource(RESERVED_IP, ip_id)
                address.update(UNASSOCIATED)
                affected.append(address)
            aggregate.delete()
            self._save(*affected, *self._cascade(VM, vm), aggregate)
        return True

    def restore_vm_snapshot(self, snapshot_id: UUID | str) -> Any:
        """Revert a VM to a snapshot (after CloudStack's revert job): the VM is Running if
        the snapshot kept its memory, else Stopped. Returns the VM; None when absent."""
        snapshot = self._resource(SNAPSHOT, snapshot_id, "snapshot_id")
        if snapshot is None:
            return None
        vm = self._resource(VM, snapshot.vm_id)
        if vm is None:
            raise NotFoundError(VM.name, snapshot.vm_id, "vm_id")
        if vm.state not in VM_USABLE:  # CloudStack reverts a Running or Stopped VM
            raise ConflictError(f"cannot restore a VM that is {vm.state}")
        if snapshot.state != "Ready":
            raise ConflictError(f"cannot restore a snapshot that is {snapshot.state}")
        state = "Running" if snapshot.snapshot_memory else "Stopped"
        restorable = {s: frozenset({state}) for s in ALL_STATES - VM_GONE}
        return self._act(VM, vm.id, "restore", state, {}, restorable)

    # -- DNS ------------------------------------------------------------------------------
    def create_dns_record(self, data: BaseModel | dict[str, Any]) -> Any:
        """A record under a domain of the same owner; a CNAME is alone at its name."""
        parsed: Any = i.parse(STATEMENTS[DNS_RECORD.name].create_input, data)
        # another tenant's domain reads as absent before its records are looked at (the
        # owner and the parent's owner are checked by _create_resource)
        if self._resource(DNS_DOMAIN, parsed.domain_id) is None:
            raise NotFoundError(DNS_DOMAIN.name, parsed.domain_id, "domain_id")

        def attempt() -> Any:  # the domain is loaded before the check: a record added
            # since conflicts on its version, and this attempt is made again
            domain = self._load_resource(DNS_DOMAIN, parsed.domain_id)
            self._cname_alone(parsed.domain_id, parsed.name, parsed.type, None)
            return self._create_resource(DNS_RECORD, parsed, domain)

        return racing(attempt)

    def update_dns_record(self, id: UUID | str,
                          changes: BaseModel | dict[str, Any]) -> Any:
        """Change a record's type, name, value, TTL or priority; the CNAME rule holds."""
        current = self._resource(DNS_RECORD, id)
        if current is None:
            return None
        values = changes.model_dump(exclude_unset=True) if isinstance(
            changes, BaseModel) else dict(changes)
        name, kind = values.get("name", current.name), values.get("type", current.type)

        def attempt() -> Any:  # as in create_dns_record
            domain = self._load_resource(DNS_DOMAIN, current.domain_id)
            if isinstance(name, str) and isinstance(kind, str):
                self._cname_alone(current.domain_id, name.lower().removesuffix("."), kind,
                                  current.id)
            return self._update_resource(DNS_RECORD, current.id, values, domain)

        return racing(attempt)

    def _cname_alone(self, domain_id: UUID, name: str, kind: str, record_id: UUID | None
                     ) -> None:
        """Refuse a record that would share its name with a CNAME (or be a CNAME beside
        other records). Every record change also records a change of its domain, so two
        writers racing under one domain conflict and the later one checks again."""
        types = {row["type"] for row in self._rows(RECORDS_AT_NAME, (domain_id, name))
                 if row["id"] != record_id}
        if types and (kind == "CNAME" or "CNAME" in types):
            raise ConflictError(f"{name}: a CNAME record is alone at its name "
                                f"(already there: {', '.join(sorted(types))})")

    # -- helpers --------------------------------------------------------------------------
    def _act(self, kind: Any, resource_id: UUID, action: str, state: str,
             changes: dict[str, Any],
             transitions: dict[str, frozenset[str]] | None = None,
             linked: UUID | None = None) -> Any:
        """A lifecycle action on one resource, saved; returns its row. ``linked``: a VM the
        action concerns, which records it too (so its destroy, racing, conflicts)."""
        assert kind.lifecycle is not None  # noqa: S101 - kinds with actions have one
        with context.command():
            aggregate = self._load_resource(kind, resource_id)
            aggregate.transition(action, kind.lifecycle.field, state,
                                 transitions or kind.lifecycle.transitions, changes)
            others = []
            if linked is not None:
                vm = self._load_resource(VM, linked)
                vm.link(f"{kind.name}.{action}", resource_id)
                others.append(vm)
            row = self._save_returning(STATEMENTS[kind.name].model, (kind.table, resource_id),
                                       *others, aggregate)
        return self._hide(kind, row) if row is not None else self._resource(kind, resource_id)


DETACHED = {"attached_vm_id": None, "attached_vm_name": None, "device_id": None, "path": None}

#: the methods this mixin adds beyond the kinds' generated ones
CLOUD_METHODS = ("get_ssh_key_by_name", "get_reserved_ip_by_address", "attach_volume",
                 "detach_volume", "restore_vm_snapshot")
