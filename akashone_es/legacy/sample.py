"""A realistic sample of AkashOne's store, with the defects its own code lets in."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from akashone_es.gst import STATE_CODES, gstin_check_character
from akashone_es.legacy.records import RESOURCE_TABLES, camel, snake

if TYPE_CHECKING:
    from akashone_es.resources.kind import Kind

SAMPLE_PERMISSIONS = (("vm.view", "View VMs", "Compute"), ("vm.create", "Create VMs", "Compute"),
                      ("vm.delete", "Delete VMs", "Compute"),
                      ("network.view", "View networks", "Networking"),
                      ("storage.view", "View volumes", "Storage"),
                      ("billing.view", "View invoices", "Billing"),
                      ("iam.manage", "Manage users and roles", "IAM"))
SAMPLE_HASH = "$2b$10$abcdefghijklmnopqrstuu5cKjHKZ6xAGHmsLXg2ckWfYeYm9C3bO"


def sample_dump(users: int = 1000, seed: int = 7) -> dict[str, Any]:
    """A dump as AkashOne's ``MemStorage`` would hold it: resellers and customer companies
    owning organizations, their users, system and custom roles with permissions, role grants
    and the defects AkashOne's own code lets in (a GSTIN whose check character is wrong, an
    email that differs only in case, a pair granted twice, a grant to a deleted user, a
    record without an id, a clock ahead of time); then every other table (``_rest``).
    Deterministic for a ``seed``, but for the certificates' keys."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    start = datetime(2025, 4, 1, tzinfo=UTC).timestamp()

    def rid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def when() -> str:
        moment = datetime.fromtimestamp(start + rng.random() * 3e7, UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    def gstin(state: int) -> str:
        pan = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(5))
        first = f"{state:02d}{pan}{rng.randrange(10000):04d}{rng.choice('ABCDEFGHJK')}1Z"
        return first + gstin_check_character(first)

    people: list[dict[str, Any]] = []
    owners: list[str] = []
    for n in range(users):
        owner = rng.choice(owners) if owners and n % 10 else None
        kind = "reseller" if n % 50 == 0 else "customer"
        person: dict[str, Any] = {
                  "id": rid(), "username": f"user{n:05d}", "email": f"user{n:05d}@example.in",
                  "password": SAMPLE_HASH, "gstNumber": gstin(rng.choice((27, 29, 7, 33))),
                  "emailVerified": rng.random() < 0.8, "emailVerificationCode": None,
                  "emailVerificationExpiry": None, "twoFactorSecret": None,
                  "twoFactorEnabled": False, "accountType": kind, "organizationId": owner,
                  "defaultDiscountPercentage": rng.choice((0, 0, 0, 5, 10)),
                  "status": "active", "createdAt": when(), "lastLogin": when()}
        if n % 7 == 0:  # AkashOne keeps TOTP secrets in plaintext
            person.update(twoFactorSecret="JBSWY3DPEHPK3PXP", twoFactorEnabled=True)
        if owner is None:
            owners.append(person["id"])
        people.append(person)
    # defects AkashOne lets in
    people[3]["gstNumber"] = people[3]["gstNumber"][:14] + (
        "A" if people[3]["gstNumber"][14] != "A" else "B")  # a wrong check character
    people.append({**people[5], "id": rid(), "username": "user00005-dup",
                   "email": people[5]["email"].upper()})  # the same email, in capitals
    people.append({**people[6], "id": rid(), "username": "future",
                   "email": "future@example.in", "createdAt": "2099-01-01T00:00:00.000Z"})
    people.append({**people[8], "id": None, "username": "noid", "email": "noid@example.in"})
    permissions = [{"id": rid(), "key": key, "name": name, "description": None,
                    "category": category, "createdAt": when()}
                   for key, name, category in SAMPLE_PERMISSIONS]
    roles = [{"id": rid(), "name": name, "description": f"{name} (system)", "isSystem": True,
              "organizationId": None, "createdAt": when(), "updatedAt": when()}
             for name in ("Admin", "Editor", "Viewer")]
    roles += [{"id": rid(), "name": f"Ops {n}", "description": None, "isSystem": False,
               "organizationId": owner, "createdAt": when(), "updatedAt": when()}
              for n, owner in enumerate(owners[: max(1, len(owners) // 2)])]
    role_permissions = [{"id": rid(), "roleId": role["id"], "permissionId": p["id"],
                         "createdAt": when()}
                        for role in roles for p in rng.sample(permissions, 3)]
    role_permissions.append({**role_permissions[0], "id": rid()})  # the same pair twice
    user_roles = [{"id": rid(), "userId": person["id"], "roleId": rng.choice(roles)["id"],
                   "grantedBy": None, "createdAt": when()}
                  for person in people[:users]]
    user_roles.append({"id": rid(), "userId": rid(), "roleId": roles[0]["id"],
                       "grantedBy": None, "createdAt": when()})  # a deleted user's grant
    dump = {"users": people, "permissions": permissions, "roles": roles,
            "rolePermissions": role_permissions, "userRoles": user_roles}
    return {**dump, **_Rest(rng, rid, when, gstin, people[:users], owners).tables()}


def _later(stamp: str, days: float) -> str:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class _Rest:
    """The tables beyond users and RBAC: each owner's team, activity, addresses, payment
    methods, resources and usage, the platform's catalogue, and AkashOne's defects in each."""

    def __init__(self, rng: random.Random, rid: Callable[[], str], when: Callable[[], str],
                 gstin: Callable[[int], str], people: list[dict[str, Any]],
                 owners: list[str]) -> None:
        self.rng, self.rid, self.when, self.gstin = rng, rid, when, gstin
        self.people = people
        self.owners = [p for p in people if p["id"] in set(owners)]
        #: fields of the resources made so far: (record id, field) -> value
        self.copied: dict[tuple[str, str], Any] = {}

    def short(self, prefix: str) -> str:
        """An AkashOne id that is not a UUID (``vm-1a2b3c4d``)."""
        return f"{prefix}-{self.rng.getrandbits(32):08x}"

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        found = {"teamMembers": self.team(), "userActivities": self.activities(),
                 **self.catalogue(), **self.customers()}
        resources = self.resources()
        found.update(resources)
        found.update(self.billing(found["billingAddresses"], found["paymentMethods"]))
        found["usageRecords"] += self.usage(resources["virtualMachines"])
        return found

    def team(self) -> list[dict[str, Any]]:
        members = [{"id": self.rid(), "email": p["email"], "userId": p["id"],
                    "organizationId": p["organizationId"], "status": "active",
                    "invitedBy": p["organizationId"], "invitationToken": None,
                    "invitedAt": p["createdAt"], "joinedAt": _later(p["createdAt"], 1)}
                   for p in self.people if p["organizationId"]]
        for n, owner in enumerate(self.owners[:20]):  # invitations not yet accepted
            members.append({"id": self.rid(), "email": f"invitee{n}@example.in",
                            "userId": None, "organizationId": owner["id"], "status": "invited",
                            "invitedBy": owner["id"], "invitationToken": self.rid(),
                            "invitedAt": self.when(), "joinedAt": None})
        members.append({**members[-1], "id": self.rid(), "status": "active"})  # no user
        stranger = next(p for p in self.owners  # a user of another organization invites
                        if p["id"] != members[-1]["organizationId"])
        members.append({**members[-1], "id": self.rid(), "email": "stranger@example.in",
                        "status": "invited", "invitedBy": stranger["id"],
                        "invitationToken": self.rid()})
        return members

    def activities(self) -> list[dict[str, Any]]:
        found = [{"id": self.rid(), "userId": p["id"], "username": p["username"],
                  "action": "login", "resourceType": None, "resourceId": None,
                  "resourceName": None, "ipAddress": f"192.0.2.{self.rng.randrange(1, 255)}",
                  "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
                  "metadata": {"method": "password"}, "createdAt": self.when()}
                 for p in self.people]
        found.append({**found[0], "id": self.rid(), "userId": self.rid()})  # a deleted user's
        return found

    def catalogue(self) -> dict[str, list[dict[str, Any]]]:
        codes = [{"id": self.rid(), "serviceType": kind, "hsnCode": "998315",
                  "sacCode": "998315", "description": f"{kind.title()} services",
                  "gstRate": 18, "isActive": True, "createdAt": self.when(),
                  "updatedAt": self.when()}
                 for kind in ("compute", "storage", "database", "network", "kubernetes")]
        plans = [{"id": self.rid(), "name": f"Standard {cpu}", "description": None, "cpu": cpu,
                  "memory": cpu * 2048, "storage": cpu * 40, "bandwidth": 1000,
                  "cloudstackOfferingId": f"so-{cpu}", "price": cpu * 650, "isActive": True,
                  "isPublic": True, "organizationId": None, "sortOrder": cpu,
                  "createdAt": self.when(), "updatedAt": self.when()} for cpu in (1, 2, 4, 8)]
        plans += [{**plans[1], "id": self.rid(), "name": f"Private {owner['username']}",
                   "isPublic": False, "organizationId": owner["id"]}
                  for owner in self.owners[:3]]
        coupons = [{"id": self.rid(), "code": code, "name": code.title(), "description": None,
                    "discountType": kind, "discountValue": value, "durationType": "once",
                    "durationMonths": None, "maxUses": uses, "timesUsed": used,
                    "minOrderAmount": None, "validFrom": self.when(), "validUntil": None,
                    "isActive": True, "createdBy": None, "createdAt": self.when()}
                   for code, kind, value, uses, used in (
                       ("WELCOME10", "percentage", 10, None, 41),
                       ("FLAT500", "fixed", 50000, 100, 12),
                       ("DIWALI25", "percentage", 25, 50, 50),
                       ("RACE5", "percentage", 5, 10, 12))]  # AkashOne's unchecked increment
        flags = [{"id": self.rid(), "key": key, "name": key.replace("_", " ").title(),
                  "description": None, "category": category, "enabled": True, "icon": None,
                  "sortOrder": n, "createdAt": self.when(), "updatedAt": self.when()}
                 for n, (key, category) in enumerate((
                     ("virtual_machines", "compute"), ("kubernetes", "compute"),
                     ("database", "database"), ("object_storage", "storage"),
                     ("firewall", "networking"), ("elastic_ip", "networking")))]
        return {"hsnCodes": codes, "servicePlans": plans, "discountCoupons": coupons,
                "featureFlags": flags}

    def customers(self) -> dict[str, list[dict[str, Any]]]:
        addresses, methods = [], []
        for n, owner in enumerate(self.owners):
            state = owner["gstNumber"][:2]
            addresses.append({
                "id": self.rid(), "userId": owner["id"], "addressLine1": f"{n + 1} MG Road",
                "addressLine2": None, "city": "Bengaluru" if state == "29" else "Mumbai",
                "state": None, "stateCode": state, "postalCode": f"5600{n % 100:02d}",
                "country": "India", "gstNumber": owner["gstNumber"], "isDefault": True,
                "createdAt": owner["createdAt"], "updatedAt": owner["createdAt"]})
            methods.append({
                "id": self.rid(), "userId": owner["id"], "gateway": "razorpay",
                "gatewayMethodId": self.short("pm"), "type": "upi" if n % 2 else "card",
                "cardLast4": None if n % 2 else f"{self.rng.randrange(10000):04d}",
                "cardBrand": None if n % 2 else "visa", "cardExpMonth": None if n % 2 else 12,
                "cardExpYear": None if n % 2 else 2029,
                "upiId": f"owner{n}@okbank" if n % 2 else None, "isDefault": True,
                "status": "active", "createdAt": owner["createdAt"],
                "updatedAt": owner["createdAt"]})
        addresses.append({**addresses[0], "id": self.rid(), "addressLine1": "2 Brigade Road"})
        addresses.append({**addresses[1], "id": self.rid(), "isDefault": False,
                          "stateCode": "45"})  # a state code that names no state
        return {"billingAddresses": addresses, "paymentMethods": methods}

    def resources(self) -> dict[str, list[dict[str, Any]]]:
        """One of each kind for each owner (its references to the owner's own), and
        records AkashOne's missing checks let in."""
        from akashone_es.resources.samples import (  # noqa: PLC0415 - makes a certificate
            SAMPLES,
            self_signed,
        )

        found: dict[str, list[dict[str, Any]]] = {table: [] for table in RESOURCE_TABLES}
        for owner in self.owners:
            mine: dict[str, str] = {}  # kind -> this owner's record of it
            for table, kind in RESOURCE_TABLES.items():
                tag = f"{owner['id'][:8]}-{kind.name.replace('_', '-')}"
                record = self.resource(kind, tag, owner, SAMPLES[kind.name](tag), mine)
                mine[kind.name] = record["id"]
                found[table].append(record)
        vms = found["virtualMachines"]
        found["virtualMachines"].append({**vms[0], "id": self.short("vm"), "userId": self.rid(),
                                         "cloudstackId": self.rid()})  # a deleted owner's VM
        found["volumes"].append({**found["volumes"][0], "id": self.short("vol"),
                                 "cloudstackId": self.rid(), "state": "Destroyed"})
        found["objectStorageBuckets"].append({  # bucket names are global: AkashOne let a
            **found["objectStorageBuckets"][1], "id": self.short("bkt"),  # second one in
            "userId": vms[2]["userId"], "cloudstackId": self.rid()})
        certificate, key = self_signed(expired=True)  # AkashOne keeps expired ones
        found["sslCertificates"][0].update(certificate=certificate, privateKey=key,
                                           status="Expired")
        snapshot = found["vmSnapshots"][0]
        found["vmSnapshots"].append({**snapshot, "id": self.short("snap"),  # of another's VM
                                     "userId": vms[1]["userId"], "cloudstackSnapshotId":
                                     self.rid()})
        return found

    def resource(self, kind: Kind, tag: str, owner: dict[str, Any], fields: dict[str, Any],
                 mine: dict[str, str]) -> dict[str, Any]:
        created = _later(owner["createdAt"], 1 + self.rng.random() * 30)
        record: dict[str, Any] = {"id": self.short(kind.name.split("_")[0][:4]),
                                  "userId": owner["id"]}
        record.update({camel(k): v for k, v in fields.items()})
        if kind.cloudstack != "none":
            record[camel(kind.cloudstack_column)] = f"{self.rng.getrandbits(64):016x}"
        if kind.lifecycle is not None:
            state = {"virtual_machine": self.rng.choice(("Running", "Running", "Stopped")),
                     "kubernetes_cluster": "running", "database": "running",
                     "dns_domain": "active", "volume": "Ready"}.get(kind.name,
                                                                    kind.lifecycle.initial)
            record[camel(kind.lifecycle.field)] = state
        for field, target in kind.refs.items():
            if kind.fields.model_fields[field].is_required() or self.rng.random() < 0.5:
                record[camel(field)] = mine[target]
        if kind.parent is not None:
            record[camel(kind.parent.field)] = mine[kind.parent.kind]
        if kind.name == "cdn_distribution" and "sslCertificateId" in record:
            record["domain"] = "www.example.com"  # a name the owner's certificate covers
        for copy, (field, attribute) in kind.ref_copies.items():
            record.pop(camel(copy), None)  # AkashOne copies it from what it names
            if camel(field) in record:
                record[camel(copy)] = self.copied.get((record[camel(field)], attribute))
        record[camel(kind.created_column)] = created
        if kind.stamp:
            record[camel(kind.stamp)] = _later(created, 2)
        for key, value in record.items():
            self.copied[(record["id"], snake(key))] = value
        return record

    def billing(self, addresses: list[dict[str, Any]], methods: list[dict[str, Any]]
                ) -> dict[str, list[dict[str, Any]]]:
        """Each owner's invoice for its VM hours (intra-state from Karnataka, AkashOne's
        state: CGST and SGST at 9%; else IGST at 18%), its line items and the usage they
        billed, a payment for every third, the GST audit record of each; and the defects of
        AkashOne's numbering by count and of its rounding."""
        found: dict[str, list[dict[str, Any]]] = {
            "invoices": [], "invoiceLineItems": [], "paymentTransactions": [],
            "taxCalculations": [], "usageRecords": []}
        method_of = {m["userId"]: m["id"] for m in methods}
        for n, address in enumerate(addresses[:len(self.owners)]):
            invoice = self.invoice(n, address, found)
            if invoice["status"] == "paid":
                found["paymentTransactions"].append({
                    "id": self.rid(), "invoiceId": invoice["id"], "userId": address["userId"],
                    "paymentMethodId": method_of.get(address["userId"]),
                    "gateway": "razorpay", "gatewayTransactionId": self.short("pay"),
                    "gatewayOrderId": self.short("order"), "amount": invoice["totalAmount"],
                    "currency": "INR", "status": "success", "paymentMethod": "upi",
                    "gatewayResponse": {"captured": True}, "errorCode": None,
                    "errorMessage": None, "initiatedAt": invoice["paidAt"],
                    "completedAt": invoice["paidAt"], "createdAt": invoice["paidAt"]})
        invoices = found["invoices"]
        invoices.append({**invoices[1], "id": self.rid()})  # one number, two invoices
        off = {**invoices[2], "id": self.rid(), "invoiceNumber": "INV-2025-9001",
               "totalAmount": invoices[2]["totalAmount"] + 1}  # a paisa off
        invoices.append(off)
        found["invoiceLineItems"].append({**found["invoiceLineItems"][0], "id": self.rid(),
                                          "invoiceId": off["id"],
                                          "amount": 1})  # not quantity x unit price
        return found

    def invoice(self, n: int, address: dict[str, Any],
                found: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        created = _later(address["createdAt"], 35)
        invoice_id = self.rid()
        subtotal = 0
        for hours in (self.rng.randrange(1, 720), self.rng.randrange(1, 720)):
            amount = hours * 150
            subtotal += amount
            found["invoiceLineItems"].append({
                "id": self.rid(), "invoiceId": invoice_id, "resourceType": "vm",
                "resourceId": self.short("vm"), "resourceName": "web", "description":
                f"Virtual machine, {hours} hours", "quantity": hours, "unit": "hours",
                "unitPrice": 150, "amount": amount, "usageStart": address["createdAt"],
                "usageEnd": _later(address["createdAt"], 30), "createdAt": created})
            found["usageRecords"].append({
                "id": self.rid(), "userId": address["userId"], "resourceType": "vm",
                "resourceId": self.short("vm"), "resourceName": "web",
                "metricType": "runtime", "quantity": hours, "unit": "hours", "unitPrice": 150,
                "totalCost": amount, "recordedAt": _later(address["createdAt"], 30),
                "periodStart": address["createdAt"],
                "periodEnd": _later(address["createdAt"], 30), "invoiceId": invoice_id,
                "billed": True, "metadata": None, "createdAt": _later(address["createdAt"], 30)})
        intra = address["stateCode"] == "29"
        half, full = (subtotal * 9 + 50) // 100, (subtotal * 18 + 50) // 100
        cgst, igst = (half, 0) if intra else (0, full)
        status = ("paid", "issued", "overdue")[n % 3]
        invoice = {
            "id": invoice_id, "invoiceNumber": f"INV-2025-{n + 1:04d}",
            "userId": address["userId"], "billingAddressId": address["id"],
            "billingPeriodStart": address["createdAt"],
            "billingPeriodEnd": _later(address["createdAt"], 30), "subtotalAmount": subtotal,
            "cgstAmount": cgst, "sgstAmount": cgst, "igstAmount": igst, "discountAmount": 0,
            "totalAmount": subtotal + 2 * cgst + igst,
            "taxType": "intra_state" if intra else "inter_state", "gstRate": 18,
            "hsnCode": "998315", "sacCode": "998315",
            "placeOfSupply": STATE_CODES[address["stateCode"]], "einvoiceIrn": None,
            "einvoiceAckNo": None, "einvoiceAckDate": None, "einvoiceQrCode": None,
            "einvoiceEnabled": False, "status": status, "dueDate": _later(created, 15),
            "paidAt": _later(created, 3) if status == "paid" else None, "notes": None,
            "currency": "INR", "createdAt": created, "updatedAt": created}
        found["invoices"].append(invoice)
        found["taxCalculations"].append({
            "id": self.rid(), "invoiceId": invoice_id, "userId": address["userId"],
            "supplierState": "Karnataka", "supplierStateCode": "29",
            "customerState": STATE_CODES[address["stateCode"]],
            "customerStateCode": address["stateCode"], "taxType": invoice["taxType"],
            "taxableAmount": subtotal, "cgstRate": 9 if intra else 0,
            "sgstRate": 9 if intra else 0, "igstRate": 0 if intra else 18,
            "cgstAmount": cgst, "sgstAmount": cgst, "igstAmount": igst,
            "totalTaxAmount": 2 * cgst + igst, "gstRate": 18, "hsnSacCode": "998315",
            "calculatedAt": created, "createdAt": created})
        return invoice

    def usage(self, vms: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found = []
        for vm in vms[:-1]:
            hours = self.rng.randrange(1, 720)
            start = vm["createdAt"]
            found.append({
                "id": self.rid(), "userId": vm["userId"], "resourceType": "vm",
                "resourceId": vm["id"], "resourceName": vm["name"], "metricType": "runtime",
                "quantity": hours, "unit": "hours", "unitPrice": 150, "totalCost": hours * 150,
                "recordedAt": _later(start, 30), "periodStart": start,
                "periodEnd": _later(start, 30), "invoiceId": None, "billed": False,
                "metadata": None, "createdAt": _later(start, 30)})
        found.append({**found[0], "id": self.rid(), "totalCost": found[0]["totalCost"] + 1})
        return found
