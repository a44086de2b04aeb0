"""Client-side conversion between AuthZEN-shaped dicts and `layergate.v1` messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ._gen import authz_pb2 as pb

SEMANTICS = {
    "execute_all": pb.BATCH_SEMANTIC_EXECUTE_ALL,
    "deny_on_first_deny": pb.BATCH_SEMANTIC_DENY_ON_FIRST_DENY,
    "permit_on_first_permit": pb.BATCH_SEMANTIC_PERMIT_ON_FIRST_PERMIT,
}
_OUTCOMES = {pb.LAYER_OUTCOME_ALLOW: "allow", pb.LAYER_OUTCOME_DENY: "deny",
             pb.LAYER_OUTCOME_NO_MATCH: "no_match"}


def _json(value: Any) -> bytes:
    return orjson.dumps(value) if value else b""


def _fill(target: Any, request: Mapping[str, Any]) -> None:
    """Copy subject/action/resource/context of an AuthZEN dict into a message."""
    subject, action, resource = (request.get(k) for k in ("subject", "action", "resource"))
    if subject is not None:
        target.subject.SetInParent()
        target.subject.type = subject.get("type") or ""
        target.subject.id = subject.get("id") or ""
        target.subject.properties_json = _json(subject.get("properties"))
    if action is not None:
        target.action.SetInParent()
        target.action.name = action.get("name") or ""
        target.action.properties_json = _json(action.get("properties"))
    if resource is not None:
        target.resource.SetInParent()
        target.resource.type = resource.get("type") or ""
        target.resource.id = resource.get("id") or ""
        target.resource.properties_json = _json(resource.get("properties"))
    if request.get("context"):
        target.context_json = _json(request["context"])


def check_request(request: Mapping[str, Any] | pb.CheckRequest,
                  explain: bool = False) -> pb.CheckRequest:
    if isinstance(request, pb.CheckRequest):
        return request
    message = pb.CheckRequest(explain=explain)
    _fill(message, request)
    return message


def batch_request(items: list[Mapping[str, Any]], defaults: Mapping[str, Any] | None,
                  semantic: str, explain: bool) -> pb.BatchCheckRequest:
    message = pb.BatchCheckRequest(semantic=SEMANTICS[semantic], explain=explain)
    _fill(message, defaults or {})
    for item in items:
        _fill(message.items.add(), item)
    return message


def decision(response: pb.CheckResponse) -> dict[str, Any]:
    """A CheckResponse as a plain dict, shaped like the engine's `Decision.to_json()`."""
    out: dict[str, Any] = {
        "decision": "allow" if response.decision == pb.DECISION_ALLOW else "deny",
        "layer": response.layer or None,
        "rule": response.rule or None,
        "reasons": list(response.reasons),
        "revision": response.revision,
        "decision_id": response.decision_id,
    }
    if response.errors:
        out["errors"] = [{"rule": e.rule, "code": e.code, "path": e.path, "message": e.message}
                         for e in response.errors]
    if response.layers:
        out["layers"] = [{"layer": r.layer, "outcome": _OUTCOMES.get(r.outcome, "no_match"),
                          "rule": r.rule or None} for r in response.layers]
    return out


def stream_result(result: pb.StreamResult) -> dict[str, Any]:
    """A stream result as a dict: the decision plus `correlation_id`, `index` (the request's
    position) and, for a request that could not be read, `invalid_field`."""
    out = decision(result.response)
    out["correlation_id"] = result.correlation_id
    out["index"] = int(result.correlation_id)
    if result.invalid_field:
        out["invalid_field"] = result.invalid_field
    return out
