"""The request reader (`engine/_wire.pyx`) reads exactly what protobuf reads.

The oracle parses with protobuf itself (upb) and turns the message into dicts field by field;
the reader must give the same dicts, the same errors, and refuse exactly the bytes protobuf
refuses. Inputs: random messages, the same with duplicated and unknown fields (groups
included), and random corruptions of their bytes.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layergate.clients._gen import authz_pb2 as pb
from layergate.engine import _wire, wire
from layergate.engine.request import RequestError

# ---- the oracle: protobuf's own parse, read field by field ----------------------------------


def _json_object(raw: bytes, field: str) -> dict[str, Any]:
    """JSON as orjson accepts it, with every integer exact (orjson rounds those beyond 64
    bits to doubles; `json` keeps them)."""
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestError(field, f"is not valid JSON: {exc}") from None
    value = json.loads(raw)
    if type(value) is not dict:
        raise RequestError(field, "must be a JSON object")
    return value


def _entity(message: Any, name: str, fields: tuple[str, ...]) -> dict[str, Any]:
    out = {key: getattr(message, key) for key in fields if getattr(message, key)}
    if message.properties_json:
        out["properties"] = _json_object(message.properties_json, f"{name}.properties_json")
    return out


def _request_dict(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, fields in (("subject", ("type", "id")), ("action", ("name",)),
                         ("resource", ("type", "id"))):
        if message.HasField(name):
            out[name] = _entity(getattr(message, name), name, fields)
    if message.context_json:
        out["context"] = _json_object(message.context_json, "context_json")
    return out


def _item(message: Any, index: int) -> Any:
    try:
        return _request_dict(message)
    except RequestError as exc:
        return RequestError(f"items[{index}].{exc.field}", exc.message)


def oracle_batch(data: bytes) -> Any:
    message = pb.BatchCheckRequest.FromString(data)
    names = {0: "execute_all", 1: "deny_on_first_deny", 2: "permit_on_first_permit"}
    if message.semantic not in names:
        raise RequestError("semantic", f"unknown batch semantic {message.semantic}")
    items = [_item(item, k) for k, item in enumerate(message.items)]
    return items, _request_dict(message), names[message.semantic], message.explain


def oracle_stream(data: bytes) -> Any:
    out = []
    for item in pb.StreamCheckRequest.FromString(data).items:
        try:
            out.append((item.correlation_id, _request_dict(item.request), item.request.explain))
        except RequestError as exc:
            out.append((item.correlation_id, exc, False))
    return out


def oracle_check(data: bytes) -> Any:
    message = pb.CheckRequest.FromString(data)
    return _request_dict(message), message.explain


def _plain(value: Any) -> Any:
    """Comparable: RequestErrors become (field, message)."""
    if isinstance(value, RequestError):
        return ("RequestError", value.field, value.message)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _outcome(read: Any, data: bytes) -> Any:
    try:
        return _plain(read(data))
    except RequestError as exc:
        return _plain(exc)
    except (DecodeError, _wire.WireError):
        return "unreadable"


PAIRS = {"batch": (oracle_batch, _wire.read_batch), "stream": (oracle_stream, _wire.read_stream),
         "check": (oracle_check, _wire.read_check)}


def _agree(kind: str, data: bytes) -> None:
    oracle, reader = PAIRS[kind]
    got, wanted = _outcome(reader, data), _outcome(oracle, data)
    assert got == wanted, data
    assert repr(got) == repr(wanted), data  # 2**64 == 2.0**64, but only one is exact


# ---- inputs ---------------------------------------------------------------------------------

_texts = st.one_of(st.sampled_from(["", "svc", "doc", "read", "é-ü", "x" * 300]),
                   st.text(max_size=12))
_json = st.one_of(
    st.just(b""),
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(-2**63, 2**63 - 1),
                                                   st.text(max_size=5),
                                                   st.booleans(), st.none()),
                    max_size=3).map(orjson.dumps),
    st.dictionaries(st.text(max_size=3), st.one_of(
        st.integers(), st.integers(-2**65, -2**62), st.integers(2**62, 2**65),
        st.floats(allow_nan=False, allow_infinity=False), st.text(st.sampled_from("0123456789"))),
        max_size=3).map(lambda value: json.dumps(value).encode()),
    st.sampled_from([b"[1, 2]", b"7", b"{", b"{\"a\": }", b"null", b"\xff"]),
    st.binary(max_size=8),
)


@st.composite
def _entity_fields(draw: Any, message: Any, fields: tuple[str, ...]) -> None:
    for field in fields:
        setattr(message, field, draw(_texts))
    message.properties_json = draw(_json)


@st.composite
def _fill_request(draw: Any, message: Any) -> None:
    for name, fields in (("subject", ("type", "id")), ("action", ("name",)),
                         ("resource", ("type", "id"))):
        if draw(st.booleans()):
            getattr(message, name).SetInParent()  # present, possibly with nothing set
            draw(_entity_fields(getattr(message, name), fields))
    message.context_json = draw(_json)


@st.composite
def batch_messages(draw: Any) -> bytes:
    message = pb.BatchCheckRequest()
    draw(_fill_request(message))
    for _ in range(draw(st.integers(0, 3))):
        draw(_fill_request(message.items.add()))
    message.semantic = draw(st.one_of(st.integers(0, 2), st.integers(-2**31, 2**31 - 1)))
    message.explain = draw(st.booleans())
    return message.SerializeToString()


@st.composite
def stream_messages(draw: Any) -> bytes:
    message = pb.StreamCheckRequest()
    for _ in range(draw(st.integers(0, 3))):
        item = message.items.add(correlation_id=draw(_texts))
        if draw(st.booleans()):
            draw(_fill_request(item.request))
            item.request.explain = draw(st.booleans())
    return message.SerializeToString()


@st.composite
def check_messages(draw: Any) -> bytes:
    message = pb.CheckRequest()
    draw(_fill_request(message))
    message.explain = draw(st.booleans())
    return message.SerializeToString()


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@st.composite
def unknown_fields(draw: Any, depth: int = 0) -> bytes:
    """A field of any wire type, its number possibly one the message knows."""
    number = draw(st.one_of(st.integers(1, 8), st.integers(9, 2**29 - 1)))
    wire_type = draw(st.sampled_from([0, 1, 2, 5] + ([3] if depth < 2 else [])))
    key = _varint(number << 3 | wire_type)
    if wire_type == 0:
        return key + _varint(draw(st.integers(0, 2**64 - 1)))
    if wire_type == 1:
        return key + draw(st.binary(min_size=8, max_size=8))
    if wire_type == 5:
        return key + draw(st.binary(min_size=4, max_size=4))
    if wire_type == 2:
        payload = draw(st.binary(max_size=10))
        return key + _varint(len(payload)) + payload
    inner = b"".join(draw(st.lists(unknown_fields(depth + 1), max_size=2)))
    return key + inner + _varint(number << 3 | 4)


@st.composite
def extended(draw: Any, messages: Any) -> bytes:
    """A message, with another (its fields merge in) and unknown fields anywhere."""
    parts = [draw(messages)]
    if draw(st.booleans()):
        parts.append(draw(messages))
    for _ in range(draw(st.integers(0, 3))):
        parts.insert(draw(st.integers(0, len(parts))), draw(unknown_fields()))
    return b"".join(parts)


@st.composite
def corrupted(draw: Any, messages: Any) -> bytes:
    data = bytearray(draw(extended(messages)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        if edit == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=3))
        elif edit == "delete":
            del data[at:at + draw(st.integers(1, 3))]
        elif edit == "cut":
            del data[at:]
    return bytes(data)


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KINDS = {"batch": batch_messages(), "stream": stream_messages(), "check": check_messages()}


@pytest.mark.parametrize("kind", sorted(KINDS))
@FUZZ
@given(data=st.data())
def test_messages_read_as_protobuf_reads_them(kind: str, data: Any) -> None:
    _agree(kind, data.draw(extended(KINDS[kind])))


@pytest.mark.parametrize("kind", sorted(KINDS))
@FUZZ
@given(data=st.data())
def test_corrupted_bytes_are_refused_exactly_when_protobuf_refuses_them(kind: str,
                                                                        data: Any) -> None:
    _agree(kind, data.draw(corrupted(KINDS[kind])))


UNREADABLE = {
    "truncated length": b"\x0a\x05ab",
    "truncated varint": b"\x30\x80",
    "field number 0": b"\x02\x00",
    "wire type 6": b"\x0e",
    "stray end of group": b"\x4c",
    "unterminated group": b"\x4b\x08\x01",
    "mismatched end of group": b"\x4b\x54",
    "varint of 11 bytes": b"\x30" + b"\x80" * 10 + b"\x01",
    "invalid UTF-8 in subject.type": b"\x0a\x03\x0a\x01\xff",
    "a surrogate in UTF-8": b"\x0a\x05\x0a\x03\xed\xa0\x80",
    "an overlong slash": b"\x0a\x04\x0a\x02\xc0\xaf",
}


@pytest.mark.parametrize("data", UNREADABLE.values(), ids=list(UNREADABLE))
def test_bytes_protobuf_refuses_are_refused(data: bytes) -> None:
    with pytest.raises(DecodeError):
        pb.BatchCheckRequest.FromString(data)
    with pytest.raises(_wire.WireError):
        _wire.read_batch(data)


def _groups(number: int, depth: int) -> bytes:
    return _varint(number << 3 | 3) * depth + _varint(number << 3 | 4) * depth


def _nested(field: int, body: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(body)) + body


NESTING = {  # groups nested as deep as protobuf allows, and one deeper, at each level
    **{f"batch, {n} groups": ("batch", _groups(9, n)) for n in (100, 101)},
    **{f"batch item, {n} groups": ("batch", _nested(5, _groups(9, n))) for n in (99, 100)},
    **{f"item subject, {n} groups": ("batch", _nested(5, _nested(1, _groups(9, n))))
       for n in (98, 99)},
    **{f"stream request subject, {n} groups": (
        "stream", _nested(1, _nested(2, _nested(1, _groups(9, n))))) for n in (97, 98)},
    "a million groups": ("check", _groups(9, 1_000_000)),
}


@pytest.mark.parametrize("kind, data", NESTING.values(), ids=list(NESTING))
def test_nesting_is_limited_where_protobuf_limits_it(kind: str, data: bytes) -> None:
    """Deep groups are refused at protobuf's depth, not by running out of C stack."""
    _agree(kind, data)


