"""Peer engines for the benchmark: the workload's 4-layer policy in Cedar, Rego and casbin.

Each peer reads the engine-neutral workload (`Workload.to_json()`), builds its policy and
data once, converts AuthZEN requests to its own inputs in `prepare` (untimed, no deciding),
and decides in `check` / `check_batch`. Before a peer is timed, `disagreements` compares it
with Layergate's decisions; the policies are written so that they agree on every request.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any, Protocol

# The constants the peer policy files are written for (bench/workload.py's POLICY_LAYERS).
TRUST_DOMAIN = "prod.example.org"
WRITES = ("write", "deploy", "delete", "rotate", "scale")

# name -> (module, class), imported only when asked for: each needs its optional package.
_PEERS = {
    "cedar": ("layergate.bench.peers.cedar_peer", "CedarPeer"),
    "rego": ("layergate.bench.peers.rego_peer", "RegoPeer"),
    "casbin": ("layergate.bench.peers.casbin_peer", "CasbinPeer"),
}


class Peer(Protocol):
    """One peer engine holding the workload's policy and data."""

    name: str  # "cedar", "rego", "casbin"
    version: str  # the engine package's version
    notes: tuple[str, ...]  # how Layergate's semantics were matched, and where they differ

    def __init__(self, workload: dict[str, Any]) -> None: ...

    def prepare(self, requests: list[dict[str, Any]]) -> Any:
        """AuthZEN request dicts -> the engine's native inputs (an indexable sequence)."""

    def check(self, native_one: Any) -> bool:
        """One decision; True is allow."""

    def check_batch(self, native_batch: Any) -> list[bool]:
        """Many decisions: the engine's own batch call where it has one, else a loop."""


def load_peers(names: Iterable[str] | None = None) -> tuple[list[type[Peer]], dict[str, str]]:
    """The peer classes that import, in order, and name -> why each other one cannot."""
    available: list[type[Peer]] = []
    missing: dict[str, str] = {}
    for name in _PEERS if names is None else names:
        if name not in _PEERS:
            raise ValueError(f"unknown peer `{name}` (known: {', '.join(_PEERS)})")
        module, cls = _PEERS[name]
        try:
            available.append(getattr(importlib.import_module(module), cls))
        except ImportError as exc:
            missing[name] = str(exc)
    return available, missing


def disagreements(peer: Peer, requests: list[dict[str, Any]],
                  expected: Sequence[bool]) -> list[int]:
    """Indices of the requests where the peer's batch decision differs from `expected`."""
    got = peer.check_batch(peer.prepare(requests))
    if len(got) != len(expected):
        raise ValueError(f"{peer.name} gave {len(got)} decisions for {len(expected)} requests")
    return [n for n, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b]


def policy_text(filename: str) -> str:
    """A policy file shipped beside this module."""
    return resources.files(__name__).joinpath(filename).read_text(encoding="utf-8")


def require_constants(workload: dict[str, Any]) -> None:
    """The peer policies hard-code the workload's constants: refuse a workload with others."""
    if workload["trust_domain"] != TRUST_DOMAIN or tuple(workload["writes"]) != WRITES:
        raise ValueError("the peer policies are written for trust domain "
                         f"`{TRUST_DOMAIN}` and write actions {list(WRITES)}")
