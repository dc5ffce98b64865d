"""``akashone-es history <id>``: every event of one aggregate: when, who, what changed."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import orjson
import typer
from rich.table import Table

from akashone_es.cli.common import State
from akashone_es.domain.base import DomainEvent

BASE_FIELDS = set(DomainEvent.model_fields) | {"originator_topic"}
#: never printed, even hashed: a hash still lets an attacker guess offline
SECRET_FIELDS = frozenset({"password", "password_hash", "token_hash", "two_factor_secret",
                           "email_verification_code"})


def redact(data: Any) -> Any:
    """The event's data with every secret-bearing field replaced by a label."""
    if isinstance(data, dict):
        return {key: "(hidden)" if key in SECRET_FIELDS and value is not None else redact(value)
                for key, value in data.items()}
    if isinstance(data, list):
        return [redact(item) for item in data]
    return data


def _changes(event: Any) -> str:
    data = redact(event.model_dump(mode="json", exclude=BASE_FIELDS))
    return orjson.dumps(data).decode() if data else ""


def history(ctx: typer.Context,
            aggregate_id: Annotated[str, typer.Argument(help="id of a user, role, ...")],
            as_json: Annotated[bool, typer.Option("--json", help="one JSON line per event")]
            = False) -> None:
    """Show the full history of one aggregate from the event log."""
    state: State = ctx.obj
    try:
        oid = UUID(aggregate_id)
    except ValueError:
        raise typer.BadParameter("must be a UUID", param_hint="AGGREGATE_ID") from None
    with state.storage() as storage:
        stored = storage.app.recorder.select_events(oid)
        if not stored:
            state.errors.print(f"[red]error:[/red] no events for {oid}")
            raise typer.Exit(1)
        events = [storage.app.mapper.to_domain_event(s) for s in stored]
        names = {str(u.id): u.username for u in storage.get_users()}
    if as_json:
        for event in events:
            data = redact(event.model_dump(mode="json"))  # type: ignore[attr-defined]
            state.console.print_json(orjson.dumps(data).decode())
        return
    table = Table(title=f"history of {oid}", title_justify="left")
    for column in ("v", "when", "who", "event", "what changed"):
        table.add_column(column, overflow="fold")
    for event in events:
        meta = event.metadata or {}  # type: ignore[attr-defined]
        actor = meta.get("actor_id")
        who = names.get(actor or "", actor or meta.get("actor_kind", "system"))
        table.add_row(str(event.originator_version),
                      event.timestamp.isoformat(timespec="seconds"),  # type: ignore[attr-defined]
                      who, type(event).__qualname__, _changes(event))
    state.console.print(table)
