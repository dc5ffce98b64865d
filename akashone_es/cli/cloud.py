"""The demo's cloud story: a VM and its disk through a working day, metered and invoiced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from akashone_es.cli.billing import render_invoice

if TYPE_CHECKING:
    from rich.console import Console

    from akashone_es.storage import Storage

#: the story's day is yesterday (UTC): its hours are over, so metering can bill them
STEPS = (  # hour of the day, what happens
    (9.0, "deploy"), (9.1, "running"), (9.25, "volume"), (9.3, "attach"),
    (11.0, "snapshot"), (12.5, "restore"), (17.5, "stop"))


def cloud_story(storage: Storage, console: Console, org_id: Any, run: int) -> None:
    """Yesterday, replayed: a VM deployed, a volume attached, a snapshot taken and restored,
    the VM stopped; then metering and the invoice's compute and storage lines with GST."""
    from akashone_es import context  # noqa: PLC0415
    from akashone_es.storage.metering import GRACE  # noqa: PLC0415

    say = console.print
    if not storage.settings.supplier_gstin:
        return  # billing_story has said why
    # yesterday, ended long enough ago to be metered
    day = (datetime.now(UTC) - GRACE).replace(hour=0, minute=0, second=0,
                                              microsecond=0) - timedelta(1)
    with storage.acting_as(system="platform setup"):
        storage.initialize_default_feature_flags()
        volumes = storage.get_feature_flag_by_key("volumes")
        if volumes is not None and not volumes.enabled:  # off by default, as in AkashOne
            storage.update_feature_flag(volumes.id, {"enabled": True})
    with storage.acting_as(system="provisioning", organization_id=org_id):
        owner = storage.create_user({
            "username": f"kiran{run}", "email": f"it{run}@kiranlabs.in",
            "password": "customer-secret", "organization_id": org_id})
        storage.create_billing_address({
            "user_id": owner.id, "address_line1": "4 FC Road", "city": "Pune",
            "state_code": "27", "postal_code": "411004"})
        found: dict[str, Any] = {}
        for hour, step in STEPS:
            with context.events_at(day + timedelta(hours=hour)):
                _step(storage, step, owner, run, found)
        vm = found["vm"]
        say(f"yesterday, replayed for {owner.username} (Maharashtra, unregistered): "
            f"VM {vm.name} deployed 09:00, a 100 GB volume attached 09:18, snapshot 11:00, "
            f"restored 12:30, stopped 17:30")
    with storage.acting_as(system="metering"):
        metered = storage.meter(day + timedelta(days=1))
        say(f"metering: {metered.recorded} new usage records (one per resource-hour)")
    with storage.acting_as(system="billing run", organization_id=org_id):
        invoice = storage.generate_invoice({"user_id": owner.id, "period_start": day,
                                            "period_end": day + timedelta(days=1)})
        render_invoice(console, storage, invoice)


def _step(storage: Storage, step: str, owner: Any, run: int, found: dict[str, Any]) -> None:
    if step == "deploy":
        found["vm"] = storage.create_virtual_machine({
            "user_id": owner.id, "cloudstack_id": f"demo-vm-{run}", "name": f"web-{run}",
            "template_id": "ubuntu-24.04", "template_name": "Ubuntu 24.04",
            "service_offering_id": "so-2c4g", "service_offering_name": "2 vCPU 4 GB",
            "zone_id": "in-pune-1", "zone_name": "Pune 1", "cpu": 2, "memory": 4096})
    elif step == "running":  # what CloudStack's deploy job reported
        storage.observe_virtual_machine(f"demo-vm-{run}", {"state": "Running",
                                                           "ip_address": "10.1.0.10"})
    elif step == "volume":
        volume = storage.create_volume({
            "user_id": owner.id, "cloudstack_id": f"demo-vol-{run}", "name": f"data-{run}",
            "size": 100, "zone_id": "in-pune-1"})
        found["volume"] = storage.update_volume(volume.id, {"state": "Ready"})
    elif step == "attach":
        storage.attach_volume(found["volume"].id, found["vm"].id)
    elif step == "snapshot":
        found["snapshot"] = storage.create_vm_snapshot({
            "user_id": owner.id, "vm_id": found["vm"].id, "name": "before-upgrade",
            "cloudstack_snapshot_id": f"demo-snap-{run}"})
    elif step == "restore":
        storage.restore_vm_snapshot(found["snapshot"].id)
    elif step == "stop":
        storage.update_virtual_machine(found["vm"].id, {"state": "Stopped"})
