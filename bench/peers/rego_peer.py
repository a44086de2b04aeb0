"""The Rego peer: `policy.rego` over the workload's data, via regopy (rego-cpp)."""

from __future__ import annotations

import json
from importlib import metadata
from typing import Any

import regopy

from . import policy_text, require_constants

QUERY = "allow = data.layergate.bench.allow"


def _data(workload: dict[str, Any]) -> dict[str, Any]:
    """The base document: accounts, the role graph `graph.reachable` walks, grants, clock."""
    roles = workload["roles"]
    return {"accounts": workload["data"]["accounts"], "now": workload["now"],
            "role_parents": {name: [role["extends"]] if role["extends"] else []
                             for name, role in roles.items()},
            "role_grants": {name: role["grants"] for name, role in roles.items()}}


class RegoPeer:
    """Rego: the layers as rules over `input` and `data`, compiled once into a bundle."""

    name = "rego"
    version = metadata.version("regopy")
    notes = (
        "Rego has `undefined`, not errors, so a plain deny rule fails open (`not deny` holds "
        "when `deny` is undefined): each deny rule is written `not <provably harmless>`, so "
        "an unknown account, a missing attribute or bad IP text makes it match",
        "only an explicit `true` allows: `allow` has `default false`, and an undefined or "
        "failed query is a deny",
        "rego-cpp has no `net.cidr_contains`: IPv4 CIDR matching is written in the policy "
        "(an anchored octet regex refusing values over 255 and leading zeros, as Python's "
        "`ipaddress` does; IPv6 never matches an IPv4 network, as in Layergate)",
        "rego-cpp's `time.parse_rfc3339_ns` refuses a `Z` suffix: the policy rewrites it to "
        "`+00:00` first; the clock is `data.now`, the workload's fixed time",
        "`over_limit` checks `is_number` first: Rego orders values of all types, so "
        "`null <= 100` would be true",
        "role inheritance is `graph.reachable` over the role graph in `data`; policy and "
        "data are compiled once (`Interpreter.build`); a check is `set_input` (of an "
        "`Input` built in prepare) + `query_bundle`; regopy has no batch call: a loop",
    )

    def __init__(self, workload: dict[str, Any]) -> None:
        require_constants(workload)
        self.rego = regopy.Interpreter()
        self.rego.add_module("policy.rego", policy_text("policy.rego"))
        self.rego.add_data_json(json.dumps(_data(workload)))
        self.bundle = self.rego.build(QUERY)
        if not self.bundle.ok():
            raise RuntimeError(f"rego bundle did not build: {self.bundle.node()}")

    def prepare(self, requests: list[dict[str, Any]]) -> list[regopy.Input]:
        """AuthZEN dicts -> rego-cpp input documents (reusable, built once)."""
        return [regopy.Input(request) for request in requests]

    def check(self, native_one: regopy.Input) -> bool:
        """One query of the compiled bundle."""
        self.rego.set_input(native_one)
        output = self.rego.query_bundle(self.bundle)
        return len(output) == 1 and output[0].bindings.get("allow") is True

    def check_batch(self, native_batch: list[regopy.Input]) -> list[bool]:
        """A loop over `check`: regopy has no batch evaluation."""
        return [self.check(one) for one in native_batch]
