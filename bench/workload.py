"""A seeded synthetic NHI estate: a 4-layer policy, its data, and requests against it.

Size S: S roles, 10*S service accounts, 10*S resources. About 40% of requests are allowed;
denials come from every layer; about 1% are malformed (bad IP text, unknown principals).
The same requests are plain JSON, so every engine evaluates exactly the same work.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

ACTIONS = ["read", "write", "deploy", "delete", "rotate", "list", "scale", "approve", "submit",
           "exec"]
RESOURCE_TYPES = [f"type{n}" for n in range(20)]
NAMESPACES = [f"ns{n}" for n in range(20)]
ENVIRONMENTS = ["dev", "staging", "prod"]
TRUST_DOMAIN = "prod.example.org"
WRITES = ["write", "deploy", "delete", "rotate", "scale"]
NOW = "2026-06-01T12:00:00Z"


@dataclass(frozen=True)
class Workload:
    size: int
    policy: str
    data: dict[str, Any]
    requests: list[dict[str, Any]]
    roles: dict[str, dict[str, Any]]  # name -> {"extends": parent or None, "grants": [[a, t]]}

    def to_json(self) -> dict[str, Any]:
        """The engine-neutral form every peer reads: roles, data, requests and the clock."""
        return {"size": self.size, "now": NOW, "trust_domain": TRUST_DOMAIN,
                "writes": WRITES, "roles": self.roles, "data": self.data,
                "requests": self.requests}


def _roles(rng: random.Random, size: int) -> tuple[list[str], dict[str, set[tuple[str, str]]],
                                                    dict[str, dict[str, Any]]]:
    lines: list[str] = []
    grants: dict[str, set[tuple[str, str]]] = {}
    roles: dict[str, dict[str, Any]] = {}
    for n in range(size):
        name = f"role{n}"
        pairs = {(rng.choice(ACTIONS), rng.choice(RESOURCE_TYPES)) for _ in range(3)}
        parent = f"role{rng.randrange(n)}" if n and rng.random() < 0.1 else None
        grants[name] = set(pairs) | (grants[parent] if parent else set())
        roles[name] = {"extends": parent, "grants": [list(pair) for pair in sorted(pairs)]}
        body = "\n".join(f"  {a} on {t}" for a, t in sorted(pairs))
        head = f"role {name}" + (f" extends {parent}" if parent else "")
        lines.append(f"{head} {{\n{body}\n}}")
    return lines, grants, roles


POLICY_LAYERS = """
layers [identity, rbac, scope, request]

const TRUST_DOMAIN = "prod.example.org"
const WRITES = ["write", "deploy", "delete", "rotate", "scale"]

layer identity "a live, attested workload of the production trust domain"
  controls "OWASP-NHI-01", "SP800-207" {
  revoked: deny * on * when data.accounts[subject.id].revoked
  attested: allow * on * when data.accounts[subject.id].trust_domain == TRUST_DOMAIN
    and data.accounts[subject.id].attested
}

layer rbac "a bound role grants the action on the resource type"
  controls "NIST-CSF PR.AA-05" {
  bound_role: allow * on * when grants(data.accounts[subject.id].roles)
}

layer scope "the resource is in the workload's namespace and its token carries the scope"
  controls "OWASP-NHI-05", "NIST-CSF PR.AC-4" {
  own_scope: allow * on * when resource.properties.namespace == data.accounts[subject.id].namespace
    and resource.properties.scope in subject.properties.scopes
}

