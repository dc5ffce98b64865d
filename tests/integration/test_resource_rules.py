"""Rules specific to some resource kinds (test_resources.py covers the generic behaviour):
bucket credentials, S3 names and the sealed secret key; certificate facts read from the PEM,
key/domain/chain checks and the sealed private key; the field rules of NAT gateways, load
balancers, DDoS rules, CDN distributions and IPsec tunnels. Refusals must write nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from akashone_es.errors import ConflictError, DuplicateError, NotFoundError, ValidationError
from akashone_es.resources import KINDS
from akashone_es.storage import Storage
from tests.conftest import log_size
from tests.integration.access_fixtures import call
from tests.integration.resource_samples import PRIVATE_KEY, fresh_input

PASSWORD = "password-long-1"
Key = ec.EllipticCurvePrivateKey


_store: list[Storage] = []


@pytest.fixture(autouse=True)
def _sample_storage(storage: Storage) -> Iterator[None]:
    """``sample`` makes what a kind must name (a NAT's reserved IP, ...) in this storage."""
    _store.append(storage)
    yield
    _store.pop()


def sample(kind: str, tag: str, owner: Any, **changes: Any) -> dict[str, Any]:
    return {**fresh_input(_store[-1], KINDS[kind], tag, owner.id), **changes}


def make(storage: Storage, kind: str, data: dict[str, Any]) -> Any:
    return call(storage, KINDS[kind], "create", data)


def refused(storage: Storage, kind: str, data: dict[str, Any], field: str) -> None:
    """Creating ``data`` is a ValidationError naming ``field`` (or an item of it), and the
    log is unchanged."""
    before = log_size(storage.dsn)
    with pytest.raises(ValidationError) as raised:
        make(storage, kind, data)
    assert any(f == field or f.startswith(f"{field}.") for f in raised.value.fields), \
        raised.value.errors
    assert log_size(storage.dsn) == before


def duplicate(storage: Storage, kind: str, data: dict[str, Any], field: str) -> None:
    before = log_size(storage.dsn)
    with pytest.raises(DuplicateError) as raised:
        make(storage, kind, data)
    assert raised.value.field == field
    assert log_size(storage.dsn) == before


def one(storage: Storage, query: str, *params: Any) -> Any:
    with psycopg.connect(storage.dsn) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def events_containing(storage: Storage, text: str) -> int:
    return int(one(storage, "SELECT count(*) FROM akashone_events WHERE position(%s in"
                            " convert_from(state, 'UTF8')) > 0", text))


# -- certificates -------------------------------------------------------------------------
def issue(names: tuple[str, ...], *, days: int = 90, subject: x509.Name | None = None,
          ca: tuple[x509.Certificate, Key] | None = None) -> tuple[x509.Certificate, Key]:
    """A certificate for ``names`` (DNS subject alternative names, the first also the CN
    unless ``subject`` is given), expiring in ``days`` (negative: already expired), signed
    by ``ca`` or by itself."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = subject or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    issuer, signer = (ca[0].subject, ca[1]) if ca else (subject, key)
    now = datetime.now(UTC).replace(microsecond=0)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(days=400))
               .not_valid_after(now + timedelta(days=days)))
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    return builder.sign(signer, hashes.SHA256()), key


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: Key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def cert_input(owner: Any, tag: str, cert: x509.Certificate, key: Key,
               **changes: Any) -> dict[str, Any]:
    return {**sample("ssl_certificate", tag, owner, certificate=pem(cert),
                     private_key=key_pem(key)), **changes}


CA_NAME = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Trust"),
                     x509.NameAttribute(NameOID.COMMON_NAME, "Example Issuing CA")])


class TestObjectStorageBuckets:
    def test_credentials_and_endpoint_are_generated_and_the_bucket_is_empty(
            self, storage: Storage, world: dict[str, Any]) -> None:
        owner = world["alpha"]
        made = make(storage, "object_storage_bucket",
                    sample("object_storage_bucket", "a", owner, name="media-assets",
                           region="in-west-1"))
        assert re.fullmatch(r"AK[0-9A-F]{20}", made.access_key)
        assert re.fullmatch(r"([0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}){2}", made.secret_key)
        assert made.endpoint == "https://media-assets.s3.in-west-1.akashone.com"
        assert (made.size, made.object_count) == (0, 0)
        assert (made.versioning, made.public_access, made.encryption) == (False, False, True)
        other = make(storage, "object_storage_bucket", sample("object_storage_bucket", "b", owner))
        assert other.access_key != made.access_key
        assert other.secret_key != made.secret_key

    def test_secret_key_is_shown_once_and_never_logged_in_clear(
            self, storage: Storage, world: dict[str, Any]) -> None:
        owner = world["alpha"]
        made = make(storage, "object_storage_bucket", sample("object_storage_bucket", "s", owner))
        secret = made.secret_key
        assert len(secret) == 72
        got = call(storage, KINDS["object_storage_bucket"], "get", made.id)
        assert got.secret_key is None
        assert got.access_key == made.access_key
        listed = call(storage, KINDS["object_storage_bucket"], "list", owner.id)
        assert [b.secret_key for b in listed] == [None]
        assert events_containing(storage, made.access_key) == 1  # the search does find text
        assert events_containing(storage, secret) == 0, "the secret key is in the log in clear"
        assert secret not in one(storage, "SELECT secret_key FROM object_storage_buckets"
                                          " WHERE id = %s", made.id)

    @pytest.mark.parametrize("name", ["ab", "Media-assets", "media..assets", "-media",
                                      "xn--media", "a" * 64, "media_assets", "media-"])
    def test_s3_naming_rules_are_enforced(self, storage: Storage, world: dict[str, Any],
                                          name: str) -> None:
        refused(storage, "object_storage_bucket",
                sample("object_storage_bucket", "n", world["alpha"], name=name), "name")

    @pytest.mark.parametrize("name", ["abc", "a" * 63, "logs.2024-q1", "9lives"])
    def test_names_at_the_edges_of_the_rules_are_accepted(
            self, storage: Storage, world: dict[str, Any], name: str) -> None:
        made = make(storage, "object_storage_bucket",
                    sample("object_storage_bucket", "e", world["alpha"], name=name))
        assert made.name == name

    @pytest.mark.parametrize("name", ["media-.assets", "media.-assets", "192.168.5.4"])
    def test_names_must_be_dns_safe_host_labels(self, storage: Storage, world: dict[str, Any],
                                                name: str) -> None:
        refused(storage, "object_storage_bucket",
                sample("object_storage_bucket", "d", world["alpha"], name=name), "name")

    def test_names_are_unique_across_tenants(self, storage: Storage,
                                             world: dict[str, Any]) -> None:
        make(storage, "object_storage_bucket",
             sample("object_storage_bucket", "t1", world["alpha"], name="shared-name"))
        duplicate(storage, "object_storage_bucket",
                  sample("object_storage_bucket", "t2", world["bravo"], name="shared-name"),
                  "name")

    @pytest.mark.parametrize("region", ["", "IN-WEST-1", "in_west_1", "-in-west", "in--west",
                                        "in west", "r" * 64])
    def test_region_must_be_a_lower_case_hyphenated_code(
            self, storage: Storage, world: dict[str, Any], region: str) -> None:
        refused(storage, "object_storage_bucket",
                sample("object_storage_bucket", "r", world["alpha"], region=region), "region")


class TestSslCertificates:
    def test_domain_issuer_and_expiry_are_read_from_the_pem(
            self, storage: Storage, world: dict[str, Any]) -> None:
        ca = issue(("ca.example.net",), subject=CA_NAME, days=3650)
        cert, key = issue(("shop.example.in", "www.shop.example.in"), days=30, ca=ca)
        made = make(storage, "ssl_certificate",
                    cert_input(world["alpha"], "f", cert, key, chain=pem(ca[0])))
        assert made.domain == "shop.example.in"
        assert made.issuer == CA_NAME.rfc4514_string()
        assert "O=Example Trust" in made.issuer
        assert made.expires_at == cert.not_valid_after_utc
        assert made.status == "Active"
        assert made.chain.strip() == pem(ca[0]).strip()  # re-encoded, same certificate
        got = call(storage, KINDS["ssl_certificate"], "get", made.id)
        assert (got.domain, got.issuer, got.expires_at) == (
            made.domain, made.issuer, made.expires_at)

    def test_a_given_domain_is_normalized_and_kept(self, storage: Storage,
                                                   world: dict[str, Any]) -> None:
        cert, key = issue(("shop.example.in", "www.shop.example.in"))
        made = make(storage, "ssl_certificate",
                    cert_input(world["alpha"], "g", cert, key, domain="WWW.Shop.Example.in."))
        assert made.domain == "www.shop.example.in"

    def test_a_key_of_another_certificate_is_refused(self, storage: Storage,
                                                     world: dict[str, Any]) -> None:
        cert, _ = issue(("www.example.com",))
        _, other_key = issue(("www.example.com",))
        refused(storage, "ssl_certificate", cert_input(world["alpha"], "k", cert, other_key),
                "private_key")

    @pytest.mark.parametrize(("field", "value"), [
        ("certificate", "garbage"),
        ("certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"),
        ("certificate", PRIVATE_KEY),  # a key where the certificate belongs
        ("private_key", "junk"),
        ("chain", "not a chain"),
    ])
    def test_text_that_is_not_pem_is_refused(self, storage: Storage, world: dict[str, Any],
                                             field: str, value: str) -> None:
        cert, key = issue(("www.example.com",))
        refused(storage, "ssl_certificate",
                cert_input(world["alpha"], "p", cert, key, **{field: value}), field)

    def test_a_domain_the_certificate_does_not_cover_is_refused(
            self, storage: Storage, world: dict[str, Any]) -> None:
        cert, key = issue(("www.example.com", "example.com"))
        refused(storage, "ssl_certificate",
                cert_input(world["alpha"], "d", cert, key, domain="api.example.com"), "domain")

    def test_a_wildcard_covers_one_label_but_not_the_apex(self, storage: Storage,
                                                          world: dict[str, Any]) -> None:
        cert, key = issue(("*.example.com",))
        made = make(storage, "ssl_certificate",
                    cert_input(world["alpha"], "w1", cert, key, domain="shop.example.com"))
        assert made.domain == "shop.example.com"
        for n, domain in enumerate(("example.com", "a.shop.example.com", "shop.example.org")):
            refused(storage, "ssl_certificate",
                    cert_input(world["alpha"], f"w{n + 2}", cert, key, domain=domain), "domain")

    def test_private_key_is_sealed_and_shown_once(self, storage: Storage,
                                                  world: dict[str, Any]) -> None:
        owner = world["alpha"]
        cert, key = issue(("www.example.com",))
        made = make(storage, "ssl_certificate", cert_input(owner, "s", cert, key))
        assert made.private_key == key_pem(key).strip()
        assert call(storage, KINDS["ssl_certificate"], "get", made.id).private_key is None
        listed = call(storage, KINDS["ssl_certificate"], "list", owner.id)
        assert [c.private_key for c in listed] == [None]
        key_line = key_pem(key).splitlines()[1]  # a base64 line of the key itself
        cert_line = pem(cert).splitlines()[1]
        assert events_containing(storage, cert_line) == 1  # the search does find PEM text
        assert events_containing(storage, key_line) == 0, "the private key is in the log"
        assert key_line not in one(storage, "SELECT private_key FROM ssl_certificates"
                                            " WHERE id = %s", made.id)

    def test_an_expired_certificate_is_not_recorded_as_active(
            self, storage: Storage, world: dict[str, Any]) -> None:
        cert, key = issue(("old.example.com",), days=-1)
        try:
            status = make(storage, "ssl_certificate",
                          cert_input(world["alpha"], "x", cert, key)).status
        except ValidationError as exc:  # refusing it is as good as marking it Expired
            status = f"refused: {exc.fields}"
        assert status in ("Expired", "refused: ['certificate']")

    def test_a_certificate_without_a_dns_name_is_refused(self, storage: Storage,
                                                          world: dict[str, Any]) -> None:
        org_only = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme")])
        cert, key = issue((), subject=org_only)
        refused(storage, "ssl_certificate", cert_input(world["alpha"], "n", cert, key),
                "certificate")


def nat(tag: str, owner: Any, address: Any = None, **changes: Any) -> dict[str, Any]:
    """A static NAT of ``owner``'s new VM, on ``address`` (one of the owner's reserved IPs;
    a new one when not given)."""
    vm = call(_store[-1], KINDS["virtual_machine"], "create",
              fresh_input(_store[-1], KINDS["virtual_machine"], f"{tag}-vm", owner.id))
    data = sample("nat_gateway", tag, owner, type="StaticNAT", vm_id=vm.id, **changes)
    if address is not None:
        data["ip_address_id"] = address.id
    return data


class TestNatGateways:
    def test_a_static_nat_needs_a_vm(self, storage: Storage, world: dict[str, Any]) -> None:
        owner = world["alpha"]
        data = nat("v", owner)
        del data["vm_id"]
        refused(storage, "nat_gateway", data, "vm_id")
        made = make(storage, "nat_gateway", nat("v2", owner))
        before = log_size(storage.dsn)
        with pytest.raises(ValidationError) as raised:
            call(storage, KINDS["nat_gateway"], "update", made.id, {"vm_id": None})
        assert "vm_id" in raised.value.fields
        assert log_size(storage.dsn) == before

    def test_one_static_nat_per_address_but_source_nats_may_share(
            self, storage: Storage, world: dict[str, Any]) -> None:
        alpha = world["alpha"]
        made = make(storage, "nat_gateway", nat("s1", alpha))
        address = call(storage, KINDS["reserved_ip"], "get", made.ip_address_id)
        assert made.ip_address == address.ip_address  # copied from the reserved IP
        duplicate(storage, "nat_gateway", nat("s2", alpha, address), "ip_address")
        source = [make(storage, "nat_gateway",
                       sample("nat_gateway", f"src{n}", alpha, type="SourceNAT",
                              ip_address_id=address.id)) for n in range(2)]
        assert [g.type for g in source] == ["SourceNAT", "SourceNAT"]
        assert source[0].id != source[1].id

    def test_another_tenants_address_or_vm_reads_as_absent(
            self, storage: Storage, world: dict[str, Any]) -> None:
        """A tenant cannot squat another's address (nor name its VM): not found."""
        alpha, bravo = world["alpha"], world["bravo"]
        theirs = make(storage, "nat_gateway", nat("b", bravo))
        mine = [nat(f"a{n}", alpha) for n in range(2)]
        with storage.acting_as(actor_id=alpha.id):
            before = log_size(storage.dsn)
            for data, changes in zip(mine, ({"ip_address_id": theirs.ip_address_id},
                                            {"vm_id": theirs.vm_id}), strict=True):
                with pytest.raises(NotFoundError) as raised:
                    make(storage, "nat_gateway", {**data, **changes})
                assert raised.value.field == next(iter(changes))
            assert log_size(storage.dsn) == before

    def test_an_address_given_must_be_the_reserved_ips(
            self, storage: Storage, world: dict[str, Any]) -> None:
        refused(storage, "nat_gateway", nat("w", world["alpha"], ip_address="203.0.113.99"),
                "ip_address")

    def test_the_cloudstack_id_is_optional_but_unique_when_given(
            self, storage: Storage, world: dict[str, Any]) -> None:
        owner = world["alpha"]
        without = [make(storage, "nat_gateway",
                        sample("nat_gateway", f"n{n}", owner, cloudstack_id=None))
                   for n in range(2)]
        assert [g.cloudstack_id for g in without] == [None, None]
        make(storage, "nat_gateway", sample("nat_gateway", "c1", owner, cloudstack_id="nat-1"))
        duplicate(storage, "nat_gateway",
                  sample("nat_gateway", "c2", owner, cloudstack_id="nat-1"), "cloudstack_id")

    def test_a_named_reserved_ip_cannot_be_deleted(
            self, storage: Storage, world: dict[str, Any]) -> None:
        made = make(storage, "nat_gateway", nat("d", world["alpha"]))
        with pytest.raises(ConflictError, match="in use"):
            call(storage, KINDS["reserved_ip"], "delete", made.ip_address_id)
        assert call(storage, KINDS["nat_gateway"], "delete", made.id) is True
        assert call(storage, KINDS["reserved_ip"], "delete", made.ip_address_id) is True


