"""Stage 3 input: AuthZEN-shaped request dicts, checked and normalized before evaluation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .decision import Decision, invalid_request_decision

# Required string fields of each entity, and whether it may carry free-form `properties`.
ENTITY_SHAPE: dict[str, tuple[str, ...]] = {
    "subject": ("type", "id"),
    "action": ("name",),
    "resource": ("type", "id"),
}
BATCH_SEMANTICS = ("execute_all", "deny_on_first_deny", "permit_on_first_permit")


class RequestError(ValueError):
    """A malformed request; `field` is the path of the offending field, e.g. `subject.id`."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def normalize_request(request: Any) -> dict[str, Any]:
    """Check the request shape and return a dict with exactly subject, action, resource, context.

    Unknown top-level or entity fields are ignored (AuthZEN); missing required fields, wrong
    types, and non-object `properties` or `context` raise `RequestError`.
    """
    if not isinstance(request, Mapping):
        raise RequestError("request", "must be an object")
    out: dict[str, Any] = {}
    for entity, required in ENTITY_SHAPE.items():
        out[entity] = _entity(request.get(entity), entity, required)
    context = request.get("context")
    if context is None:
        context = {}
    elif not isinstance(context, Mapping):
        raise RequestError("context", "must be an object")
    out["context"] = context
    elevation = request.get("elevation")
    if elevation is not None and not isinstance(elevation, Mapping):
        raise RequestError("elevation", "must be an object")
    out["elevation"] = elevation or {}
    return out


def _entity(value: Any, name: str, required: tuple[str, ...]) -> dict[str, Any]:
    if value is None:
        raise RequestError(name, "is required")
    if not isinstance(value, Mapping):
        raise RequestError(name, "must be an object")
    entity: dict[str, Any] = {}
    for key in required:
        field = value.get(key)
        if field is None:
            raise RequestError(f"{name}.{key}", "is required")
        if not isinstance(field, str):
            raise RequestError(f"{name}.{key}", f"must be a string, not {_kind(field)}")
        entity[key] = field
    properties = value.get("properties")
    if properties is None:
        properties = {}
    elif not isinstance(properties, Mapping):
        raise RequestError(f"{name}.properties", "must be an object")
    entity["properties"] = properties
    return entity


def merge_defaults(item: Any, defaults: Mapping[str, Any] | None) -> Any:
    """AuthZEN batch rule: a top-level default fills a field the item does not set, whole."""
    if not defaults:
        return item
    if not isinstance(item, Mapping):
        return item
    merged = {key: defaults[key] for key in ("subject", "action", "resource", "context")
              if key in defaults and defaults[key] is not None}
    merged.update({key: value for key, value in item.items() if value is not None})
    return merged


def evaluate_batch(check: Callable[[Any], Decision], requests: Iterable[Any],
                   defaults: Mapping[str, Any] | None, semantic: str,
                   revision: str) -> list[Decision]:
    """AuthZEN batch evaluation: items in order, a malformed item is denied with its field
    path, and `deny_on_first_deny` / `permit_on_first_permit` stop after the deciding item."""
    check_semantic(semantic)
    out: list[Decision] = []
    for item in requests:
        try:
            decision = check(merge_defaults(item, defaults))
        except RequestError as exc:
            decision = invalid_request_decision(exc.message, exc.field, revision)
        out.append(decision)
        if semantic == "deny_on_first_deny" and not decision.allowed:
            break
        if semantic == "permit_on_first_permit" and decision.allowed:
            break
    return out


def check_semantic(semantic: str) -> str:
    if semantic not in BATCH_SEMANTICS:
        raise RequestError("options.evaluations_semantic",
                           f"must be one of {', '.join(BATCH_SEMANTICS)}, not `{semantic}`")
    return semantic


def normalize_caller(caller: Mapping[str, Any] | None) -> dict[str, str]:
    """The transport-proven caller identity; fields that are absent stay absent (fail closed)."""
    if not caller:
        return {}
    return {key: caller[key] for key in ("id", "trust_domain", "path")
            if isinstance(caller.get(key), str) and caller[key]}


def caller_from_spiffe_id(spiffe_id: str) -> dict[str, str]:
    """`spiffe://trust-domain/path` -> {id, trust_domain, path}; ValueError if not a SPIFFE ID."""
    prefix = "spiffe://"
    if not spiffe_id.startswith(prefix):
        raise ValueError(f"`{spiffe_id}` is not a SPIFFE ID (spiffe://trust-domain/path)")
    trust_domain, slash, path = spiffe_id[len(prefix):].partition("/")
    if not trust_domain or any(c in trust_domain for c in "?#@:"):
        raise ValueError(f"`{spiffe_id}` has no valid trust domain")
    return {"id": spiffe_id, "trust_domain": trust_domain.lower(), "path": slash + path}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
