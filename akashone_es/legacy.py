"""AkashOne's in-memory store brought into the log, and written back in the same shape.

A dump is one JSON object of AkashOne's tables (``users``, ``roles``, ``permissions``,
``rolePermissions``, ``userRoles``, ...), each a list of records with camelCase fields as
AkashOne keeps them. Every record becomes one ``Imported`` event (``User.Imported``,
``Role.PermissionImported``, ...) that names its source (``users:<id>``) and carries the record's
own time. Ids: a source id that is a UUID is kept (AkashOne's ``randomUUID()``); any other
(``vm-1a2b3c4d``) becomes a UUID derived from its table and id, so a rerun finds every record
already there and adds nothing, and references between records stay intact.

A record that breaks a rule (an invalid GSTIN check character, a duplicate email AkashOne let
in, a reference to nothing, a time in the future) is skipped whole with its reason; records
that depend on it are skipped too, saying so. AkashOne has no organizations table: its
``organizationId`` names the organization's owning user, so each one named becomes an
``Organization.Imported`` called after that user.

This module covers AkashOne's users, tenancy and RBAC tables (``IMPORTED_TABLES``); the other
tables of a dump are reported as not imported yet.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pydantic
from eventsourcing.application import AggregateNotFoundError
from psycopg import sql

from akashone_es import context
from akashone_es.domain import identity as domain
from akashone_es.domain.base import Aggregate
from akashone_es.domain.confusables import identity_key
from akashone_es.errors import AkashOneError, PermissionDeniedError, ValidationError
from akashone_es.storage import inputs as i

#: AkashOne's tables this version imports, in dependency order
IMPORTED_TABLES = ("users", "permissions", "roles", "rolePermissions", "userRoles")
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://akashone.com/legacy-import")
#: aggregates saved per transaction
BATCH = 500
#: the fields of an AkashOne user beyond its registration, and our column for each
USER_EXTRA = {"emailVerified": "email_verified",
              "emailVerificationCode": "email_verification_code",
              "emailVerificationExpiry": "email_verification_expiry",
              "twoFactorSecret": "two_factor_secret", "twoFactorEnabled": "two_factor_enabled",
              "defaultDiscountPercentage": "default_discount_percentage",
              "lastLogin": "last_login"}
SEALED_EXTRA = ("email_verification_code", "two_factor_secret")
Progress = Callable[[int, int], None]
EXISTING = sql.SQL("SELECT DISTINCT originator_id FROM public.akashone_events"
                   " WHERE originator_id = ANY(%s::uuid[])")


def legacy_id(table: str, source_id: str) -> uuid.UUID:
    """The UUID of a source record: its own id when that is a UUID, else one derived."""
    try:
        return uuid.UUID(source_id)
    except ValueError:
        return uuid.uuid5(NAMESPACE, f"{table}:{source_id}")


class Refused(Exception):  # noqa: N818 - a reason, raised to skip one record
    """A record that breaks a rule: skipped whole."""


@dataclass
class Skipped:
    table: str
    source_id: str
    reason: str


@dataclass
class TableCount:
    imported: int = 0
    already: int = 0
    skipped: int = 0


@dataclass
class ImportSummary:
    tables: dict[str, TableCount] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    #: tables in the dump this version does not import (name -> records)
    not_imported: dict[str, int] = field(default_factory=dict)

    def count(self, table: str) -> TableCount:
        return self.tables.setdefault(table, TableCount())


def _moment(record: dict[str, Any], name: str, *, required: bool = True) -> datetime | None:
    value = record.get(name)
    if value is None:
        if required:
            raise Refused(f"{name}: is required")
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise Refused(f"{name}: not a time ({str(value)[:40]!r})") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if moment > datetime.now(UTC):
        raise Refused(f"{name}: {moment.isoformat()} is in the future")
    return moment


def _not_before(moment: datetime | None, aggregate: Any) -> datetime:
    """A link's time, never before its aggregate's last change (AkashOne's rows carry
    independent times; an aggregate's history is kept in order)."""
    latest: datetime = aggregate.modified_on
    return latest if moment is None or moment < latest else moment


def _text(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value:
        raise Refused(f"{name}: is required")
    return value


class Importer:
    """One run of an import into ``storage`` (acting as a platform context)."""

    def __init__(self, storage: Any, progress: Progress | None = None) -> None:
        self.storage = storage
        self.progress = progress
        self.summary = ImportSummary()
        self.ids: dict[tuple[str, str], uuid.UUID] = {}  # (table, source id) -> our id
        self.pending: dict[uuid.UUID, Aggregate] = {}  # aggregates with new events
        self.sources: dict[uuid.UUID, list[tuple[str, str]]] = {}  # their records
        self.done = 0
        self.total = 0
        self.present: set[uuid.UUID] = set()  # aggregates the log already holds

    # -- the run ---------------------------------------------------------------------------
    def run(self, dump: dict[str, Any]) -> ImportSummary:
        if not context.current().is_platform_actor:
            raise PermissionDeniedError("an import is for the platform only (a super admin "
                                        "or a system context)")
        tables = {name: records for name, records in dump.items() if isinstance(records, list)}
        self.summary.not_imported = {name: len(records) for name, records in tables.items()
                                     if name not in IMPORTED_TABLES}
        self.total = sum(len(tables.get(name, [])) for name in IMPORTED_TABLES)
        people = {str(r.get("id")): r for r in tables.get("users", []) if isinstance(r, dict)}
        self._look_up(self._candidates(tables))
        owners = {str(r.get("organizationId")) for r in people.values() if r.get("organizationId")}
        users = sorted(tables.get("users", []), key=lambda r: not isinstance(r, dict)
                       or str(r.get("id")) not in owners)  # owners first, else in order
        with context.command():
            self._step("users", users, lambda r: self._user(r, people))
            self._step("permissions", tables.get("permissions", []), self._permission)
            self._step("roles", tables.get("roles", []), lambda r: self._role(r, people))
            self._step("rolePermissions", tables.get("rolePermissions", []),
                       self._role_permission)
            self._step("userRoles", tables.get("userRoles", []), self._user_role)
        return self.summary

    @staticmethod
    def _candidates(tables: dict[str, list[Any]]) -> list[uuid.UUID]:
        """The ids the dump's records would have (to ask the log about them at once)."""
        found: list[uuid.UUID] = []
        for record in tables.get("users", []):
            if isinstance(record, dict) and record.get("id") is not None:
                found.append(legacy_id("users", str(record["id"])))
                if record.get("organizationId"):
                    found.append(uuid.uuid5(NAMESPACE,
                                            f"organizations:{record['organizationId']}"))
        for record in tables.get("roles", []):
            if isinstance(record, dict) and record.get("id") is not None:
                found.append(domain.system_role_id_for(str(record.get("name")))
                             if record.get("isSystem") is True
                             else legacy_id("roles", str(record["id"])))
        found += [domain.permission_id_for(str(record.get("key")))
                  for record in tables.get("permissions", []) if isinstance(record, dict)]
        return found

    def _step(self, table: str, records: Iterable[Any],
              make: Callable[[dict[str, Any]], bool | None]) -> None:
        """Turn each record of ``table`` into events (``make`` returns False when the record
        is already in the log); save them in batches."""
        count = self.summary.count(table)
        for record in records:
            source = str(record.get("id")) if isinstance(record, dict) else "?"
            try:
                if not isinstance(record, dict):
                    raise Refused("not a JSON object")
                _text(record, "id")
                if make(record) is False:
                    count.already += 1
                else:
                    count.imported += 1
            except Refused as exc:
                self._skip(table, source, str(exc))
            except ValidationError as exc:
                self._skip(table, source, str(exc))
            except pydantic.ValidationError as exc:  # a field of the wrong type for its event
                self._skip(table, source, "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()))
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
        """Save the pending aggregates in one transaction; when that fails, one by one, so
        one record's refusal skips that record (and those saved with it) only."""
        if not self.pending:
            return
        aggregates = list(self.pending.values())
        events = {a.id: list(a.pending_events) for a in aggregates}
        try:
            self.storage._save(*aggregates)
        except AkashOneError:
            for aggregate in aggregates:
                aggregate.pending_events[:] = events[aggregate.id]  # a failed save took them
                try:
                    self.storage._save(aggregate)
                except AkashOneError as exc:
                    for table, source in self.sources.get(aggregate.id, []):
                        count = self.summary.count(table)
                        count.imported -= 1
                        self._skip(table, source, str(exc))
                        self.ids.pop((table, source), None)
        self.pending.clear()
        self.sources.clear()

    def _add(self, aggregate: Aggregate, table: str, source: str) -> None:
        self.pending[aggregate.id] = aggregate
        self.sources.setdefault(aggregate.id, []).append((table, source))

    def _exists(self, oid: uuid.UUID) -> bool:
        return oid in self.present

    def _look_up(self, ids: Iterable[uuid.UUID]) -> None:
        """Which of ``ids`` the log already holds (one query for a whole table)."""
        wanted = [oid for oid in ids if oid not in self.present]
        if wanted:
            rows = self.storage._rows(EXISTING, (wanted,))
            self.present.update(row["originator_id"] for row in rows)

    def _load(self, oid: uuid.UUID) -> Any:
        """An aggregate with events pending in this run, or from the log."""
        if oid in self.pending:
            return self.pending[oid]
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
    def _organization(self, owner_source: str, people: dict[str, Any]) -> uuid.UUID:
        """The organization an AkashOne ``organizationId`` (its owning user) stands for;
        the owner must have been imported (owners are imported first)."""
        # derived, not a source record: its id is derived even from a UUID (that is the
        # owning user's)
        oid = uuid.uuid5(NAMESPACE, f"organizations:{owner_source}")
        if ("organizations", owner_source) in self.ids:
            return oid
        owner = people.get(owner_source)
        if owner is None:
            raise Refused(f"organizationId: names no user ({owner_source[:60]})")
        if ("users", owner_source) not in self.ids:
            raise Refused(f"organizationId: its owning user {owner_source[:60]} was not "
                          "imported")
        created = _moment(owner, "createdAt")
        kind = "reseller" if owner.get("accountType") == "reseller" else "customer"
        self.ids[("organizations", owner_source)] = oid
        if oid not in self.present and oid not in self.pending:
            # named by its owner's id, not its username: a name is personal data
            org = domain.Organization._create(
                domain.Organization.Imported, id=oid,
                name=f"AkashOne organization of user {owner_source}"[:200], kind=kind,
                parent_id=None, source=f"users:{owner_source}", timestamp=created)
            self._add(org, "organizations", owner_source)
        return oid

    def _user(self, record: dict[str, Any], people: dict[str, Any]) -> bool:
        source = str(record["id"])
        uid = legacy_id("users", source)
        created = _moment(record, "createdAt")
        user = i.parse(i.InsertUser, {
            "username": record.get("username"), "email": record.get("email"),
            "password": record.get("password"), "gst_number": record.get("gstNumber"),
            "account_type": record.get("accountType") or "customer",
            "status": record.get("status") or "active"})
        if not i.is_bcrypt_hash(user.password):
            raise Refused("password: not a bcrypt hash (AkashOne stores bcrypt hashes)")
        names = (("username", user.username), ("email", str(user.email)))
        keys = [("user-key", f"{name}:{identity_key(value)}") for name, value in names]
        for (name, value), key in zip(names, keys, strict=True):
            taken = self.ids.get(key)
            if taken is not None:
                raise Refused(f"{name}: {value!r} is taken by users record {taken} (names are "
                              "compared case-folded, look-alikes folded)")
        org = record.get("organizationId")
        organization = self._organization(str(org), people) if org else None
        extra = self._user_extra(record)
        if self._exists(uid):
            self.ids.update(dict.fromkeys([("users", source), *keys], uid))
            return False
        aggregate = domain.User._create(
            domain.User.Imported, id=uid, timestamp=created, username=user.username,
            email=str(user.email), password_hash=self.storage._password_hash(user.password),
            gst_number=user.gst_number, account_type=user.account_type,
            organization_id=str(organization) if organization else None, status=user.status,
            identity_unique=True, source=f"users:{source}", extra=extra)
        self.ids.update(dict.fromkeys([("users", source), *keys], uid))  # once it is whole
        self._add(aggregate, "users", source)
        return True

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
        org = record.get("organizationId")
        organization = self._organization(str(org), people) if org else None
        created = _moment(record, "createdAt")
        if self._exists(rid):
            self.ids[("roles", source)] = rid
            return False
        aggregate = domain.Role._create(
            domain.Role.Imported, id=rid, timestamp=created, name=name,
            description=record.get("description"), is_system=is_system,
            organization_id=str(organization) if organization else None,
            source=f"roles:{source}")
        self.ids[("roles", source)] = rid
        self._add(aggregate, "roles", source)
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


# -- the way back: the current state in AkashOne's shape ------------------------------------
SOURCES = sql.SQL(
    "SELECT originator_id, topic, convert_from(state, 'UTF8')::jsonb ->> 'source' AS source,"
    " convert_from(state, 'UTF8')::jsonb ->> 'permission_id' AS permission_id,"
    " convert_from(state, 'UTF8')::jsonb ->> 'role_id' AS role_id"
    " FROM public.akashone_events WHERE topic LIKE '%%Imported'")


def _stamp(value: datetime | None) -> str | None:
    """A time as AkashOne's JSON holds it (``2025-04-01T10:00:00.123456Z``: JavaScript's
    ``Date`` reads the microseconds as milliseconds; a re-import keeps them all)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def export_dump(storage: Any) -> dict[str, Any]:
    """The users, tenancy and RBAC tables as AkashOne's store holds them, so AkashOne can
    fall back to its in-memory store (the migration guide's rollback): source ids kept,
    password hashes and TOTP secrets opened (AkashOne keeps them so). Platform only."""
    if not context.current().is_platform_actor:
        raise PermissionDeniedError("the way back is for the platform only (a super admin "
                                    "or a system context)")
    source: dict[tuple[str, str], str] = {}
    for row in storage._rows(SOURCES, ()):
        table, _, original = (row["source"] or "").partition(":")
        key = str(row["originator_id"])
        if table == "rolePermissions":
            key = f"{key}:{row['permission_id']}"
        elif table == "userRoles":
            key = f"{key}:{row['role_id']}"
        elif table == "users" and row["topic"].endswith("Organization.Imported"):
            table = "organizations"
        source[(table, key)] = original

    def sid(table: str, key: Any) -> str | None:
        return None if key is None else source.get((table, str(key)), str(key))

    open_ = storage.secrets.open
    users = [{
        "id": sid("users", u["id"]), "username": u["username"], "email": u["email"],
        "password": open_(u["password"]), "gstNumber": u["gst_number"],
        "emailVerified": u["email_verified"],
        "emailVerificationCode": open_(u["email_verification_code"]),
        "emailVerificationExpiry": _stamp(u["email_verification_expiry"]),
        "twoFactorSecret": open_(u["two_factor_secret"]),
        "twoFactorEnabled": u["two_factor_enabled"], "accountType": u["account_type"],
        "organizationId": sid("organizations", u["organization_id"]),
        "defaultDiscountPercentage": u["default_discount_percentage"], "status": u["status"],
        "createdAt": _stamp(u["created_at"]), "lastLogin": _stamp(u["last_login"])}
        for u in storage._rows(sql.SQL("SELECT * FROM users ORDER BY created_at, id"), ())]
    permissions = [{
        "id": sid("permissions", p["id"]), "key": p["key"], "name": p["name"],
        "description": p["description"], "category": p["category"],
        "createdAt": _stamp(p["created_at"])}
        for p in storage._rows(sql.SQL("SELECT * FROM permissions ORDER BY key"), ())]
    roles = [{
        "id": sid("roles", r["id"]), "name": r["name"], "description": r["description"],
        "isSystem": r["is_system"], "organizationId": sid("organizations", r["organization_id"]),
        "createdAt": _stamp(r["created_at"]), "updatedAt": _stamp(r["updated_at"])}
        for r in storage._rows(sql.SQL("SELECT * FROM roles ORDER BY created_at, id"), ())]
    role_permissions = [{
        "id": sid("rolePermissions", f"{x['role_id']}:{x['permission_id']}"),
        "roleId": sid("roles", x["role_id"]), "permissionId": sid("permissions",
                                                                  x["permission_id"]),
        "createdAt": _stamp(x["created_at"])}
        for x in storage._rows(sql.SQL("SELECT * FROM role_permissions"
                                       " ORDER BY created_at, id"), ())]
    user_roles = [{
        "id": sid("userRoles", f"{x['user_id']}:{x['role_id']}"),
        "userId": sid("users", x["user_id"]), "roleId": sid("roles", x["role_id"]),
        "grantedBy": sid("users", x["granted_by"]), "createdAt": _stamp(x["created_at"])}
        for x in storage._rows(sql.SQL("SELECT * FROM user_roles ORDER BY created_at, id"),
                               ())]
    return {"users": users, "permissions": permissions, "roles": roles,
            "rolePermissions": role_permissions, "userRoles": user_roles}


# -- a realistic sample dump ---------------------------------------------------------------
SAMPLE_PERMISSIONS = (("vm.view", "View VMs", "Compute"), ("vm.create", "Create VMs", "Compute"),
                      ("vm.delete", "Delete VMs", "Compute"),
                      ("network.view", "View networks", "Networking"),
                      ("storage.view", "View volumes", "Storage"),
                      ("billing.view", "View invoices", "Billing"),
                      ("iam.manage", "Manage users and roles", "IAM"))
SAMPLE_HASH = "$2b$10$abcdefghijklmnopqrstuu5cKjHKZ6xAGHmsLXg2ckWfYeYm9C3bO"


def sample_dump(users: int = 1000, seed: int = 7) -> dict[str, Any]:
    """A dump as AkashOne's ``MemStorage`` would hold it: resellers and customer companies
    owning organizations, their users, system and custom roles with permissions, role grants
    and the defects AkashOne's own code lets in (a GSTIN whose check character is wrong, an
    email that differs only in case, a pair granted twice, a grant to a deleted user, a
    record without an id, a clock ahead of time). Deterministic for a ``seed``."""
    import random  # noqa: PLC0415 - only the sample needs it (not for secrets: S311)

    from akashone_es.gst import gstin_check_character  # noqa: PLC0415

    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    start = datetime(2025, 4, 1, tzinfo=UTC).timestamp()

    def rid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def when() -> str:
        moment = datetime.fromtimestamp(start + rng.random() * 3e7, UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    def gstin(state: int) -> str:
        pan = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(5))
        first = f"{state:02d}{pan}{rng.randrange(10000):04d}{rng.choice('ABCDEFGHJK')}1Z"
        return first + gstin_check_character(first)

    people: list[dict[str, Any]] = []
    owners: list[str] = []
    for n in range(users):
        owner = rng.choice(owners) if owners and n % 10 else None
        kind = "reseller" if n % 50 == 0 else "customer"
        person: dict[str, Any] = {
                  "id": rid(), "username": f"user{n:05d}", "email": f"user{n:05d}@example.in",
                  "password": SAMPLE_HASH, "gstNumber": gstin(rng.choice((27, 29, 7, 33))),
                  "emailVerified": rng.random() < 0.8, "emailVerificationCode": None,
                  "emailVerificationExpiry": None, "twoFactorSecret": None,
                  "twoFactorEnabled": False, "accountType": kind, "organizationId": owner,
                  "defaultDiscountPercentage": rng.choice((0, 0, 0, 5, 10)),
                  "status": "active", "createdAt": when(), "lastLogin": when()}
        if n % 7 == 0:  # AkashOne keeps TOTP secrets in plaintext
            person.update(twoFactorSecret="JBSWY3DPEHPK3PXP", twoFactorEnabled=True)
        if owner is None:
            owners.append(person["id"])
        people.append(person)
    # defects AkashOne lets in
    people[3]["gstNumber"] = people[3]["gstNumber"][:14] + (
        "A" if people[3]["gstNumber"][14] != "A" else "B")  # a wrong check character
    people.append({**people[5], "id": rid(), "username": "user00005-dup",
                   "email": people[5]["email"].upper()})  # the same email, in capitals
    people.append({**people[6], "id": rid(), "username": "future",
                   "email": "future@example.in", "createdAt": "2099-01-01T00:00:00.000Z"})
    people.append({**people[8], "id": None, "username": "noid", "email": "noid@example.in"})
    permissions = [{"id": rid(), "key": key, "name": name, "description": None,
                    "category": category, "createdAt": when()}
                   for key, name, category in SAMPLE_PERMISSIONS]
    roles = [{"id": rid(), "name": name, "description": f"{name} (system)", "isSystem": True,
              "organizationId": None, "createdAt": when(), "updatedAt": when()}
             for name in ("Admin", "Editor", "Viewer")]
    roles += [{"id": rid(), "name": f"Ops {n}", "description": None, "isSystem": False,
               "organizationId": owner, "createdAt": when(), "updatedAt": when()}
              for n, owner in enumerate(owners[: max(1, len(owners) // 2)])]
    role_permissions = [{"id": rid(), "roleId": role["id"], "permissionId": p["id"],
                         "createdAt": when()}
                        for role in roles for p in rng.sample(permissions, 3)]
    role_permissions.append({**role_permissions[0], "id": rid()})  # the same pair twice
    user_roles = [{"id": rid(), "userId": person["id"], "roleId": rng.choice(roles)["id"],
                   "grantedBy": None, "createdAt": when()}
                  for person in people[:users]]
    user_roles.append({"id": rid(), "userId": rid(), "roleId": roles[0]["id"],
                       "grantedBy": None, "createdAt": when()})  # a deleted user's grant
    return {"users": people, "permissions": permissions, "roles": roles,
            "rolePermissions": role_permissions, "userRoles": user_roles}