def test_fields_merge_and_the_last_scalar_wins() -> None:
    first = pb.BatchCheckRequest(subject=pb.Subject(type="svc", id="a"), semantic=1)
    second = pb.BatchCheckRequest(subject=pb.Subject(id="b"), explain=True, semantic=2)
    items, defaults, semantic, explain = _wire.read_batch(
        first.SerializeToString() + second.SerializeToString())
    assert (items, defaults, semantic, explain) == (
        [], {"subject": {"type": "svc", "id": "b"}}, "permit_on_first_permit", True)


def test_bad_json_names_its_field() -> None:
    message = pb.BatchCheckRequest(items=[pb.BatchItem(), pb.BatchItem(context_json=b"[1]")])
    items, _, _, _ = _wire.read_batch(message.SerializeToString())
    assert items[0] == {}
    assert (items[1].field, items[1].message) == ("items[1].context_json",
                                                  "must be a JSON object")
    defaults = pb.BatchCheckRequest(resource=pb.Resource(properties_json=b"{"))
    with pytest.raises(RequestError) as info:
        _wire.read_batch(defaults.SerializeToString())
    assert info.value.field == "resource.properties_json"
    assert info.value.message.startswith("is not valid JSON")


def test_the_edge_turns_unreadable_messages_into_request_errors() -> None:
    """The gRPC deserializers never raise: what cannot be read is answered INVALID_ARGUMENT."""
    problem = wire.read_batch(b"\x0a\x05ab")
    assert isinstance(problem, RequestError)
    assert problem.field == "" and "BatchCheckRequest" in problem.message
    assert isinstance(wire.read_batch(pb.BatchCheckRequest(semantic=9).SerializeToString()),
                      RequestError)
    assert isinstance(wire.read_stream(b"\x0a\x05ab"), RequestError)
    assert isinstance(wire.read_check(b"\x0a\x05ab"), RequestError)
