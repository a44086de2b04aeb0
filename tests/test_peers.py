"""The benchmark's peer engines give exactly Layergate's decisions, malformed input included."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from layergate.bench.peers import Peer, disagreements, load_peers
from layergate.bench.workload import NOW, Workload, build
from layergate.dsl import parse_policy
from layergate.dsl.literals import parse_timestamp
from layergate.engine import Authorizer, compile_policy

PEERS = ("cedar", "rego", "casbin")


@pytest.fixture(scope="module")
def workload() -> Workload:
    return build(10)


@pytest.fixture(scope="module")
def layergate(workload: Workload) -> Authorizer:
    tables = compile_policy(parse_policy(workload.policy, "w.lg", workload.data), workload.data)
    return Authorizer(tables, clock=lambda: parse_timestamp(NOW) / 1_000_000)


@pytest.fixture(scope="module", params=PEERS)
def peer(request: pytest.FixtureRequest, workload: Workload) -> Peer:
    (cls,), missing = load_peers([request.param])
    assert not missing
    return cls(workload.to_json())


@pytest.fixture(scope="module")
def expected(workload: Workload, layergate: Authorizer) -> list[bool]:
    return _decide(layergate, workload.requests)


def _decide(authorizer: Authorizer, requests: list[dict[str, Any]]) -> list[bool]:
    return [d.allowed for d in authorizer.check_batch(requests)]


def _allowed_base(workload: Workload, expected: list[bool]) -> dict[str, Any]:
    """An allowed request whose account may not use every environment (for elevation)."""
    accounts = workload.data["accounts"]
    for request, allowed in zip(workload.requests, expected, strict=True):
        if allowed and len(accounts[request["subject"]["id"]]["environments"]) < 3:
            return copy.deepcopy(request)
    raise AssertionError("the workload has no suitable allowed request")


def _targeted(workload: Workload, expected: list[bool]) -> dict[str, tuple[dict, bool]]:
    """label -> (request, the decision Layergate must give)."""
    base = _allowed_base(workload, expected)
    account = workload.data["accounts"][base["subject"]["id"]]
    other_env = next(e for e in ("dev", "staging", "prod") if e not in account["environments"])
    cases: dict[str, tuple[dict, bool]] = {"allowed": (base, True)}

    def variant(label: str, allowed: bool) -> dict[str, Any]:
        request = copy.deepcopy(base)
        cases[label] = (request, allowed)
        return request

    variant("bad IP text", False)["context"]["source_ip"] = "10.0.0.999"
    variant("IP octet with a leading zero", False)["context"]["source_ip"] = "10.0.01.2"
    variant("IPv6 source", False)["context"]["source_ip"] = "::1"
    del variant("no source IP", False)["context"]["source_ip"]
    variant("unknown principal", False)["subject"]["id"] = "ghost-1"
    variant("unknown principal, no properties", False)["subject"] = {
        "type": "service_account", "id": "ghost-2"}
    elevated = variant("other environment, valid elevation", True)
    elevated["resource"]["properties"]["environment"] = other_env
    elevated["context"]["elevation_expires"] = "2026-06-01T13:00:00Z"
    unelevated = variant("other environment, no elevation_expires", False)
    unelevated["resource"]["properties"]["environment"] = other_env
    expired = variant("other environment, expired elevation", False)
    expired["resource"]["properties"]["environment"] = other_env
    expired["context"]["elevation_expires"] = "2026-06-01T11:00:00Z"
    garbled = variant("other environment, unparsable elevation", False)
    garbled["resource"]["properties"]["environment"] = other_env
    garbled["context"]["elevation_expires"] = "tomorrow"
    write = variant("write with no amount", False)
    write["action"]["name"] = "write"
    del write["context"]["amount"]
    del variant("no token scopes", False)["subject"]["properties"]["scopes"]
    del variant("resource without namespace", False)["resource"]["properties"]["namespace"]
    return cases


def test_agrees_on_every_workload_request(peer: Peer, workload: Workload,
                                          expected: list[bool]) -> None:
    assert 0.3 < sum(expected) / len(expected) < 0.5  # both outcomes are well represented
    assert disagreements(peer, workload.requests, expected) == []


def test_targeted_cases(peer: Peer, workload: Workload, layergate: Authorizer,
                        expected: list[bool]) -> None:
    cases = _targeted(workload, expected)
    requests = [request for request, _ in cases.values()]
    wanted = {label: allowed for label, (_, allowed) in cases.items()}
    assert dict(zip(cases, _decide(layergate, requests), strict=True)) == wanted
    native = peer.prepare(requests)
    assert dict(zip(cases, peer.check_batch(native), strict=True)) == wanted
    assert {label: peer.check(native[n]) for n, label in enumerate(cases)} == wanted


def test_peer_describes_itself(peer: Peer) -> None:
    assert peer.name in PEERS
    assert peer.version[0].isdigit()
    assert peer.notes and all(isinstance(note, str) and note for note in peer.notes)


def test_load_peers() -> None:
    classes, missing = load_peers()
    assert [cls.name for cls in classes] == list(PEERS)
    assert missing == {}
    with pytest.raises(ValueError, match="unknown peer `opa`"):
        load_peers(["opa"])


def test_peers_refuse_other_constants(workload: Workload) -> None:
    other = {**workload.to_json(), "trust_domain": "staging.example.org"}
    for cls in load_peers()[0]:
        with pytest.raises(ValueError, match="trust domain"):
            cls(other)