layer request "network, environment, amount and time-bound elevation"
  controls "SP800-207" {
  outside_network: deny * on * when not cidr(context.source_ip, data.accounts[subject.id].networks)
  over_limit: deny * on * when action.name in WRITES
    and context.amount > data.accounts[subject.id].limit
  environment: allow * on * when resource.properties.environment
    in data.accounts[subject.id].environments
  elevated: allow * on * when time(context.elevation_expires) > now
}
"""


def build(size: int, requests: int = 10_000, seed: int = 7) -> Workload:
    """The workload at size S = `size` roles, reproducible from `seed`."""
    rng = random.Random(seed * 1_000_003 + size)
    role_lines, grants, roles = _roles(rng, size)
    accounts: dict[str, Any] = {}
    for n in range(10 * size):
        bound = rng.sample(sorted(grants), k=min(len(grants), rng.randint(1, 3)))
        octet = n % 250
        accounts[f"sa-{n}"] = {
            "trust_domain": TRUST_DOMAIN if rng.random() < 0.95 else "partner.example.net",
            "attested": rng.random() < 0.95,
            "revoked": rng.random() < 0.02,
            "roles": bound,
            "namespace": rng.choice(NAMESPACES),
            "environments": rng.sample(ENVIRONMENTS, k=rng.randint(1, 3)),
            "limit": rng.choice([100, 1_000, 10_000]),
            "networks": [f"10.{octet}.0.0/16"],
        }
    resources = [
        {"type": rng.choice(RESOURCE_TYPES), "id": f"res-{n}",
         "properties": {"namespace": rng.choice(NAMESPACES),
                        "environment": rng.choice(ENVIRONMENTS), "scope": f"scope{n % 50}"}}
        for n in range(10 * size)
    ]
    policy = "\n\n".join(role_lines) + "\n" + POLICY_LAYERS
    items = [_request(rng, n, size, accounts, grants, resources) for n in range(requests)]
    return Workload(size, policy, {"accounts": accounts}, items, roles)


def _request(rng: random.Random, n: int, size: int, accounts: dict[str, Any],
             grants: dict[str, set[tuple[str, str]]],
             resources: list[dict[str, Any]]) -> dict[str, Any]:
    subject_id = f"sa-{rng.randrange(10 * size)}"
    account = accounts[subject_id]
    resource = dict(rng.choice(resources))
    granted = sorted(set().union(*(grants[r] for r in account["roles"])))
    if granted and rng.random() < 0.85:  # mostly ask for something a role grants
        action, resource_type = rng.choice(granted)
    else:
        action, resource_type = rng.choice(ACTIONS), rng.choice(RESOURCE_TYPES)
    properties = dict(resource["properties"])
    if rng.random() < 0.85:
        properties["namespace"] = account["namespace"]
    if rng.random() < 0.85:
        properties["environment"] = rng.choice(account["environments"])
    octet = int(subject_id.split("-")[1]) % 250
    context: dict[str, Any] = {
        "source_ip": f"10.{octet}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        if rng.random() < 0.95 else f"192.0.2.{rng.randrange(1, 255)}",
        "amount": rng.choice([10, 50, 500, 5_000, 50_000]),
    }
    if rng.random() < 0.05:
        context["elevation_expires"] = rng.choice(["2026-06-01T13:00:00Z",
                                                   "2026-06-01T11:00:00Z"])
    scopes = [properties["scope"]] if rng.random() < 0.9 else ["scope-other"]
    request = {
        "subject": {"type": "service_account", "id": subject_id,
                    "properties": {"scopes": scopes}},
        "action": {"name": action},
        "resource": {"type": resource_type, "id": resource["id"], "properties": properties},
        "context": context,
    }
    if n % 100 == 37:  # about 1% malformed: bad IP text or an unknown principal
        if n % 200 == 37:
            context["source_ip"] = "10.0.0.999"
        else:
            request["subject"] = {"type": "service_account", "id": f"ghost-{n}"}
    return request


def synthetic_rules(count: int, seed: int = 11) -> str:
    """A policy of `count` rules over 4 layers, for compile-time measurements."""
    rng = random.Random(seed)
    per_layer = max(1, count // 4)
    layers = []
    for layer in range(4):
        rules = []
        for n in range(per_layer):
            action = rng.choice(ACTIONS)
            resource_type = rng.choice(RESOURCE_TYPES)
            effect = "deny" if rng.random() < 0.2 else "allow"
            value = rng.randrange(1000)
            rules.append(f"  r{n}: {effect} {action} on {resource_type} when "
                         f"resource.properties.level >= {value} and "
                         f"context.env in [\"dev\", \"env{value % 7}\"]")
        layers.append(f"layer l{layer} {{\n" + "\n".join(rules) + "\n}")
    return "layers [l0, l1, l2, l3]\n\n" + "\n\n".join(layers) + "\n"
