"""Billing read tables: their columns and DDL (owned by ``projections.billing``)."""

from __future__ import annotations

from typing import Any

from projections.engine import Table

ADDRESS_COLUMNS = ("address_line1", "address_line2", "city", "state", "state_code",
                   "postal_code", "country", "gst_number", "is_sez", "lut_number")
ADDRESS_DEFAULTS: dict[str, Any] = {"is_sez": False, "country": "India"}
METHOD_COLUMNS = ("gateway", "gateway_method_id", "type", "card_last4", "card_brand",
                  "card_exp_month", "card_exp_year", "upi_id", "status")
TRANSACTION_COLUMNS = ("payment_method_id", "gateway", "gateway_transaction_id",
                       "gateway_order_id", "amount", "currency", "status", "payment_method")
TAX_COLUMNS = ("supplier_state", "supplier_state_code", "customer_state",
               "customer_state_code", "tax_type", "taxable_amount", "cgst_rate", "sgst_rate",
               "utgst_rate", "igst_rate", "cgst_amount", "sgst_amount", "utgst_amount",
               "igst_amount", "total_tax_amount", "gst_rate", "hsn_sac_code", "calculated_at")
HSN_COLUMNS = ("service_type", "hsn_code", "sac_code", "description", "gst_rate", "is_active")
COUPON_COLUMNS = ("code", "name", "description", "discount_type", "discount_value",
                  "duration_type", "duration_months", "max_uses", "times_used",
                  "min_order_amount", "valid_from", "valid_until", "is_active", "created_by")
PLAN_COLUMNS = ("name", "description", "cpu", "memory", "storage", "bandwidth",
                "cloudstack_offering_id", "price", "is_active", "is_public", "organization_id",
                "sort_order")
INVOICE_TOTALS = ("subtotal_amount", "discount_amount", "taxable_amount", "cgst_amount",
                  "sgst_amount", "utgst_amount", "igst_amount", "round_off_amount",
                  "total_amount")
#: the invoice columns an issue sets (``BillingProjection._issued_values`` gives their values)
ISSUED_COLUMNS = ("invoice_number", "fy", "issued_at", "buyer_gstin", "supplier_gstin",
                  "supplier_state_code", "place_of_supply", "place_of_supply_code",
                  "tax_type", "zero_rated", "gst_rate", "hsn_code", "sac_code", "coupon_code",
                  "discount_percentage", *INVOICE_TOTALS, "updated_at")
EINVOICE_COLUMNS = ("einvoice_irn", "einvoice_ack_no", "einvoice_ack_date", "einvoice_qr_code",
                    "einvoice_enabled")
LINE_COLUMNS = ("resource_type", "resource_id", "resource_name", "description", "quantity",
                "unit", "unit_price", "amount", "discount_amount", "taxable_amount",
                "cgst_amount", "sgst_amount", "utgst_amount", "igst_amount", "sac_code",
                "usage_start", "usage_end")

BILLING_ADDRESSES = Table("billing_addresses", """
    id uuid PRIMARY KEY, user_id uuid NOT NULL, address_line1 text NOT NULL,
    address_line2 text, city text NOT NULL, state text NOT NULL, state_code text NOT NULL,
    postal_code text NOT NULL, country text NOT NULL DEFAULT 'India', gst_number text,
    is_sez boolean NOT NULL DEFAULT false, lut_number text,
    is_default boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL""",
    ["CREATE INDEX IF NOT EXISTS billing_addresses_user_idx ON {table} (user_id)",
     "CREATE UNIQUE INDEX IF NOT EXISTS billing_addresses_one_default"
     " ON {table} (user_id) WHERE is_default"])

