"""AkashOne's users, tenancy and RBAC tables, and the run that imports every table
(``akashone_es.legacy`` says how).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pydantic
from eventsourcing.application import AggregateNotFoundError

from akashone_es import context
from akashone_es.domain import identity as domain
from akashone_es.domain.base import Aggregate
from akashone_es.domain.confusables import identity_key
from akashone_es.errors import (
    AkashOneError,
    ConfigurationError,
    PermissionDeniedError,
    ValidationError,
)
from akashone_es.legacy.base import (
    NAMESPACE,
    ImportSummary,
    Refused,
    Skipped,
    _json_kind,
    _moment,
    _not_before,
    _text,
    legacy_id,
    record_problem,
    shown_id,
)
from akashone_es.legacy.records import TABLES, RecordTables, _free_text, _reason
from akashone_es.personal import MARKER
from akashone_es.storage import inputs as i
from akashone_es.storage import limits as lim

#: AkashOne's tables this version imports, in dependency order
IMPORTED_TABLES = TABLES
#: aggregates saved per transaction
BATCH = 500
#: aggregates this run saved kept to add links to (userRoles to users) without a read
SAVED_MAX = 100_000
#: the fields of an AkashOne user beyond its registration, and our column for each
USER_EXTRA = {"emailVerified": "email_verified",
              "emailVerificationCode": "email_verification_code",
              "emailVerificationExpiry": "email_verification_expiry",
              "twoFactorSecret": "two_factor_secret", "twoFactorEnabled": "two_factor_enabled",
              "defaultDiscountPercentage": "default_discount_percentage",
              "lastLogin": "last_login"}
SEALED_EXTRA = ("email_verification_code", "two_factor_secret")
Progress = Callable[[int, int], None]
def dump_problem(dump: Any) -> str | None:
    """Why ``dump`` is not a dump of AkashOne's store (one JSON object of tables, each a
    list of records); None when it is one. A table of another shape would import nothing,
    as if it were empty."""
    if not isinstance(dump, dict):
        return "expected one JSON object of tables"
    for name, records in dump.items():
        if not isinstance(records, list):
            return f"table {name!r} is {_json_kind(records)}, not a list of records"
    return None


@dataclass(frozen=True)
class Unstorable:
    """A record set aside before the import reads it (``record_problem``)."""

    reason: str
    source: str


def _screened(record: Any) -> Any:
    if isinstance(record, dict):
        problem = record_problem(record)
        if problem is not None:
            return Unstorable(problem, shown_id(record))
    return record


class Importer(RecordTables):
    """One run of an import into ``storage`` (acting as a platform context)."""

    def __init__(self, storage: Any, progress: Progress | None = None) -> None:
        self.storage = storage
        self.progress = progress
        self.summary = ImportSummary()
        self.ids: dict[tuple[str, str], uuid.UUID] = {}  # (table, source id) -> our id
        self.pending: dict[uuid.UUID, Aggregate] = {}  # aggregates with new events
        self.registered: dict[uuid.UUID, int] = {}  # invoice -> its payments imported
        self.addresses: dict[uuid.UUID, Any] = {}  # read ahead for the invoices
        self.saved: dict[uuid.UUID, Aggregate] = {}  # saved by this run, as they are now
        self.sources: dict[uuid.UUID, list[tuple[str, str]]] = {}  # their records
        self.done = 0
        self.total = 0
        self.present: set[uuid.UUID] = set()  # aggregates the log already holds
        self.people: dict[str, Any] = {}  # AkashOne's users by source id
        self.lines: dict[str, list[Any]] = {}  # AkashOne's invoice line items by invoice
        self.new_lines: set[str] = set()  # line items imported by this run (our ids)
        self.orgs: dict[uuid.UUID, uuid.UUID | None] = {}  # our user -> its organization
        self.super_admins: set[uuid.UUID] = set()
        self.made: set[uuid.UUID] = set()  # aggregates this run created
        #: every organizationId of the dump; ids AkashOne minted, with their holders' times
        self.named: set[str] = set()
        self.held: dict[str, list[datetime]] = {}
        #: imported resources are metered from here (AkashOne billed what ran before)
        self.started = datetime.now(UTC)

    # -- the run ---------------------------------------------------------------------------
    def run(self, dump: dict[str, Any]) -> ImportSummary:
        if not context.current().is_platform_actor:
            raise PermissionDeniedError("an import is for the platform only (a super admin "
                                        "or a system context)")
        problem = dump_problem(dump)
        if problem is not None:
            raise ValidationError.single("dump", problem)
        # a record no column could keep is set aside before anything reads it
        tables: dict[str, list[Any]] = {name: [_screened(r) for r in records]
                                         for name, records in dump.items()}
        if tables.get("invoices"):  # they are imported as from our supplier GSTIN
            try:
                self.storage._supplier()
            except ConfigurationError as exc:
                raise ConfigurationError(f"the dump has {len(tables['invoices'])} invoices: "
                                         f"{exc}; nothing was imported") from None
        self.summary.not_imported = {name: len(records) for name, records in tables.items()
                                     if name not in IMPORTED_TABLES}
        self.total = sum(len(tables.get(name, [])) for name in IMPORTED_TABLES)
        people = {str(r.get("id")): r for r in tables.get("users", []) if isinstance(r, dict)}
        self.people = people
        self.named = {str(record["organizationId"]) for records in tables.values()
                      for record in records
                      if isinstance(record, dict) and record.get("organizationId")}
        self._holders(people)
        for line in tables.get("invoiceLineItems", []):
            if isinstance(line, dict):
                self.lines.setdefault(str(line.get("invoiceId")), []).append(line)
        self._look_up(self._candidates(tables))
        owners = {str(r.get("organizationId")) for r in people.values() if r.get("organizationId")}
        users = sorted(tables.get("users", []), key=lambda r: not isinstance(r, dict)
                       or str(r.get("id")) not in owners)  # owners first, else in order
        handlers: dict[str, Callable[[dict[str, Any]], bool]] = {
            "users": lambda r: self._user(r, people), "permissions": self._permission,
            "roles": lambda r: self._role(r, people), "rolePermissions": self._role_permission,
            "userRoles": self._user_role, **self.handlers()}
        with context.command():
            for table in IMPORTED_TABLES:
                records = users if table == "users" else tables.get(table, [])
                with self.read_ahead(table, records):
                    self._step(table, records, handlers[table])
        return self.summary

    @staticmethod
    def _candidates(tables: dict[str, list[Any]]) -> list[uuid.UUID]:
        """The ids the dump's records would have (to ask the log about them at once)."""
        found: list[uuid.UUID] = []
        for record in tables.get("users", []):
            if isinstance(record, dict) and record.get("id") is not None:
                found.append(legacy_id("users", str(record["id"])))
        found += [uuid.uuid5(NAMESPACE, f"organizations:{record['organizationId']}")
                  for records in tables.values() for record in records
                  if isinstance(record, dict) and record.get("organizationId")]
        for record in tables.get("roles", []):
            if isinstance(record, dict) and record.get("id") is not None:
                found.append(domain.system_role_id_for(str(record.get("name")))
                             if record.get("isSystem") is True
                             else legacy_id("roles", str(record["id"])))
        found += [domain.permission_id_for(str(record.get("key")))
                  for record in tables.get("permissions", []) if isinstance(record, dict)]
        found += [legacy_id(table, str(record["id"])) for table in IMPORTED_TABLES
                  if table not in ("users", "roles", "permissions")
                  for record in tables.get(table, [])
                  if isinstance(record, dict) and record.get("id") is not None]
        return found

    def _step(self, table: str, records: Iterable[Any],
              make: Callable[[dict[str, Any]], bool | None]) -> None:
        """Turn each record of ``table`` into events (``make`` returns False when the record
        is already in the log); save them in batches."""
        count = self.summary.count(table)
        seen: set[str] = set()
        for record in records:
            source = shown_id(record) if isinstance(record, dict) else (
                record.source if isinstance(record, Unstorable) else "?")
            try:
                if isinstance(record, Unstorable):
                    raise Refused(record.reason)
                if not isinstance(record, dict):
                    raise Refused("not a JSON object")
                _text(record, "id")
                if source in seen:  # the first keeps it; this one would replace it unsaved
                    raise Refused(f"id: another {table} record has it")
                seen.add(source)
                if make(record) is False:
                    count.already += 1
                else:
                    count.imported += 1
            except (Refused, AkashOneError) as exc:  # a rule of ours, or of the storage API
                self._skip(table, source, str(exc))
            except pydantic.ValidationError as exc:  # a field of the wrong type for its event
                self._skip(table, source, _reason(exc))
            self.done += 1
            if len(self.pending) >= BATCH:
                self._flush()
            if self.progress is not None and self.done % 100 == 0:
                self.progress(self.done, self.total)
        self._flush()
        if self.progress is not None:
            self.progress(self.done, self.total)

    def _skip(self, table: str, source: str, reason: str) -> None:
        self.summary.count(table).skipped += 1
        self.summary.skipped.append(Skipped(table, source, reason))

    def _flush(self) -> None:
        """Save the pending aggregates in one transaction."""
        if not self.pending:
            return
        aggregates = list(self.pending.values())
        events = {a.id: list(a.pending_events) for a in aggregates}
        if len(self.saved) > SAVED_MAX:
            self.saved.clear()
        self._save_or_split(aggregates, events)
        self.pending.clear()
        self.sources.clear()

    def _save_or_split(self, aggregates: list[Aggregate],
                       events: dict[uuid.UUID, list[Any]]) -> None:
        """Save ``aggregates`` in one transaction; when the database refuses that, each
        half alone, and so on down to one aggregate, whose refusal skips its records (and
        only those): a batch with one defective record among 500 takes ~18 saves to find
        it, not 500. Halves are saved in order, so of two records that clash the first
        is kept, as when saved one by one."""
        for aggregate in aggregates:
            aggregate.pending_events[:] = events[aggregate.id]  # a failed save took them
        try:
            self.storage._save(*aggregates)
            self.saved.update((a.id, a) for a in aggregates)
        except AkashOneError as exc:
            if len(aggregates) > 1:
                half = len(aggregates) // 2
                self._save_or_split(aggregates[:half], events)
                self._save_or_split(aggregates[half:], events)
                return
            aggregate = aggregates[0]
            self.saved.pop(aggregate.id, None)  # as it was is in the log, not this
            for table, source in self.sources.get(aggregate.id, []):
                count = self.summary.count(table)
                count.imported -= 1
                self._skip(table, source, str(exc))
                self.ids.pop((table, source), None)

    def _add(self, aggregate: Aggregate, table: str, source: str) -> None:
        created = aggregate.pending_events and \
            aggregate.pending_events[0].originator_version == 1
        if created and aggregate.id in self.made and self.pending.get(aggregate.id) \
                is not aggregate:
            # another record made one with this id in this run (a UUID spelled another
            # way, another table's id): it would replace that one, unseen
            raise Refused(f"id: another record of the dump has it ({aggregate.id}), in "
                          "this table or another (a UUID may be spelled in several ways)")
        if created:
            self.made.add(aggregate.id)
        self.pending[aggregate.id] = aggregate
        self.sources.setdefault(aggregate.id, []).append((table, source))

    def _exists(self, oid: uuid.UUID) -> bool:
        return oid in self.present

    def _look_up(self, ids: Iterable[uuid.UUID]) -> None:
        """Which of ``ids`` the log already holds (one query for a whole table)."""
        wanted = [oid for oid in ids if oid not in self.present]
        if wanted:
            self.present.update(self.storage._ids_in_log(wanted))

    def _load(self, oid: uuid.UUID) -> Any:
        """An aggregate with events pending in this run, saved by it, or from the log."""
        if oid in self.pending:
            return self.pending[oid]
        if oid in self.saved:
            return self.saved[oid]
        try:
            return self.storage.app.repository.get(oid)
        except AggregateNotFoundError:
            raise Refused(f"names {oid}, which is not in the log") from None

    def _ref(self, table: str, source: Any, what: str) -> uuid.UUID:
        found = self.ids.get((table, str(source)))
        if found is None:
            raise Refused(f"{what}: names no imported {table} record ({str(source)[:60]})")
        return found

    # -- the tables ------------------------------------------------------------------------
    def _organization(self, named: str, people: dict[str, Any], *,
                      joining: str | None = None) -> uuid.UUID:
        """The organization an AkashOne ``organizationId`` stands for. AkashOne gives the
        field two meanings: an id of its own, minted for a reseller and held by it and its
        customers (``users``), or a user's id, the owner's (``roles``, ``teamMembers`` and
        plans are keyed to users). A user's id stands for the organization that user is in,
        or, when it is in none, the one it owns (and joins: ``joining`` names that owner
        while it is imported). An owner must have been imported (owners go first)."""
        key, owner = self._organization_key(named, people)
        # derived, not a source record: its id is derived even from a UUID
        oid = uuid.uuid5(NAMESPACE, f"organizations:{key}")
        if ("organizations", key) in self.ids:
            return oid
        if owner is None:  # named by its own id, held by users, owned by none
            created = min(self.held[key])
            kind, name, source = "reseller", f"AkashOne organization {key}", \
                f"organizations:{key}"
        else:
            if key != joining and ("users", key) not in self.ids:
                raise Refused(f"organizationId: its owning user {key[:60]} was not imported")
            created = self._created(owner)
            kind = "reseller" if owner.get("accountType") == "reseller" else "customer"
            # named by its owner's id, not its username: a name is personal data
            name, source = f"AkashOne organization of user {key}", f"users:{key}"
        self.ids[("organizations", key)] = oid
        if oid in self.present:
            self.summary.count("organizations").already += 1
        elif oid not in self.pending:
            org = domain.Organization._create(
                domain.Organization.Imported, id=oid, name=name[:200], kind=kind,
                parent_id=None, source=source, timestamp=created)
            self._add(org, "organizations", key)
            self.summary.count("organizations").imported += 1
        return oid

    def _organization_key(self, named: str, people: dict[str, Any]
                          ) -> tuple[str, dict[str, Any] | None]:
        """The id that keys the organization ``named`` stands for, and its owning user's
        record (None for an id AkashOne minted, which no user owns)."""
        seen: set[str] = set()
        while named not in seen:
            seen.add(named)
            person = people.get(named)
            if person is None:
                if named in self.held:
                    return named, None
                raise Refused(f"organizationId: names no user ({named[:60]}), and no user is "
                              "in an organization of that id")
            parent = person.get("organizationId")
            if not parent or str(parent) == named:  # in none, or in its own: it owns one
                return named, person
            named = str(parent)
        raise Refused("organizationId: users name each other as their organization (a cycle)")

    def _holders(self, people: dict[str, Any]) -> None:
        """The ids AkashOne minted for organizations (held by users, naming no user), with
        the times of their holders (the organization is as old as the first)."""
        for person in people.values():
            org = person.get("organizationId")
            if org and str(org) not in people:
                try:
                    created = self._created(person)
                except Refused:
                    continue  # that user is skipped for it; the others still date it
                self.held.setdefault(str(org), []).append(created)

    def _user(self, record: dict[str, Any], people: dict[str, Any]) -> bool:
        source = str(record["id"])
        uid = legacy_id("users", source)
        created = _moment(record, "createdAt")
        # a person erased before the way back to AkashOne: its personal fields read as the
        # marker, and come back so (its invoices must be kept); stand-ins pass the checks
        erased = {name for name in ("username", "email", "gstNumber")
                  if record.get(name) == MARKER}
        stand_in = {"username": f"erased-{uid.hex[:12]}",
                    "email": f"erased-{uid.hex[:12]}@erased.example.com", "gstNumber": None}
        given = {name: stand_in[name] if name in erased else record.get(name)
                 for name in ("username", "email", "gstNumber")}
        user = i.parse(i.InsertUser, {
            "username": given["username"], "email": given["email"],
            "password": record.get("password"), "gst_number": given["gstNumber"],
            "account_type": record.get("accountType") or "customer",
            "status": record.get("status") or "active"})
        if not i.is_bcrypt_hash(user.password):
            raise Refused("password: not a bcrypt hash (AkashOne stores bcrypt hashes)")
        names = (("username", user.username), ("email", str(user.email)))
        keys = [("user-key", f"{name}:{identity_key(value)}") for name, value in names]
        if erased:
            user = user.model_copy(update={
                "username": MARKER if "username" in erased else user.username,
                "email": MARKER if "email" in erased else user.email,
                "gst_number": MARKER if "gstNumber" in erased else user.gst_number})
        for (name, value), key in zip(names, keys, strict=True):
            taken = self.ids.get(key)
            if taken is not None:
                raise Refused(f"{name}: {value!r} is taken by users record {taken} (names are "
                              "compared case-folded, look-alikes folded)")
        org = record.get("organizationId")
        if org and user.account_type == "super_admin":
            raise Refused("organizationId: a super admin belongs to no organization (it is the "
                          "platform's account)")
        extra = self._user_extra(record)
        if org:
            organization: uuid.UUID | None = self._organization(str(org), people,
                                                                 joining=source)
        elif source in self.named and user.account_type != "super_admin":
            # an owner: in AkashOne its organization is its own id; here it is a member
            organization = self._organization(source, people, joining=source)
        else:
            organization = None
        new = not self._exists(uid)
        if new:
            self._add(domain.User._create(
                domain.User.Imported, id=uid, timestamp=created, username=user.username,
                email=str(user.email), password_hash=self.storage._password_hash(user.password),
                gst_number=user.gst_number, account_type=user.account_type,
                organization_id=str(organization) if organization else None,
                status=user.status, identity_unique=True, source=f"users:{source}",
                extra=extra), "users", source)
        # once it is whole
        self.ids.update(dict.fromkeys([("users", source), *keys], uid))
        self.orgs[uid] = organization
        if user.account_type == "super_admin":
            self.super_admins.add(uid)
        return new

    def _user_extra(self, record: dict[str, Any]) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        for name, column in USER_EXTRA.items():
            value = record.get(name)
            if value is None:
                continue
            if column in ("email_verification_expiry", "last_login"):
                moment = _moment(record, name, required=False)
                value = moment.isoformat() if moment else None
            elif column in ("email_verified", "two_factor_enabled"):
                if not isinstance(value, bool):
                    raise Refused(f"{name}: must be true or false")
            elif column == "default_discount_percentage":
                if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
                    raise Refused(f"{name}: must be a whole number from 0 to 100")
            elif not isinstance(value, str) or len(value) > 255:
                raise Refused(f"{name}: must be text of at most 255 characters")
            extra[column] = self.storage.secrets.seal(value) if column in SEALED_EXTRA \
                else value
        return extra

    def _permission(self, record: dict[str, Any]) -> bool:
        source = str(record["id"])
        data = i.parse(i.InsertPermission, {"key": record.get("key"),
                                            "name": record.get("name"),
                                            "description": record.get("description"),
                                            "category": record.get("category")})
        pid = domain.permission_id_for(data.key)  # one permission per key, as seeding makes
        if ("permission-key", data.key) in self.ids:
            raise Refused(f"key: {data.key!r} duplicates permissions record "
                          f"{self.ids[('permission-key', data.key)]}")
        keys = [("permission-key", data.key), ("permissions", source)]
        if self._exists(pid):
            self.ids.update(dict.fromkeys(keys, pid))
            return False
        aggregate = domain.Permission._create(
            domain.Permission.Imported, id=pid, timestamp=_moment(record, "createdAt"),
            key=data.key, name=data.name, description=data.description,
            category=data.category, source=f"permissions:{source}")
        self.ids.update(dict.fromkeys(keys, pid))
        self._add(aggregate, "permissions", source)
        return True

    def _role(self, record: dict[str, Any], people: dict[str, Any]) -> bool:
        source = str(record["id"])
        name = _text(record, "name")
        if len(name) > 100:
            raise Refused("name: at most 100 characters")
        is_system = record.get("isSystem") is True
        rid = domain.system_role_id_for(name) if is_system else legacy_id("roles", source)
        description = _free_text(record, "description", lim.DESCRIPTION_MAX)
        org = record.get("organizationId")
        organization = self._organization(str(org), people) if org else None
        created = _moment(record, "createdAt")
        if self._exists(rid):
            self.ids[("roles", source)] = rid
            return False
        aggregate = domain.Role._create(
            domain.Role.Imported, id=rid, timestamp=created, name=name,
            description=description, is_system=is_system,
            organization_id=str(organization) if organization else None,
            source=f"roles:{source}")
        self._add(aggregate, "roles", source)
        self.ids[("roles", source)] = rid  # once it is whole
        return True

    def _role_permission(self, record: dict[str, Any]) -> bool:
        role_id = self._ref("roles", record.get("roleId"), "roleId")
        permission_id = self._ref("permissions", record.get("permissionId"), "permissionId")
        return self._link("rolePermissions", record, role_id, permission_id, "permission_ids",
                          domain.Role.PermissionImported, permission_id=str(permission_id))

    def _user_role(self, record: dict[str, Any]) -> bool:
        user_id = self._ref("users", record.get("userId"), "userId")
        role_id = self._ref("roles", record.get("roleId"), "roleId")
        granted = record.get("grantedBy")
        granted_by = self._ref("users", granted, "grantedBy") if granted else None
        return self._link("userRoles", record, user_id, role_id, "role_ids",
                          domain.User.RoleImported, role_id=str(role_id),
                          granted_by=str(granted_by) if granted_by else None)

    def _link(self, table: str, record: dict[str, Any], owner_id: uuid.UUID,
              linked_id: uuid.UUID, held: str, event_class: type, **fields: Any) -> bool:
        """A row AkashOne keeps for a pair (``rolePermissions``, ``userRoles``): an event on
        the aggregate that holds the pair; a pair seen twice in the dump is a defect."""
        moment = _moment(record, "createdAt")
        link = ("link", f"{owner_id}:{linked_id}")
        if link in self.ids:
            raise Refused(f"duplicates another {table} record (AkashOne has no unique "
                          "constraint on the pair)")
        self.ids[link] = owner_id
        owner = self._load(owner_id)
        if str(linked_id) in getattr(owner, held):
            return False
        source = str(record["id"])
        owner.trigger_event(event_class, source=f"{table}:{source}",
                            timestamp=_not_before(moment, owner), **fields)
        self._add(owner, table, source)
        return True
