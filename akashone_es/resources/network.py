"""Networking kinds: VPCs, firewall rules, NAT gateways, reserved IPs, IPsec tunnels, load
balancers, DDoS protection rules, CDN distributions."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, Field, model_validator

from akashone_es.resources.kind import Fields, Kind, Lifecycle, Tagged, Unique, moves
from akashone_es.resources.rules import (
    Cidr,
    CidrList,
    Code,
    DomainName,
    ExternalId,
    IdText,
    IpAddress,
    Name,
    Port,
    PrivateCidr,
    Seconds,
    domain_name,
    port_range,
)
from akashone_es.resources.services import certificate_covers
from akashone_es.storage import limits as lim

#: a rule or service that is switched on and off
ACTIVE = Lifecycle("Active", moves(Active="Inactive", Inactive="Active"))


class VpcFields(Tagged):
    name: Name
    display_name: Name | None = None
    cidr: PrivateCidr
    vpc_offering_id: ExternalId
    vpc_offering_name: Name | None = None
    zone_id: ExternalId
    zone_name: Name | None = None
    network_domain: DomainName | None = None
    redundant_router: bool = False
    region: Name | None = None


VPC = Kind(
    name="vpc", plural="vpcs", label="VPC", fields=VpcFields, flag="vpc", stamp="last_synced",
    updatable=("name", "display_name", "network_domain", "redundant_router", "tags"),
    lifecycle=Lifecycle("Enabled", moves(Enabled="Disabled", Disabled="Enabled")),
    observed=("state",))


class FirewallRuleFields(Tagged):
    protocol: Literal["tcp", "udp", "icmp", "all"]
    start_port: Port | None = None
    end_port: Port | None = None
    cidr_list: CidrList = []
    ip_address_id: UUID | None = None
    ip_address: IpAddress | None = None
    purpose: Literal["Firewall", "PortForwarding", "StaticNat", "LoadBalancing"] | None = None
    network_id: ExternalId | None = None

    @model_validator(mode="after")
    def _ports(self) -> FirewallRuleFields:
        if self.protocol not in ("tcp", "udp") and (self.start_port or self.end_port):
            raise ValueError("start_port: ports apply to tcp and udp only")
        if self.ip_address is not None and self.ip_address_id is None:
            # the address is the reserved IP's: named alone, it could be anyone's
            raise ValueError("ip_address: given with its reserved IP (ip_address_id) only")
        port_range(self)
        return self


ON_RESERVED_IP = {"ip_address_id": "reserved_ip"}
COPIES_ADDRESS = {"ip_address": ("ip_address_id", "ip_address")}

FIREWALL_RULE = Kind(
    name="firewall_rule", plural="firewall_rules", fields=FirewallRuleFields, flag="firewall",
    refs=ON_RESERVED_IP, ref_copies=COPIES_ADDRESS,
    updatable=("protocol", "start_port", "end_port", "cidr_list", "purpose", "tags"),
    lifecycle=ACTIVE, observed=("state",))


class ReservedIpFields(Tagged):
    ip_address: IpAddress
    is_source_nat: bool = False
    is_static_nat: bool = False
    vpc_id: UUID | None = None
    network_id: ExternalId | None = None
    associated_vm_id: IdText | None = None
    associated_vm_name: Name | None = None
    zone_id: ExternalId
    zone_name: Name | None = None
    purpose: Literal["StaticNat", "Firewall", "LoadBalancer"] | None = None


RESERVED_IP = Kind(
    name="reserved_ip", plural="reserved_ips", label="reserved IP", fields=ReservedIpFields,
    flag="elastic_ip", created_column="allocated_at",
    refs={"vpc_id": "vpc", "associated_vm_id": "virtual_machine"},
    updatable=("is_source_nat", "is_static_nat", "vpc_id", "network_id", "associated_vm_id",
               "associated_vm_name", "purpose", "tags"),
    unique=(Unique(("ip_address",), "ip_address"),),
    lifecycle=Lifecycle("Allocated", moves(Allocated="Reserved Free", Reserved="Free Allocated",
                                           Free="Allocated")),
    observed=("state", "associated_vm_id", "associated_vm_name", "is_static_nat"))



class NatGatewayFields(Tagged):
    name: Name
    type: Literal["StaticNAT", "SourceNAT", "PrivateGateway"]
    ip_address_id: UUID
    ip_address: IpAddress | None = None
    vm_id: UUID | None = None
    vm_name: Name | None = None
    vpc_id: UUID | None = None
    network_id: ExternalId | None = None

    @model_validator(mode="after")
    def _static(self) -> NatGatewayFields:
        if self.type == "StaticNAT" and self.vm_id is None:
            raise ValueError("vm_id: a static NAT maps its address to a VM")
        return self


NAT_GATEWAY = Kind(
    name="nat_gateway", plural="nat_gateways", label="NAT gateway", fields=NatGatewayFields,
    refs={**ON_RESERVED_IP, "vm_id": "virtual_machine", "vpc_id": "vpc"},
    ref_copies=COPIES_ADDRESS,
    flag="nat_gateway", cloudstack="optional", methods=frozenset(
        ("list", "get", "create", "update", "delete")),
    updatable=("name", "vm_id", "vm_name", "network_id", "tags"),
    # one static NAT per address
    unique=(Unique(("ip_address",), "ip_address", where="type = 'StaticNAT'"),),
    lifecycle=ACTIVE)


class IpsecTunnelFields(Fields):
    name: Name
    customer_gateway_id: ExternalId
    customer_gateway_ip: IpAddress
    customer_cidr: Cidr
    vpc_id: UUID
    public_ip: IpAddress | None = None
    ike_policy: Code | None = None
    esp_policy: Code | None = None
    ike_lifetime: Seconds = 86400
    esp_lifetime: Seconds = 3600
    dpd: bool = True
    force_encap: bool = False
    passive: bool = False


IPSEC_TUNNEL = Kind(
    name="ipsec_tunnel", plural="ipsec_tunnels", label="IPsec tunnel",
    fields=IpsecTunnelFields, flag="ipsec_tunnels", refs={"vpc_id": "vpc"},
    updatable=("name", "ike_policy", "esp_policy", "ike_lifetime", "esp_lifetime", "dpd",
               "force_encap", "passive"),
    lifecycle=Lifecycle("Disconnected", moves(Disconnected="Pending Connected",
                                              Pending="Connected Disconnected",
                                              Connected="Disconnected")),
    observed=("state",))


class LoadBalancerFields(Tagged):
    name: Name
    algorithm: Literal["roundrobin", "leastconn", "source"] = "roundrobin"
    protocol: Literal["tcp", "udp", "http", "https"]
    public_port: Port
    private_port: Port
    public_ip_id: UUID
    public_ip: IpAddress | None = None
    network_id: ExternalId | None = None
    vpc_id: UUID | None = None
    stickiness: bool = False
    health_check: bool = True
    health_check_path: str = Field(default="/", max_length=lim.URL_MAX, pattern=r"^/\S*$")
    health_check_interval: Seconds = 30


LOAD_BALANCER = Kind(
    name="load_balancer", plural="load_balancers", fields=LoadBalancerFields,
    flag="load_balancer", refs={"public_ip_id": "reserved_ip", "vpc_id": "vpc"},
    ref_copies={"public_ip": ("public_ip_id", "ip_address")},
    methods=frozenset(("list", "get", "create", "delete")),
    lifecycle=ACTIVE, observed=("state",))


class DdosProtectionRuleFields(Tagged):
    name: Name
    ip_address_id: UUID
    ip_address: IpAddress | None = None
    protection_level: Literal["standard", "advanced", "premium"] = "standard"
    enabled: bool = True
    traffic_threshold: int = Field(default=1000, ge=1, le=lim.INT4_MAX)  # Mbps
    packet_threshold: int = Field(default=100_000, ge=1, le=lim.INT4_MAX)  # packets/s
    auto_mitigation: bool = True


DDOS_PROTECTION_RULE = Kind(
    name="ddos_protection_rule", plural="ddos_protection_rules", label="DDoS protection rule",
    fields=DdosProtectionRuleFields, flag="ddos_protection", refs=ON_RESERVED_IP,
    ref_copies=COPIES_ADDRESS,
    methods=frozenset(("list", "get", "create", "delete")))


class CdnDistributionFields(Tagged):
    name: Name
    domain: DomainName
    origin_server: Annotated[str, Field(max_length=253), AfterValidator(domain_name)]
    origin_protocol: Literal["http", "https"] = "https"
    cache_enabled: bool = True
    cache_ttl: Seconds = 3600
    compression_enabled: bool = True
    ssl_enabled: bool = True
    ssl_certificate_id: UUID | None = None
    geo_restrictions: list[Annotated[str, Field(max_length=2, pattern=r"^[A-Z]{2}$")]] = Field(
        default=[], max_length=250)


CDN_DISTRIBUTION = Kind(
    name="cdn_distribution", plural="cdn_distributions", label="CDN distribution",
    fields=CdnDistributionFields, flag="cdn_service",
    refs={"ssl_certificate_id": "ssl_certificate"},
    ref_rules={"ssl_certificate_id": certificate_covers},
    methods=frozenset(("list", "get", "create", "delete")),
    lifecycle=Lifecycle("Enabled", moves(Enabled="Disabled", Disabled="Enabled Deploying",
                                         Deploying="Enabled Disabled"), field="status"),
    observed=("status",))

KINDS = (VPC, RESERVED_IP, FIREWALL_RULE, NAT_GATEWAY, IPSEC_TUNNEL, LOAD_BALANCER,
         DDOS_PROTECTION_RULE, CDN_DISTRIBUTION)
