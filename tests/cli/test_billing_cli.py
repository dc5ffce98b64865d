"""The billing side of the CLI: the demo's billing story and ``akashone-es invoice``."""

from __future__ import annotations

import subprocess

from tests.cli.conftest import ENTRY_POINT, Query, cli_env


def run(dsn: str, *args: str, supplier: str | None = "27AAPFU0939F1ZV"
        ) -> subprocess.CompletedProcess[str]:
    env = cli_env(dsn)
    env.pop("AKASHONE_SUPPLIER_GSTIN", None)
    if supplier:
        env["AKASHONE_SUPPLIER_GSTIN"] = supplier
    return subprocess.run([str(ENTRY_POINT), *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


class TestDemoBillingStory:
    def test_demo_issues_pays_credits_and_prints_the_invoice(self, dsn: str,
                                                             query: Query) -> None:
        """With a supplier GSTIN configured the demo ends with a paid, credited invoice."""
        result = run(dsn, "demo")
        assert result.returncode == 0, result.stderr
        assert "TAX INVOICE INV/" in result.stdout
        assert "credit note CN/" in result.stdout
        rows = query("SELECT status, total_amount = amount_paid, igst_amount > 0,"
                     " cgst_amount > 0 FROM invoices ORDER BY invoice_number")
        # the billing story's inter-state invoice, paid; the cloud story's, intra-state
        assert [("paid", True, True, False), ("issued", False, False, True)] == rows
        assert [(1,)] == query("SELECT count(*) FROM adjustment_notes")

    def test_demo_meters_yesterdays_vm_and_volume_into_an_invoice(
            self, dsn: str, query: Query) -> None:
        """The cloud story: 8.4 VM-hours and 1,475 GB-hours, metered and invoiced."""
        assert run(dsn, "demo").returncode == 0
        lines = query("SELECT l.resource_type, l.quantity, l.amount FROM invoice_line_items l"
                      " JOIN invoices i ON i.id = l.invoice_id WHERE i.invoice_number ="
                      " 'INV/2627/000002' ORDER BY l.resource_type")
        assert [(t, float(q), a) for t, q, a in lines] == [
            ("block_storage", 1475.0, 1475), ("compute", 8.4, 4200)]

    def test_demo_without_a_supplier_gstin_skips_billing_and_says_why(self, dsn: str,
                                                                      query: Query) -> None:
        """No supplier GSTIN: identity story only, and a message naming the setting."""
        result = run(dsn, "demo", supplier=None)
        assert result.returncode == 0, result.stderr
        assert "AKASHONE_SUPPLIER_GSTIN" in result.stdout
        assert [(0,)] == query("SELECT count(*) FROM invoices")


class TestInvoiceCommand:
    def test_invoice_shows_lines_and_totals_by_number_in_any_case(self, dsn: str,
                                                                   query: Query) -> None:
        """``invoice inv/...`` finds the invoice case-insensitively and prints its total."""
        assert run(dsn, "demo").returncode == 0
        number, total = query("SELECT invoice_number, total_amount FROM invoices")[0]
        result = run(dsn, "invoice", str(number).lower(), supplier=None)
        assert result.returncode == 0, result.stderr
        rupees = f"{total // 100:,}.{total % 100:02d}"
        assert f"TAX INVOICE {number}" in result.stdout
        assert rupees.rsplit(",", maxsplit=1)[-1] in result.stdout

    def test_a_tax_invoice_and_its_note_carry_rule_46s_particulars(self, dsn: str,
                                                                    query: Query) -> None:
        """Date of issue and due date (in India), the recipient's name and address as the
        invoice was drafted; a note names its date and its invoice's (Rule 53(1A))."""
        assert run(dsn, "demo").returncode == 0
        [(number, issued, due)] = query(
            "SELECT invoice_number, (issued_at AT TIME ZONE 'Asia/Kolkata')::date::text,"
            " (due_date AT TIME ZONE 'Asia/Kolkata')::date::text FROM invoices"
            " WHERE invoice_number LIKE 'INV/%%000001'")
        shown = run(dsn, "invoice", str(number), supplier=None)
        assert shown.returncode == 0, shown.stderr
        assert f"dated {issued} (IST)  due {due}" in shown.stdout
        assert "recipient meera" in shown.stdout
        assert "Bengaluru, 560025, Karnataka, India" in shown.stdout
        [(note,)] = query("SELECT note_number FROM adjustment_notes")
        noted = run(dsn, "invoice", str(note), supplier=None)
        assert noted.returncode == 0, noted.stderr
        assert f"for invoice {number} of {issued}" in noted.stdout
        assert "(IST)  reason: SLA credit" in noted.stdout

    def test_unknown_invoice_exits_1_naming_it(self, dsn: str) -> None:
        """An unknown number is an error that names it."""
        assert run(dsn, "init", supplier=None).returncode == 0
        result = run(dsn, "invoice", "INV/9999/000001", supplier=None)
        assert result.returncode == 1
        assert "no invoice INV/9999/000001" in result.stderr
