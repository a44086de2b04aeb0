"""Reports for reviews: least-privilege entitlements (held vs used) and control coverage."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from layergate.dsl import ast

# Controls a layered NHI policy is usually expected to cover (override with --require).
DEFAULT_CONTROLS = (
    *(f"OWASP-NHI-{n:02d}" for n in range(1, 11)),
    "NIST-CSF PR.AA-01", "NIST-CSF PR.AA-03", "NIST-CSF PR.AA-05", "NIST-CSF PR.AC-4",
    "SP800-207",
)


@dataclass
class IdentityReport:
    id: str
    roles: list[str]
    used_roles: list[str] = field(default_factory=list)
    permissions: list[dict[str, Any]] = field(default_factory=list)
    decisions: int = 0

    @property
    def unused_roles(self) -> list[str]:
        return [r for r in self.roles if r not in self.used_roles]

    @property
    def dormant(self) -> bool:
        return self.decisions == 0

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "roles": self.roles, "used_roles": self.used_roles,
                "unused_roles": self.unused_roles, "dormant": self.dormant,
                "decisions": self.decisions, "permissions": self.permissions}


def role_bindings(policy: ast.Policy) -> tuple[str, str] | None:
    """(document, field) of the first `grants(data.<document>[subject.id].<field>)`."""
    for layer in policy.layers:
        for rule in layer.rules:
            for node in ast.walk(rule.condition) if rule.condition is not None else ():
                if not (isinstance(node, ast.Call) and node.name == "grants"):
                    continue
                path = node.args[0]
                if (isinstance(path, ast.Path) and path.root == "data" and len(path.steps) == 3
                        and isinstance(path.steps[0], ast.Field)
                        and isinstance(path.steps[1], ast.Index)
                        and path.steps[1].key == ast.Path("subject", (ast.Field("id"),))
                        and isinstance(path.steps[2], ast.Field)):
                    return path.steps[0].name, path.steps[2].name
    return None


def _closure(policy: ast.Policy, role: str, seen: set[str] | None = None) -> list[ast.Grant]:
    seen = set() if seen is None else seen
    found = policy.roles.get(role)
    if found is None or role in seen:
        return []
    seen.add(role)
    grants = list(found.grants)
    for parent in found.parents:
        grants.extend(_closure(policy, parent, seen))
    return grants


def entitlements(policy: ast.Policy, data: Mapping[str, Any],
                 records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Per identity: roles and permissions held (from the data the policy reads roles from)
    against those its allowed decisions in `records` actually used."""
    binding = role_bindings(policy)
    if binding is None:
        raise ValueError("the policy reads no roles from `grants(data.<doc>[subject.id]"
                         ".<field>)`, so held entitlements cannot be derived from the data")
    document, roles_field = binding
    entities = data.get(document) or {}
    used: dict[str, set[tuple[str, str]]] = {}
    seen: dict[str, int] = {}
    for record in records:
        request = record.get("request") or {}
        subject = (request.get("subject") or {}).get("id")
        if not isinstance(subject, str):
            continue
        seen[subject] = seen.get(subject, 0) + 1
        if record.get("decision") == "allow":
            action = (request.get("action") or {}).get("name", "")
            resource_type = (request.get("resource") or {}).get("type", "")
            used.setdefault(subject, set()).add((action, resource_type))
    identities = []
    for identity, entity in sorted(entities.items()):
        names = entity.get(roles_field) if isinstance(entity, dict) else None
        names = [n for n in names if isinstance(n, str)] if isinstance(names, list) else []
        report = IdentityReport(identity, names, decisions=seen.get(identity, 0))
        mine = used.get(identity, set())
        for role in names:
            for grant in _closure(policy, role):
                for action in grant.actions.names or ("*",):
                    for resource_type in grant.resources.names or ("*",):
                        hit = any((action in ("*", a)) and (resource_type in ("*", t))
                                  for a, t in mine)
                        report.permissions.append({"role": role, "action": action,
                                                   "resource_type": resource_type,
                                                   "used": hit})
                        if hit and role not in report.used_roles:
                            report.used_roles.append(role)
        identities.append(report)
    return {"source": f"data.{document}[subject.id].{roles_field}",
            "identities": [i.to_json() for i in identities]}


def entitlement_table(report: Mapping[str, Any]) -> str:
    rows = [f"roles from {report['source']}", "",
            f"{'identity':<28} {'roles':<28} {'unused roles':<28} {'unused perms':>12}  dormant"]
    for item in report["identities"]:
        unused = sum(not p["used"] for p in item["permissions"])
        rows.append(f"{item['id']:<28} {','.join(item['roles']) or '-':<28} "
                    f"{','.join(item['unused_roles']) or '-':<28} {unused:>12}  "
                    f"{'yes' if item['dormant'] else 'no'}")
    return "\n".join(rows)


def controls(policy: ast.Policy, required: Sequence[str] = DEFAULT_CONTROLS) -> dict[str, Any]:
    """Which framework controls each layer claims, and which required ones none covers."""
    claimed: dict[str, list[str]] = {}
    for layer in policy.layers:
        for control in layer.controls:
            claimed.setdefault(control, []).append(layer.name)
    return {
        "layers": [{"layer": la.name, "description": la.description,
                    "controls": list(la.controls)} for la in policy.layers],
        "covered": {c: layers for c, layers in sorted(claimed.items())},
        "missing": [c for c in required if c not in claimed],
    }


def controls_table(report: Mapping[str, Any]) -> str:
    rows = [f"{'layer':<16} controls"]
    rows += [f"{la['layer']:<16} {', '.join(la['controls']) or '(none)'}"
             for la in report["layers"]]
    rows += ["", "required but covered by no layer: " + (", ".join(report["missing"]) or
                                                          "none")]
    return "\n".join(rows)
