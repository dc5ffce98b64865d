"""Break each claim of docs/architecture.md in a scratch copy; the tests that defend it must fail.

Each mutation is an exact search/replace in one file (a search text that is no longer found
fails loudly, so the list stays current as the code changes) and names the tests that defend
the claim; only those run. Prints a table and exits 1 if any mutation survives.

    scripts/mutations            # every mutation
    scripts/mutations -k lock    # the mutations whose name contains "lock"
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"
CLAIMS = "tests/integration/test_claims.py"
RACES = "tests/integration/test_billing_concurrency.py"
FAULTS = "tests/integration/test_rebuild_and_faults.py"
RESOURCES = "tests/integration/test_resources.py"


@dataclass(frozen=True)
class Mutation:
    name: str
    claim: str
    path: str
    #: (search, replace) pairs applied in order; each search must occur exactly once
    edits: tuple[tuple[str, str], ...]
    tests: tuple[str, ...]


REPLICA = "tests/integration/test_replica_reads.py"
MUTATIONS = [
    Mutation("tenant-sets-billed-fields", "what metering bills is the platform's to set",
             "akashone_es/storage/resources.py",
             (("        if self._tenant_acting():\n            given = {",
               "        if False:\n            given = {"),),
             ("tests/integration/test_tenancy_review.py::TestWhatIsBilledIsThePlatforms",)),
    Mutation("invoice-ahead-of-meter", "an invoice waits for the meter to cover its period",
             "akashone_es/storage/metering.py",
             (("if self._visible_user(request.user_id) is not None:", "if False:"),),
             ("tests/integration/test_metering.py::TestVirtualMachines::"
              "test_a_period_is_invoiced_once_it_is_metered",)),
    Mutation("stale-report-applied", "a report older than one recorded changes nothing",
             "akashone_es/storage/resources.py",
             (("if latest is not None and reported_at < latest:", "if False:"),),
             ("tests/integration/test_cloud_behaviour.py::TestVirtualMachines::"
              "test_a_report_older_than_one_recorded_changes_nothing",)),
    Mutation("segment-lost-at-one-moment", "two changes at one moment leave one open segment",
             "projections/resources.py",
             (('" ON CONFLICT (resource_id, metric, started_at) DO UPDATE SET ended_at = NULL,"',
               '" ON CONFLICT (resource_id, metric, started_at) DO NOTHING --"'),),
             ("tests/integration/test_metering.py::TestOtherKinds::"
              "test_two_changes_at_one_moment_keep_billing",)),
    Mutation("payment-balance-stale", "a payment is refused above the balance its save is made on",
             "akashone_es/storage/payments.py",
             (("if payment.amount > balance and aggregate.status in",
               "if success and False and aggregate.status in"),),
             (f"{RACES}::TestPaymentCallbackConcurrently::"
              "test_two_payers_of_most_of_the_balance_never_overpay_it",)),
    Mutation("events-updatable", "the events table is append-only in the database",
             "akashone_es/persistence/database.py",
             (("BEFORE UPDATE OR DELETE ON {table}", "BEFORE DELETE ON {table}"),),
             (f"{CLAIMS}::TestEventLogIsAppendOnly",)),
    Mutation("upcast-lost", "old User.Registered payloads are upcast when read",
             "akashone_es/domain/identity.py",
             (('state["status"] = "active"', 'state["status"] = "suspended"'),),
             ("tests/unit/test_mapper.py",)),
    Mutation("rebuild-skips-tail", "rebuild applies the tail under the lock, then swaps",
             "projections/rebuild.py",
             (("rows, _ = reader.read_rows(conn, position, final,",
               "rows, _ = reader.read_rows(conn, final, final,"),),
             (f"{CLAIMS}::TestRebuildWhileWriting",)),
    Mutation("replay-loses-one-per-batch", "replay and catch-up read the log in batches",
             "projections/log.py",
             (("reached = Key(rows[-1][5], rows[-1][0]) if len(rows) == limit else upto",
               "reached = Key(rows[-1][5], rows[-1][0] + 1) if len(rows) == limit else upto"),),
             (f"{CLAIMS}::TestBatchBoundaries",)),
    Mutation("catch-up-without-row-lock", "catch-up holds the checkpoint row FOR UPDATE",
             "projections/engine.py",
             (('"SELECT transaction_id, position FROM {table} WHERE name = %s FOR UPDATE"',
               '"SELECT transaction_id, position FROM {table} WHERE name = %s"'),),
             (f"{CLAIMS}::TestCatchUpLocksTheCheckpoint",)),
    Mutation("rows-before-checkpoint", "catch-up moves rows and checkpoint in one transaction",
             "projections/runner.py",
             (("            (CLEAR_FAILURE, (projection.name, *reached)),\n"
               "            (SET_CHECKPOINTS, (*reached, [projection.name]))])",
               "            (CLEAR_FAILURE, (projection.name, *reached))])"),
              ("    if failure is not None:\n        log.error(\"projection.stopped\"",
               "    conn.execute(SET_CHECKPOINTS, (*reached, [projection.name]))\n"
               "    if failure is not None:\n        log.error(\"projection.stopped\"")),
             (f"{CLAIMS}::TestCatchUpIsAtomic",)),
    Mutation("follower-stops-following", "the runner polls the head and follows it",
             "projections/runner.py",
             (("                last = head(work)\n",
               "                last = seen if seen is not None else head(work)\n"),),
             ("tests/integration/test_rebuild_and_faults.py::TestOneActiveRunner",)),
    Mutation("two-active-runners", "one active runner per projection (advisory lock)",
             "projections/runner.py",
             (('"SELECT pg_try_advisory_lock(hashtext(%s))"',
               '"SELECT pg_try_advisory_lock(hashtext(%s)) OR true"'),),
             (f"{FAULTS}::TestOneActiveRunner",)),
    Mutation("email-code-in-clear", "email verification codes are sealed",
             "akashone_es/storage/users.py",
             (('TOTP_FIELDS = ("two_factor_secret", "email_verification_code")',
               'TOTP_FIELDS = ("two_factor_secret",)'),),
             (f"{CLAIMS}::TestEmailVerificationCodeIsSealed",)),
    Mutation("totp-in-clear", "TOTP secrets are sealed",
             "akashone_es/storage/users.py",
             (('TOTP_FIELDS = ("two_factor_secret", "email_verification_code")',
               'TOTP_FIELDS = ("email_verification_code",)'),),
             ("tests/integration/test_tenancy_and_rules.py::TestSecrets::"
              "test_totp_secret_is_encrypted_in_the_log_and_the_table",)),
    Mutation("history-shows-secrets", "history hides every secret-bearing field",
             "akashone_es/secrets.py",
             (('"password", "password_hash", "token_hash", "two_factor_secret",',
               '"password", "password_hash",'),),
             ("tests/cli/test_history_secrets.py",)),
    Mutation("token-in-clear", "invitation tokens are stored as SHA-256",
             "akashone_es/storage/teams.py",
             (("token_hash=_token_hash(token),", "token_hash=token,"),
              ("MEMBER_BY_TOKEN, (_token_hash(accept.token),)",
               "MEMBER_BY_TOKEN, (accept.token,)")),
             ("tests/integration/test_identity_storage.py::TestTeamMembers::"
              "test_invitation_token_is_not_stored_in_clear",)),
    Mutation("tenant-sees-everything", "a tenant user sees only its organization's records",
             "akashone_es/storage/base.py",
             (("        if tenant is None:\n            return True",
               "        if True:\n            return True"),),
             ("tests/integration/test_tenancy_and_rules.py",)),
    Mutation("verify-ignores-content", "verify compares every table's rows and checksum",
             "projections/rebuild.py",
             (("return self.problem is None and self.live == self.replayed",
               "return self.problem is None"),),
             (f"{CLAIMS}::TestVerify",)),
    Mutation("tax-rounds-down", "tax and discounts round half-up, in integer paise",
             "akashone_es/money.py",
             (("(abs(amount_paise) * rate_bp + BASIS_POINTS // 2) // BASIS_POINTS",
               "(abs(amount_paise) * rate_bp) // BASIS_POINTS"),),
             ("tests/unit/test_money_and_inputs.py", "tests/unit/test_gst_tax.py")),
    Mutation("gateway-id-not-unique", "a gateway callback is applied once",
             "projections/billing_tables.py",
             (("CREATE UNIQUE INDEX IF NOT EXISTS payment_transactions_payer_gateway_key",
               "CREATE INDEX IF NOT EXISTS payment_transactions_payer_gateway_key"),),
             (f"{RACES}::TestPaymentCallbackConcurrently",)),
    Mutation("old-billing-window", "usage belongs to the window its period ends in",
             "akashone_es/storage/usage.py",
             ((' AND period_end > %s AND period_end <= %s")',
               ' AND period_start >= %s AND period_end <= %s")'),),
             (f"{CLAIMS}::TestBillingWindow",)),
    Mutation("loads-ignore-snapshots", "loads start from the latest snapshot",
             "akashone_es/storage/base.py",
             (("            aggregate: Any = self.app.repository.get(aggregate_id)",
               "            self.app.repository.snapshot_store = None\n"
               "            aggregate: Any = self.app.repository.get(aggregate_id)"),),
             (f"{CLAIMS}::TestLoadsUseSnapshots",)),
    Mutation("coupon-saved-apart", "a redemption is saved with its invoice: max_uses holds",
             "akashone_es/storage/usage.py",
             (('row = self._save_returning(bm.Invoice, ("invoices", invoice.id), *aggregates)\n',
               'coupons = [a for a in aggregates if type(a).__name__ == "DiscountCoupon"]\n'
               '                row = self._save_returning(bm.Invoice, ("invoices", invoice.id),'
               ' *[a for a in aggregates if a not in coupons])\n'
               "                self._save(*coupons)\n"),),
             (f"{RACES}::TestCouponRedemptionConcurrently",)),
    Mutation("followers-read-past-the-horizon", "followers never pass an event that commits"
             " later", "projections/positions.py",
             (('" WHERE transaction_id < public.akashone_horizon()" + _LAST',
               '" WHERE transaction_id < public.akashone_horizon() + 1000000" + _LAST'),),
             ("tests/integration/test_parallel_writers.py",)),
    Mutation("restore-not-rebased", "after a restore, new events read after the old ones",
             "akashone_es/persistence/database.py",
             (("    row = conn.execute(NEXT_XACT).fetchone()\n    conn.commit()\n",
               "    return None\n"),),
             ("tests/integration/test_backup_restore.py",
              "tests/integration/test_parallel_writers.py::"
              "test_after_a_restore_new_events_continue_above_the_logs_transaction_ids")),
    Mutation("reads-never-on-the-standby", "query methods read from the hot standby",
             "akashone_es/persistence/replica.py",
             (("    return state is not None and state.read\n", "    return False\n"),),
             (REPLICA,)),
    Mutation("standby-reads-not-own-writes", "a session reads its own writes on a standby",
             "akashone_es/storage/base.py",
             (("            self._standby.wrote(self._session())\n",
               "            pass\n"),),
             (REPLICA,)),
    Mutation("standby-waits-for-unflushed-wal", "a session waits for its own commit only",
             "akashone_es/persistence/replica.py",
             (("COMMITTED = (\"SELECT CASE", "COMMITTED = (\"SELECT pg_current_wal_insert_lsn()"
               " - '0/0'::pg_lsn AS lsn\")\n_UNUSED = (\"SELECT CASE"),),
             (REPLICA,)),
    Mutation("commands-read-the-standby", "a command's own reads go to the primary",
             "akashone_es/storage/policy.py",
             (("            with replica.call(read, self._after_write):",
               "            with replica.call(True, self._after_write):"),),
             (REPLICA,)),
    Mutation("usage-billed-twice", "the database refuses a second bill of a usage record",
             "projections/billing_tables.py",
             (('" AND NEW.invoice_id IS DISTINCT FROM OLD.invoice_id)"',
               '" AND false)"'),),
             (f"{RACES}::TestGenerateInvoiceConcurrently::"
              "test_a_generation_that_read_billed_usage_is_refused_by_the_database",)),
    Mutation("usage-not-reread-on-retry", "racing generations bill each usage record once",
             "akashone_es/storage/usage.py",
             (("        def attempt() -> bm.Invoice:\n            # every read",
               "        first: dict = {}  # the usage read by the first attempt, kept\n\n"
               "        def attempt() -> bm.Invoice:\n            # every read"),
              ("            usage = billable([UnbilledTotal(*row) for row in totals],\n"
               "                             lambda: self._unbilled(window))",
               "            usage = first.setdefault(\"usage\", billable(\n"
               "                [UnbilledTotal(*row) for row in totals],\n"
               "                lambda: self._unbilled(window)))")),
             (f"{RACES}::TestGenerateInvoiceConcurrently",)),
    Mutation("series-cache-trusted", "processes generating at once number without gap or"
             " duplicate", "akashone_es/storage/invoices.py",
             (("            if series is None or series.version != version:",
               "            if series is None:"),),
             (f"{RACES}::TestGenerateInvoiceConcurrently::"
              "test_processes_generating_for_their_own_customers_number_without_gap_or_"
              "duplicate",
              # the race catches it only when the log's version check runs out of retries
              f"{RACES}::TestGenerateInvoiceConcurrently::"
              "test_a_series_another_storage_numbered_is_read_again")),
    Mutation("issued-at-once-row-differs", "an invoice drafted and issued in one save has the"
             " rows a replay writes", "projections/billing.py",
             (("draft.due_date, draft.currency, draft.notes, draft.timestamp,",
               "draft.due_date, draft.currency, draft.notes, e.timestamp,"),),
             ("tests/integration/test_billing_storage.py::TestGenerateInvoice::"
              "test_lines_of_a_draft_issued_in_one_save_are_the_issued_ones_as_a_replay_has_"
              "them",)),
    Mutation("metadata-not-stamped", "every event carries the acting context",
             "akashone_es/application.py",
             (('update={"metadata": meta})', 'update={"metadata": {}})'),),
             ("tests/integration/test_invoice_lifecycle.py::TestCancel::"
              "test_cancelling_keeps_the_number_and_records_the_actor",)),
    Mutation("username-not-unique", "unique indexes decide uniqueness under concurrency",
             "projections/identity.py",
             (("CREATE UNIQUE INDEX IF NOT EXISTS users_username_norm_key",
               "CREATE INDEX IF NOT EXISTS users_username_norm_key"),),
             (f"{FAULTS}::TestConcurrentRegistration",)),
    Mutation("no-context-needed", "a call without an acting context is refused",
             "akashone_es/storage/policy.py",
             (("        ctx = context.current()\n",
               "        ctx = context.current_or_none() or context.ActingContext(\n"
               "            actor_kind=\"system\", reason=\"mutant\")\n"),),
             ("tests/integration/test_access_matrix.py::TestNoActor",)),
    Mutation("platform-only-open", "platform-only methods refuse tenants",
             "akashone_es/storage/policy.py",
             (("if access in PLATFORM_ONLY and not ctx.is_platform_actor:",
               "if False:"),),
             ("tests/integration/test_access_matrix.py::TestTenants",)),
    Mutation("tenant-names-another-org", "a tenant user naming another organization is refused",
             "akashone_es/storage/tenancy.py",
             (("    if org is not None and org != own:", "    if False:"),),
             ("tests/integration/test_access_matrix.py::TestActingContexts",)),
    Mutation("platform-roles-writable", "tenants cannot change roles shared by every tenant",
             "akashone_es/storage/access.py",
             (("if role.organization_id is None and not context.current().is_platform:",
               "if False:"),),
             ("tests/integration/test_tenancy_review.py::TestPlatformRoles",)),
    Mutation("super-admin-changeable", "tenants neither see nor change a super admin's account",
             "akashone_es/storage/users.py",
             (('if account_type == "super_admin" and self._tenant_acting():\n'
               "            actor = ", "if False:\n            actor = "),),
             ("tests/integration/test_tenancy_review.py::TestSuperAdminInsideATenant",)),
    Mutation("forged-snapshot-loaded", "loading ignores a snapshot without a valid seal",
             "akashone_es/persistence/snapshot_seal.py",
             (("                opened = unseal(self.key, stored)\n"
               "                if opened is None:",
               "                opened = unseal(self.key, stored) or StoredEvent(\n"
               "                    originator_id=stored.originator_id,\n"
               "                    originator_version=stored.originator_version,\n"
               "                    topic=stored.topic, state=stored.state)\n"
               "                if opened is None:"),),
             ("tests/integration/test_snapshot_guard.py",)),
    Mutation("context-ip-zone-id", "context fields are bounded (no zone id in ip)",
             "akashone_es/context.py",
             (('if len(value) > MAX_IP or "%" in value:', "if len(value) > MAX_IP:"),),
             ("tests/unit/test_context.py",)),
    Mutation("resource-read-crosses-tenants", "another organization's resource reads as absent",
             "akashone_es/storage/resources.py",
             (("        return row if row is not None and self._visible_row(row.organization_id,\n"
               "                                                            row.user_id) else None",
               "        return row"),),
             (f"{RESOURCES}::TestEveryKind::test_another_tenant_sees_and_changes_nothing",)),
    Mutation("meter-bills-twice", "metering records each resource-hour once (derived ids)",
             "akashone_es/storage/metering.py",
             (('return uuid5(_NS, f"{resource_id}:{metric}:{window.astimezone(UTC).isoformat()}")',
               "return uuid4()"), ("from uuid import NAMESPACE_URL, UUID, uuid5",
                                   "from uuid import NAMESPACE_URL, UUID, uuid4, uuid5")),
             ("tests/integration/test_metering.py::TestVirtualMachines",)),
    Mutation("lifecycle-unguarded", "a resource moves only as its lifecycle allows",
             "akashone_es/domain/resources.py",
             (("if to not in allowed.get(str(current), frozenset()):", "if False:"),),
             ("tests/integration/test_cloud_behaviour.py::TestVirtualMachines",)),
    Mutation("secret-in-clear", "secrets are sealed before they enter an event",
             "akashone_es/storage/resources.py",
             (("fields[name] = self.secrets.seal(value)", "fields[name] = value"),),
             ("tests/integration/test_resources.py::TestSshKeys",)),
    Mutation("seal-skips-state", "each seal covers the event's state (its data, metadata)",
             "akashone_es/audit.py",
             (("struct.pack(\">I\", len(state)),\n        state))).digest()",
               "struct.pack(\">I\", 0)))).digest()"),),
             ("tests/integration/test_audit_chain.py::TestTampering",)),
    Mutation("export-trusts-its-own-digest", "an export is checked against the auditor's digest",
             "akashone_es/export.py",
             (("    if reached.hex() != expected.hash:", "    if False:"),),
             ("tests/integration/test_audit_export.py::TestTamperedExports",)),
    Mutation("export-shows-hidden-leaf-unchecked", "a hidden event's leaf is chained, not trusted",
             "akashone_es/export.py",
             (("        previous = audit.chain(previous, leaf)\n        if previous.hex() != "
               "line.get(\"hash\"):",
               "        previous = bytes.fromhex(line[\"hash\"])\n        if False:"),),
             ("tests/integration/test_audit_export.py::TestTamperedExports",)),
    Mutation("past-sees-the-future", "as_of reads only the events up to the moment",
             "akashone_es/storage/past.py",
             (("return [row for row in rows if row[2] < self.cuts.get(row[1], row[2] + 1)],"
               " reached", "return rows, reached"),),
             ("tests/integration/test_time_travel.py::TestTheIssueExamples",)),
    Mutation("ip-in-clear", "the IP and user agent in a user's event metadata are encrypted",
             "akashone_es/personal.py",
             (("    if isinstance(meta, dict) and whom is not None:\n        for name in "
               "METADATA_FIELDS:\n            value",
               "    if False:\n        for name in METADATA_FIELDS:\n            value"),),
             ("tests/integration/test_erasure.py::TestEncryptedInTheLog",)),
    Mutation("erasure-keeps-rows", "an erasure writes [erased] into the read tables",
             "projections/identity.py",
             (("            b.add(self.erase_users, (MARKER, MARKER, MARKER, MARKER, MARKER,"
               " people))\n", ""),),
             ("tests/integration/test_erasure.py::TestErasure",)),
    Mutation("snapshot-in-clear", "a user's snapshot carries its personal data encrypted",
             "akashone_es/personal.py",
             (("    _IDENTITY + \"User\": (\"state.username\", \"state.email\", "
               "\"state.gst_number\"),\n", ""),),
             ("tests/integration/test_erasure.py::TestErasure::test_snapshots_show_no_trace",)),
    Mutation("named-resource-deleted", "a resource other resources name is not deleted",
             "akashone_es/storage/resources.py",
             (("            self._refuse_if_named(kind, current.id)\n", ""),),
             ("tests/integration/test_resource_rules.py::TestNatGateways",)),
    Mutation("bulk-copies-floats", "a replay copies only values a COPY stores as the insert",
             "projections/bulk.py",
             (('"numeric": frozenset({int, Decimal, str})',
               '"numeric": frozenset({int, Decimal, str, float})'),),
             ("tests/integration/test_bulk_replay.py",)),
    Mutation("runner-chases-the-head", "a runner asked to stop returns at its next batch",
             "projections/runner.py",
             (("        if stop():\n            return position\n", ""),),
             ("tests/integration/test_runner_stop.py",)),
    Mutation("bulk-no-fallback", "a COPY refused is sent again statement by statement",
             "projections/apply.py",
             (("if (bulk and _execute(conn, batch, bulk=True)) or _execute(conn, batch):",
               "if _execute(conn, batch, bulk=bulk):"),),
             ("tests/integration/test_bulk_replay.py",)),
    Mutation("bulk-save-no-fallback", "a large save's COPY refused is sent again one by one",
             "projections/apply.py",
             (("    if not (bulk and _execute(conn, batch, bulk=True)):\n"
               "        _must_execute(conn, batch)",
               "    _must_execute(conn, batch, bulk=bulk)"),),
             ("tests/integration/test_bulk_save.py",)),
    Mutation("import-refused-one-by-one", "an import finds a refused record by halving",
             "akashone_es/legacy/importer.py",
             (("                half = len(aggregates) // 2", "                half = 1"),),
             ("tests/integration/test_legacy_import.py::TestImport::"
              "test_a_refused_batch_is_halved_not_saved_one_by_one",)),
    Mutation("read-ahead-crosses-tenants", "rows read ahead are seen as a read sees them",
             "akashone_es/storage/resources.py",
             (("            return self._seen(known[(kind.name, rid)])",
               "            return known[(kind.name, rid)]"),),
             (f"{RESOURCES}::test_rows_read_ahead_are_seen_as_a_read_sees_them",)),
    Mutation("usage-index-holds-billed", "no index of usage_records holds what a bill sets",
             "projections/billing_tables.py",
             ((' ON {table} (user_id, period_end)"',
               ' ON {table} (user_id, billed, period_end)"'),),
             (f"{RACES}::TestGenerateInvoiceConcurrently::test_no_index_holds_what_a_bill_sets",)),
    Mutation("usage-totals-past-bound", "every period can be invoiced: what does not fit one"
             " invoice is billed over several", "akashone_es/storage/usage.py",
             (("all(t.no_credit and round_half_up(t.total_cost) <= lim.LINE_AMOUNT_MAX",
               "all(t.no_credit or round_half_up(t.total_cost) <= lim.LINE_AMOUNT_MAX"),),
             ("tests/integration/test_bounded_input.py::TestUsageCannotOverflowAnInvoice",)),
    Mutation("usage-pages-full", "a bill's update of its records stays on their pages (HOT)",
             "projections/billing_tables.py", (("    fillfactor=50)", "    fillfactor=None)"),),
             (f"{RACES}::TestGenerateInvoiceConcurrently::test_a_bill_keeps_each_record_on_its_page",)),
    Mutation("erase-twice", "a person is erased once: a second erasure writes nothing",
             "akashone_es/storage/erasure.py",
             (("        if len(destroyed) == len(subjects):", "        if False:"),),
             ("tests/cli/test_markup_and_erase.py::TestEraseOnce::"
              "test_the_storage_refuses_with_a_conflict",)),
    Mutation("erase-race", "two erasures of one person at once: the database keeps one",
             "akashone_es/personal.py",
             (("    conn.execute(DESTROYED_ONCE_DDL)\n", ""),),
             ("tests/integration/test_erasure.py::TestErasedOnce",)),
    Mutation("exchange-swallows-errors", "a one-message save that the database refuses fails",
             "akashone_es/persistence/recorder.py",
             (("        if result.status == ExecStatus.FATAL_ERROR:",
               "        if False:"),),
             ("tests/integration/test_one_message.py",
              "tests/integration/test_identity_storage.py")),
    Mutation("cells-as-markup", "the CLI prints data as text, never as Rich markup",
             "akashone_es/cli/common.py",
             # both defences: cells as Text, and the consoles' markup off
             (("    return Text(str(value))", "    return str(value)  # type: ignore"),
              ("        self.console = Console(markup=False)",
               "        self.console = Console()")),
             ("tests/cli/test_markup_and_erase.py::TestShowPrintsDataLiterally",)),
    Mutation("storage-facade-eager", "a storage leaf module imports without the facade",
             "akashone_es/storage/__init__.py",
             (("from typing import TYPE_CHECKING, Any\n",
               "from typing import TYPE_CHECKING, Any\n\n"
               "from akashone_es.storage.facade import Storage  # noqa: F401\n"),),
             ("tests/unit/test_import_order.py",)),
    Mutation("moment-unbounded", "a date-time PostgreSQL stores but Python cannot read back is "
             "refused", "akashone_es/storage/limits.py",
             (("    return None if EARLIEST <= utc < LATEST else MOMENT_RULE", "    return None"),),
             ("tests/integration/test_moments.py",)),
    Mutation("platform-wide-narrowed", "work over every organization refuses a context "
             "narrowed to one", "akashone_es/storage/policy.py",
             (("        if access is Access.PLATFORM_WIDE and not ctx.is_platform:",
               "        if False:"),),
             ("tests/integration/test_tenancy_review.py::TestPlatformWideWork",)),
    Mutation("platform-action-in-actors-org", "a platform-wide action is not logged in the "
             "actor's own organization", "projections/activity.py",
             (("fallback_tenant, member = None, None", "fallback_tenant, member = None, actor"),),
             ("tests/integration/test_tenancy_review.py::TestPlatformActionsInTheActivityLog",)),
    Mutation("payment-method-unchecked", "a payment names only its customer's payment method",
             "akashone_es/storage/payments.py",
             (("if method is None or method.user_id != invoice.user_id or (\n"
               "                    method.status == \"removed\"):", "if False:"),),
             ("tests/integration/test_tenancy_review.py::TestPaymentMethods",)),
    Mutation("moved-with-billing", "a user with billing records stays in its organization",
             "akashone_es/storage/billing_base.py",
             (("        if owned:\n            raise ConflictError(f\"the user has",
               "        if False:\n            raise ConflictError(f\"the user has"),),
             ("tests/integration/test_tenancy_review.py::TestUserMoves",)),
    Mutation("super-admin-in-organization", "a super admin belongs to no organization",
             "akashone_es/storage/users.py",
             (('if account_type == "super_admin" and organization_id is not None:',
               "if False:"),),
             ("tests/integration/test_tenancy_review.py::TestSuperAdminsBelongToNoOrganization",)),
    Mutation("platform-suspension-lifted", "only the platform lifts a suspension it made",
             "akashone_es/storage/users.py",
             (("if aggregate.suspended_by_platform and self._tenant_acting():", "if False:"),),
             ("tests/integration/test_tenancy_review.py::TestPlatformSuspensions",)),
    Mutation("inviter-of-another-organization",
             "an invitation's inviter is of its organization (or a super admin)",
             "akashone_es/storage/teams.py",
             (("        if inviter.organization_id != invite.organization_id and \\\n",
               "        if False and \\\n"),),
             ("tests/integration/test_tenancy_review.py::TestInvitations",)),
    Mutation("imported-owner-outside", "an imported owner is a member of its organization",
             "akashone_es/legacy/importer.py",
             (('elif source in self.named and user.account_type != "super_admin":',
               "elif False:"),),
             ("tests/integration/test_legacy_import.py::TestOrganizations",)),
    Mutation("minted-organization-refused",
             "an organization id AkashOne minted for a reseller is imported",
             "akashone_es/legacy/importer.py",
             (("                if named in self.held:\n", "                if False:\n"),),
             ("tests/integration/test_legacy_import.py::TestOrganizations",)),
    Mutation("import-unstorable-text", "a record no column could keep is set aside first",
             "akashone_es/legacy/importer.py",
             (("        if problem is not None:\n            return Unstorable(",
               "        if False:\n            return Unstorable("),),
             ("tests/integration/test_import_fuzz.py::TestFieldsThatEscape",
              "tests/integration/test_import_fuzz.py::TestIds")),
    Mutation("import-id-replaces", "a record never replaces another this run made",
             "akashone_es/legacy/importer.py",
             (("        if created and aggregate.id in self.made and",
               "        if False and aggregate.id in self.made and"),),
             ("tests/integration/test_import_fuzz.py::TestIds",)),
    Mutation("notes-rounded-alone", "credit notes never reverse more tax than was charged",
             "akashone_es/domain/billing.py",
             (("            heads = {h: max(0, was[h] - done[h]) if full else\n"
               "                     max(0, min(owed[h] - done[h], was[h] - done[h]))"
               " for h in HEADS}", "            heads = tax.tax(share)"),),
             ("tests/integration/test_gst_review.py::TestCreditNotesReverseNoMoreTaxThanCharged",
              "tests/integration/test_gst_review.py::"
              "test_credit_notes_never_reverse_more_tax_than_charged")),
    Mutation("owed-ignores-notes", "what an invoice owes counts its credit and debit notes",
             "akashone_es/domain/billing.py",
             (("        return self.total + self.adjusted", "        return self.total"),),
             ("tests/integration/test_gst_review.py::TestWhatAnInvoiceOwes",)),
    Mutation("activity-ip-by-row-user", "an activity's IP goes with the person whose it is",
             "projections/activity.py",
             (('" WHERE ip_subject = ANY(%s::uuid[])", t="user_activities")',
               '" WHERE user_id = ANY(%s::uuid[])", t="user_activities")'),),
             ("tests/integration/test_erasure.py::TestErasure::"
              "test_an_actors_ip_on_anothers_activity_goes_with_the_actor",)),
    Mutation("sweep-ahead-of-calendar", "a retention sweep never destroys a key early",
             "akashone_es/storage/erasure.py",
             (("        if today > now:", "        if False:"),),
             ("tests/integration/test_erasure.py::TestRetention::"
              "test_a_sweep_is_never_ahead_of_the_calendar",)),
    Mutation("key-destroyed-unnoticed", "audit verify reports a key destroyed behind the log",
             "akashone_es/audit.py",
             (("    lost = unrecorded_erasures(conn)", "    lost: list[str] = []"),),
             ("tests/integration/test_erasure.py::TestErasedOnce::"
              "test_a_key_destroyed_behind_the_logs_back_fails_verify",)),
]


def scratch_copy() -> Path:
    """The tracked and untracked (not ignored) files of the tree, copied to a temp dir."""
    command = ["git", "ls-files", "-co", "--exclude-standard", "-z"]
    listed = subprocess.run(command, cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    target = Path(tempfile.mkdtemp(prefix="akashone-mutations-"))
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def apply(tree: Path, mutation: Mutation) -> str:
    """Apply ``mutation`` to ``tree``; returns the original text to restore."""
    path = tree / mutation.path
    original = text = path.read_text()
    for search, replace in mutation.edits:
        if text.count(search) != 1:
            sys.exit(f"mutation {mutation.name}: {search!r} occurs {text.count(search)} times"
                     f" in {mutation.path}; update scripts/mutations.py")
        text = text.replace(search, replace)
    path.write_text(text)
    return original


def caught(tree: Path, mutation: Mutation, *, show: bool = False) -> bool:
    """Run the defending tests on the mutated tree: True when they fail (``show``: print
    pytest's output when they do)."""
    env = {**os.environ, "PYTHONPATH": str(tree), "AKASHONE_LOG_LEVEL": "warning"}
    result = subprocess.run([str(PYTHON), "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                             *mutation.tests], cwd=tree, env=env, capture_output=True,
                            text=True, check=False)
    if result.returncode not in (0, 1) or (show and result.returncode):  # 2+: could not run
        print(result.stdout[-3000:], result.stderr[-3000:], file=sys.stderr)
        sys.exit(f"mutation {mutation.name}: pytest exited {result.returncode}")
    return result.returncode == 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only mutations whose name contains this")
    parser.add_argument("--baseline", action="store_true",
                        help="first check that the defending tests pass unmutated")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if args.k in m.name]
    tree = scratch_copy()
    check = subprocess.run([str(PYTHON), "-c", "import akashone_es; print(akashone_es.__file__)"],
                           cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                           capture_output=True, text=True, check=True).stdout
    if not check.startswith(str(tree)):
        sys.exit(f"the scratch copy is not the code under test: {check}")
    survived = []
    try:
        if args.baseline:
            for mutation in chosen:
                if caught(tree, Mutation("baseline", "", mutation.path, (), mutation.tests),
                          show=True):
                    sys.exit(f"{mutation.tests} fail without any mutation")
        print(f"{'mutation':<28} {'claim':<58} caught")
        for mutation in chosen:
            original = apply(tree, mutation)
            try:
                ok = caught(tree, mutation)
            finally:
                (tree / mutation.path).write_text(original)
            print(f"{mutation.name:<28} {mutation.claim:<58} {'yes' if ok else 'NO'}",
                  flush=True)
            if not ok:
                survived.append(mutation.name)
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    if survived:
        print(f"{len(survived)} mutation(s) survived: {', '.join(survived)}")
        return 1
    print(f"all {len(chosen)} mutations caught")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