INVOICES = Table("invoices", """
    id uuid PRIMARY KEY, invoice_number text, fy text, user_id uuid NOT NULL,
    organization_id uuid, billing_address_id uuid NOT NULL,
    billing_period_start timestamptz NOT NULL, billing_period_end timestamptz NOT NULL,
    subtotal_amount bigint NOT NULL DEFAULT 0, discount_amount bigint NOT NULL DEFAULT 0,
    taxable_amount bigint NOT NULL DEFAULT 0, cgst_amount bigint NOT NULL DEFAULT 0,
    sgst_amount bigint NOT NULL DEFAULT 0, utgst_amount bigint NOT NULL DEFAULT 0,
    igst_amount bigint NOT NULL DEFAULT 0, round_off_amount bigint NOT NULL DEFAULT 0,
    total_amount bigint NOT NULL DEFAULT 0, amount_paid bigint NOT NULL DEFAULT 0,
    tax_type text, gst_rate numeric(5,2) NOT NULL DEFAULT 18, hsn_code text, sac_code text,
    place_of_supply text, place_of_supply_code text, supplier_gstin text,
    supplier_state_code text, buyer_gstin text, zero_rated boolean NOT NULL DEFAULT false,
    coupon_code text, discount_percentage integer NOT NULL DEFAULT 0,
    einvoice_irn text, einvoice_ack_no text, einvoice_ack_date timestamptz,
    einvoice_qr_code text, einvoice_enabled boolean NOT NULL DEFAULT false,
    status text NOT NULL DEFAULT 'draft', issued_at timestamptz,
    due_date timestamptz NOT NULL, paid_at timestamptz, notes text,
    currency text NOT NULL DEFAULT 'INR', created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL""",
    # R7: unique per supplier GSTIN (each has its own series), case-insensitively; the
    # number carries the financial year, so it is unique per (GSTIN, FY, number) as well
    ["CREATE UNIQUE INDEX IF NOT EXISTS invoices_supplier_number_key"
     " ON {table} (supplier_gstin, upper(invoice_number))",
     "CREATE INDEX IF NOT EXISTS invoices_user_idx ON {table} (user_id, created_at DESC)"])

INVOICE_LINE_ITEMS = Table("invoice_line_items", """
    id uuid PRIMARY KEY, invoice_id uuid NOT NULL, line_number integer NOT NULL,
    resource_type text NOT NULL, resource_id varchar, resource_name text NOT NULL,
    description text NOT NULL, quantity numeric NOT NULL, unit text NOT NULL,
    unit_price numeric NOT NULL, amount bigint NOT NULL,
    discount_amount bigint NOT NULL DEFAULT 0, taxable_amount bigint NOT NULL DEFAULT 0,
    cgst_amount bigint NOT NULL DEFAULT 0, sgst_amount bigint NOT NULL DEFAULT 0,
    utgst_amount bigint NOT NULL DEFAULT 0, igst_amount bigint NOT NULL DEFAULT 0,
    sac_code text, usage_start timestamptz, usage_end timestamptz,
    created_at timestamptz NOT NULL""",
    ["CREATE INDEX IF NOT EXISTS invoice_line_items_invoice_idx"
     " ON {table} (invoice_id, line_number)"])

ADJUSTMENT_NOTES = Table("adjustment_notes", """
    id uuid PRIMARY KEY, kind text NOT NULL, note_number text NOT NULL, fy text NOT NULL,
    invoice_id uuid NOT NULL, invoice_number text NOT NULL, user_id uuid NOT NULL,
    organization_id uuid, reason text NOT NULL, tax_type text NOT NULL,
    taxable_amount bigint NOT NULL, cgst_amount bigint NOT NULL, sgst_amount bigint NOT NULL,
    utgst_amount bigint NOT NULL, igst_amount bigint NOT NULL, total_amount bigint NOT NULL,
    lines jsonb NOT NULL, issued_at timestamptz NOT NULL, supplier_gstin text""",
    # a table made before the column existed gets it here (see BillingProjection.ddl)
    ["ALTER TABLE {table} ADD COLUMN IF NOT EXISTS supplier_gstin text",
     "CREATE UNIQUE INDEX IF NOT EXISTS adjustment_notes_supplier_number_key"
     " ON {table} (supplier_gstin, upper(note_number))",
     "CREATE INDEX IF NOT EXISTS adjustment_notes_invoice_idx ON {table} (invoice_id)"])

