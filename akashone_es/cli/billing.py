"""Invoices for people: the demo's billing story and ``akashone-es invoice <number>``."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer

from akashone_es.cli.common import State, fail, fits
from akashone_es.errors import ValidationError

if TYPE_CHECKING:
    from rich.console import Console, Group, RenderableType
    from rich.table import Table

    from akashone_es.storage import Storage

PERIOD = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))


#: tax heads in the order a tax invoice prints them, with the line item field of each
HEADS = (("CGST", "cgst_amount"), ("SGST", "sgst_amount"), ("UTGST", "utgst_amount"),
         ("IGST", "igst_amount"))


def _heads(invoice: Any, lines: list[Any]) -> list[tuple[str, str]]:
    """The tax heads this invoice charges (IGST alone when none: zero-rated, exempt)."""
    used = [(label, field) for label, field in HEADS
            if getattr(invoice, field) or any(getattr(line, field) for line in lines)]
    return used or [("IGST", "igst_amount")]


def _line_taxed(invoice: Any, lines: list[Any]) -> bool:
    """Whether the lines carry their tax: an invoice imported from AkashOne has its tax for
    the whole invoice only (its lines show none rather than a tax of zero)."""
    return not invoice.taxable_amount or any(line.taxable_amount for line in lines)


def _tax_figure(value: Any, taxed: bool) -> str:
    from akashone_es.money import format_inr  # noqa: PLC0415

    return format_inr(value) if taxed else "-"


def _line_table(lines: list[Any], heads: list[tuple[str, str]], taxed: bool) -> Table:
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    from akashone_es.money import format_inr  # noqa: PLC0415

    # only the description may wrap (between words): amounts are never cut or wrapped
    table = Table(title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("description", min_width=12)
    for column in ("qty", "unit", "amount", "discount", "taxable", *(h for h, _ in heads)):
        table.add_column(column, justify="left" if column == "unit" else "right",
                         no_wrap=True)
    for number, line in enumerate(lines, start=1):  # a draft's numbers are its events'
        table.add_row(str(number), Text(line.description), _quantity(line),
                      Text(line.unit),
                      format_inr(line.amount), format_inr(line.discount_amount),
                      _tax_figure(line.taxable_amount, taxed),
                      *(_tax_figure(getattr(line, field), taxed) for _, field in heads))
    return table


def _line_blocks(lines: list[Any], heads: list[tuple[str, str]], taxed: bool) -> Group:
    """Narrow terminals: each line as a heading and its figures flowing under it."""
    from rich.columns import Columns  # noqa: PLC0415
    from rich.console import Group  # noqa: PLC0415
    from rich.padding import Padding  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    from akashone_es.money import format_inr  # noqa: PLC0415

    blocks: list[RenderableType] = []
    for number, line in enumerate(lines, start=1):
        blocks.append(Text(f"{number}. {line.description}: {_quantity(line)} "
                           f"{line.unit}", style="bold"))
        figures = [(label, format_inr(value)) for label, value in (
            ("amount", line.amount), ("discount", line.discount_amount))]
        figures += [(label, _tax_figure(value, taxed)) for label, value in (
            ("taxable", line.taxable_amount),
            *((label, getattr(line, field)) for label, field in heads))]
        blocks.append(Padding(Columns(
            [Text(f"{label} {value}", no_wrap=True) for label, value in figures],
            padding=(0, 3)), (0, 0, 0, 3)))
    return Group(*blocks)


def _quantity(line: Any) -> str:
    return f"{Decimal(line.quantity).normalize():f}"


def render_invoice(console: Console, storage: Storage, invoice: Any) -> None:
    """The invoice as a tax invoice reads: parties, lines with tax per head, totals, notes.
    Its values print as plain text, never markup."""
    from rich.text import Text  # noqa: PLC0415

    from akashone_es.money import format_inr  # noqa: PLC0415

    console.print(Text.assemble((f"TAX INVOICE {invoice.invoice_number or '(draft)'}", "bold"),
                                f"  status {invoice.status}  FY {invoice.fy or '-'}"))
    issued = (f"dated {ist_day(invoice.issued_at)} (IST)" if invoice.issued_at
              else "not issued yet")
    console.print(f"{issued}  due {ist_day(invoice.due_date)}")
    console.print(f"supplier GSTIN {invoice.supplier_gstin}  buyer GSTIN "
                  f"{invoice.buyer_gstin or 'unregistered'}")
    buyer = storage.get_invoice_buyer(invoice.id) or {}
    recipient = [buyer.get(k) for k in ("name", "address_line1", "city", "postal_code",
                                        "state", "country")]
    console.print(Text("recipient " + ", ".join(str(v) for v in recipient if v)))
    console.print(f"place of supply {invoice.place_of_supply} ({invoice.place_of_supply_code}),"
                  f" {(invoice.tax_type or '-').replace('_', '-')}, SAC {invoice.sac_code},"
                  " reverse charge: No")
    endorsement = ENDORSEMENTS.get((invoice.tax_type, bool(invoice.zero_rated)))
    if endorsement:  # Rule 46: an export's or an SEZ supply's, in its words
        console.print(endorsement)
    lines = storage.get_invoice_line_items(invoice.id)
    heads = _heads(invoice, lines)
    taxed = _line_taxed(invoice, lines)
    table = _line_table(lines, heads, taxed)
    console.print(table if fits(console, table) else _line_blocks(lines, heads, taxed))
    if not taxed:
        console.print("tax recorded for the invoice as a whole, not per line (imported from"
                      " AkashOne)")
    for label, value in (("subtotal", invoice.subtotal_amount),
                         ("discount", -invoice.discount_amount),
                         ("taxable value", invoice.taxable_amount),
                         ("CGST", invoice.cgst_amount), ("SGST", invoice.sgst_amount),
                         ("UTGST", invoice.utgst_amount), ("IGST", invoice.igst_amount),
                         ("round off", getattr(invoice, "round_off_amount", 0)),
                         ("total", invoice.total_amount), ("paid", invoice.amount_paid)):
        if value or label in ("taxable value", "total"):
            console.print(f"  {label:>14}  {format_inr(value):>14}")
    for note in storage.get_adjustment_notes(invoice.id):
        console.print(f"  {note.kind.replace('_', ' ')} {note.note_number}: "
                      f"{format_inr(note.total_amount)} ({note.reason})")


#: the words Rule 46 has an export's or an SEZ supply's invoice carry (by tax type, and
#: whether zero-rated under a Letter of Undertaking)
ENDORSEMENTS = {
    ("export", True): "SUPPLY MEANT FOR EXPORT UNDER LETTER OF UNDERTAKING WITHOUT PAYMENT"
                      " OF INTEGRATED TAX",
    ("export", False): "SUPPLY MEANT FOR EXPORT ON PAYMENT OF INTEGRATED TAX",
    ("sez", True): "SUPPLY MEANT FOR SEZ UNIT OR SEZ DEVELOPER FOR AUTHORISED OPERATIONS"
                   " UNDER LETTER OF UNDERTAKING WITHOUT PAYMENT OF INTEGRATED TAX",
    ("sez", False): "SUPPLY MEANT FOR SEZ UNIT OR SEZ DEVELOPER FOR AUTHORISED OPERATIONS"
                    " ON PAYMENT OF INTEGRATED TAX",
}


def ist_day(moment: datetime | None) -> str:
    """A document's date: the day in India (documents are dated in IST)."""
    from akashone_es.gst import ist_date  # noqa: PLC0415

    return "-" if moment is None else ist_date(moment).isoformat()


