"""The seeded permission keys and system roles (AkashOne §3.5)."""

from __future__ import annotations

DEFAULT_PERMISSIONS: tuple[tuple[str, str, str], ...] = (
    ("vm.view", "View virtual machines", "Compute"),
    ("vm.create", "Create virtual machines", "Compute"),
    ("vm.update", "Update virtual machines", "Compute"),
    ("vm.delete", "Delete virtual machines", "Compute"),
    ("kubernetes.view", "View Kubernetes clusters", "Compute"),
    ("kubernetes.create", "Create Kubernetes clusters", "Compute"),
    ("kubernetes.delete", "Delete Kubernetes clusters", "Compute"),
    ("database.view", "View databases", "Compute"),
    ("database.create", "Create databases", "Compute"),
    ("database.delete", "Delete databases", "Compute"),
    ("network.view", "View networks", "Networking"),
    ("network.create", "Create networks", "Networking"),
    ("dns.view", "View DNS", "Networking"),
    ("dns.manage", "Manage DNS", "Networking"),
    ("storage.view", "View storage", "Storage"),
    ("storage.manage", "Manage storage", "Storage"),
    ("billing.view", "View billing", "Billing"),
    ("billing.manage", "Manage billing", "Billing"),
    ("iam.view", "View IAM", "IAM"),
    ("iam.manage", "Manage IAM", "IAM"),
    ("team.view", "View team", "IAM"),
    ("team.manage", "Manage team", "IAM"),
)

ALL_KEYS = tuple(key for key, _, _ in DEFAULT_PERMISSIONS)
EDITOR_EXCLUDED = {"billing.manage", "iam.view", "iam.manage", "team.manage"}
VIEWER_KEYS = tuple(f"{area}.view" for area in (
    "vm", "kubernetes", "database", "network", "dns", "storage", "billing", "team"))

SYSTEM_ROLES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Admin", "Full access to every resource", ALL_KEYS),
    ("Editor", "Manage resources, not billing or IAM",
     tuple(k for k in ALL_KEYS if k not in EDITOR_EXCLUDED)),
    ("Viewer", "Read-only access", VIEWER_KEYS),
)