class TestReservedIps:
    def test_the_associated_vm_is_the_owners_and_freed_when_it_goes(
            self, storage: Storage, world: dict[str, Any]) -> None:
        """Found in a spec review: a reserved IP named any VM (another tenant's, or text that
        is no id), and kept naming a destroyed one. It names the owner's VM, checked on a
        write and on an observation, and the VM's destruction frees it."""
        alpha, bravo = world["alpha"], world["bravo"]
        vm_kind = KINDS["virtual_machine"]
        theirs = make(storage, "virtual_machine", fresh_input(storage, vm_kind, "b", bravo.id))
        mine = make(storage, "virtual_machine", fresh_input(storage, vm_kind, "a", alpha.id))
        with storage.acting_as(actor_id=alpha.id):
            before = log_size(storage.dsn)
            with pytest.raises(NotFoundError) as raised:
                make(storage, "reserved_ip",
                     sample("reserved_ip", "x", alpha, associated_vm_id=theirs.id))
            assert raised.value.field == "associated_vm_id"
            refused(storage, "reserved_ip",
                    sample("reserved_ip", "y", alpha, associated_vm_id="vm-garbage"),
                    "associated_vm_id")
            address = make(storage, "reserved_ip", sample("reserved_ip", "z", alpha))
            with pytest.raises(NotFoundError):
                call(storage, KINDS["reserved_ip"], "update", address.id,
                     {"associated_vm_id": str(theirs.id)})
            assert log_size(storage.dsn) == before + 1
            call(storage, KINDS["reserved_ip"], "update", address.id,
                 {"associated_vm_id": mine.id, "associated_vm_name": "web", "is_static_nat": True})
        with pytest.raises(NotFoundError):  # the sync too names only the owner's VMs
            storage.observe_reserved_ip(address.cloudstack_id, {"associated_vm_id": theirs.id})
        assert call(storage, KINDS["virtual_machine"], "delete", mine.id) is True
        freed = call(storage, KINDS["reserved_ip"], "get", address.id)
        assert (freed.associated_vm_id, freed.associated_vm_name, freed.is_static_nat) == (
            None, None, False)


