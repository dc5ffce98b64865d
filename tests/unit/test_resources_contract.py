"""The contract of akashone-resources.md: its 107 IStorage methods, 20 tables, 30 flags."""

from __future__ import annotations

from akashone_es.resources import KINDS
from akashone_es.storage import Storage
from akashone_es.storage.flags import DEFAULT_FLAGS
from akashone_es.storage.policy import POLICY, Access

#: AkashOne's names, snake_case, group by group (akashone-resources.md section 3)
CONTRACT = {
    "virtual machines": ("get_virtual_machines", "get_virtual_machine",
                         "get_virtual_machine_by_cloudstack_id", "create_virtual_machine",
                         "update_virtual_machine", "delete_virtual_machine"),
    "VM snapshots": ("get_vm_snapshots", "get_vm_snapshot", "get_vm_snapshot_by_cloudstack_id",
                     "create_vm_snapshot", "delete_vm_snapshot"),
    "volumes": ("get_volumes", "get_volume", "get_volume_by_cloudstack_id", "create_volume",
                "update_volume", "delete_volume", "attach_volume", "detach_volume"),
    "VPCs": ("get_vpcs", "get_vpc", "get_vpc_by_cloudstack_id", "create_vpc", "update_vpc",
             "delete_vpc"),
    "firewall rules": ("get_firewall_rules", "get_firewall_rule",
                       "get_firewall_rule_by_cloudstack_id", "create_firewall_rule",
                       "update_firewall_rule", "delete_firewall_rule"),
    "NAT gateways": ("get_nat_gateways", "get_nat_gateway", "create_nat_gateway",
                     "update_nat_gateway", "delete_nat_gateway"),
    "SSH keys": ("get_ssh_keys", "get_ssh_key", "get_ssh_key_by_name", "create_ssh_key",
                 "delete_ssh_key"),
    "ISO images": ("get_iso_images", "get_iso_image", "get_iso_image_by_cloudstack_id",
                   "create_iso_image", "update_iso_image", "delete_iso_image"),
    "reserved IPs": ("get_reserved_ips", "get_reserved_ip", "get_reserved_ip_by_cloudstack_id",
                     "get_reserved_ip_by_address", "create_reserved_ip", "update_reserved_ip",
                     "delete_reserved_ip"),
    "IPsec tunnels": ("get_ipsec_tunnels", "get_ipsec_tunnel",
                      "get_ipsec_tunnel_by_cloudstack_id", "create_ipsec_tunnel",
                      "update_ipsec_tunnel", "delete_ipsec_tunnel"),
    "load balancers": ("get_load_balancers", "get_load_balancer", "create_load_balancer",
                       "delete_load_balancer"),
    "SSL certificates": ("get_ssl_certificates", "get_ssl_certificate",
                         "create_ssl_certificate", "delete_ssl_certificate"),
    "object storage buckets": ("get_object_storage_buckets", "get_object_storage_bucket",
                               "create_object_storage_bucket", "delete_object_storage_bucket"),
    "DDoS protection rules": ("get_ddos_protection_rules", "get_ddos_protection_rule",
                              "create_ddos_protection_rule", "delete_ddos_protection_rule"),
    "CDN distributions": ("get_cdn_distributions", "get_cdn_distribution",
                          "create_cdn_distribution", "delete_cdn_distribution"),
    "Kubernetes clusters": ("get_kubernetes_clusters", "get_kubernetes_cluster",
                            "create_kubernetes_cluster", "update_kubernetes_cluster",
                            "delete_kubernetes_cluster"),
    "managed databases": ("get_databases", "get_database", "create_database",
                          "update_database", "delete_database"),
    "DNS domains": ("get_dns_domains", "get_dns_domain", "create_dns_domain",
                    "update_dns_domain", "delete_dns_domain"),
    "DNS records": ("get_dns_records", "get_dns_record", "create_dns_record",
                    "update_dns_record", "delete_dns_record"),
    "feature flags": ("get_feature_flags", "get_feature_flag", "get_feature_flag_by_key",
                      "create_feature_flag", "update_feature_flag", "delete_feature_flag",
                      "initialize_default_feature_flags"),
}
TABLES = {"virtual_machines", "vm_snapshots", "volumes", "vpcs", "firewall_rules",
          "nat_gateways", "ssh_keys", "iso_images", "reserved_ips", "ipsec_tunnels",
          "load_balancers", "ssl_certificates", "object_storage_buckets",
          "ddos_protection_rules", "cdn_distributions", "kubernetes_clusters", "databases",
          "dns_domains", "dns_records"}  # and feature_flags (a billing catalogue table)


def test_all_107_methods_exist_and_are_classified() -> None:
    names = [name for group in CONTRACT.values() for name in group]
    assert len(names) == len(set(names)) == 107
    missing = [name for name in names if not callable(getattr(Storage, name, None))]
    assert missing == []
    assert [name for name in names if name not in POLICY] == []


def test_flag_writes_are_the_platforms_and_resources_the_tenants() -> None:
    """Flags are everyone's: read in any context, written platform-wide only."""
    for name in CONTRACT["feature flags"]:
        expected = Access.CATALOGUE if name.startswith("get_") else Access.PLATFORM_WIDE
        assert POLICY[name] is expected, name
    for group, names in CONTRACT.items():
        if group != "feature flags":
            assert {POLICY[name] for name in names} == {Access.TENANT}, group


def test_the_nineteen_resource_tables_and_thirty_flags() -> None:
    assert {kind.table for kind in KINDS.values()} == TABLES
    assert len(DEFAULT_FLAGS) == 30
    assert len({key for _, key, *_ in DEFAULT_FLAGS}) == 30
    assert {kind.flag for kind in KINDS.values()} - {key for _, key, *_ in DEFAULT_FLAGS} == {
        None}
