# cython: language_level=3, cdivision=True
"""Reads the request messages of `layergate.v1` from their wire bytes, in C, into the
AuthZEN-shaped dicts the engine takes (the request half of the protobuf edge, `wire.py`).

It reads what protobuf would read: fields in any order and repeated (a message field's
occurrences merge, a scalar's last one wins), unknown fields and fields of an unexpected wire
type skipped (groups included), strings checked to be UTF-8. Anything else — a truncated
field, a bad length, a varint of more than 10 bytes, field number 0 outside a skipped group, a
stray end of group, messages and groups nested more than 100 deep — raises `WireError`.
tests/test_wire_read.py holds it to protobuf's own parser on random and corrupted bytes.
"""

import json

import orjson

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int32_t, uint64_t
from libc.string cimport memset

from layergate.engine.request import BATCH_SEMANTICS, RequestError

cdef extern from "Python.h":
    object PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)

ctypedef const unsigned char* Bytes

cdef object _loads = orjson.loads
cdef object _exact_loads = json.loads  # keeps every integer exact, however long
cdef object _JSONError = orjson.JSONDecodeError
cdef tuple SEMANTICS = BATCH_SEMANTICS  # by their numbers in the BatchSemantic enum
cdef int MAX_DEPTH = 100  # messages and groups, as protobuf (upb) limits them


class WireError(ValueError):
    """The bytes are not a valid encoding of the message."""


cdef struct Span:
    Bytes at
    Py_ssize_t size
    bint seen


cdef struct Entity:
    bint seen
    Span first    # Subject, Resource: type; Action: name
    Span second   # Subject, Resource: id
    Span props    # properties_json


cdef struct Request:
    Entity subject
    Entity action
    Entity resource
    Span context
    bint explain


cdef Bytes _varint(Bytes at, Bytes end, uint64_t* out) except NULL:
    """Read a base-128 varint (the low 64 bits of up to 10 bytes)."""
    cdef uint64_t value = 0
    cdef int shift = 0
    while at < end and shift < 70:
        value |= <uint64_t>(at[0] & 0x7F) << shift
        if at[0] < 0x80:
            out[0] = value
            return at + 1
        at += 1
        shift += 7
    raise WireError("truncated or overlong varint")


cdef Bytes _field(Bytes at, Bytes end, int* number, int* wire_type,
                  bint in_group=False) except NULL:
    """Read a field's key (protobuf allows field number 0 only inside a skipped group)."""
    cdef uint64_t key
    at = _varint(at, end, &key)
    if (key >> 3 == 0 and not in_group) or key >> 3 > 0x1FFFFFFF:
        raise WireError(f"invalid field number {key >> 3}")
    number[0] = <int>(key >> 3)
    wire_type[0] = <int>(key & 7)
    return at


cdef Bytes _delimited(Bytes at, Bytes end, Span* out) except NULL:
    """Read a length-delimited payload."""
    cdef uint64_t size
    at = _varint(at, end, &size)
    if size > <uint64_t>(end - at):
        raise WireError("a length runs past the end of the message")
    out.at = at
    out.size = <Py_ssize_t>size
    out.seen = True
    return at + size


cdef Bytes _skip(Bytes at, Bytes end, int number, int wire_type, int depth) except NULL:
    """Skip the payload of a field this reader does not use; `depth` is how deep the message
    holding it is nested (a group nests one deeper, as a message does)."""
    cdef uint64_t ignored
    cdef Span payload
    cdef int inner_number, inner_type
    if wire_type == 0:
        return _varint(at, end, &ignored)
    if wire_type == 1 or wire_type == 5:
        if end - at < (8 if wire_type == 1 else 4):
            raise WireError("truncated fixed-width field")
        return at + (8 if wire_type == 1 else 4)
    if wire_type == 2:
        return _delimited(at, end, &payload)
    if wire_type == 3:  # a group: skip to its end, nested groups included
        if depth >= MAX_DEPTH:
            raise WireError(f"nested more than {MAX_DEPTH} deep")
        while True:
            at = _field(at, end, &inner_number, &inner_type, True)
            if inner_type == 4:
                if inner_number != number:
                    raise WireError("mismatched end of group")
                return at
            at = _skip(at, end, inner_number, inner_type, depth + 1)
    if wire_type == 4:
        raise WireError("end of group without a start")
    raise WireError(f"invalid wire type {wire_type}")


