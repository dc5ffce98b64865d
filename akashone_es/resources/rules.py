"""Field types and rules shared by the resource kinds: names, ids, CIDRs, addresses, ports.

Each is an ``Annotated`` type, so a kind's fields read as their contract: ``cidr: Cidr``,
``start_port: Port | None``. A rule that fails names its field (pydantic's location) and
says what is expected.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, BeforeValidator, Field

from akashone_es.storage import limits as lim

#: a DNS name: labels of letters, digits and hyphens (not at either end), 253 characters
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        raise ValueError(f"not a CIDR block ({exc})") from None


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("not an IPv4 or IPv6 address") from None


def domain_name(value: str) -> str:
    """A DNS domain name, lower-cased, without a trailing dot."""
    name = value.lower().removesuffix(".")
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL.match(x) for x in labels):
        raise ValueError("not a domain name (labels of letters, digits and inner hyphens, "
                         "separated by dots, at most 253 characters)")
    return name


#: the private ranges a VPC may use: RFC 1918's three and IPv6's unique local addresses
#: (``is_private`` also takes loopback, link-local, documentation and reserved ranges)
PRIVATE_RANGES = tuple(ipaddress.ip_network(r) for r in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))


def _private_cidr(value: str) -> str:
    network = ipaddress.ip_network(_cidr(value))
    if not any(network.version == r.version and network.subnet_of(r)  # type: ignore[arg-type]
               for r in PRIVATE_RANGES):
        raise ValueError("a VPC's CIDR must be within a private range (RFC 1918: 10.0.0.0/8, "
                         "172.16.0.0/12, 192.168.0.0/16; or IPv6 ULA fc00::/7)")
    return str(network)


def _id_text(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, str):
        try:
            return str(UUID(value))
        except ValueError:
            raise ValueError("must be a UUID (the id of the resource it names)") from None
    return value


Name = Annotated[str, Field(min_length=1, max_length=lim.NAME_MAX)]
Text = Annotated[str, Field(max_length=lim.DESCRIPTION_MAX)]
Code = Annotated[str, Field(min_length=1, max_length=lim.CODE_MAX)]
ExternalId = Annotated[str, Field(min_length=1, max_length=lim.ID_MAX)]
#: a resource's id in a text column (made when the field took any id): a UUID, as text
IdText = Annotated[str, Field(max_length=lim.ID_MAX), BeforeValidator(_id_text)]
Cidr = Annotated[str, Field(max_length=lim.IP_ADDRESS_MAX + 4), AfterValidator(_cidr)]
PrivateCidr = Annotated[str, Field(max_length=lim.IP_ADDRESS_MAX + 4),
                        AfterValidator(_private_cidr)]
IpAddress = Annotated[str, Field(max_length=lim.IP_ADDRESS_MAX), AfterValidator(_ip)]
Port = Annotated[int, Field(ge=1, le=65535)]
DomainName = Annotated[str, Field(max_length=253), AfterValidator(domain_name)]
Url = Annotated[str, Field(max_length=lim.URL_MAX, pattern=r"^https?://\S+$")]
Seconds = Annotated[int, Field(ge=1, le=10 * 365 * 86400)]
Count = Annotated[int, Field(ge=0, le=lim.INT4_MAX)]
Bytes = Annotated[int, Field(ge=0, le=lim.BIGINT_MAX)]
Short = Annotated[list[str], Field(max_length=100)]


def cidr_list(value: list[str]) -> list[str]:
    return [_cidr(item) for item in value]


CidrList = Annotated[list[Annotated[str, Field(max_length=lim.IP_ADDRESS_MAX + 4)]],
                     Field(max_length=100), AfterValidator(cidr_list)]


def port_range(fields: Any, start: str = "start_port", end: str = "end_port") -> None:
    """``start <= end`` when both are given (a model validator's helper)."""
    low, high = getattr(fields, start), getattr(fields, end)
    if low is not None and high is not None and low > high:
        raise ValueError(f"{start}: must not be above {end} ({low} > {high})")
