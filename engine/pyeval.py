"""The pure-Python twin of the Cython evaluator: the same decision tables, read in Python.

It exists to debug the tables and to check the hot path against: differential tests require
the Cython evaluator, this twin and the reference interpreter to agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from layergate.dsl.literals import (
    glob_match,
    is_exact_number,
    parse_address,
    parse_network,
    parse_timestamp,
)

from . import opcodes as op
from .decision import Decision, EvalError, LayerResult, combine
from .request import evaluate_batch, normalize_caller, normalize_request
from .tables import Tables

# A value is (tag, integer, float, object): a string is (T_STR, id or -1, 0, text); a list
# from a constant is (T_LIST, constant id, 0, None), from the request (T_LIST, -1, 0, list).
Value = tuple[int, int, float, Any]
SCALARS = (op.T_STR, op.T_NUM, op.T_BOOL)
_NO_KIND: Value = (op.T_OTHER, 0, 0.0, None)  # null in a list, a non-JSON object, a huge integer


class _Fail(Exception):
    def __init__(self, code: int, text: int) -> None:
        self.code, self.text = code, text


def error_message(code: str, path: str) -> str:
    """The compiled evaluators' fixed message for an error (no request values in it)."""
    if code == "missing_attribute":
        return f"`{path}` is not set"
    if code == "unknown_entity":
        return f"`{path}` has no entry for this key"
    if code == "type_error":
        return f"`{path}` has a type this operation does not accept"
    return f"`{path}` is not a valid IP address, CIDR range or timestamp"