cdef bint _is_utf8(Bytes at, Py_ssize_t size) noexcept:
    """Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF)."""
    cdef Py_ssize_t k = 0, need, j
    cdef unsigned int c, lo, hi
    while k < size:
        c = at[k]
        if c < 0x80:
            k += 1
            continue
        lo, hi = 0x80, 0xBF
        if 0xC2 <= c <= 0xDF:
            need = 1
        elif 0xE0 <= c <= 0xEF:
            need = 2
            if c == 0xE0:
                lo = 0xA0
            elif c == 0xED:
                hi = 0x9F
        elif 0xF0 <= c <= 0xF4:
            need = 3
            if c == 0xF0:
                lo = 0x90
            elif c == 0xF4:
                hi = 0x8F
        else:
            return False
        if size - k <= need:
            return False
        if not lo <= at[k + 1] <= hi:
            return False
        for j in range(2, need + 1):
            if not 0x80 <= at[k + j] <= 0xBF:
                return False
        k += need + 1
    return True


cdef Bytes _string(Bytes at, Bytes end, Span* out) except NULL:
    """Read a `string` field: UTF-8, as protobuf requires."""
    at = _delimited(at, end, out)
    if not _is_utf8(out.at, out.size):
        raise WireError("a string field is not valid UTF-8")
    return at


cdef int _entity(Span body, Entity* out, bint action, int depth) except -1:
    """Read (merge) a Subject, Action or Resource."""
    cdef Bytes at = body.at
    cdef Bytes end = body.at + body.size
    cdef int number, wire_type
    out.seen = True
    while at < end:
        at = _field(at, end, &number, &wire_type)
        if wire_type != 2:
            at = _skip(at, end, number, wire_type, depth)
        elif number == 1:
            at = _string(at, end, &out.first)
        elif number == 2 and not action:
            at = _string(at, end, &out.second)
        elif number == (2 if action else 3):
            at = _delimited(at, end, &out.props)
        else:
            at = _skip(at, end, number, wire_type, depth)
    return 0


cdef Bytes _request_field(Bytes at, Bytes end, int number, int wire_type, Request* out,
                          bint* used, int depth) except NULL:
    """Fields 1 to 4, shared by CheckRequest, BatchItem and BatchCheckRequest."""
    cdef Span body
    used[0] = wire_type == 2 and 1 <= number <= 4
    if not used[0]:
        return at
    at = _delimited(at, end, &body)
    if number == 1:
        _entity(body, &out.subject, False, depth + 1)
    elif number == 2:
        _entity(body, &out.action, True, depth + 1)
    elif number == 3:
        _entity(body, &out.resource, False, depth + 1)
    else:
        out.context = body
    return at


cdef int _request(Span body, Request* out, bint check, int depth) except -1:
    """Read (merge) a CheckRequest (`check`: with `explain`) or a BatchItem."""
    cdef Bytes at = body.at
    cdef Bytes end = body.at + body.size
    cdef int number, wire_type
    cdef bint used
    cdef uint64_t value
    while at < end:
        at = _field(at, end, &number, &wire_type)
        at = _request_field(at, end, number, wire_type, out, &used, depth)
        if used:
            continue
        if check and number == 5 and wire_type == 0:
            at = _varint(at, end, &value)
            out.explain = value != 0
        else:
            at = _skip(at, end, number, wire_type, depth)
    return 0


cdef str _text(Span span):
    return PyUnicode_DecodeUTF8(<const char*>span.at, span.size, NULL)


cdef bint _has_long_digit_run(Span span) noexcept:
    """Whether the text holds 19 digits in a row, as every integer beyond 64 bits does."""
    cdef Py_ssize_t i, run = 0
    for i in range(span.size):
        if 48 <= span.at[i] <= 57:  # 0-9
            run += 1
            if run == 19:
                return True
        else:
            run = 0
    return False


cdef dict _json_object(Span span, str field):
    """The JSON object in the field, as orjson accepts it, with every integer exact: orjson
    reads an integer beyond 64 bits as a double, which the evaluators would compare as a
    number, so text that may hold one is decoded again by `json` (the same value otherwise:
    orjson has already refused NaN, lone surrogates and whatever else `json` would take, and
    any integer past a double's range, so `json`'s 4,300-digit limit is never reached)."""
    text = PyBytes_FromStringAndSize(<const char*>span.at, span.size)
    try:
        value = _loads(text)
    except _JSONError as exc:
        raise RequestError(field, f"is not valid JSON: {exc}") from None
    if _has_long_digit_run(span):
        value = _exact_loads(text)
    if type(value) is not dict:
        raise RequestError(field, "must be a JSON object")
    return value


