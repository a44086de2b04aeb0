"""The Cedar peer: `policy.cedar` over the workload's accounts and roles, via cedarpy."""

from __future__ import annotations

import json
from importlib import metadata
from typing import Any

import cedarpy

from . import policy_text, require_constants


def _uid(kind: str, name: str) -> dict[str, str]:
    return {"type": kind, "id": name}


def _permission(action: str, resource_type: str) -> str:
    return f"{action} on {resource_type}"


def _entities(workload: dict[str, Any]) -> list[dict[str, Any]]:
    """Accounts with their roles as parents; roles with their parent role and grants."""
    entities: list[dict[str, Any]] = []
    permissions: set[str] = set()
    for name, role in workload["roles"].items():
        granted = [_permission(action, kind) for action, kind in role["grants"]]
        permissions.update(granted)
        parents = [_uid("Permission", p) for p in granted]
        if role["extends"]:
            parents.append(_uid("Role", role["extends"]))
        entities.append({"uid": _uid("Role", name), "attrs": {}, "parents": parents})
    entities += [{"uid": _uid("Permission", p), "attrs": {}, "parents": []}
                 for p in sorted(permissions)]
    for name, account in workload["data"]["accounts"].items():
        if len(account["networks"]) != 1:  # Cedar has no "any element of a set satisfies"
            raise ValueError(f"the Cedar peer takes one network per account; `{name}` has "
                             f"{len(account['networks'])}")
        attrs = {key: account[key] for key in ("trust_domain", "attested", "revoked",
                                               "namespace", "environments", "limit")}
        attrs["network"] = {"__extn": {"fn": "ip", "arg": account["networks"][0]}}
        entities.append({"uid": _uid("ServiceAccount", name), "attrs": attrs,
                         "parents": [_uid("Role", r) for r in account["roles"]]})
    return entities


class CedarPeer:
    """Cedar: one guarded forbid and one permit that holds every layer's allow condition."""

    name = "cedar"
    version = metadata.version("cedarpy")
    notes = (
        "a Cedar error only disables the policy it occurs in, so a forbid fails open: every "
        "condition that can fail (unknown account, bad IP text, a missing attribute) is a "
        "requirement of the one permit, and the only forbid (revoked) is guarded with `has`",
        "Layergate's deny rules outside_network and over_limit are negated requirements of "
        "the permit; environment and elevated are `||`-ed with `has` guards so either allows "
        "on its own, as two allow rules do",
        "role inheritance is the entity hierarchy: a role's parents are the role it extends "
        "and a Permission entity per grant; the request names its Permission "
        "`<action> on <type>` in the context",
        "Cedar has no quantifier over a set: one network per account (the workload has one); "
        "IP text is parsed by Cedar's `ip()`, timestamps by `datetime()` (which wants "
        "`+hhmm` offsets, not `+hh:mm`); the clock is `context.now`, the workload's fixed time",
        "entities and policies are parsed once (PolicySet / Entities handles); check_batch "
        "is `is_authorized_batch`",
    )

    def __init__(self, workload: dict[str, Any]) -> None:
        require_constants(workload)
        self.now = workload["now"]
        self.policies = cedarpy.PolicySet.from_str(policy_text("policy.cedar"))
        self.entities = cedarpy.Entities.from_json_str(json.dumps(_entities(workload)))

    def prepare(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """AuthZEN dicts -> Cedar requests, the context already JSON text."""
        return [self._request(r) for r in requests]

    def _request(self, request: dict[str, Any]) -> dict[str, Any]:
        subject, resource = request["subject"], request["resource"]
        action = request["action"]["name"]
        context = dict(request.get("context", {}))
        context["now"] = self.now
        context["resource"] = resource.get("properties", {})
        context["permission"] = {"__entity": _uid("Permission",
                                                  _permission(action, resource["type"]))}
        scopes = subject.get("properties", {}).get("scopes")
        if scopes is not None:
            context["scopes"] = scopes
        return {"principal": _uid("ServiceAccount", subject["id"]),
                "action": _uid("Action", action),
                "resource": _uid("Resource", resource["id"]),
                "context": json.dumps(context)}

    def check(self, native_one: dict[str, Any]) -> bool:
        """One `is_authorized` call."""
        return cedarpy.is_authorized(native_one, self.policies, self.entities).allowed

    def check_batch(self, native_batch: list[dict[str, Any]]) -> list[bool]:
        """One `is_authorized_batch` call for the whole batch."""
        results = cedarpy.is_authorized_batch(native_batch, self.policies, self.entities)
        return [result.allowed for result in results]
