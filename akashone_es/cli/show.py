"""``akashone-es show <id> [--as-of]``: one aggregate as the read tables show it, now or then.

The past comes from ``Storage.as_of``: the log replayed up to the moment through the same
projections, so every kind reads the same way. ``--as-of`` takes a time or a version of the
aggregate (its state right after that version was written).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from akashone_es.cli.common import (
    State,
    aggregate_reference,
    as_of_option,
    cell,
    fail,
    model_table,
    resolve_reference,
)
from akashone_es.cli.history import no_version, redact

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime
    from uuid import UUID

    from pydantic import BaseModel

    from akashone_es.storage import Storage

    Read = Callable[[Storage, UUID], BaseModel | None]
    Related = Callable[[Storage, UUID], Sequence[BaseModel]]

def _payments(storage: Storage, invoice_id: UUID) -> list[BaseModel]:
    invoice = storage.get_invoice(invoice_id)
    if invoice is None:
        return []
    return [p for p in storage.get_payment_transactions(invoice.user_id)
            if p.invoice_id == invoice_id]


#: aggregate class -> how its row is read (and the lists shown under it)
READS: dict[str, tuple[Read, tuple[tuple[str, Related], ...]]] = {
    "Organization": (lambda s, i: s.get_organization(i), ()),
    "User": (lambda s, i: s.get_user(i), (("roles", lambda s, i: s.get_user_roles(i)),)),
    "Permission": (lambda s, i: s.get_permission(i), ()),
    "Role": (lambda s, i: s.get_role(i),
             (("permissions", lambda s, i: s.get_role_permissions(i)),)),
    "TeamMember": (lambda s, i: s.get_team_member(i), ()),
    "Activity": (lambda s, i: s.get_user_activity(i), ()),
    "BillingAddress": (lambda s, i: s.get_billing_address(i), ()),
    "PaymentMethod": (lambda s, i: s.get_payment_method(i), ()),
    "Invoice": (lambda s, i: s.get_invoice(i), (
        ("line items", lambda s, i: s.get_invoice_line_items(i)),
        ("credit and debit notes", lambda s, i: s.get_adjustment_notes(i)),
        ("payments", _payments))),
    "PaymentTransaction": (lambda s, i: s.get_payment_transaction(i), ()),
    "TaxCalculation": (lambda s, i: s.get_tax_calculation(i), ()),
    "UsageRecord": (lambda s, i: s.get_usage_record(i), ()),
    "HsnCode": (lambda s, i: s.get_hsn_code(i), ()),
    "ServicePlan": (lambda s, i: s.get_service_plan(i), ()),
    "DiscountCoupon": (lambda s, i: s.get_discount_coupon(i), ()),
    "FeatureFlag": (lambda s, i: s.get_feature_flag(i), ()),
}
#: the columns a related list shows (first the most telling)
LIST_COLUMNS = ("name", "key", "description", "quantity", "unit_price", "total_amount",
                "note_number", "amount", "status", "id")


def show(ctx: typer.Context,
         aggregate_id: Annotated[str, typer.Argument(
             help="id of a user, invoice, VM, ..., or an invoice or note number")],
         as_of: Annotated[str | None, typer.Option(
             "--as-of", help="a time (ISO 8601, UTC unless it has an offset) or a version "
                             "of the aggregate")] = None,
         as_json: Annotated[bool, typer.Option("--json", help="the row as JSON")] = False,
         ) -> None:
    """Show one aggregate as the read tables hold it, now or as of a time or version."""
    import orjson  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    from akashone_es.money import format_inr  # noqa: PLC0415

    state: State = ctx.obj
    reference = aggregate_reference(aggregate_id)
    moment = as_of_option(as_of)
    with state.storage("show") as storage:
        oid = resolve_reference(storage, reference)
        kind, read, related = _reader(storage, oid)
        at = _position_of(storage, oid, moment) if isinstance(moment, int) else moment
        if at is None:
            row, lists = read(storage, oid), [(t, r(storage, oid)) for t, r in related]
        else:
            past = storage.as_of(at)
            try:
                row, lists = read(past, oid), [(t, r(past, oid)) for t, r in related]
            finally:
                past.close()
    when = "" if moment is None else f" as of {_describe(moment)}"
    if row is None:
        fail(f"no {kind} {oid}{when}: it did not exist yet, or was deleted")
    data = redact(row.model_dump(mode="json"))
    if as_json:
        state.console.print_json(orjson.dumps(data).decode())
        return
    table = Table(title=f"{kind} {oid}{when}", title_justify="left", show_header=False)
    table.add_column("field", no_wrap=True, style="bold")
    table.add_column("value", overflow="fold")
    for name, value in data.items():
        if isinstance(value, dict | list):
            shown = Text(orjson.dumps(value).decode())
        elif _paise(name, value):  # an amount reads in rupees, with the paise it stores
            shown = Text(f"{format_inr(value)} ({value} paise)")
        else:
            shown = cell(value)
        table.add_row(Text(name), shown)
    state.console.print(table)
    for title, rows in lists:
        if rows:
            columns = [c for c in LIST_COLUMNS if c in type(rows[0]).model_fields]
            state.console.print(model_table(state.console, f"{title} ({len(rows)})", rows,
                                            columns))
        else:
            state.console.print(f"{title}: none")


def _paise(name: str, value: object) -> bool:
    """Whether a field is an amount of paise (the read tables keep money as whole paise)."""
    return (isinstance(value, int) and not isinstance(value, bool)
            and (name == "amount" or name.endswith("_amount")))


def _reader(storage: Storage, oid: UUID) -> tuple[str, Read, tuple[tuple[str, Related], ...]]:
    """The aggregate's kind and how to read it, from its first event."""
    from akashone_es.export import kind_of  # noqa: PLC0415
    from akashone_es.resources import KINDS  # noqa: PLC0415

    stored = storage.app.recorder.select_events(oid, limit=1)
    if not stored:
        fail(f"no events for {oid}")
    topic = stored[0].topic
    name = topic.partition(":")[2].partition(".")[0]
    if name == "Resource":
        kind = KINDS[storage.app.mapper.to_domain_event(stored[0]).kind]  # type: ignore[attr-defined]
        get = kind.method_names()["get"]
        return kind.name, lambda s, i: getattr(s, get)(i), ()
    if name == "AdjustmentNote":  # listed with its invoice
        note = storage.app.mapper.to_domain_event(stored[0])
        fail(f"{oid} is a credit or debit note: it shows with its invoice (akashone-es show "
             f"{note.invoice_number}); its events: akashone-es history {oid}")  # type: ignore[attr-defined]
    if name not in READS:
        article = "an" if name[:1] in "AEIOU" else "a"
        fail(f"{oid} is {article} {name}, which has no row of its own to show; try: "
             f"akashone-es history {oid}")
    read, related = READS[name]
    return kind_of(topic), read, related


def _position_of(storage: Storage, oid: UUID, version: int) -> int:
    """The log position of version ``version`` of the aggregate."""
    with storage._datastore.get_connection() as conn:
        row = conn.execute("SELECT notification_id FROM public.akashone_events"
                           " WHERE originator_id = %s AND originator_version = %s",
                           (oid, version)).fetchone()
    if row is None:
        fail(no_version(oid, version))
    return int(row["notification_id"])


def _describe(moment: datetime | int) -> str:
    return f"version {moment}" if isinstance(moment, int) else moment.isoformat()
