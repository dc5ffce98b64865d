"""What every table's import shares: ids, refusals, times and the summary."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from akashone_es.storage.limits import JSON_DEPTH_MAX, moment_problem, text_problem

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://akashone.com/legacy-import")


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


def _moment(record: dict[str, Any], name: str, *, required: bool = True,
            future: bool = False) -> datetime | None:
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
    problem = moment_problem(moment)
    if problem is not None:
        raise Refused(f"{name}: {problem} ({str(value)[:40]!r})")
    if not future and moment > datetime.now(UTC):
        raise Refused(f"{name}: {moment.isoformat()} is in the future")
    return moment


def _not_before(moment: datetime | None, aggregate: Any) -> datetime:
    """A link's time, never before its aggregate's last change (AkashOne's rows carry
    independent times; an aggregate's history is kept in order)."""
    latest: datetime = aggregate.modified_on
    return latest if moment is None or moment < latest else moment


def _text(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if value is None or value == "":
        raise Refused(f"{name}: is required")
    if not isinstance(value, str):
        example = " such as 'vm-1a2b3c4d' or a UUID" if name == "id" else ""
        raise Refused(f"{name}: must be a string{example}, not {_json_kind(value)} "
                      f"({str(value)[:40]})")
    return value


def _json_kind(value: Any) -> str:
    """What a JSON value is, for a message: ``a number``, ``an object``, ..."""
    kinds = ((bool, "true or false"), ((int, float), "a number"), (str, "a string"),
             (list, "a list"), (dict, "an object"))
    return next((kind for types, kind in kinds if isinstance(value, types)), "null")


#: how deep a record may nest: its free-form JSON fields nest at most JSON_DEPTH_MAX
RECORD_DEPTH_MAX = JSON_DEPTH_MAX + 2


def record_problem(record: dict[str, Any]) -> str | None:
    """Why a record cannot be stored, whatever its table and fields mean: text that no
    column holds (a NUL, a lone surrogate) anywhere in a value or a nested key, or nesting
    deeper than any field takes. Named by the record's field it is in. Checked before
    anything else reads the record (an id is hashed, a reason quotes a value)."""
    for name, value in record.items():
        field = name if isinstance(name, str) and text_problem(name) is None else "a field"
        stack: list[tuple[Any, int]] = [(value, 1)]
        while stack:
            item, depth = stack.pop()
            if depth > RECORD_DEPTH_MAX:
                return f"{field}: nested deeper than {RECORD_DEPTH_MAX} levels"
            if isinstance(item, str):
                problem = text_problem(item)
                if problem is not None:
                    return f"{field}: {problem}"
            elif isinstance(item, dict):
                for key, inner in item.items():
                    problem = text_problem(key) if isinstance(key, str) else None
                    if problem is not None:
                        return f"{field}: a key {problem}"
                    stack.append((inner, depth + 1))
            elif isinstance(item, list):
                stack.extend((inner, depth + 1) for inner in item)
    return None


def shown_id(record: dict[str, Any]) -> str:
    """A record's id as a report may show it: escaped when it is not plain text."""
    value = record.get("id")
    if isinstance(value, str):
        return value if text_problem(value) is None else ascii(value)[1:-1][:80]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return "?"
