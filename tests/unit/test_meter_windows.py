"""``meter`` cuts segments into hour windows: from a resource's last metered hour (less a
margin), not from a segment's start a year ago."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

from akashone_es.storage.metering import RESCAN, windows

START = datetime(2025, 1, 1, tzinfo=UTC)
UNTIL = datetime(2026, 1, 1, tzinfo=UTC)


def segment(resource: object, started: datetime, ended: datetime | None = None,
            quantity: str = "1") -> dict[str, object]:
    return {"resource_id": resource, "metric": "hours", "started_at": started,
            "ended_at": ended, "kind": "virtual_machine", "resource_type": "compute",
            "user_id": uuid4(), "organization_id": None, "resource_name": "vm",
            "quantity": Decimal(quantity)}


def test_a_year_open_segment_is_cut_from_its_last_metered_hour() -> None:
    """Found in review: five VMs running a year made 43,842 windows per hourly run."""
    vm = uuid4()
    every = list(windows([segment(vm, START)], UNTIL))
    assert len(every) == 365 * 24
    last = UNTIL - timedelta(hours=1)
    recent = list(windows([segment(vm, START)], UNTIL, {(str(vm), "hours"): last}))
    # the margin looked at again, and the one hour not metered yet
    assert [w.start for w in recent] == [
        last - RESCAN + timedelta(hours=h) for h in range(int(RESCAN / timedelta(hours=1)) + 1)]
    assert {w.id for w in recent} <= {w.id for w in every}  # the same windows, fewer


def test_a_resource_never_metered_is_cut_from_its_start() -> None:
    vm, other = uuid4(), uuid4()
    found = list(windows([segment(vm, UNTIL - timedelta(hours=3))], UNTIL,
                         {(str(other), "hours"): UNTIL}))
    assert [w.start for w in found] == [UNTIL - timedelta(hours=h) for h in (3, 2, 1)]