#: A usage record is billed once: once its ``invoice_id`` is set, the trigger refuses, in the
#: statement that tries it, to set another (``unique_violation``, constraint
#: ``usage_records_billed_once``). Two racing invoices cannot both bill a record: the second
#: waits for the first's row lock, then finds the row billed and fails. Setting the same
#: invoice again (a replay) passes; the condition is the trigger's ``WHEN``, evaluated without
#: calling the function, so a bill that is not a second one costs no function call.
BILLED_ONCE_FUNCTION = "akashone_billed_once"
USAGE_RECORDS = Table("usage_records", """
    id uuid PRIMARY KEY, user_id uuid NOT NULL, organization_id uuid,
    resource_type text NOT NULL, resource_id varchar NOT NULL, resource_name text NOT NULL,
    metric_type text NOT NULL, quantity numeric NOT NULL, unit text NOT NULL,
    unit_price numeric NOT NULL, total_cost numeric NOT NULL,
    recorded_at timestamptz NOT NULL, period_start timestamptz NOT NULL,
    period_end timestamptz NOT NULL, invoice_id uuid, billed boolean NOT NULL DEFAULT false,
    metadata jsonb, created_at timestamptz NOT NULL""",
    # no index holds ``billed`` or ``invoice_id``, the two columns a bill sets: the update of
    # an invoice's 100 records can then be HOT (no index entry written), where with them
    # every record's new version went into every index (100 records of a 100k-row table:
    # 1.59 -> 1.16 ms for the update and its commit)
    ["CREATE INDEX IF NOT EXISTS usage_records_user_period_idx"
     " ON {table} (user_id, period_end)",
     # each resource's last metered hour (``meter`` starts from it, not from a segment's
     # start a year ago)
     "CREATE INDEX IF NOT EXISTS usage_records_resource_metric_idx"
     " ON {table} (resource_id, metric_type, period_end)",
     # created only when missing: CREATE TRIGGER locks the table against writers
     "DO $$ BEGIN"
     " IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = '{table}'::regclass"
     " AND tgname = 'usage_records_billed_once') THEN"
     " CREATE TRIGGER usage_records_billed_once BEFORE UPDATE OF invoice_id ON {table}"
     " FOR EACH ROW WHEN (OLD.invoice_id IS NOT NULL"
     " AND NEW.invoice_id IS DISTINCT FROM OLD.invoice_id)"
     " EXECUTE FUNCTION public." + BILLED_ONCE_FUNCTION + "();"
     " END IF; END $$"],
    # a record is written once and updated once, when billed: pages filled to half leave its
    # new version room on its own page, so the bill is HOT even where an invoice's records
    # were written together and fill their pages (100 records: 3.7 -> 2.5 ms for the update
    # and its commit, 9% -> 95% of updates HOT); after the bill the table is no larger than
    # with full pages, whose updates write each new version to a new page
    fillfactor=50)

#: the trigger's function, made by set-up (``storage.setup.create_schema``) before any table:
#: a replay into tables of its own (``as_of``, as the application's role) makes the trigger
#: too, which takes EXECUTE on the function (granted with the application's rights)
BILLED_ONCE_DDL = (
    "CREATE OR REPLACE FUNCTION public." + BILLED_ONCE_FUNCTION + "() RETURNS trigger"
    " LANGUAGE plpgsql SET search_path = pg_catalog AS $f$ BEGIN"
    " RAISE EXCEPTION USING ERRCODE = 'unique_violation',"
    " CONSTRAINT = 'usage_records_billed_once', TABLE = TG_TABLE_NAME,"
    " MESSAGE = format('usage record %s is already billed on invoice %s', OLD.id,"
    " OLD.invoice_id); END $f$;"
    " REVOKE ALL ON FUNCTION public." + BILLED_ONCE_FUNCTION + "() FROM PUBLIC")

#: tables of earlier versions, dropped when the schema is brought up to date: ``billed_usage``
#: held a guard row per billed record (the trigger above replaced it)
RETIRED_TABLES = ("billed_usage",)

PAYMENT_METHODS = Table("payment_methods", """
    id uuid PRIMARY KEY, user_id uuid NOT NULL, gateway text NOT NULL,
    gateway_method_id text, type text NOT NULL, card_last4 text, card_brand text,
    card_exp_month integer, card_exp_year integer, upi_id text,
    is_default boolean NOT NULL DEFAULT false, status text NOT NULL DEFAULT 'active',
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL""",
    ["CREATE INDEX IF NOT EXISTS payment_methods_user_idx ON {table} (user_id)",
     "CREATE UNIQUE INDEX IF NOT EXISTS payment_methods_one_default"
     " ON {table} (user_id) WHERE is_default"])

PAYMENT_TRANSACTIONS = Table("payment_transactions", """
    id uuid PRIMARY KEY, invoice_id uuid NOT NULL, user_id uuid NOT NULL,
    payment_method_id uuid, gateway text NOT NULL, gateway_transaction_id text,
    gateway_order_id text, amount bigint NOT NULL, currency text NOT NULL DEFAULT 'INR',
    status text NOT NULL DEFAULT 'pending', payment_method text, gateway_response jsonb,
    error_code text, error_message text, initiated_at timestamptz NOT NULL,
    completed_at timestamptz, refunded_at timestamptz, created_at timestamptz NOT NULL""",
    # a gateway id is unique per payer: a tenant reusing another tenant's id makes its own
    # record and learns nothing of the other (a global index answered "already exists")
    ["CREATE UNIQUE INDEX IF NOT EXISTS payment_transactions_payer_gateway_key"
     " ON {table} (user_id, gateway, gateway_transaction_id)",
     "CREATE INDEX IF NOT EXISTS payment_transactions_user_idx"
     " ON {table} (user_id, initiated_at DESC)"])

