"""Feature flags on the storage facade: global switches, read by anyone, set by the platform.

AkashOne let any logged-in user toggle a flag and never checked one (``requireFeature`` was
attached to no route). Here writes are platform-only (``policy.py``), and creating a resource
of a kind whose flag is off raises ``FeatureDisabledError``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from psycopg import sql
from pydantic import BaseModel, Field

from akashone_es import context
from akashone_es.domain.catalog import FeatureFlag, feature_flag_id_for
from akashone_es.errors import (
    ConcurrentWriteError,
    DuplicateError,
    FeatureDisabledError,
    ValidationError,
)
from akashone_es.resources.kind import ROW_CONFIG
from akashone_es.storage import inputs as i
from akashone_es.storage import limits as lim
from akashone_es.storage.catalog import CatalogStorage

Q = sql.SQL
FLAGS = Q("SELECT * FROM feature_flags ORDER BY sort_order, key")
FLAG = Q("SELECT * FROM feature_flags WHERE id = %s")
FLAG_BY_KEY = Q("SELECT * FROM feature_flags WHERE key = %s")
#: which of some ids an aggregate of the log has (a seeded flag deleted keeps its id)
#: AkashOne's 30 flags (storage.ts l.868): sort order, key, name, category, enabled, icon
DEFAULT_FLAGS = (
    (1, "virtual_machines", "Virtual Machines", "Compute", True, "Server"),
    (2, "kubernetes", "Kubernetes Service", "Compute", True, "Container"),
    (3, "database", "Database-as-a-Service", "Compute", True, "Database"),
    (4, "dns", "DNS Management", "Networking", True, "Globe"),
    (5, "object_storage", "Object Storage", "Storage", True, "HardDrive"),
    (6, "billing", "Billing & Invoices", "Billing", True, "Receipt"),
    (10, "payment_gateway", "Payment Gateway Configuration", "Billing", False, "CreditCard"),
    (11, "pricing_calculator", "Pricing Calculator", "Billing", False, "Calculator"),
    (12, "load_balancer", "Load Balancer Service", "Networking", False, "Network"),
    (13, "gpu_instances", "GPU Instances", "Compute", False, "Zap"),
    (14, "ssl_certificates", "SSL Certificate Manager", "Networking", False, "Shield"),
    (15, "cdn_service", "CDN Service", "Networking", False, "Cloudy"),
    (16, "auto_scaling", "VM Auto-Scaling Groups", "Compute", False, "TrendingUp"),
    (17, "volumes", "Block Storage Volumes", "Storage", False, "HardDrive"),
    (18, "firewall", "Firewall Rules", "Networking", False, "Shield"),
    (19, "security_groups", "Security Groups", "Networking", False, "Lock"),
    (20, "vpc", "Virtual Private Cloud", "Networking", False, "Network"),
    (21, "elastic_ip", "Elastic IP (Static IP)", "Networking", False, "MapPin"),
    (22, "ssh_keys", "SSH Key Management", "Compute", False, "Key"),
    (23, "images_templates", "Images & Templates", "Compute", False, "Image"),
    (24, "resource_tags", "Resource Tags", "Compute", False, "Tag"),
    (25, "archive_storage", "Archive Storage", "Storage", False, "Archive"),
    (26, "remote_backup", "Remote Backup & Recovery", "Storage", False, "CloudUpload"),
    (27, "dns_manager", "DNS Manager", "Networking", False, "Globe"),
    (28, "nat_gateway", "NAT Gateway", "Networking", False, "Router"),
    (29, "ipv4_ipv6", "IPv4/IPv6 Management", "Networking", False, "Network"),
    (30, "virtual_router", "Virtual Router", "Networking", False, "Route"),
    (31, "ipsec_tunnels", "IPSEC VPN Tunnels", "Networking", False, "Tunnel"),
    (32, "ddos_protection", "DDoS Protection", "Networking", False, "ShieldAlert"),
    (33, "bare_metal", "Bare Metal Servers", "Compute", False, "Server"),
)


class InsertFeatureFlag(i.Input):
    key: str = Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=lim.DESCRIPTION_MAX)
    category: str = Field(min_length=1, max_length=50)
    enabled: bool = False
    icon: str | None = Field(default=None, max_length=50)
    sort_order: int = Field(default=0, ge=-lim.INT4_MAX, le=lim.INT4_MAX)


class UpdateFeatureFlag(i.Input):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=lim.DESCRIPTION_MAX)
    category: str | None = Field(default=None, min_length=1, max_length=50)
    enabled: bool | None = None
    icon: str | None = Field(default=None, max_length=50)
    sort_order: int | None = Field(default=None, ge=-lim.INT4_MAX, le=lim.INT4_MAX)


class FeatureFlagRow(BaseModel):
    model_config = ROW_CONFIG

    id: UUID
    key: str
    name: str
    description: str | None
    category: str
    enabled: bool
    icon: str | None
    sort_order: int
    created_at: datetime
    updated_at: datetime


class FlagStorage(CatalogStorage):
    """The IStorage feature flags group (7)."""

    def get_feature_flags(self) -> list[FeatureFlagRow]:
        """Every flag, by sort order."""
        return self._all(FeatureFlagRow, FLAGS, ())

    def get_feature_flag(self, flag_id: UUID | str) -> FeatureFlagRow | None:
        return self._one(FeatureFlagRow, FLAG, (i.parse_id(flag_id, "flag_id"),))

    def get_feature_flag_by_key(self, key: str) -> FeatureFlagRow | None:
        return self._one(FeatureFlagRow, FLAG_BY_KEY, (key,))

    def create_feature_flag(self, data: InsertFeatureFlag | dict[str, Any]) -> FeatureFlagRow:
        """A new flag; its key is unique (``DuplicateError`` names it)."""
        flag = i.parse(InsertFeatureFlag, data)
        return self._create(FeatureFlag, FeatureFlagRow, "feature_flags",
                            flag.model_dump(mode="json"))

    def update_feature_flag(self, flag_id: UUID | str,
                            changes: UpdateFeatureFlag | dict[str, Any]
                            ) -> FeatureFlagRow | None:
        """Change a flag (e.g. ``{"enabled": True}``); None when absent."""
        update = i.parse(UpdateFeatureFlag, changes)
        values = update.model_dump(mode="json", exclude_unset=True)
        for field in ("name", "category", "enabled", "sort_order"):
            if field in values and values[field] is None:
                raise ValidationError.single(field, "must not be null")
        current = self.get_feature_flag(flag_id)
        if current is None or not values:
            return current
        return self._update(FeatureFlag, FeatureFlagRow, current.id, values)

    def delete_feature_flag(self, flag_id: UUID | str) -> bool:
        current = self.get_feature_flag(flag_id)
        if current is None:
            return False
        self._delete(FeatureFlag, current.id)
        return True

    def initialize_default_feature_flags(self) -> int:
        """Seed AkashOne's 30 flags, skipping keys that exist (idempotent, and safe when
        two processes seed at once); returns how many were added."""
        for _ in range(5):
            present = {flag.key for flag in self.get_feature_flags()}
            wanted = [flag for flag in DEFAULT_FLAGS if flag[1] not in present]
            if not wanted:
                return 0
            # ids derived from the keys; a key whose flag was deleted gets a new one
            ids = {key: feature_flag_id_for(key) for _, key, *_ in wanted}
            used = self._ids_in_log(list(ids.values()))
            missing = [FeatureFlag._create(FeatureFlag.Created, id=(
                ids[key] if ids[key] not in used else uuid4()), fields={
                "key": key, "name": name, "description": None, "category": category,
                "enabled": enabled, "icon": icon, "sort_order": sort})
                for sort, key, name, category, enabled, icon in wanted]
            try:
                with context.command():
                    self._save(*missing)
            except (DuplicateError, ConcurrentWriteError):
                continue  # another process seeded some first (same ids): look again
            return len(missing)
        return 0

    @staticmethod
    def _feature_allows(key: str, enabled: bool | None, name: str | None) -> None:
        """Refuse unless the flag exists (``enabled`` is not None) and is on."""
        if enabled is None:
            raise FeatureDisabledError(key, "is not set up on this platform (the platform "
                                            "runs initialize_default_feature_flags)")
        if not enabled:
            raise FeatureDisabledError(key, f"({name}) is currently disabled")