class TestFirewallRules:
    def test_an_address_comes_only_with_its_reserved_ip(
            self, storage: Storage, world: dict[str, Any]) -> None:
        """Found in a spec review: a rule could name another tenant's address with no
        reserved IP of its own (and outlive that address's release)."""
        alpha, bravo = world["alpha"], world["bravo"]
        theirs = make(storage, "reserved_ip", sample("reserved_ip", "b", bravo))
        with storage.acting_as(actor_id=alpha.id):
            data = sample("firewall_rule", "f", alpha, ip_address=theirs.ip_address)
            data.pop("ip_address_id", None)
            refused(storage, "firewall_rule", data, "ip_address")


class TestVpcs:
    @pytest.mark.parametrize("cidr", ["127.0.0.0/8", "169.254.0.0/16", "0.0.0.0/8",
                                      "240.0.0.0/4", "192.0.2.0/24", "100.64.0.0/10",
                                      "fe80::/64", "2001:db8::/32", "10.0.0.0/7"])
    def test_the_cidr_is_within_a_private_range(self, storage: Storage,
                                                world: dict[str, Any], cidr: str) -> None:
        """RFC 1918 or IPv6 ULA, as the spec says (``is_private`` took loopback, link-local,
        documentation and reserved ranges too)."""
        refused(storage, "vpc", sample("vpc", "v", world["alpha"], cidr=cidr), "cidr")

    @pytest.mark.parametrize("cidr", ["10.1.0.0/16", "172.31.0.0/16", "192.168.10.0/24",
                                      "fd12:3456::/48"])
    def test_private_ranges_are_taken(self, storage: Storage, world: dict[str, Any],
                                      cidr: str) -> None:
        assert make(storage, "vpc", sample("vpc", cidr, world["alpha"], cidr=cidr)).cidr == cidr

    def test_the_network_domain_is_a_domain_name(self, storage: Storage,
                                                 world: dict[str, Any]) -> None:
        refused(storage, "vpc", sample("vpc", "d", world["alpha"],
                                       network_domain="not a domain!!"), "network_domain")