class TableEvaluator:
    """Evaluates requests over `Tables`, node by node, in plain Python."""

    def __init__(self, tables: Tables, clock: Callable[[], float] = time.time) -> None:
        t = self.tables = tables
        self.revision = tables.revision
        self.clock = clock
        self.sids = {text: i for i, text in enumerate(t.strings)}
        self.layer_maps = [
            dict(zip(t.index_keys[t.layer_key_start[i]:t.layer_key_start[i + 1]],
                     t.index_bucket[t.layer_key_start[i]:t.layer_key_start[i + 1]],
                     strict=True))
            for i in range(len(t.layer_names))
        ]
        self.doc_rows = [
            {sid: row for row, sid in enumerate(
                t.doc_entities[t.doc_entity_start[d]:t.doc_entity_start[d + 1]])}
            for d in range(len(t.doc_entity_start) - 1)
        ]
        self.role_of_sid = {sid: r for r, sid in enumerate(t.role_names)}
        words = t.role_words
        self.bitsets = [
            sum((w & 0xFFFF_FFFF_FFFF_FFFF) << (64 * k)
                for k, w in enumerate(t.bitset_words[i * words:(i + 1) * words]))
            for i in range(len(t.bitset_words) // words)
        ]
        self.grants = dict(zip(t.grant_keys, t.grant_bitset, strict=True))

    # -- the Authorizer signature
    def check(self, request: Mapping[str, Any], caller: Mapping[str, Any] | None = None,
              explain: bool = False) -> Decision:
        state = _State(self, normalize_request(request), normalize_caller(caller),
                       int(self.clock() * 1_000_000))
        return self._decide(state, explain)

    def check_batch(self, requests: Iterable[Any], defaults: Mapping[str, Any] | None = None,
                    semantic: str = "execute_all", caller: Mapping[str, Any] | None = None,
                    explain: bool = False) -> list[Decision]:
        return evaluate_batch(lambda r: self.check(r, caller, explain), requests, defaults,
                              semantic, self.revision)

    # -- layers and rules
    def _decide(self, state: _State, explain: bool) -> Decision:
        t = self.tables
        results: list[LayerResult] = []
        for layer in range(len(t.layer_names)):
            outcome, rule = self._layer(layer, state)
            results.append(LayerResult(t.layer_names[layer], op.OUTCOMES[outcome],
                                       t.rule_ids[rule] if rule >= 0 else None))
            if outcome != op.OUTCOME_ALLOW and not explain:
                break
        return combine(results, state.errors, self.revision, explain)

    def _layer(self, layer: int, state: _State) -> tuple[int, int]:
        t = self.tables
        bucket = self.bucket(layer, state.action, state.resource_type)
        if bucket < 0:
            return op.OUTCOME_NO_MATCH, -1
        for rule in t.bucket_rules[t.bucket_start[bucket]:t.bucket_start[bucket + 1]]:
            deny = t.rule_effect[rule] == op.EFFECT_DENY
            if self._matches(rule, state, on_error=deny):
                return (op.OUTCOME_DENY if deny else op.OUTCOME_ALLOW), rule
        return op.OUTCOME_NO_MATCH, -1

    def bucket(self, layer: int, action: int, resource_type: int) -> int:
        """The bucket of rules that apply, trying exact, then wildcard keys."""
        index = self.layer_maps[layer]
        for a, r in ((action, resource_type), (action, -1), (-1, resource_type), (-1, -1)):
            found = index.get(_key(a, r))
            if found is not None:
                return found
        return -1

    def _matches(self, rule: int, state: _State, on_error: bool) -> bool:
        node = self.tables.rule_cond[rule]
        if node < 0:
            return True
        try:  # (a condition that is not a boolean: an error, as in the Cython evaluator)
            return _bool(self.eval(node, state), self.tables.node_text[node])[1] == 1
        except _Fail as failure:
            code = op.ERROR_CODES[failure.code]
            path = self.tables.texts[failure.text]
            state.errors.append(EvalError(self.tables.rule_ids[rule], code, path,
                                          error_message(code, path)))
            return on_error

    # -- values
    def const(self, cid: int) -> Value:
        t = self.tables
        tag = t.const_tag[cid]
        if tag == op.T_STR:
            return (tag, t.const_int[cid], 0.0, t.strings[t.const_int[cid]])
        if tag == op.T_LIST:
            return (tag, cid, 0.0, None)
        if tag == op.T_OBJ:
            return (tag, 0, 0.0, t.objects[t.const_int[cid]])
        return (tag, t.const_int[cid], t.const_num[cid], None)

    def classify(self, value: Any) -> Value:
        """A Python value from the request or data (never None) as a tagged value."""
        if isinstance(value, bool):
            return (op.T_BOOL, int(value), 0.0, None)
        if isinstance(value, float):
            return (op.T_NUM, 0, value, None)
        if isinstance(value, int):  # beyond +-(2^53 - 1) no double holds it: no kind
            return (op.T_NUM, 0, float(value), None) if is_exact_number(value) else _NO_KIND
        if isinstance(value, str):
            return (op.T_STR, self.sids.get(value, -1), 0.0, value)
        if isinstance(value, list):
            return (op.T_LIST, -1, 0.0, value)
        if isinstance(value, Mapping):
            return (op.T_OBJ, 0, 0.0, value)
        return _NO_KIND

    def items(self, value: Value) -> list[Value]:
        if value[3] is None:  # a constant list
            t = self.tables
            start = t.const_int[value[1]]
            return [self.const(c) for c in t.list_items[start:start + t.const_len[value[1]]]]
        return [self.classify(item) for item in value[3]]

    # -- nodes
    def eval(self, n: int, s: _State) -> Value:
        t = self.tables
        code, a, b = t.node_op[n], t.node_a[n], t.node_b[n]
        if code == op.CONST:
            return self.const(a)
        if code == op.SLOT:
            return s.slot(a)
        if code == op.TRUTH:
            return _bool(self.eval(a, s), t.node_text[a])
        if code == op.AND:
            left = _bool(self.eval(a, s), t.node_text[a])
            return left if not left[1] else _bool(self.eval(b, s), t.node_text[b])
        if code == op.OR:
            left = _bool(self.eval(a, s), t.node_text[a])
            return left if left[1] else _bool(self.eval(b, s), t.node_text[b])
        if code == op.NOT:
            value = _bool(self.eval(a, s), t.node_text[a])
            return _boolean(not value[1])
        if op.EQ <= code <= op.GE:
            return self._compare(code, self.eval(a, s), self.eval(b, s), t.node_text[n])
        if code == op.MEMBER:
            found = self._member(n, self.eval(a, s), self.eval(b, s))
            return _boolean(found != bool(t.node_c[n]))
        if code == op.DATA_COL:
            return self._data_col(a, self.eval(b, s))
        if code == op.WALK:
            return self._walk(self.eval(a, s), b, t.node_c[n], s)
        if code == op.FAIL:
            raise _Fail(a, t.node_text[n])
        if code == op.NOW:
            return (op.T_TIME, s.now, 0.0, None)
        if code == op.PRESENT:
            try:
                self.eval(a, s)
            except _Fail:
                return _boolean(False)
            return _boolean(True)
        return self._call(n, s)

    def _compare(self, code: int, left: Value, right: Value, text: int) -> Value:
        if code in (op.EQ, op.NE):
            if not (left[0] == right[0] and (left[0] in SCALARS or left[0] == op.T_TIME)):
                raise _Fail(op.E_TYPE, text)
            return _boolean(_equal(left, right) == (code == op.EQ))
        if left[0] != right[0] or left[0] not in (op.T_NUM, op.T_TIME):
            raise _Fail(op.E_TYPE, text)
        x, y = (left[2], right[2]) if left[0] == op.T_NUM else (left[1], right[1])
        if code == op.LT:
            return _boolean(x < y)
        if code == op.LE:
            return _boolean(x <= y)
        if code == op.GT:
            return _boolean(x > y)
        return _boolean(x >= y)

    def _member(self, n: int, item: Value, container: Value) -> bool:
        t = self.tables
        if container[0] != op.T_LIST:
            raise _Fail(op.E_TYPE, t.node_text[t.node_b[n]])
        if item[0] not in SCALARS:
            raise _Fail(op.E_TYPE, t.node_text[t.node_a[n]])
        elements = self.items(container)
        if any(e[0] != item[0] for e in elements):
            raise _Fail(op.E_TYPE, t.node_text[n])
        return any(_equal(item, e) for e in elements)

    def _data_col(self, column: int, key: Value) -> Value:
        t = self.tables
        text = t.column_key_text[column]
        if key[0] != op.T_STR:
            raise _Fail(op.E_TYPE, text)
        row = self.doc_rows[t.column_doc[column]].get(key[1]) if key[1] >= 0 else None
        if row is None:
            raise _Fail(op.E_UNKNOWN_ENTITY, text)
        cell = t.column_cell_start[column] + row
        if t.cell_error[cell] >= 0:
            raise _Fail(t.cell_error[cell], t.cell_text[cell])
        return self.const(t.cell_const[cell])

    def _walk(self, value: Value, first: int, count: int, s: _State) -> Value:
        t = self.tables
        for step in range(first, first + count):
            if t.step_kind[step] == op.STEP_STATIC:
                key = t.strings[t.step_key[step]]
            else:
                key_value = self.eval(t.step_key[step], s)
                if key_value[0] != op.T_STR:
                    raise _Fail(op.E_TYPE, t.step_text[step])
                key = key_value[3]
            if value[0] != op.T_OBJ:
                raise _Fail(op.E_TYPE, t.step_text[step])
            child = value[3].get(key)
            if child is None:
                raise _Fail(t.step_missing[step], t.step_text[step])
            value = self.classify(child)
        return value

    def _call(self, n: int, s: _State) -> Value:
        t = self.tables
        code, a, b = t.node_op[n], t.node_a[n], t.node_b[n]
        first = self.eval(a, s)
        if code == op.GRANTS:
            return _boolean(self._grants(first, t.node_text[a], s))
        if code == op.TIME:
            text = _string(first, t.node_text[a])
            try:
                return (op.T_TIME, parse_timestamp(text), 0.0, None)
            except ValueError:
                raise _Fail(op.E_INVALID, t.node_text[a]) from None
        second = self.eval(b, s)
        if code in (op.INTERSECTS, op.SUBSET):
            return _boolean(self._sets(code, n, first, second))
        text = _string(first, t.node_text[a])
        if code == op.STARTS_WITH:
            return _boolean(text.startswith(_string(second, t.node_text[b])))
        if code == op.ENDS_WITH:
            return _boolean(text.endswith(_string(second, t.node_text[b])))
        if code == op.GLOB:
            patterns = self._strings(second, t.node_text[b])
            return _boolean(any(glob_match(text, p) for p in patterns))
        return _boolean(self._cidr(text, second, t.node_text[a], t.node_text[b]))

    def _strings(self, value: Value, text: int) -> list[str]:
        """A string, or a list of strings, as a list (type_error otherwise)."""
        if value[0] == op.T_STR:
            return [value[3]]
        if value[0] != op.T_LIST:
            raise _Fail(op.E_TYPE, text)
        elements = self.items(value)
        if any(e[0] != op.T_STR for e in elements):
            raise _Fail(op.E_TYPE, text)
        return [e[3] for e in elements]

    def _cidr(self, address: str, ranges: Value, address_text: int, range_text: int) -> bool:
        try:
            ip = parse_address(address)
        except ValueError:
            raise _Fail(op.E_INVALID, address_text) from None
        found = False
        for text in self._strings(ranges, range_text):
            try:
                network = parse_network(text)
            except ValueError:
                raise _Fail(op.E_INVALID, range_text) from None
            found = found or (network.version == ip.version and ip in network)
        return found

    def _sets(self, code: int, n: int, left: Value, right: Value) -> bool:
        t = self.tables
        for value, arg in ((left, t.node_a[n]), (right, t.node_b[n])):
            if value[0] != op.T_LIST:
                raise _Fail(op.E_TYPE, t.node_text[arg])
        a, b = self.items(left), self.items(right)
        elements = a + b
        if elements and (elements[0][0] not in SCALARS
                         or any(e[0] != elements[0][0] for e in elements)):
            raise _Fail(op.E_TYPE, t.node_text[n])
        if code == op.INTERSECTS:
            return any(_equal(x, y) for x in a for y in b)
        return all(any(_equal(x, y) for y in b) for x in a)

    def _grants(self, roles: Value, text: int, s: _State) -> bool:
        t = self.tables
        if roles[0] != op.T_LIST:
            raise _Fail(op.E_TYPE, text)
        mask = s.grant_mask()
        if roles[3] is None and t.const_roles[roles[1]] >= 0:
            return self.bitsets[t.const_roles[roles[1]]] & mask != 0
        elements = self.items(roles)
        if any(e[0] != op.T_STR for e in elements):
            raise _Fail(op.E_TYPE, text)
        return any(mask >> self.role_of_sid[e[1]] & 1
                   for e in elements if e[1] in self.role_of_sid)


class _State:
    """One request being evaluated: its values, converted once into slots, and its errors."""

    def __init__(self, evaluator: TableEvaluator, request: dict[str, Any],
                 caller: dict[str, str], now: int) -> None:
        self.ev = evaluator
        self.roots = (request["subject"], request["action"], request["resource"],
                      request["context"], caller, request["elevation"])
        self.now = now
        self.action = evaluator.sids.get(request["action"]["name"], -1)
        self.resource_type = evaluator.sids.get(request["resource"]["type"], -1)
        self.slots: dict[int, Value | _Fail] = {}
        self.errors: list[EvalError] = []
        self._mask: int | None = None

    def slot(self, slot: int) -> Value:
        found = self.slots.get(slot)
        if found is None:
            found = self.slots[slot] = self._convert(slot)
        if isinstance(found, _Fail):
            raise found
        return found

    def _convert(self, slot: int) -> Value | _Fail:
        t = self.ev.tables
        value: Any = self.roots[t.slot_root[slot]]
        for step in range(t.slot_step_start[slot], t.slot_step_start[slot + 1]):
            if not isinstance(value, Mapping):
                return _Fail(op.E_TYPE, t.slot_step_text[step])
            value = value.get(t.strings[t.slot_keys[step]])
            if value is None:
                return _Fail(op.E_MISSING, t.slot_step_text[step])
        return self.ev.classify(value)

    def grant_mask(self) -> int:
        """Bitset of the roles granting this request's action on its resource type."""
        if self._mask is None:
            grants, bitsets = self.ev.grants, self.ev.bitsets
            mask = 0
            for a, r in ((self.action, self.resource_type), (self.action, -1),
                         (-1, self.resource_type), (-1, -1)):
                found = grants.get(_key(a, r))
                if found is not None:
                    mask |= bitsets[found]
            self._mask = mask
        return self._mask


def _key(action: int, resource_type: int) -> int:
    return (action + 1) << 32 | (resource_type + 1)


def _boolean(flag: bool) -> Value:
    return (op.T_BOOL, int(flag), 0.0, None)


def _bool(value: Value, text: int) -> Value:
    if value[0] != op.T_BOOL:
        raise _Fail(op.E_TYPE, text)
    return value


def _string(value: Value, text: int) -> str:
    if value[0] != op.T_STR:
        raise _Fail(op.E_TYPE, text)
    return value[3]


def _equal(left: Value, right: Value) -> bool:
    """Equality of two values of the same tag."""
    if left[0] == op.T_NUM:
        return left[2] == right[2]
    if left[0] == op.T_STR:
        if left[1] >= 0 and right[1] >= 0:
            return left[1] == right[1]
        return left[3] == right[3]
    return left[1] == right[1]