TAX_CALCULATIONS = Table("tax_calculations", """
    id uuid PRIMARY KEY, invoice_id uuid NOT NULL, user_id uuid NOT NULL,
    supplier_state text NOT NULL, supplier_state_code text NOT NULL,
    customer_state text NOT NULL, customer_state_code text NOT NULL, tax_type text NOT NULL,
    taxable_amount bigint NOT NULL, cgst_rate numeric(5,2) NOT NULL DEFAULT 0,
    sgst_rate numeric(5,2) NOT NULL DEFAULT 0, utgst_rate numeric(5,2) NOT NULL DEFAULT 0,
    igst_rate numeric(5,2) NOT NULL DEFAULT 0, cgst_amount bigint NOT NULL DEFAULT 0,
    sgst_amount bigint NOT NULL DEFAULT 0, utgst_amount bigint NOT NULL DEFAULT 0,
    igst_amount bigint NOT NULL DEFAULT 0, total_tax_amount bigint NOT NULL,
    gst_rate numeric(5,2) NOT NULL DEFAULT 18, hsn_sac_code text NOT NULL DEFAULT '998315',
    calculated_at timestamptz NOT NULL, created_at timestamptz NOT NULL""",
    ["CREATE INDEX IF NOT EXISTS tax_calculations_invoice_idx ON {table} (invoice_id)"])

FLAG_COLUMNS = ("key", "name", "description", "category", "enabled", "icon", "sort_order")
FEATURE_FLAGS = Table("feature_flags", """
    id uuid PRIMARY KEY, key text NOT NULL, name text NOT NULL, description text,
    category text NOT NULL, enabled boolean NOT NULL DEFAULT false, icon text,
    sort_order integer NOT NULL DEFAULT 0, created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL""",
    ["CREATE UNIQUE INDEX IF NOT EXISTS feature_flags_key_key ON {table} (key)"])

HSN_CODES = Table("hsn_codes", """
    id uuid PRIMARY KEY, service_type text NOT NULL, hsn_code text NOT NULL,
    sac_code text NOT NULL, description text NOT NULL, gst_rate numeric(5,2) NOT NULL DEFAULT 18,
    is_active boolean NOT NULL DEFAULT true, created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL""",
    ["CREATE UNIQUE INDEX IF NOT EXISTS hsn_codes_service_type_key ON {table} (service_type)"])

DISCOUNT_COUPONS = Table("discount_coupons", """
    id uuid PRIMARY KEY, code text NOT NULL, name text NOT NULL, description text,
    discount_type text NOT NULL, discount_value integer NOT NULL,
    duration_type text NOT NULL, duration_months integer, max_uses integer,
    times_used integer NOT NULL DEFAULT 0, min_order_amount bigint,
    valid_from timestamptz, valid_until timestamptz, is_active boolean NOT NULL DEFAULT true,
    created_by uuid, created_at timestamptz NOT NULL""",
    ["CREATE UNIQUE INDEX IF NOT EXISTS discount_coupons_code_key ON {table} (upper(code))"])

SERVICE_PLANS = Table("service_plans", """
    id uuid PRIMARY KEY, name text NOT NULL, description text, cpu integer NOT NULL,
    memory integer NOT NULL, storage integer NOT NULL, bandwidth integer,
    cloudstack_offering_id varchar, price integer NOT NULL DEFAULT 0,
    is_active boolean NOT NULL DEFAULT true, is_public boolean NOT NULL DEFAULT true,
    organization_id uuid, sort_order integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL""",
    ["CREATE INDEX IF NOT EXISTS service_plans_org_idx ON {table} (organization_id)"])


DOCUMENT_SERIES = Table("document_series", """
    id uuid PRIMARY KEY, supplier_gstin text NOT NULL, fy text NOT NULL, kind text NOT NULL,
    last_sequence bigint NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL""",
    ["CREATE UNIQUE INDEX IF NOT EXISTS document_series_key"
     " ON {table} (supplier_gstin, fy, kind)"])

#: Indexes of earlier versions, dropped when the schema is brought up to date: numbers were
#: unique across every supplier GSTIN, so a second GSTIN could not issue its own 000001;
#: usage records were indexed by what a bill sets (``USAGE_RECORDS``).
RETIRED_INDEXES = ("invoices_number_key", "adjustment_notes_number_key",
                   "payment_transactions_gateway_key", "usage_records_user_idx",
                   "usage_records_invoice_idx")