def render_note(console: Console, note: Any, invoice: Any = None) -> None:
    """A credit or debit note: its number, the invoice it adjusts (and that invoice's date,
    Rule 53(1A)), the reason and its tax (as plain text, never markup)."""
    from rich.text import Text  # noqa: PLC0415

    from akashone_es.money import format_inr  # noqa: PLC0415

    of = (f" of {ist_day(invoice.issued_at)}" if invoice is not None
          and invoice.issued_at else "")
    console.print(Text.assemble(
        (f"{note.kind.replace('_', ' ').upper()} {note.note_number}", "bold"),
        f"  for invoice {note.invoice_number}{of}  FY {note.fy}"))
    console.print(Text(f"dated {ist_day(note.issued_at)} (IST)  reason: {note.reason}"))
    for label, value in (("taxable value", note.taxable_amount), ("CGST", note.cgst_amount),
                         ("SGST", note.sgst_amount), ("UTGST", note.utgst_amount),
                         ("IGST", note.igst_amount), ("total", note.total_amount)):
        if value or label in ("taxable value", "total"):
            console.print(f"  {label:>14}  {format_inr(value):>14}")


def invoice(ctx: typer.Context,
            number: Annotated[str, typer.Argument(
                help="invoice number, credit/debit note number, or invoice id")]) -> None:
    """Show one invoice with its lines, tax and notes (or a note and its invoice)."""
    if not number.strip():
        raise typer.BadParameter("an invoice or note number, or an invoice id",
                                 param_hint="'NUMBER'")
    state: State = ctx.obj
    with state.storage("invoice") as storage:
        found = storage.get_invoice_by_number(number)
        if found is None:
            notes = storage.get_adjustment_notes_by_number(number)
            for note in notes:
                adjusted = storage.get_invoice(note.invoice_id)
                render_note(state.console, note, adjusted)
                if adjusted is not None:
                    state.console.print()
                    render_invoice(state.console, storage, adjusted)
            if notes:
                return
        if found is None:
            try:
                found = storage.get_invoice(number)
            except ValidationError:  # not a UUID either: reported as not found below
                found = None
        if found is None:
            fail(f"no invoice {number} (nor a credit or debit note with that number)")
        render_invoice(state.console, storage, found)


