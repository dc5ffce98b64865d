"""A slice of the log that an auditor takes away and proves against a digest, offline.

An export is JSON Lines. The first line is a header: the format, the filters, the digest the
export was taken at, the ``anchor`` (the seal of the event before the first line) and
``anchor_position`` (that event's position; 0 for the chain's start). Then one line for every
event from the first one chosen up to the digest's position, in the log's reading order (the
chain's: positions are not consecutive, see ``audit``), each with its ``position`` and
``hash`` (its seal):

- an event the filters chose carries its ``originator_id``, ``version``, ``topic`` and its
  stored ``state`` as text, from which the checker recomputes its leaf;
- an event they did not choose carries only its ``leaf`` (``audit.leaf``), so the chain can be
  recomputed through it without showing its content;
- a chosen event written before password hashes were sealed carries its leaf and says
  ``withheld``: its state holds a secret in clear, and a secret never leaves in an export.

``verify_export`` (and the stand-alone ``docs/verify_export.py``) recomputes every seal from the
anchor and compares the chain with a digest the auditor kept: a changed, removed, added or
moved line, or a rewritten tail, cannot reach the digest's hash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any
from uuid import UUID

import orjson
import psycopg
from psycopg import sql

from akashone_es import audit
from akashone_es.errors import AkashOneError
from akashone_es.persistence.database import CHAIN_TABLE
from akashone_es.persistence.names import EVENTS_TABLE
from akashone_es.secrets import PREFIX as SEALED
from akashone_es.secrets import SECRET_FIELDS

FORMAT = "akashone-export/2"
#: the first format: positions consecutive, no ``anchor_position`` (it is ``first - 1``)
FORMATS = (FORMAT, "akashone-export/1")
#: secrets an export never carries in clear (the invitation token's hash is not one: it is the
#: SHA-256 of 192 random bits, which can be neither reversed nor used to accept)
EXPORT_SECRETS = SECRET_FIELDS - {"token_hash"}
#: every event with its seal, in the log's reading order, up to the sealed event at a position
SEALED_EVENTS = sql.SQL(
    "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state,"
    " c.hash FROM {events} e LEFT JOIN {chain} c ON c.position = e.notification_id"
    " WHERE (e.transaction_id, e.notification_id) <="
    " (SELECT s.transaction_id, s.position FROM {chain} s WHERE s.position = %s)"
    " ORDER BY e.transaction_id, e.notification_id").format(
        events=sql.Identifier(EVENTS_TABLE), chain=sql.Identifier(CHAIN_TABLE))
RESOURCE_CREATED = "akashone_es.domain.resources:Resource.Created"
KIND_IDS = sql.SQL(
    "SELECT originator_id FROM {} WHERE topic = %s"
    " AND convert_from(state, 'UTF8')::jsonb ->> 'kind' = %s").format(
        sql.Identifier(EVENTS_TABLE))
#: aggregates whose own fields name the tenant (deleted records included)
TENANT_EVENTS = sql.SQL(
    "SELECT DISTINCT originator_id FROM {} WHERE originator_id = %s"
    " OR convert_from(state, 'UTF8')::jsonb ->> 'organization_id' = %s").format(
        sql.Identifier(EVENTS_TABLE))
#: read tables whose rows name their organization (or their user)
OWNED_TABLES = sql.SQL(
    "SELECT table_name, bool_or(column_name = 'organization_id')"
    " FROM information_schema.columns WHERE table_schema = 'public'"
    " AND column_name IN ('id', 'organization_id', 'user_id') GROUP BY table_name"
    " HAVING bool_or(column_name = 'id') AND count(*) >= 2")


class ExportError(AkashOneError):
    """The log cannot be exported as asked (it does not match its seals, or a filter is
    wrong)."""


class FilterError(ExportError):
    """A filter names nothing the log holds (a mistyped kind): the request, not the log, is
    wrong."""


@dataclass(frozen=True)
class Filters:
    """Which events an export shows; the others appear as leaves only."""

    since: datetime | None = None  #: events at or after this time
    until: datetime | None = None  #: events before this time
    aggregate: UUID | None = None
    kind: str | None = None  #: an aggregate kind (``user``, ``invoice``) or a resource kind
    tenant: UUID | None = None  #: an organization: its records and what was done in it

    def describe(self) -> dict[str, str]:
        return {name: value.isoformat() if isinstance(value, datetime) else str(value)
                for name, value in vars(self).items() if value is not None}


@dataclass
class Summary:
    """What an export wrote."""

    digest: audit.Digest
    first: int = 0
    shown: int = 0
    withheld: int = 0
    leaves: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


def kind_of(topic: str) -> str:
    """``akashone_es.domain.identity:TeamMember.Invited`` -> ``team_member``."""
    name = topic.partition(":")[2].partition(".")[0]
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def export(conn: psycopg.Connection[Any], out: IO[str], filters: Filters,
           progress: Callable[[int, int], None] | None = None) -> Summary:
    """Seal what is pending, then write the slice ``filters`` choose up to the sealed head.

    Raises ``ExportError`` when an event does not match its seal: an export of a log that
    was altered would only carry the alteration away (``audit verify`` says where).
    """
    taken = audit.digest(conn)
    chosen = _chooser(conn, filters)
    summary = Summary(taken)
    previous, anchor_position = audit.GENESIS, 0
    started = False
    done, total = 0, audit.sealed_count(conn) if progress is not None else 0
    with conn.cursor(name="akashone_export") as cur:
        cur.itersize = audit.BATCH
        cur.execute(SEALED_EVENTS, (taken.position,))
        for position, oid, version, topic, stored_state, stored in cur:
            state = bytes(stored_state)
            leaf = audit.leaf(position, oid, version, topic, state)
            seal = audit.chain(previous, leaf)
            if stored is None or seal != bytes(stored):
                raise ExportError(f"position {position}: the event does not match its seal; "
                                  "run akashone-es audit verify")
            data = orjson.loads(state)
            if chosen(oid, topic, data):
                if not started:
                    started = True
                    summary.first = position
                    out.write(_header(filters, taken, position, anchor_position, previous))
                line = _shown(summary, position, oid, version, topic, state, data, leaf)
            elif started:
                line = {"position": position, "leaf": leaf.hex()}
                summary.leaves += 1
            else:
                line = None
            if line is not None:
                line["hash"] = seal.hex()
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
            previous, anchor_position = seal, position
            done += 1
            if progress is not None and done % 1000 == 0:
                progress(done, total)
    if not started:  # nothing chosen: a header only, anchored at the digest itself
        out.write(_header(filters, taken, None, taken.position, previous))
    if progress is not None:
        progress(total, total)
    return summary


def _header(filters: Filters, taken: audit.Digest, first: int | None, anchor_position: int,
            anchor: bytes) -> str:
    return json.dumps({"format": FORMAT, "filters": filters.describe(), "first": first,
                       "anchor": anchor.hex(), "anchor_position": anchor_position,
                       "digest": vars(taken)}) + "\n"


def _shown(summary: Summary, position: int, oid: UUID, version: int, topic: str,
           state: bytes, data: dict[str, Any], leaf: bytes) -> dict[str, Any]:
    line: dict[str, Any] = {"position": position, "originator_id": str(oid),
                            "version": version, "topic": topic}
    kind = kind_of(topic)
    summary.kinds[kind] = summary.kinds.get(kind, 0) + 1
    if _clear_secret(data):
        summary.withheld += 1
        line.update(leaf=leaf.hex(), withheld="its state holds a secret in clear (written "
                                              "before password hashes were sealed)")
    else:
        summary.shown += 1
        line["state"] = state.decode()
    return line


def _clear_secret(data: Any) -> bool:
    """Whether a secret field holds a clear value anywhere in the event's data."""
    if isinstance(data, dict):
        return any((key in EXPORT_SECRETS and isinstance(value, str) and value
                    and not value.startswith(SEALED)) or _clear_secret(value)
                   for key, value in data.items())
    if isinstance(data, list):
        return any(_clear_secret(item) for item in data)
    return False


