"""The casbin peer: `model.conf` with the workload's grants and bindings, via pycasbin."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata, resources
from typing import Any

import casbin

from . import require_constants

_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})\Z", re.ASCII)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Account:
    """A service account as the matcher reads it; the default is an unknown account."""

    trust_domain: str | None = None
    attested: bool | None = None
    revoked: bool | None = None
    namespace: str | None = None
    environments: tuple[Any, ...] = ()
    limit: int | float | None = None
    networks: tuple[Network, ...] = ()


@dataclass(frozen=True)
class Request:
    """`r.req`: the request's resource properties, token scopes, context and the clock."""

    namespace: Any
    scope: Any
    scopes: tuple[Any, ...]
    environment: Any
    source_ip: Any
    amount: Any
    elevation_expires: Any
    now: str


def _account(raw: dict[str, Any]) -> Account:
    return Account(raw["trust_domain"], raw["attested"], raw["revoked"], raw["namespace"],
                   tuple(raw["environments"]), raw["limit"],
                   tuple(ipaddress.ip_network(n, strict=True) for n in raw["networks"]))


def _timestamp(text: Any) -> datetime | None:
    """RFC 3339 with an offset, as Layergate reads it; None if it is not one."""
    match = _RFC3339.match(text) if isinstance(text, str) else None
    if match is None:
        return None
    date, clock, fraction, offset = match.groups()
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        return datetime.fromisoformat(f"{date}T{clock}{(fraction or '')[:7]}{offset}")
    except ValueError:
        return None


def cidr(address: Any, networks: tuple[Network, ...]) -> bool:
    """The address is inside one of the networks; false for text that is not an address."""
    try:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else None
    except ValueError:
        return False
    return ip is not None and any(ip.version == n.version and ip in n for n in networks)


def within(amount: Any, limit: Any) -> bool:
    """Both are numbers (not booleans) and the amount is at most the limit."""
    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return number(amount) and number(limit) and amount <= limit


def after(text: Any, now: str) -> bool:
    """`text` is a timestamp later than `now`; false if either is not a timestamp."""
    moment, clock = _timestamp(text), _timestamp(now)
    return moment is not None and clock is not None and moment > clock


class CasbinPeer:
    """casbin: RBAC grants as p lines, roles as g links, the other layers in the matcher."""

    name = "casbin"
    version = metadata.version("casbin")
    notes = (
        "RBAC is casbin's own: p lines are role grants, g links bind accounts to roles and "
        "roles to the roles they extend (at most 4 links deep at S = 1000, within pycasbin's "
        "default max_hierarchy_level of 10); the write actions are a literal tuple, since "
        "pycasbin 1.43's FastModel silently drops a second role definition `g2`",
        "the identity, scope and request layers are the matcher; Layergate's deny rules "
        "(revoked, outside_network, over_limit) are written as requirements (`revoked is "
        "False`, `cidr(...)`, `within(...)`), so anything unevaluable fails to allow",
        "custom functions are total: `cidr` is false for unparsable text (pycasbin's own "
        "`ipMatch` raises out of enforce on `10.0.0.999`), `within` is false unless both are "
        "numbers, `after` is false unless both are RFC 3339 timestamps; the clock is "
        "`r.req.now`, the workload's fixed time",
        "`account(id)` reads the registry; an unknown id reads as an Account with no "
        "attributes, which `revoked is False` denies (the identity layer is what denies it: "
        "alone, the scope test `None == None` would pass a request with no namespace); "
        "prepare turns each AuthZEN dict into (sub, obj, act, Request), absent fields None",
        "FastEnforcer indexes the p lines by (action, resource type), so the matcher runs "
        "only on the grants for this pair; batch_enforce is casbin's loop over enforce",
    )

    def __init__(self, workload: dict[str, Any]) -> None:
        require_constants(workload)
        self.now = workload["now"]
        accounts = {name: _account(raw) for name, raw in workload["data"]["accounts"].items()}
        unknown = Account()
        model = resources.files(__package__).joinpath("model.conf")
        with resources.as_file(model) as path:
            self.enforcer = casbin.FastEnforcer(str(path), cache_key_order=[2, 1])
        for name, func in (("account", lambda sub: accounts.get(sub, unknown)),
                           ("cidr", cidr), ("within", within), ("after", after)):
            self.enforcer.add_function(name, func)
        roles = workload["roles"]
        self.enforcer.add_policies([[name, kind, action] for name, role in roles.items()
                                    for action, kind in role["grants"]])
        links = [[name, role["extends"]] for name, role in roles.items() if role["extends"]]
        links += [[sub, role] for sub, raw in workload["data"]["accounts"].items()
                  for role in raw["roles"]]
        self.enforcer.add_grouping_policies(links)

    def prepare(self, requests: list[dict[str, Any]]) -> list[tuple[str, str, str, Request]]:
        """AuthZEN dicts -> (sub, obj, act, Request) tuples."""
        return [self._request(r) for r in requests]

    def _request(self, request: dict[str, Any]) -> tuple[str, str, str, Request]:
        subject, resource = request["subject"], request["resource"]
        properties, context = resource.get("properties", {}), request.get("context", {})
        scopes = subject.get("properties", {}).get("scopes")
        record = Request(properties.get("namespace"), properties.get("scope"),
                         tuple(scopes) if isinstance(scopes, list) else (),
                         properties.get("environment"), context.get("source_ip"),
                         context.get("amount"), context.get("elevation_expires"), self.now)
        return subject["id"], resource["type"], request["action"]["name"], record

    def check(self, native_one: tuple[str, str, str, Request]) -> bool:
        """One `enforce` call."""
        return self.enforcer.enforce(*native_one)

    def check_batch(self, native_batch: list[tuple[str, str, str, Request]]) -> list[bool]:
        """casbin's `batch_enforce`."""
        return self.enforcer.batch_enforce(native_batch)
