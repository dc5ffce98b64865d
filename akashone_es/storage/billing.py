"""Billing on the storage facade: the billing mixins composed into one."""

from __future__ import annotations

from akashone_es.storage.billing_base import retrying
from akashone_es.storage.payments import PaymentStorage
from akashone_es.storage.usage import UsageStorage


class BillingStorage(UsageStorage, PaymentStorage):
    """The IStorage billing groups: billing addresses, invoices, invoice lines, usage
    records, payment methods, payment transactions and tax calculations."""


__all__ = ["BillingStorage", "retrying"]