def _chooser(conn: psycopg.Connection[Any], filters: Filters
             ) -> Callable[[UUID, str, dict[str, Any]], bool]:
    """The predicate of the filters, over an event's aggregate, topic and decoded state."""
    owned: set[UUID] | None = None
    tenant = str(filters.tenant) if filters.tenant is not None else None
    if filters.tenant is not None:
        owned = _tenant_aggregates(conn, filters.tenant)
    resources: set[UUID] | None = None
    if filters.kind is not None:
        resources = {row[0] for row in conn.execute(KIND_IDS, (RESOURCE_CREATED,
                                                               filters.kind))}
        logged = _aggregate_kinds(conn)
        if not resources and filters.kind not in logged:
            from akashone_es.resources import KINDS  # noqa: PLC0415

            raise FilterError(f"--kind: no aggregate or resource kind {filters.kind!r} in "
                              f"the log (known kinds: {', '.join(sorted(logged | set(KINDS)))})")
    since, until = filters.since, filters.until

    def chosen(oid: UUID, topic: str, data: dict[str, Any]) -> bool:
        if filters.aggregate is not None and oid != filters.aggregate:
            return False
        if owned is not None and oid not in owned:  # or done in the tenant's context
            meta = data.get("metadata") or {}
            if tenant not in (meta.get("organization_id"), meta.get("on_behalf_of")):
                return False
        if resources is not None and oid not in resources and kind_of(topic) != filters.kind:
            return False
        if since is not None or until is not None:
            at = datetime.fromisoformat(data["timestamp"])
            if (since is not None and at < since) or (until is not None and at >= until):
                return False
        return True

    return chosen