cdef dict _entity_dict(Entity* entity, str first, str second, str name, str props_field):
    """An entity as a dict; empty strings are absent (proto3 cannot tell them apart)."""
    cdef dict out = {}
    if entity.first.size:
        out[first] = _text(entity.first)
    if second is not None and entity.second.size:
        out[second] = _text(entity.second)
    if entity.props.size:
        out["properties"] = _json_object(entity.props, name + props_field)
    return out


cdef dict _request_dict(Request* request):
    """The AuthZEN dict of a read request (only the fields it sets); RequestError names the
    field (relative to the request) that holds bad JSON."""
    cdef dict out = {}
    if request.subject.seen:
        out["subject"] = _entity_dict(&request.subject, "type", "id", "subject",
                                      ".properties_json")
    if request.action.seen:
        out["action"] = _entity_dict(&request.action, "name", None, "action",
                                     ".properties_json")
    if request.resource.seen:
        out["resource"] = _entity_dict(&request.resource, "type", "id", "resource",
                                       ".properties_json")
    if request.context.size:
        out["context"] = _json_object(request.context, "context_json")
    return out


cdef Span _whole(bytes data):
    cdef Span span
    span.at = <Bytes>PyBytes_AS_STRING(data)
    span.size = PyBytes_GET_SIZE(data)
    span.seen = True
    return span


def read_check(bytes data):
    """A CheckRequest: (request dict, explain). Raises RequestError for bad JSON."""
    cdef Request request
    memset(&request, 0, sizeof(Request))
    _request(_whole(data), &request, True, 0)
    return _request_dict(&request), request.explain


def read_batch(bytes data):
    """A BatchCheckRequest: (items, defaults, semantic, explain). An item with bad JSON is a
    RequestError in its place (field `items[i]....`); bad defaults or an unknown semantic
    raise RequestError."""
    cdef Span whole = _whole(data), body
    cdef Bytes at = whole.at
    cdef Bytes end = whole.at + whole.size
    cdef Request defaults, item
    cdef int number, wire_type, semantic = 0
    cdef bint used, explain = False
    cdef uint64_t value
    cdef list items = []
    memset(&defaults, 0, sizeof(Request))
    while at < end:
        at = _field(at, end, &number, &wire_type)
        at = _request_field(at, end, number, wire_type, &defaults, &used, 0)
        if used:
            continue
        if number == 5 and wire_type == 2:
            at = _delimited(at, end, &body)
            memset(&item, 0, sizeof(Request))
            _request(body, &item, False, 1)
            try:
                items.append(_request_dict(&item))
            except RequestError as exc:
                items.append(RequestError(f"items[{len(items)}].{exc.field}", exc.message))
        elif number in (6, 7) and wire_type == 0:
            at = _varint(at, end, &value)
            if number == 6:
                semantic = <int32_t>value  # an open enum: unknown values are kept
            else:
                explain = value != 0
        else:
            at = _skip(at, end, number, wire_type, 0)
    if not 0 <= semantic < len(SEMANTICS):
        raise RequestError("semantic", f"unknown batch semantic {semantic}")
    return items, _request_dict(&defaults), SEMANTICS[semantic], explain


def read_stream(bytes data):
    """A StreamCheckRequest: [(correlation id, request dict or RequestError, explain)]."""
    cdef Span whole = _whole(data), body, item_body, correlation
    cdef Bytes at = whole.at
    cdef Bytes end = whole.at + whole.size
    cdef Bytes inner
    cdef Bytes inner_end
    cdef Request request
    cdef int number, wire_type
    cdef list out = []
    while at < end:
        at = _field(at, end, &number, &wire_type)
        if number != 1 or wire_type != 2:
            at = _skip(at, end, number, wire_type, 0)
            continue
        at = _delimited(at, end, &item_body)
        memset(&request, 0, sizeof(Request))
        memset(&correlation, 0, sizeof(Span))
        inner, inner_end = item_body.at, item_body.at + item_body.size
        while inner < inner_end:
            inner = _field(inner, inner_end, &number, &wire_type)
            if number == 1 and wire_type == 2:
                inner = _string(inner, inner_end, &correlation)
            elif number == 2 and wire_type == 2:
                inner = _delimited(inner, inner_end, &body)
                _request(body, &request, True, 2)
            else:
                inner = _skip(inner, inner_end, number, wire_type, 1)
        correlation_id = _text(correlation) if correlation.size else ""
        try:
            out.append((correlation_id, _request_dict(&request), request.explain))
        except RequestError as exc:
            out.append((correlation_id, exc, False))
    return out
