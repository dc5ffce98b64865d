"""``akashone-es history <id>``: every event of one aggregate: when, who, what changed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any

import typer

from akashone_es.cli.common import (
    State,
    aggregate_reference,
    as_of_option,
    fail,
    fits,
    plural,
    resolve_reference,
)

if TYPE_CHECKING:
    from uuid import UUID


@dataclass(frozen=True)
class Undecodable:
    """A stored event the mapper cannot turn back into its class (written behind the API's
    back, say): shown as such, with why, rather than ending the history."""

    originator_version: int
    topic: str
    problem: str
    timestamp: None = None
    metadata: None = None


def _decode(storage: Any, stored: Any) -> Any:
    from akashone_es.errors import first_line  # noqa: PLC0415

    try:
        return storage.app.mapper.to_domain_event(stored)
    except Exception as exc:  # noqa: BLE001 - any failure to decode is shown, not raised
        return Undecodable(stored.originator_version, stored.topic, first_line(exc))


@cache
def _base_fields() -> set[str]:
    """The fields every event has (shown as columns, not as changes)."""
    from akashone_es.domain.base import DomainEvent  # noqa: PLC0415

    return set(DomainEvent.model_fields) | {"originator_topic"}


def redact(data: Any) -> Any:
    """The event's data with every secret-bearing field replaced by a label."""
    from akashone_es.secrets import SECRET_FIELDS  # noqa: PLC0415

    return _redact(data, SECRET_FIELDS)


def _redact(data: Any, secret: frozenset[str]) -> Any:
    if isinstance(data, dict):
        return {key: "(hidden)" if key in secret and value is not None
                else _redact(value, secret) for key, value in data.items()}
    if isinstance(data, list):
        return [_redact(item, secret) for item in data]
    return data


def history(ctx: typer.Context,
            aggregate_id: Annotated[str, typer.Argument(
                help="id of a user, role, ..., or an invoice or note number")],
            as_json: Annotated[bool, typer.Option("--json", help="one JSON line per event")]
            = False,
            as_of: Annotated[str | None, typer.Option(
                "--as-of", help="only the events up to a time (ISO 8601, UTC unless it has an "
                                "offset) or up to a version")] = None) -> None:
    """Show the full history of one aggregate from the event log (or up to a moment).

    ``akashone-es show ID --as-of`` shows its state at that moment."""
    import orjson  # noqa: PLC0415
    from rich.padding import Padding  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    state: State = ctx.obj
    reference = aggregate_reference(aggregate_id)
    moment = as_of_option(as_of)
    with state.storage("history") as storage:
        oid = resolve_reference(storage, reference)
        stored = storage.app.recorder.select_events(oid)
        if not stored:
            fail(f"no events for {oid}")
        events = [_decode(storage, s) for s in stored]
        topics = {id(event): s.topic for event, s in zip(events, stored, strict=True)}
        names = {str(u.id): u.username for u in storage.get_users()}
    if isinstance(moment, int):
        last = events[-1].originator_version
        if not 1 <= moment <= last:  # as ``show --as-of`` refuses it
            fail(no_version(oid, moment))
    if moment is not None:
        events = [e for e in events if (
            e.originator_version <= moment if isinstance(moment, int)
            else e.timestamp is not None and e.timestamp <= moment)]
        if not events:
            fail(f"{oid} has no events as of {moment}: it did not exist yet")
    if as_json:  # JSON Lines: one compact object per event, which names the event first
        for event in events:
            typer.echo(orjson.dumps(_json_line(event, topics)).decode())
        return
    rows = [_row(event, names) for event in events]
    table = Table(title=f"history of {oid}", title_justify="left")
    for column in ("v", "when", "who", "event"):
        table.add_column(column, no_wrap=True)
    # the changes wrap; below 40 characters a column of JSON is unreadable
    table.add_column("what changed", min_width=40, overflow="fold")
    for row in rows:  # plain text: names and changes may hold brackets, never markup
        table.add_row(*map(Text, row[:4]), Text(_changes(row[4], compact=True)))
    if fits(state.console, table):
        state.console.print(table)
        return
    state.console.print(f"history of {oid} ({plural(len(rows), 'event')})", style="bold")
    for row in rows:  # narrow terminal: one heading per event, its changes indented below
        state.console.print("  ".join(row[:4]), no_wrap=True, overflow="ellipsis")
        if row[4]:
            state.console.print(Padding(Text(_changes(row[4], compact=False)), (0, 0, 0, 4)))


def _json_line(event: Any, topics: dict[int, str]) -> dict[str, Any]:
    """One event as a JSON Lines object that names the event first."""
    if isinstance(event, Undecodable):
        return {"event": None, "topic": event.topic,
                "originator_version": event.originator_version,
                "does_not_decode": event.problem}
    data = redact(event.model_dump(mode="json"))
    return {"event": type(event).__qualname__, "topic": topics[id(event)], **data}


def no_version(oid: UUID, version: int) -> str:
    """The error for ``--as-of VERSION`` past the aggregate's versions (history and show)."""
    return f"{oid} has no version {version}; akashone-es history {oid} lists them"


def _row(event: Any, names: dict[str, str]) -> tuple[str, str, str, str, Any]:
    """Version, time, actor name, event type and the redacted data of one event."""
    if isinstance(event, Undecodable):
        return (str(event.originator_version), "?", "?", f"{event.topic.rsplit(':', 1)[-1]}"
                " (does not decode)", {"problem": event.problem})
    meta = event.metadata or {}
    actor = meta.get("actor_id")
    who = names.get(actor or "", actor or meta.get("actor_kind", "system"))
    data = redact(event.model_dump(mode="json", exclude=_base_fields()))
    return (str(event.originator_version), event.timestamp.isoformat(timespec="seconds"),
            str(who), type(event).__qualname__, data)


def _changes(data: Any, *, compact: bool) -> str:
    """The data as JSON: compact in a table cell, spaced (so it wraps between fields) alone."""
    import orjson  # noqa: PLC0415

    if not data:
        return ""
    return orjson.dumps(data).decode() if compact else json.dumps(data, ensure_ascii=False)