class TestLoadBalancers:
    def test_defaults_and_port_bounds(self, storage: Storage, world: dict[str, Any]) -> None:
        made = make(storage, "load_balancer", sample("load_balancer", "d", world["alpha"],
                                                     public_port=1, private_port=65535))
        assert (made.algorithm, made.health_check_path, made.state, made.public_port,
                made.private_port) == ("roundrobin", "/", "Active", 1, 65535)
        other = make(storage, "load_balancer",
                     sample("load_balancer", "o", world["alpha"], algorithm="leastconn",
                            protocol="udp", health_check_path="/healthz"))
        assert (other.algorithm, other.protocol, other.health_check_path) == (
            "leastconn", "udp", "/healthz")

    @pytest.mark.parametrize(("field", "value"), [
        ("algorithm", "random"), ("protocol", "icmp"), ("protocol", "HTTP"),
        ("public_port", 0), ("public_port", 65536), ("private_port", 0),
        ("private_port", 70000), ("health_check_path", "healthz"),
        ("health_check_path", "/a b"), ("health_check_path", ""),
    ])
    def test_invalid_fields_are_refused(self, storage: Storage, world: dict[str, Any],
                                        field: str, value: Any) -> None:
        refused(storage, "load_balancer",
                sample("load_balancer", "x", world["alpha"], **{field: value}), field)


