"""``akashone-es resources <user>`` and ``akashone-es meter``: cloud resources and their usage."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from akashone_es.cli.common import State, fail, model_table, plural
from akashone_es.cli.options import TIME, TIME_HELP, time_value
from akashone_es.errors import ValidationError

if TYPE_CHECKING:
    from akashone_es.storage import Storage


def _user(storage: Storage, who: str) -> Any:
    """A user by username, email or id."""
    found = storage.get_user_by_username(who) or storage.get_user_by_email(who)
    if found is None:
        try:
            found = storage.get_user(who)
        except ValidationError:  # not a UUID: reported as not found below
            found = None
    if found is None:
        fail(f"no user {who!r} (give a username, an email or an id)")
    return found


def _columns(kind: Any) -> list[str]:
    """What a listing shows of a kind, most telling first: the id before the rest, as
    ``show`` and ``history`` take it (at 80 columns the last ones are left out)."""
    columns = [c for c in ("name", "ip_address", "domain") if c in kind.columns()][:1]
    if kind.lifecycle:
        columns.append(kind.lifecycle.field)
    columns.append("id")
    if kind.cloudstack != "none":
        columns.append(kind.cloudstack_column)
    return [*columns, kind.created_column]


def resources(ctx: typer.Context,
              user: Annotated[str, typer.Argument(help="username, email or user id")]) -> None:
    """List a user's cloud resources by kind, with their states."""
    from akashone_es.resources import KINDS  # noqa: PLC0415

    state: State = ctx.obj
    with state.storage("resources") as storage:
        owner = _user(storage, user)
        total = 0
        for kind in KINDS.values():
            if kind.parent is not None:  # shown with their parents' counts
                continue
            rows = getattr(storage, kind.method_names()["list"])(owner.id)
            if not rows:
                continue
            total += len(rows)
            title = f"{kind.plural.replace('_', ' ')} ({len(rows)})"
            state.console.print(model_table(state.console, title, rows, _columns(kind)))
        if total == 0:
            state.console.print(f"{owner.username} has no cloud resources")


def meter(ctx: typer.Context,
          until: Annotated[datetime | None, typer.Option(
              help=f"bill every hour that ends by this time, not in the future: {TIME_HELP};"
                   " default: the last hour that ended at least 5 minutes ago",
              metavar=TIME, parser=time_value)] = None) -> None:
    """Turn the metered hours of every resource into usage records, each hour once."""
    from akashone_es.storage.metering import GRACE, floor_hour  # noqa: PLC0415

    state: State = ctx.obj
    now = datetime.now(UTC)
    if until is not None and until > now - GRACE:
        raise typer.BadParameter(f"{until.isoformat()} is not {GRACE.seconds // 60} minutes "
                                 "ago yet (an hour is metered once, after it ends and its "
                                 "changes have committed)", param_hint="'--until'")
    moment = until or floor_hour(now - GRACE)
    with state.storage("meter") as storage:
        result = storage.meter(moment)
    state.console.print(
        f"metered until {result.until:%Y-%m-%d %H:%M} UTC: "
        f"{plural(result.windows, 'resource-hour')}, {result.recorded} new usage "
        f"record{'' if result.recorded == 1 else 's'}, {result.already} already recorded")
