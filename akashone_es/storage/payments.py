"""Payment transactions on the storage facade: idempotent callbacks, refunds."""


from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import sql

from akashone_es import context
from akashone_es.domain import billing as domain
from akashone_es.domain.base import Aggregate
from akashone_es.domain.payments import PaymentTransaction
from akashone_es.errors import (
    DuplicateError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from akashone_es.storage import billing_inputs as bi
from akashone_es.storage import inputs as i
from akashone_es.storage.billing_base import now, retrying
from akashone_es.storage.invoices import InvoiceStorage
from projections import billing_models as bm

Q = sql.SQL
TRANSACTIONS_OF = Q("SELECT * FROM payment_transactions WHERE user_id = %s"
                    " ORDER BY initiated_at DESC, id")
TRANSACTION = Q("SELECT * FROM payment_transactions WHERE id = %s")
TRANSACTION_BY_GATEWAY_ID = Q("SELECT * FROM payment_transactions"
                              " WHERE gateway_transaction_id = %s"
                              " AND (%s::text IS NULL OR gateway = %s)"
                              " ORDER BY initiated_at, id")
PAYERS_TRANSACTION = Q("SELECT * FROM payment_transactions WHERE user_id = %s AND gateway = %s"
                       " AND gateway_transaction_id = %s")


class PaymentStorage(InvoiceStorage):
    """The IStorage group payment transactions (5)."""

    # -- payment transactions (5) ---------------------------------------------------------
    def get_payment_transactions(self, user_id: UUID | str) -> list[bm.PaymentTransaction]:
        user = self.get_user(user_id)
        return self._all(bm.PaymentTransaction, TRANSACTIONS_OF, (user.id,)) if user else []

    def get_payment_transaction(self, transaction_id: UUID | str
                                ) -> bm.PaymentTransaction | None:
        return self._owned(self._one(bm.PaymentTransaction, TRANSACTION,
                                     (i.parse_id(transaction_id, "transaction_id"),)))

    def get_payment_transaction_by_gateway_id(self, gateway_transaction_id: str,
                                              gateway: str | None = None
                                              ) -> bm.PaymentTransaction | None:
        """By the gateway's own id (optionally of one gateway), among the payments the acting
        party may see: another tenant's payment with the same id is never found."""
        rows = self._all(bm.PaymentTransaction, TRANSACTION_BY_GATEWAY_ID,
                         (gateway_transaction_id, gateway, gateway))
        return next((row for row in rows if self._owned(row) is not None), None)

    def _payers_transaction(self, user_id: UUID, payment: bi.InsertPaymentTransaction
                            ) -> bm.PaymentTransaction | None:
        if not payment.gateway_transaction_id:
            return None
        return self._one(bm.PaymentTransaction, PAYERS_TRANSACTION,
                         (user_id, payment.gateway, payment.gateway_transaction_id))

    def create_payment_transaction(self, data: bi.InsertPaymentTransaction | dict[str, Any]
                                   ) -> bm.PaymentTransaction:
        """Record a payment. Idempotent per gateway transaction id: the same gateway callback
        twice returns the first record and has no second effect. A successful payment is
        applied to its invoice in the same transaction (paid when fully paid)."""
        payment = i.parse(bi.InsertPaymentTransaction, data)
        invoice = self.get_invoice(payment.invoice_id)
        if invoice is None:
            raise NotFoundError("invoice", payment.invoice_id, "invoice_id")
        if payment.status != "pending" and self._tenant_acting():
            # only the gateway's callback (the platform) says money moved or failed to
            raise PermissionDeniedError("a tenant starts payments as pending; their outcome "
                                        "is recorded by the platform")
        if payment.payment_method_id is not None:
            method = self.get_payment_method(payment.payment_method_id)
            if method is None or method.user_id != invoice.user_id or (
                    method.status == "removed"):
                # another tenant's method reads as absent; a visible one of someone else is
                # not the payer's to pay with
                raise NotFoundError("payment method of the invoice's customer",
                                    payment.payment_method_id, "payment_method_id")
        existing = self._payers_transaction(invoice.user_id, payment)
        if existing is not None:
            return existing
        fields = payment.model_dump(mode="json", exclude={"invoice_id", "user_id",
                                                          "gateway_response"})
        success = fields["status"] == "success"
        if success:
            fields["status"] = "pending"  # becomes success through its Succeeded event

        def attempt() -> bm.PaymentTransaction:
            # After a conflict, look again: the racing save that won may have been this same
            # callback (it then had its effect, and this one must have none).
            won = self._payers_transaction(invoice.user_id, payment)
            if won is not None:  # the same payer's callback, never another payer's
                return won
            return self._pay(invoice, fields, payment, success)

        try:
            return retrying(attempt)
        except DuplicateError:
            # Lost a race with the same callback: the (gateway, transaction id) index refused
            # ours. Only that is answered with the first record; any other error is raised.
            existing = self._payers_transaction(invoice.user_id, payment)
            if existing is not None:
                return existing
            raise

    def _pay(self, invoice: bm.Invoice, fields: dict[str, Any],
             payment: bi.InsertPaymentTransaction, success: bool) -> bm.PaymentTransaction:
        with context.command():
            transaction = PaymentTransaction(invoice_id=str(invoice.id),
                                                    user_id=str(invoice.user_id), fields=fields)
            saved: list[Aggregate] = [transaction]
            if payment.status in ("pending", "processing", "success"):
                # checked against the state this save is made on: a payment that succeeded
                # meanwhile makes the save conflict, and the retry sees it
                aggregate = self._load(domain.Invoice, invoice.id, "invoice")
                balance = aggregate.balance_due
                if payment.amount > balance and aggregate.status in ("issued", "overdue"):
                    raise ValidationError.single(
                        "amount", f"more than the invoice's balance due ({balance} paise: "
                                  f"its total, less credit notes and payments, plus debit "
                                  f"notes)")
                if success:
                    at = now()
                    transaction.succeed(at, payment.gateway_response)
                    aggregate.apply_payment(transaction.id, payment.amount, at)
                    saved.append(aggregate)
            row = self._save_returning(bm.PaymentTransaction,
                                       ("payment_transactions", transaction.id), *saved)
        return self._must(row)

    def update_payment_transaction(self, transaction_id: UUID | str,
                                   changes: bi.UpdatePaymentTransaction | dict[str, Any]
                                   ) -> bm.PaymentTransaction | None:
        """Status changes are events: success applies the payment to the invoice, refunded
        reverses it; a repeated status has no second effect."""
        update = i.parse(bi.UpdatePaymentTransaction, changes)
        current = self.get_payment_transaction(transaction_id)
        if current is None:
            return None
        values = update.model_dump(mode="json", exclude_unset=True)
        status = values.pop("status", None)
        response = values.pop("gateway_response", None)
        code, message = values.pop("error_code", None), values.pop("error_message", None)

        def attempt() -> bm.PaymentTransaction | None:
            with context.command():
                transaction = self._load(PaymentTransaction, current.id,
                                         "payment_transaction")
                saved: list[Aggregate] = [transaction]
                if values:
                    transaction.update(values)
                at = now()
                invoice = self._load(domain.Invoice, current.invoice_id, "invoice")
                if status == "success" and transaction.succeed(at, response):
                    invoice.apply_payment(transaction.id, transaction.amount, at)
                    saved.append(invoice)
                elif status == "failed":
                    transaction.fail(code, message, response)
                elif status == "refunded" and transaction.status != "refunded":
                    transaction.refund(at)
                    invoice.reverse_payment(transaction.id, transaction.amount)
                    saved.append(invoice)
                elif status in ("pending", "processing") and status != transaction.status:
                    raise ValidationError.single("status", f"cannot go back to {status}")
                return self._save_returning(bm.PaymentTransaction,
                                            ("payment_transactions", current.id), *saved)

        row = retrying(attempt)
        return row or self.get_payment_transaction(current.id)

