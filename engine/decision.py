"""Stage 4 output: decisions, per-layer outcomes and evaluation diagnostics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ALLOW, DENY = "allow", "deny"
# How a layer came to its verdict.
LAYER_ALLOW, LAYER_DENY, LAYER_NO_MATCH = "allow", "deny", "no_match"

# Evaluation error codes (fail closed: an allow rule that errors does not match, a deny rule
# that errors matches).
EVAL_CODES = {
    "missing_attribute": "the path does not resolve to a value in the request or data",
    "unknown_entity": "a `data.<document>[key]` lookup found no entry for the key",
    "type_error": "a value has a type the operation does not accept",
    "invalid_value": "a string is not a valid IP address, CIDR range or timestamp",
    "invalid_request": "the request itself is malformed (batch items only)",
}


@dataclass(frozen=True, slots=True)
class EvalError:
    """A condition that could not be evaluated: which rule, what went wrong, at which path."""

    rule: str
    code: str
    path: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"rule": self.rule, "code": self.code, "path": self.path, "message": self.message}


@dataclass(frozen=True, slots=True)
class LayerResult:
    """One layer's verdict: `allow` (rule), `deny` (rule) or `no_match` (default deny)."""

    layer: str
    outcome: str
    rule: str | None

    @property
    def allowed(self) -> bool:
        return self.outcome == LAYER_ALLOW

    def to_json(self) -> dict[str, Any]:
        return {"layer": self.layer, "outcome": self.outcome, "rule": self.rule}


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one request, and why.

    `layer` is the deciding layer: the first layer that denied, or the last layer when all
    allowed. `rule` is the rule that decided there (None for a default deny). `reasons` lists
    the allowing rule of every layer for an allow, the deciding deny rule for a deny.
    `layers` is filled in explain mode: every layer's outcome, evaluated even after a deny.
    """

    allowed: bool
    layer: str | None
    rule: str | None
    reasons: tuple[str, ...]
    errors: tuple[EvalError, ...] = ()
    layers: tuple[LayerResult, ...] = ()
    revision: str = ""

    @property
    def decision(self) -> str:
        return ALLOW if self.allowed else DENY

    @property
    def error_codes(self) -> tuple[str, ...]:
        return tuple(error.code for error in self.errors)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "decision": self.decision,
            "layer": self.layer,
            "rule": self.rule,
            "reasons": list(self.reasons),
            "revision": self.revision,
        }
        if self.errors:
            out["errors"] = [error.to_json() for error in self.errors]
        if self.layers:
            out["layers"] = [layer.to_json() for layer in self.layers]
        return out


def combine(results: list[LayerResult], errors: list[EvalError], revision: str,
            explain: bool) -> Decision:
    """Every layer must allow; the first layer that does not decides the deny."""
    for result in results:
        if not result.allowed:
            reasons = (result.rule,) if result.rule else ()
            return Decision(False, result.layer, result.rule, reasons, tuple(errors),
                            tuple(results) if explain else (), revision)
    if not results:  # a policy always has a layer; an empty list can only mean no evaluation
        return Decision(False, None, None, (), tuple(errors), (), revision)
    last = results[-1]
    reasons = tuple(r.rule for r in results if r.rule)
    return Decision(True, last.layer, last.rule, reasons, tuple(errors),
                    tuple(results) if explain else (), revision)


INVALID_REQUEST = "invalid_request"


def invalid_request_decision(message: str, path: str, revision: str) -> Decision:
    """A batch item that could not be read: denied, with the field path that was wrong."""
    error = EvalError("", INVALID_REQUEST, path, message)
    return Decision(False, None, None, (), (error,), (), revision)
