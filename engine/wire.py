"""The protobuf edge: the only module that reads or builds `layergate.v1` messages.

Messages become the AuthZEN-shaped dicts the engine takes, and decisions become messages.
Properties and context travel as JSON objects in bytes (decoded with orjson).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterable
from typing import Any

import orjson

from layergate.clients._gen import authz_pb2 as pb
from layergate.dsl import Diagnostic

from .decision import Decision
from .request import RequestError

SEMANTICS = {
    pb.BATCH_SEMANTIC_EXECUTE_ALL: "execute_all",
    pb.BATCH_SEMANTIC_DENY_ON_FIRST_DENY: "deny_on_first_deny",
    pb.BATCH_SEMANTIC_PERMIT_ON_FIRST_PERMIT: "permit_on_first_permit",
}
OUTCOMES = {"allow": pb.LAYER_OUTCOME_ALLOW, "deny": pb.LAYER_OUTCOME_DENY,
            "no_match": pb.LAYER_OUTCOME_NO_MATCH}


def _json_object(raw: bytes, field: str) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestError(field, f"is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise RequestError(field, "must be a JSON object")
    return value


def _entity(message: Any, name: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """An entity message as a dict; empty strings are absent (proto3 cannot tell them apart)."""
    out: dict[str, Any] = {key: getattr(message, key) for key in fields if getattr(message, key)}
    properties = _json_object(message.properties_json, f"{name}.properties_json")
    if properties is not None:
        out["properties"] = properties
    return out


def request_dict(message: Any, prefix: str = "") -> dict[str, Any]:
    """A CheckRequest or BatchItem as an AuthZEN dict (only the fields it sets)."""
    out: dict[str, Any] = {}
    if message.HasField("subject"):
        out["subject"] = _entity(message.subject, prefix + "subject", ("type", "id"))
    if message.HasField("action"):
        out["action"] = _entity(message.action, prefix + "action", ("name",))
    if message.HasField("resource"):
        out["resource"] = _entity(message.resource, prefix + "resource", ("type", "id"))
    context = _json_object(message.context_json, prefix + "context_json")
    if context is not None:
        out["context"] = context
    return out


def batch_items(message: pb.BatchCheckRequest) -> tuple[list[Any], dict[str, Any], str]:
    """(items, defaults, semantic) of a BatchCheckRequest; a bad item becomes a RequestError
    placeholder so that it is denied in place while the others are decided."""
    semantic = SEMANTICS.get(message.semantic)
    if semantic is None:
        raise RequestError("semantic", f"unknown batch semantic {message.semantic}")
    defaults = request_dict(message)
    items: list[Any] = []
    for index, item in enumerate(message.items):
        try:
            items.append(request_dict(item, f"items[{index}]."))
        except RequestError as exc:
            items.append(exc)
    return items, defaults, semantic


class DecisionIds:
    """Decision ids unique across processes and restarts: a random prefix and a counter."""

    def __init__(self) -> None:
        self.prefix = secrets.token_hex(6)
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}-{next(self._counter):x}"


def response(decision: Decision, decision_id: str = "",
             layers: bool = True) -> pb.CheckResponse:
    out = pb.CheckResponse(
        decision_id=decision_id,
        decision=pb.DECISION_ALLOW if decision.allowed else pb.DECISION_DENY,
        layer=decision.layer or "",
        rule=decision.rule or "",
        reasons=decision.reasons,
        revision=decision.revision,
    )
    for error in decision.errors:
        out.errors.add(rule=error.rule, code=error.code, path=error.path,
                       message=error.message)
    for layer in decision.layers if layers else ():
        out.layers.add(layer=layer.layer, outcome=OUTCOMES[layer.outcome],
                       rule=layer.rule or "")
    return out


def diagnostics(items: Iterable[Diagnostic]) -> list[pb.PolicyDiagnostic]:
    return [pb.PolicyDiagnostic(code=d.code, message=d.message, file=d.span.file,
                                line=d.span.line, column=d.span.column) for d in items]


def stream_items(message: pb.StreamCheckRequest) -> list[tuple[str, Any, bool]]:
    """(correlation id, request dict or RequestError, explain) for each item."""
    out: list[tuple[str, Any, bool]] = []
    for item in message.items:
        try:
            out.append((item.correlation_id, request_dict(item.request), item.request.explain))
        except RequestError as exc:
            out.append((item.correlation_id, exc, False))
    return out
