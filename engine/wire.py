"""The protobuf edge: with its compiled reader `_wire.pyx`, the only place in the server that
reads or builds `layergate.v1` messages.

Request messages are read from their wire bytes by the reader (which reads what protobuf
reads) straight into the AuthZEN-shaped dicts the engine takes;
properties and context travel as JSON objects in bytes (decoded with orjson). Decisions
become messages.

Decision responses are written as bytes: each distinct decision's `CheckResponse` is
serialized once (decisions are shared objects), and per item only its decision id is
appended, then batches and streams are framed by hand (`Encoder`). The server's handlers
pass those bytes through (`serialized`); tests check they parse to the messages protobuf
itself would build.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterable
from typing import Any

from layergate.clients._gen import authz_pb2 as pb
from layergate.dsl import Diagnostic

from .authorizer import ExtensionMissing
from .decision import Decision
from .request import RequestError

try:
    from . import _wire
except ImportError as exc:  # the server reads requests only through it: no silent fallback
    raise ExtensionMissing(
        f"the compiled request reader layergate.engine._wire is not built ({exc}); "
        "reinstall with `pip install -e .` (a C compiler is needed)") from exc

OUTCOMES = {"allow": pb.LAYER_OUTCOME_ALLOW, "deny": pb.LAYER_OUTCOME_DENY,
            "no_match": pb.LAYER_OUTCOME_NO_MATCH}


def _varint(value: int) -> bytes:
    """A protobuf base-128 varint (lengths here are never negative)."""
    if value < 0x80:
        return _SMALL_VARINTS[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL_VARINTS = tuple(bytes((n,)) for n in range(0x80))


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field (string, bytes or message): tag, length, payload."""
    return tag + _varint(len(payload)) + payload


# Field tags (field number << 3 | wire type 2) of the messages written by hand.
_CHECK_RESPONSE_DECISION_ID = b"\x42"  # CheckResponse.decision_id = 8
_REPEATED_RESULTS = b"\x0a"  # BatchCheckResponse.results = 1, StreamCheckResponse.results = 1
_BATCH_REVISION = b"\x12"  # BatchCheckResponse.revision = 2
_STREAM_CORRELATION_ID = b"\x0a"  # StreamResult.correlation_id = 1
_STREAM_RESPONSE = b"\x12"  # StreamResult.response = 2
_STREAM_INVALID_FIELD = b"\x1a"  # StreamResult.invalid_field = 3


class Encoder:
    """Response bytes, with each distinct decision serialized only once."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        # (id(decision), with layers) -> (decision, bytes); holding the decision keeps its id
        # from being reused while the entry lives.
        self._bodies: dict[tuple[int, bool], tuple[Decision, bytes]] = {}

    def check_response(self, decision: Decision, decision_id: str, layers: bool) -> bytes:
        """A serialized CheckResponse (the same message `response()` builds)."""
        key = (id(decision), layers)
        found = self._bodies.get(key)
        if found is None or found[0] is not decision:
            body = response(decision, "", layers).SerializeToString()
            if len(self._bodies) >= self.limit:
                self._bodies.clear()
            self._bodies[key] = found = (decision, body)
        if not decision_id:
            return found[1]
        return found[1] + _field(_CHECK_RESPONSE_DECISION_ID, decision_id.encode())

    @staticmethod
    def batch_response(results: list[bytes], revision: str) -> bytes:
        """A serialized BatchCheckResponse of serialized CheckResponses."""
        framed = [_field(_REPEATED_RESULTS, result) for result in results]
        if revision:
            framed.append(_field(_BATCH_REVISION, revision.encode()))
        return b"".join(framed)

    @staticmethod
    def stream_result(correlation_id: str, result: bytes, invalid_field: str = "") -> bytes:
        """A serialized StreamResult."""
        out = _field(_STREAM_CORRELATION_ID, correlation_id.encode()) if correlation_id else b""
        out += _field(_STREAM_RESPONSE, result)
        if invalid_field:
            out += _field(_STREAM_INVALID_FIELD, invalid_field.encode())
        return out

    @staticmethod
    def stream_response(results: list[bytes]) -> bytes:
        """A serialized StreamCheckResponse of serialized StreamResults."""
        return b"".join(_field(_REPEATED_RESULTS, result) for result in results)


def serialized(message: Any) -> bytes:
    """The response serializer of the Authorizer handlers: bytes pass through."""
    return message if type(message) is bytes else message.SerializeToString()


def _readable(kind: str, read: Any, data: bytes) -> Any:
    """What `read` makes of a request message, or a RequestError (field "") for bytes that
    are not one: a gRPC deserializer must not raise, or the call would end INTERNAL."""
    try:
        return read(data)
    except RequestError as exc:
        return exc
    except _wire.WireError as exc:
        return RequestError("", f"not a valid {kind}: {exc}")


def read_check(data: bytes) -> tuple[dict[str, Any], bool] | RequestError:
    """A CheckRequest as (AuthZEN request dict, explain)."""
    return _readable("CheckRequest", _wire.read_check, data)


def read_batch(data: bytes) -> tuple[list[Any], dict[str, Any], str, bool] | RequestError:
    """A BatchCheckRequest as (items, defaults, semantic, explain); an item that cannot be
    read is a RequestError in its place (field `items[i]....`), denied while the others are
    decided."""
    return _readable("BatchCheckRequest", _wire.read_batch, data)


def read_stream(data: bytes) -> list[tuple[str, Any, bool]] | RequestError:
    """A StreamCheckRequest as (correlation id, request dict or RequestError, explain) per
    item."""
    return _readable("StreamCheckRequest", _wire.read_stream, data)


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