def _aggregate_kinds(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(sql.SQL("SELECT DISTINCT topic FROM {}").format(
        sql.Identifier(EVENTS_TABLE))).fetchall()
    return {kind_of(row[0]) for row in rows}


def _tenant_aggregates(conn: psycopg.Connection[Any], tenant: UUID) -> set[UUID]:
    """The tenant's records: rows of its organization (or of its users) in the read tables,
    and every aggregate whose fields name it (a shared aggregate, such as the invoice number
    series, is not one: only its events done in the tenant's context are the tenant's)."""
    found = {row[0] for row in conn.execute(TENANT_EVENTS, (tenant, str(tenant)))}
    users = [row[0] for row in conn.execute(
        "SELECT id FROM users WHERE organization_id = %s", (tenant,))]
    found.update(users)
    for table, by_organization in conn.execute(OWNED_TABLES).fetchall():
        column, value = (("organization_id", [str(tenant)]) if by_organization
                         else ("user_id", [str(user) for user in users]))
        query = sql.SQL("SELECT id FROM {} WHERE {}::text = ANY(%s)").format(
            sql.Identifier(table), sql.Identifier(column))
        for (row_id,) in conn.execute(query, (value,)):
            if isinstance(row_id, UUID):
                found.add(row_id)
    return found


# -- checking an export: no database --------------------------------------------------------
@dataclass(frozen=True)
class ExportVerdict:
    ok: bool
    lines: int
    shown: int
    problem: str | None = None
    #: the position the export starts after (0: the chain's start)
    anchor: int = 0
    #: events between the anchor and the digest carried as a leaf only (not shown)
    hidden: int = 0


def verify_export(lines: Iterable[str], expected: audit.Digest,  # noqa: PLR0911, PLR0912
                  *, complete: bool = False) -> ExportVerdict:
    """Recompute an export's chain from its anchor and compare it with ``expected`` (a digest
    the auditor kept, not the one written in the export).

    What it proves: every event shown is the log's, unaltered, in its place, and the lines
    run unbroken from the anchor to the digest. Not that the export's filters chose every
    event they match: an event before the anchor, or carried as a leaf only, is not shown,
    and the header's filters are the exporter's word. ``complete``: also require the export
    to start at the chain's start and to hide nothing, which proves it holds the whole log
    up to the digest (an export with no filters)."""
    previous, position, first = b"", 0, None
    reached: bytes | None = None
    shown = number = hidden = anchor = 0
    for number, text in enumerate(lines, start=1):
        try:
            line = json.loads(text)
            if number == 1:
                if not isinstance(line, dict) or line.get("format") not in FORMATS:
                    return ExportVerdict(False, 1, 0, f"line 1: not an export header "
                                                      f"({FORMAT})")
                previous, first = bytes.fromhex(line["anchor"]), line["first"]
                anchor = (line["anchor_position"] if line["format"] == FORMAT
                          else int(first) - 1)
                if not isinstance(anchor, int) or isinstance(anchor, bool) or anchor < 0:
                    raise TypeError(f"anchor_position {anchor!r} is not a log position")
                if complete and (anchor != 0 or previous != audit.GENESIS):
                    return ExportVerdict(False, 1, 0, f"not complete: the export starts "
                                         f"after position {anchor}, not at the chain's start",
                                         anchor)
                reached = previous if anchor == expected.position else None
                continue
            if reached is not None:
                return ExportVerdict(False, number, shown, f"line {number}: position "
                                     f"{line.get('position')} is past the digest's position "
                                     f"{expected.position}: nothing proves it (check the "
                                     "export against the digest taken with it)")
            position = line["position"]
            if not isinstance(position, int) or isinstance(position, bool) or position < 1:
                raise TypeError(f"position {position!r} is not a log position")
            if "state" in line:
                version = line["version"]
                if not isinstance(version, int) or isinstance(version, bool):
                    raise TypeError(f"version {version!r} is not a number")
                leaf = audit.leaf(position, UUID(line["originator_id"]), version,
                                  line["topic"], line["state"].encode())
                shown += 1
            else:
                if complete:
                    return ExportVerdict(False, number, shown, f"not complete: position "
                                         f"{position} is hidden (a leaf only)", anchor, 1)
                leaf = bytes.fromhex(line["leaf"])
                hidden += 1
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return ExportVerdict(False, number, shown, f"line {number}: malformed "
                                 f"({type(exc).__name__}: {exc})")
        previous = audit.chain(previous, leaf)
        if previous.hex() != line.get("hash"):
            return ExportVerdict(False, number, shown, f"position {position}: the line does "
                                 "not match its hash (changed, removed, added or moved)",
                                 anchor, hidden)
        if position == expected.position:
            reached = previous
    if number == 0:
        return ExportVerdict(False, 0, 0, "the export is empty")
    if reached is None:
        return ExportVerdict(False, number, shown, f"the export does not reach the digest's "
                             f"position {expected.position} (its lines run from {first} to "
                             f"{position})")
    if reached.hex() != expected.hash:
        return ExportVerdict(False, number, shown, f"position {expected.position}: the chain "
                             "differs from the digest (the log or the export was rewritten)")
    return ExportVerdict(True, number, shown, None, anchor, hidden)