class TestDdosProtectionRules:
    def test_defaults_and_lowest_thresholds(self, storage: Storage,
                                            world: dict[str, Any]) -> None:
        made = make(storage, "ddos_protection_rule", sample("ddos_protection_rule", "d",
                                                            world["alpha"]))
        assert (made.protection_level, made.traffic_threshold, made.packet_threshold) == (
            "standard", 1000, 100_000)
        low = make(storage, "ddos_protection_rule",
                   sample("ddos_protection_rule", "l", world["alpha"], protection_level="premium",
                          traffic_threshold=1, packet_threshold=1))
        assert (low.protection_level, low.traffic_threshold, low.packet_threshold) == (
            "premium", 1, 1)

    @pytest.mark.parametrize(("field", "value"), [
        ("protection_level", "ultra"), ("protection_level", "Standard"),
        ("traffic_threshold", 0), ("traffic_threshold", -5), ("packet_threshold", 0),
    ])
    def test_invalid_fields_are_refused(self, storage: Storage, world: dict[str, Any],
                                        field: str, value: Any) -> None:
        refused(storage, "ddos_protection_rule",
                sample("ddos_protection_rule", "x", world["alpha"], **{field: value}), field)


class TestCdnDistributions:
    def test_domains_are_normalized_and_status_starts_enabled(
            self, storage: Storage, world: dict[str, Any]) -> None:
        made = make(storage, "cdn_distribution",
                    sample("cdn_distribution", "n", world["alpha"], domain="CDN.Example.COM.",
                           origin_server="Origin.Example.net.", geo_restrictions=["IN", "US"]))
        assert (made.domain, made.origin_server) == ("cdn.example.com", "origin.example.net")
        assert made.geo_restrictions == ["IN", "US"]
        assert made.status == "Enabled"

    @pytest.mark.parametrize(("field", "value"), [
        ("domain", "localhost"), ("domain", "not a domain"), ("domain", "-cdn.example.com"),
        ("domain", "cdn_1.example.com"), ("origin_server", "https://origin.example.com"),
        ("origin_server", "origin..example.com"), ("geo_restrictions", ["in"]),
        ("geo_restrictions", ["IND"]), ("geo_restrictions", ["IN", "U1"]),
    ])
    def test_invalid_fields_are_refused(self, storage: Storage, world: dict[str, Any],
                                        field: str, value: Any) -> None:
        refused(storage, "cdn_distribution",
                sample("cdn_distribution", "x", world["alpha"], **{field: value}), field)


    def test_the_certificate_named_covers_the_domain(self, storage: Storage,
                                                     world: dict[str, Any]) -> None:
        """Found in a spec review: any certificate of the owner was taken, whatever domain
        it is for. It must cover the CDN's domain (a wildcard covers one label)."""
        alpha = world["alpha"]
        certificate = make(storage, "ssl_certificate",
                           cert_input(alpha, "c", *issue(("www.example.com", "*.cdn.example.in"))))
        data = sample("cdn_distribution", "n", alpha, domain="cdn.other.org",
                      ssl_certificate_id=certificate.id)
        before = log_size(storage.dsn)
        with pytest.raises(ValidationError) as raised:
            make(storage, "cdn_distribution", data)
        assert raised.value.fields == ["ssl_certificate_id"]
        assert "covers www.example.com, *.cdn.example.in, not cdn.other.org" in str(raised.value)
        assert log_size(storage.dsn) == before
        for n, domain in enumerate(("www.example.com", "edge.cdn.example.in")):
            made = make(storage, "cdn_distribution",
                        sample("cdn_distribution", f"ok{n}", alpha, domain=domain,
                               ssl_certificate_id=certificate.id))
            assert made.domain == domain


