"""Cloud resources: one aggregate for every declared kind (``akashone_es.resources``).

Every event names its kind, so one projection routes it to the kind's table and ``history``
shows what it was. Fields are validated against the kind's declaration before an event is
made; the aggregate keeps the record's current fields to guard what comes next (a lifecycle
move from the state it is really in, a delete of what still exists).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from eventsourcing.domain import event

from akashone_es.domain.base import Aggregate, legacy_event
from akashone_es.errors import ConflictError, NotFoundError


class Resource(Aggregate):
    """A cloud resource of some kind, owned by a user (and that user's organization)."""

    class Created(Aggregate.Created):
        kind: str
        user_id: str
        organization_id: str | None
        fields: dict[str, Any]

    class Updated(Aggregate.Event):
        """Fields changed by the owner (or the platform on its behalf)."""

        kind: str
        changes: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.fields.update(self.changes)

    class Transitioned(Aggregate.Event):
        """A lifecycle action (start, attach, restore, ...): the new state and the fields the
        action sets with it."""

        kind: str
        action: str
        changes: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.fields.update(self.changes)

    class Observed(Aggregate.Event):
        """What CloudStack reported differed from the record: the fields it changed. Not a
        user's change: the sync's context is recorded in the metadata."""

        kind: str
        changes: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.fields.update(self.changes)

    class Deleted(Aggregate.Event):
        kind: str

        def apply(self, aggregate: Any) -> None:
            aggregate.deleted = True

    class Linked(Aggregate.Event):
        """Another resource changed in relation to this one (a record of this domain was
        added, a volume was attached to this VM). Saved with that change, it makes two
        writers racing on the same resource conflict, so its rules are checked against
        what is there (a CNAME alone at its name, no attach to a VM being destroyed)."""

        kind: str
        link: str
        other_id: str

    @event(Created)
    def __init__(self, kind: str, user_id: str, organization_id: str | None,
                 fields: dict[str, Any]) -> None:
        self.kind = kind
        self.user_id = user_id
        self.organization_id = organization_id
        self.fields = dict(fields)
        self.deleted = False

    def check_present(self) -> None:
        if self.deleted:
            raise NotFoundError(self.kind, str(self.id))

    def update(self, changes: dict[str, Any]) -> None:
        self.check_present()
        changed = {k: v for k, v in changes.items() if self.fields.get(k) != v}
        if changed:
            self.trigger_event(Resource.Updated, kind=self.kind, changes=changed)

    def transition(self, action: str, state_field: str, to: str,
                   allowed: Mapping[str, frozenset[str]],
                   changes: dict[str, Any] | None = None) -> None:
        """Move to ``to`` if the lifecycle allows it from the current state."""
        self.check_present()
        current = self.fields.get(state_field)
        if to not in allowed.get(str(current), frozenset()):
            raise ConflictError(f"cannot {action} a {self.kind.replace('_', ' ')} that is "
                                f"{current} (it would become {to})")
        self.trigger_event(Resource.Transitioned, kind=self.kind, action=action,
                           changes={**(changes or {}), state_field: to})

    def observe(self, observed: dict[str, Any]) -> bool:
        """Record what differs from ``observed``; False (no event) when nothing does."""
        self.check_present()
        changed = {k: v for k, v in observed.items() if self.fields.get(k) != v}
        if changed:
            self.trigger_event(Resource.Observed, kind=self.kind, changes=changed)
        return bool(changed)

    def delete(self) -> None:
        self.check_present()
        self.trigger_event(Resource.Deleted, kind=self.kind)

    def link(self, link: str, other_id: Any) -> None:
        """Record that ``other_id`` changed in relation to this resource (``link``)."""
        self.check_present()
        self.trigger_event(Resource.Linked, kind=self.kind, link=link, other_id=str(other_id))


#: ``metered_from``: the import's time; what the resource ran before it AkashOne has billed
legacy_event(Resource, Resource.Created, metered_from=datetime)