def billing_story(storage: Storage, console: Console, org_id: Any, actor_id: Any,
                  run: int) -> None:
    """Usage -> invoice with GST -> payment (a callback delivered twice) -> credit note."""
    say = console.print
    if not storage.settings.supplier_gstin:
        say("set AKASHONE_SUPPLIER_GSTIN (the GSTIN invoices are issued from) to see the "
            "billing story", style="yellow")
        return
    with storage.acting_as(actor_id=actor_id, organization_id=org_id, ip="203.0.113.7",
                           user_agent="akashone-demo"):
        customer = storage.create_user({
            "username": f"meera{run}", "email": f"accounts{run}@meeratech.in",
            "password": "customer-secret", "gst_number": "29AAGCG6253J1Z8",
            "organization_id": org_id})
        storage.create_billing_address({
            "user_id": customer.id, "address_line1": "12 Residency Road", "city": "Bengaluru",
            "state_code": "29", "postal_code": "560025", "gst_number": "29AAGCG6253J1Z8"})
    # the customer's terms, metering, invoicing and the gateway's callbacks are the
    # platform's (the supplier's), done for this tenant
    with storage.acting_as(system="customer terms", organization_id=org_id):
        storage.update_user(customer.id, {"default_discount_percentage": 5})
    with storage.acting_as(system="metering", organization_id=org_id):
        for kind, resource, quantity in (("compute", "vm-web-1", "720"),
                                         ("compute", "vm-db-1", "310.5"),
                                         ("block_storage", "vol-data-1", "72000"),
                                         ("bandwidth", "egress", "12.75")):
            storage.create_usage_record({
                "user_id": customer.id, "resource_type": kind, "resource_id": resource,
                "resource_name": resource, "metric_type": "runtime",
                "quantity": Decimal(quantity), "period_start": PERIOD[0],
                "period_end": PERIOD[1]})
    say(f"metered October usage for {customer.username} (Karnataka, GSTIN 29AAGCG6253J1Z8)")
    coupon_code = f"LAUNCH{run}"
    storage.create_discount_coupon({"code": coupon_code, "name": "Launch offer",
                                    "discount_type": "percentage", "discount_value": 10,
                                    "max_uses": 100})
    with storage.acting_as(system="billing run", organization_id=org_id):
        issued = storage.generate_invoice({"user_id": customer.id, "period_start": PERIOD[0],
                                           "period_end": PERIOD[1],
                                           "coupon_code": coupon_code})
        say(f"issued {issued.invoice_number}: coupon {coupon_code} and the customer's 5% "
            f"discount before tax, {(issued.tax_type or '-').replace('_', '-')} supply: IGST")
    with storage.acting_as(system="razorpay callback", organization_id=org_id):
        first = storage.create_payment_transaction({
            "invoice_id": issued.id, "gateway": "razorpay",
            "gateway_transaction_id": f"pay_demo_{run}_1", "amount": issued.total_amount // 2,
            "status": "success"})
        for _ in range(2):  # the gateway retries its callback: one effect
            storage.create_payment_transaction({
                "invoice_id": issued.id, "gateway": "razorpay",
                "gateway_transaction_id": f"pay_demo_{run}_2",
                "amount": issued.total_amount - first.amount, "status": "success"})
        say("payments: half, then the rest (its callback delivered twice, applied once)")
    with storage.acting_as(system="SLA credit", organization_id=org_id):
        storage.issue_credit_note(issued.id, 10_000, "SLA credit: 2 h outage on vm-web-1")
        say("credit note for an SLA credit of ₹100.00 plus its tax")
        final = storage.get_invoice(issued.id)
        if final is not None:
            render_invoice(console, storage, final)