class TestIpsecTunnels:
    def test_state_starts_disconnected_and_addresses_are_normalized(
            self, storage: Storage, world: dict[str, Any]) -> None:
        made = make(storage, "ipsec_tunnel",
                    sample("ipsec_tunnel", "n", world["alpha"], customer_cidr="2001:DB8:1::/48",
                           customer_gateway_ip="2001:DB8::0001"))
        assert made.state == "Disconnected"
        assert (made.customer_cidr, made.customer_gateway_ip) == ("2001:db8:1::/48",
                                                                  "2001:db8::1")
        assert (made.ike_lifetime, made.esp_lifetime) == (86400, 3600)

    @pytest.mark.parametrize(("field", "value"), [
        ("customer_cidr", "192.168.0.1/24"), ("customer_cidr", "not-a-cidr"),
        ("customer_cidr", "10.0.0.0/33"), ("customer_gateway_ip", "198.51.100.300"),
        ("customer_gateway_ip", "gateway.example.com"), ("ike_lifetime", 0),
        ("esp_lifetime", -1), ("ike_lifetime", 10 * 365 * 86400 + 1),
    ])
    def test_invalid_fields_are_refused(self, storage: Storage, world: dict[str, Any],
                                        field: str, value: Any) -> None:
        refused(storage, "ipsec_tunnel",
                sample("ipsec_tunnel", "x", world["alpha"], **{field: value}), field)

    def test_an_update_keeps_the_lifetime_bounds(self, storage: Storage,
                                                 world: dict[str, Any]) -> None:
        made = make(storage, "ipsec_tunnel", sample("ipsec_tunnel", "u", world["alpha"]))
        before = log_size(storage.dsn)
        with pytest.raises(ValidationError) as raised:
            call(storage, KINDS["ipsec_tunnel"], "update", made.id, {"esp_lifetime": 0})
        assert "esp_lifetime" in raised.value.fields
        assert log_size(storage.dsn) == before
        assert call(storage, KINDS["ipsec_tunnel"], "get", made.id).esp_lifetime == 3600
