"""Stage 3 output: immutable decision tables, and their byte serialization.

Everything an evaluator needs is here as flat tuples of integers, floats and strings, so the
Cython hot path can load it into typed arrays and never call back into Python per request.
The layout is documented field by field; `engine.opcodes` numbers the codes used in it.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, fields
from itertools import compress, pairwise
from operator import add, le, lt, sub
from typing import Any

import orjson

from . import opcodes as op

FORMAT_VERSION = 3  # 3: a SHA-256 digest of the payload follows the version
MAGIC = b"LGTABLES"
_DIGEST_BYTES = 32
MAX_NODE_DEPTH = 1_000  # the parser keeps conditions ~200 levels deep; both evaluators recurse


class TablesFormatError(ValueError):
    """Bytes that are not decision tables of this format version."""


@dataclass(frozen=True)
class Tables:
    """Compiled decision tables for one policy revision.

    Strings are interned: every string the policy or its data can compare against has an id,
    its index in `strings`. Request strings not in the table get id -1 and equal nothing but
    the same unknown text.
    """

    revision: str
    strings: tuple[str, ...]
    texts: tuple[str, ...]  # printed source of nodes and path prefixes, for error paths

    # Layers, in evaluation order. Layer i's index is the sorted `index_keys` range
    # [layer_key_start[i], layer_key_start[i+1]); a key is (action id + 1) << 32 | (type id + 1)
    # with 0 for "any other"; `index_bucket` gives the bucket of applicable rules.
    layer_names: tuple[str, ...]
    layer_key_start: tuple[int, ...]
    index_keys: tuple[int, ...]
    index_bucket: tuple[int, ...]
    bucket_start: tuple[int, ...]  # bucket b is bucket_rules[bucket_start[b]:bucket_start[b+1]]
    bucket_rules: tuple[int, ...]  # deny rules first, then allow rules, each in written order

    # Rules: id text, layer, effect (opcodes.EFFECT_*), condition root node (-1: none).
    rule_ids: tuple[str, ...]
    rule_layer: tuple[int, ...]
    rule_effect: tuple[int, ...]
    rule_cond: tuple[int, ...]
    rule_uses_elevation: tuple[int, ...]  # 1 when the condition reads `elevation.*`

    # Condition program: node i is (op, a, b, c) with `node_text` its printed source.
    node_op: tuple[int, ...]
    node_a: tuple[int, ...]
    node_b: tuple[int, ...]
    node_c: tuple[int, ...]
    node_text: tuple[int, ...]

    # Request slots: static paths into the request. Slot s starts at root `slot_root[s]`
    # (opcodes.ROOTS) and follows keys slot_keys[slot_step_start[s]:slot_step_start[s+1]]
    # (string ids); slot_step_text gives the error path after each step.
    slot_root: tuple[int, ...]
    slot_step_start: tuple[int, ...]
    slot_keys: tuple[int, ...]
    slot_step_text: tuple[int, ...]

    # Walk steps (dynamic paths): kind (opcodes.STEP_*), key (string id or node), error path
    # text, and the error code when the key is absent.
    step_kind: tuple[int, ...]
    step_key: tuple[int, ...]
    step_text: tuple[int, ...]
    step_missing: tuple[int, ...]

    # Constants: tag (opcodes.T_*), an integer (string id, boolean, microseconds, list start in
    # `list_items`, or index into `objects`), a float (numbers), a length (lists) and the role
    # bitset of a list of role names (-1: none).
    const_tag: tuple[int, ...]
    const_int: tuple[int, ...]
    const_num: tuple[float, ...]
    const_len: tuple[int, ...]
    const_roles: tuple[int, ...]
    list_items: tuple[int, ...]  # constant ids
    objects: tuple[Any, ...]  # JSON objects that a walk can step into

    # Pre-joined data: column k reads document `column_doc[k]` by entity key; its cells are
    # rows column_cell_start[k] .. in entity order. A cell holds a constant, or an error code
    # with its path (cell_error -1: no error).
    doc_entity_start: tuple[int, ...]  # entities of document d: doc_entities[start[d]:start[d+1]]
    doc_entities: tuple[int, ...]  # string ids of entity keys
    column_doc: tuple[int, ...]
    column_key_text: tuple[int, ...]  # error path of `data.doc[key]`
    column_cell_start: tuple[int, ...]
    cell_const: tuple[int, ...]
    cell_error: tuple[int, ...]
    cell_text: tuple[int, ...]

    # Roles: role r is named strings[role_names[r]]; a grant key (as in the layer index) maps
    # to a bitset of the roles (transitively) granting it: words
    # bitset_words[grant_bitset[g] * role_words : (grant_bitset[g] + 1) * role_words].
    role_names: tuple[int, ...]
    role_words: int
    grant_keys: tuple[int, ...]
    grant_bitset: tuple[int, ...]
    bitset_words: tuple[int, ...]

    def to_bytes(self) -> bytes:
        """Serialize: magic, format version, the SHA-256 of the payload, then the payload (the
        fields as canonical JSON)."""
        payload = orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS)
        return (MAGIC + FORMAT_VERSION.to_bytes(4, "big") + hashlib.sha256(payload).digest()
                + payload)

    @classmethod
    def from_bytes(cls, blob: bytes) -> Tables:
        """The inverse of `to_bytes`; raises `TablesFormatError` on foreign, stale or corrupt
        bytes, corrupt including tables the evaluators could not safely evaluate."""
        if not blob.startswith(MAGIC):
            raise TablesFormatError("not a compiled Layergate policy (bad magic)")
        version = int.from_bytes(blob[len(MAGIC):len(MAGIC) + 4], "big")
        if version != FORMAT_VERSION:
            raise TablesFormatError(f"compiled with table format {version}; this Layergate "
                                    f"reads format {FORMAT_VERSION}: recompile the policy")
        start = len(MAGIC) + 4 + _DIGEST_BYTES
        digest, payload = blob[len(MAGIC) + 4:start], blob[start:]
        if hashlib.sha256(payload).digest() != digest:
            raise TablesFormatError("corrupt compiled policy: its checksum does not match (the "
                                    "file was changed or cut short after `layergate compile`)")
        try:
            raw = orjson.loads(payload)
            values = {f.name: _freeze(raw[f.name]) for f in fields(cls)}
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise TablesFormatError(f"corrupt compiled policy: {exc}") from None
        tables = cls(**values)
        _check_structure(tables)
        return tables

    def check(self) -> None:
        """Raise `TablesFormatError` unless the evaluators can safely evaluate these tables
        (`from_bytes` runs it on what it reads, `Authorizer` on the tables it is given)."""
        _check_structure(self)

    @property
    def rule_count(self) -> int:
        return len(self.rule_ids)


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


# ---- structural validation ------------------------------------------------------------------
# A payload with a valid checksum can still come from a hand edit or a buggy tool, and the
# Cython evaluator indexes C arrays (and tuples, unchecked) with its integers: `from_bytes`
# refuses tables that either evaluator could not evaluate safely.

_ELEMENT_TYPES: dict[str, type] = {"tuple[str, ...]": str, "tuple[int, ...]": int,
                                   "tuple[float, ...]": float,
                                   "tuple[Any, ...]": dict}  # `objects` holds JSON objects
_SCALAR_TYPES: dict[str, type] = {"str": str, "int": int}
_INT64 = 1 << 63
_ERROR_CODES = range(len(op.ERROR_CODES))

# What each operand of a node is, by opcode: another node, a constant, a request slot, a data
# column, an error code, a 0/1 flag, "steps" (b: the first walk step, c: how many), or "" when
# no evaluator reads it.
_OPERANDS: dict[int, tuple[str, str, str]] = {
    op.CONST: ("const", "", ""),
    op.FAIL: ("error", "", ""),
    op.SLOT: ("slot", "", ""),
    op.DATA_COL: ("column", "node", ""),
    op.WALK: ("node", "steps", "steps"),
    op.NOW: ("", "", ""),
    **dict.fromkeys((op.NOT, op.TRUTH, op.GRANTS, op.TIME, op.PRESENT), ("node", "", "")),
    **dict.fromkeys((op.AND, op.OR, op.EQ, op.NE, op.LT, op.LE, op.GT, op.GE, op.STARTS_WITH,
                     op.ENDS_WITH, op.GLOB, op.CIDR, op.INTERSECTS, op.SUBSET),
                    ("node", "node", "")),
    op.MEMBER: ("node", "node", "flag"),
}
_OPERAND_TARGETS = {"const": "a constant", "slot": "a request slot", "column": "a data column",
                   "error": "an error code", "flag": "0 or 1"}


def _marking(codes: Collection[int]) -> bytes:
    """A `bytes.translate` table mapping each of `codes` to 1 and every other byte to 0."""
    return bytes(code in codes for code in range(256))


# How the node pass reads a node: no operands, operand a indexing constants, slots or error
# codes, one operand node (a), two (a and b), a column (a) and its key node (b), or a walk (a,
# and the key nodes of its steps).
_NO_OPERANDS, _CONST, _SLOT, _FAIL, _ONE, _TWO, _KEY, _WALK = range(8)


def _shape(kinds: tuple[str, str, str]) -> int:
    a, b, _ = kinds
    if a == "node":
        return _TWO if b == "node" else _WALK if b == "steps" else _ONE
    if b == "node":
        return _KEY
    return {"const": _CONST, "slot": _SLOT, "error": _FAIL}.get(a, _NO_OPERANDS)


_SHAPES = bytes(_shape(_OPERANDS.get(code, ("", "", ""))) for code in range(256))
_FLAGS = _marking({code for code, kinds in _OPERANDS.items() if kinds[2] == "flag"})


def _check_structure(t: Tables) -> None:
    """Raise `TablesFormatError` unless both evaluators can evaluate any request over `t`
    without reading outside an array: every field has its type and parallel fields one length;
    every index, code and range is in bounds; condition nodes refer only to earlier nodes (so
    there is no cycle) and nest at most MAX_NODE_DEPTH deep; and no request evaluates more
    rules than there are. Linear in the size of the tables; the compiler's output passes."""
    _check_types(t)
    _check_strings(t)
    bitsets = _check_roles(t)
    _check_constants(t, bitsets)
    _check_data(t)
    _check_slots_and_steps(t)
    _check_nodes(t)
    _check_rules_and_layers(t)


def _corrupt(problem: str) -> TablesFormatError:
    return TablesFormatError(f"corrupt compiled policy: {problem}")


# ---- helpers

def _check_range(name: str, values: tuple[int, ...], low: int, high: int, what: str,
                 marks: bytes | None = None) -> None:
    """Every value, or each one whose mark is 1, is in low..high - 1."""
    chosen = values if marks is None else list(compress(values, marks))
    if _within(chosen, low, high):
        return
    index = next(i for i, value in enumerate(values)
                 if (marks is None or marks[i]) and not low <= value < high)
    valid = f"valid: {low} to {high - 1}" if low < high else "there are none"
    raise _corrupt(f"{name}[{index}] is {values[index]}, not {what} ({valid})")


def _within(values: Sequence[int], low: int, high: int) -> bool:
    """low <= value < high for each value."""
    if low == 0 and high <= 256:  # one pass: as bytes, less the valid ones
        try:
            return not bytes(values).translate(None, bytes(range(high)))
        except ValueError:  # not even a byte
            return False
    return not values or (low <= min(values) and max(values) < high)


def _check_codes(name: str, values: tuple[int, ...], valid: Collection[int],
                 what: str) -> bytes:
    """Every value is one of the small codes `valid` (-128..255); returns the values as bytes
    (a negative code as its two's complement: -1 is 0xFF)."""
    try:
        codes = array("b", values).tobytes() if min(valid) < 0 else bytes(values)
    except (OverflowError, ValueError):  # not even a byte
        codes = None
    if codes is not None and not codes.translate(None, bytes(v & 0xFF for v in valid)):
        return codes
    index = next(i for i, value in enumerate(values) if value not in valid)
    ordered = sorted(valid)
    listed = (f"{ordered[0]} to {ordered[-1]}"
              if ordered == list(range(ordered[0], ordered[-1] + 1))
              else ", ".join(map(str, ordered)))
    raise _corrupt(f"{name}[{index}] is {values[index]}, not {what} (valid: {listed})")


def _check_parallel(t: Tables, first: str, *others: str) -> None:
    """Fields that describe the same items, one entry each, have one length."""
    size = len(getattr(t, first))
    for name in others:
        if len(getattr(t, name)) != size:
            raise _corrupt(f"{name} has {len(getattr(t, name))} entries, {first} {size}")


def _check_starts(name: str, starts: tuple[int, ...], parts: int | None, target: str,
                  size: int) -> None:
    """`starts` cuts `target` (`size` entries) into consecutive ranges, range i being
    target[starts[i]:starts[i + 1]]: `parts` + 1 offsets (at least one), from 0 to `size`,
    never decreasing."""
    if parts is None:
        parts = max(len(starts) - 1, 0)
    if len(starts) != parts + 1:
        raise _corrupt(f"{name} has {len(starts)} entries, not {parts + 1}")
    if starts[0] != 0 or starts[-1] != size:
        raise _corrupt(f"{name} runs from {starts[0]} to {starts[-1]}, not from 0 to {size} "
                       f"(the length of {target})")
    if not all(map(le, starts, starts[1:])):
        i = next(i for i in range(1, len(starts)) if starts[i] < starts[i - 1])
        raise _corrupt(f"{name}[{i}] is {starts[i]}, less than {name}[{i - 1}] "
                       f"({starts[i - 1]})")


def _check_increasing(name: str, values: tuple[int, ...], start: int, end: int) -> None:
    """values[start:end] rises strictly (the evaluators binary-search it)."""
    if not all(map(lt, values[start:end], values[start + 1:end])):
        i = next(i for i in range(start + 1, end) if values[i] <= values[i - 1])
        raise _corrupt(f"{name}[{i}] is {values[i]}, not above {name}[{i - 1}] "
                       f"({values[i - 1]}): keys must be sorted")


# ---- the groups of fields

def _check_types(t: Tables) -> None:
    """Each field is of its annotated type, element by element (a JSON boolean reads as 0 or 1,
    as it does in Python)."""
    for f in fields(t):
        value = getattr(t, f.name)
        if f.type in _SCALAR_TYPES:
            if type(value) is not _SCALAR_TYPES[f.type]:
                raise _corrupt(f"{f.name} is {type(value).__name__}, not {f.type}")
            continue
        if type(value) is not tuple:
            raise _corrupt(f"{f.name} is {type(value).__name__}, not a list")
        expected = _ELEMENT_TYPES[f.type]
        if not _all_of_type(value, expected):
            index = next(i for i, item in enumerate(value) if not _of_type(item, expected))
            raise _corrupt(f"{f.name}[{index}] is {type(value[index]).__name__}, "
                           f"not {expected.__name__}")


def _all_of_type(values: tuple[Any, ...], expected: type) -> bool:
    if expected is int:  # the fast way: sum() refuses non-numbers, and a float makes a float
        try:
            return type(sum(values)) is int
        except TypeError:
            return False
    return set(map(type, values)) <= {expected}


def _of_type(value: Any, expected: type) -> bool:
    return isinstance(value, int) if expected is int else type(value) is expected


def _check_strings(t: Tables) -> None:
    """A string has one id: the evaluators compare interned strings by id."""
    if len(set(t.strings)) != len(t.strings):
        first: dict[str, int] = {}
        for i, text in enumerate(t.strings):
            if first.setdefault(text, i) != i:
                raise _corrupt(f"strings[{i}] repeats strings[{first[text]}]")


def _check_roles(t: Tables) -> int:
    """Role names, the grant index and the role bitsets; returns how many bitsets there are."""
    _check_range("role_names", t.role_names, 0, len(t.strings), "a string id")
    words = max(1, (len(t.role_names) + 63) // 64)
    if t.role_words != words:
        raise _corrupt(f"role_words is {t.role_words}, but {len(t.role_names)} roles take "
                       f"{words} 64-bit words")
    if len(t.bitset_words) % words:
        raise _corrupt(f"bitset_words has {len(t.bitset_words)} words, not a whole number of "
                       f"bitsets of role_words ({words}) words")
    bitsets = len(t.bitset_words) // words
    _check_parallel(t, "grant_keys", "grant_bitset")
    _check_range("grant_keys", t.grant_keys, 0, _INT64, "an index key")
    _check_increasing("grant_keys", t.grant_keys, 0, len(t.grant_keys))
    _check_range("grant_bitset", t.grant_bitset, 0, bitsets, "a role bitset")
    return bitsets


def _check_constants(t: Tables, bitsets: int) -> None:
    """Tags are known; a string's integer is a string id, an object's an index into `objects`,
    a boolean's 0 or 1, a timestamp's 64 bits; a list's items lie in `list_items`, which holds
    constant ids, and its role bitset exists."""
    _check_parallel(t, "const_tag", "const_int", "const_num", "const_len", "const_roles")
    tags = _check_codes("const_tag", t.const_tag, range(op.T_STR, op.T_OTHER + 1),
                        "a value tag")
    for tag, low, high, what in ((op.T_STR, 0, len(t.strings), "a string id"),
                                 (op.T_OBJ, 0, len(t.objects), "an object"),
                                 (op.T_BOOL, 0, 2, "a boolean (0 or 1)"),
                                 (op.T_TIME, -_INT64, _INT64, "a 64-bit timestamp")):
        marks = tags.translate(_marking({tag}))
        if 1 in marks:
            _check_range("const_int", t.const_int, low, high, what, marks)
    lists = tags.translate(_marking({op.T_LIST}))
    items = len(t.list_items)
    if 1 in lists:
        _check_range("const_int", t.const_int, 0, items + 1, "a start in list_items", lists)
        _check_range("const_len", t.const_len, 0, items + 1, "a list length", lists)
        _check_range("const_roles", t.const_roles, -1, bitsets, "a role bitset or -1", lists)
        if max(map(add, compress(t.const_int, lists), compress(t.const_len, lists))) > items:
            const = next(c for c, (tag, start, length) in enumerate(
                zip(t.const_tag, t.const_int, t.const_len, strict=True))
                if tag == op.T_LIST and start + length > items)
            raise _corrupt(f"const_len[{const}] is {t.const_len[const]}: the list's items run "
                           f"from list_items[{t.const_int[const]}] past its end ({items})")
    _check_range("list_items", t.list_items, 0, len(t.const_tag), "a constant")


def _check_data(t: Tables) -> None:
    """Documents list distinct entities; a column reads a document and holds one cell per
    entity of it; a cell holds a constant, or an error code and its path."""
    _check_starts("doc_entity_start", t.doc_entity_start, None, "doc_entities",
                  len(t.doc_entities))
    _check_range("doc_entities", t.doc_entities, 0, len(t.strings), "a string id")
    for doc, (start, end) in enumerate(pairwise(t.doc_entity_start)):
        if len(set(t.doc_entities[start:end])) != end - start:
            raise _corrupt(f"doc_entities[{start}:{end}] (document {doc}) names an entity twice")
    _check_parallel(t, "column_doc", "column_key_text")
    _check_range("column_doc", t.column_doc, 0, len(t.doc_entity_start) - 1, "a document")
    _check_range("column_key_text", t.column_key_text, 0, len(t.texts), "a text")
    _check_starts("column_cell_start", t.column_cell_start, len(t.column_doc), "cell_const",
                  len(t.cell_const))
    for column, (doc, (start, end)) in enumerate(
            zip(t.column_doc, pairwise(t.column_cell_start), strict=True)):
        entities = t.doc_entity_start[doc + 1] - t.doc_entity_start[doc]
        if end - start != entities:
            raise _corrupt(f"column_cell_start[{column}:{column + 2}] gives column {column} "
                           f"{end - start} cells, but its document {doc} has {entities} entities")
    _check_parallel(t, "cell_const", "cell_error", "cell_text")
    errors = _check_codes("cell_error", t.cell_error, (-1, *_ERROR_CODES),
                          "an error code or -1")
    _check_range("cell_text", t.cell_text, 0, len(t.texts), "a text")
    _check_range("cell_const", t.cell_const, 0, len(t.const_tag), "a constant",
                 errors.translate(_marking({0xFF})))  # the cells without an error


def _check_slots_and_steps(t: Tables) -> None:
    """Slots start at a request root and follow string keys; walk steps have a known kind, a
    string or node key, an error path and an error code."""
    _check_codes("slot_root", t.slot_root, range(len(op.ROOTS)), "a request root")
    _check_starts("slot_step_start", t.slot_step_start, len(t.slot_root), "slot_keys",
                  len(t.slot_keys))
    _check_parallel(t, "slot_keys", "slot_step_text")
    _check_range("slot_keys", t.slot_keys, 0, len(t.strings), "a string id")
    _check_range("slot_step_text", t.slot_step_text, 0, len(t.texts), "a text")
    _check_parallel(t, "step_kind", "step_key", "step_text", "step_missing")
    kinds = _check_codes("step_kind", t.step_kind, (op.STEP_STATIC, op.STEP_DYNAMIC),
                         "a step kind")
    _check_range("step_key", t.step_key, 0, len(t.strings), "a string id",
                 kinds.translate(_marking({op.STEP_STATIC})))
    _check_range("step_key", t.step_key, 0, len(t.node_op), "a node",
                 kinds.translate(_marking({op.STEP_DYNAMIC})))
    _check_range("step_text", t.step_text, 0, len(t.texts), "a text")
    _check_codes("step_missing", t.step_missing, _ERROR_CODES, "an error code")


def _check_nodes(t: Tables) -> None:
    """Known opcodes, texts and flags; the walks' steps; then each node's operands."""
    _check_parallel(t, "node_op", "node_a", "node_b", "node_c", "node_text")
    codes = _check_codes("node_op", t.node_op, _OPERANDS.keys(), "an opcode")
    _check_range("node_text", t.node_text, 0, len(t.texts), "a text")
    _check_range("node_c", t.node_c, 0, 2, "0 or 1", codes.translate(_FLAGS))
    _check_walks(t, codes)
    _check_node_operands(t, codes)


def _check_walks(t: Tables, codes: bytes) -> None:
    """A walk's steps exist, and the walks take no more steps in all than there are (the
    compiler writes each walk's steps as it builds it), so checking them is linear."""
    if op.WALK not in codes:
        return
    steps = len(t.step_kind)
    taken = 0
    for node in compress(range(len(codes)), codes.translate(_marking({op.WALK}))):
        first, count = t.node_b[node], t.node_c[node]
        if first < 0 or count < 0 or first + count > steps:
            raise _corrupt(f"node_b[{node}], node_c[{node}] walk steps {first} to "
                           f"{first + count - 1}; there are {steps} steps")
        taken += count
    if taken > steps:
        raise _corrupt(f"walk nodes take {taken} steps in all (node_c), but there are {steps}")


def _check_node_operands(t: Tables, codes: bytes) -> None:
    """One pass over the nodes: operands a and b are in range for what the opcode reads;
    operand nodes (and a walk's key nodes) come before the node, so the graph has no cycle; and
    no chain of nodes is deeper than MAX_NODE_DEPTH (the evaluators recurse along it): a node
    is one deeper than its deepest operand node."""
    limits = _operand_limits(t)
    index_limits = [0, limits["const"], limits["slot"], limits["error"]]  # by shape
    depth = [1] * len(codes)
    for node, shape, a, b in zip(range(len(codes)), codes.translate(_SHAPES), t.node_a,
                                 t.node_b, strict=True):
        if shape < _ONE:  # a leaf
            if shape != _NO_OPERANDS and not 0 <= a < index_limits[shape]:
                raise _operand_error(t, node, limits)
            continue
        if shape == _TWO:
            if not (0 <= a < node and 0 <= b < node):
                raise _operand_error(t, node, limits)
            deepest = depth[a] if depth[a] >= depth[b] else depth[b]
        elif shape == _KEY:
            if not (0 <= a < limits["column"] and 0 <= b < node):
                raise _operand_error(t, node, limits)
            deepest = depth[b]
        else:
            if not 0 <= a < node:
                raise _operand_error(t, node, limits)
            deepest = depth[a]
            if shape == _WALK:
                deepest = max(deepest, _walk_key_depth(t, node, depth))
        if deepest >= MAX_NODE_DEPTH:
            raise _corrupt(f"node {node} (node_op[{node}]) nests {deepest + 1} nodes deep, "
                           f"more than the {MAX_NODE_DEPTH} the evaluators allow")
        depth[node] = deepest + 1


def _operand_limits(t: Tables) -> dict[str, int]:
    """How many there are of what each kind of operand indexes."""
    return {"const": len(t.const_tag), "slot": len(t.slot_root), "column": len(t.column_doc),
            "error": len(_ERROR_CODES), "flag": 2}


def _operand_error(t: Tables, node: int, limits: dict[str, int]) -> TablesFormatError:
    """The problem with the first operand of `node` out of range (the node pass's slow path)."""
    operands = (t.node_a[node], t.node_b[node], t.node_c[node])
    for position, (kind, value) in enumerate(zip(_OPERANDS[t.node_op[node]], operands,
                                                 strict=True)):
        high = node if kind == "node" else limits.get(kind)
        if high is not None and not 0 <= value < high:
            what = "an earlier node" if kind == "node" else _OPERAND_TARGETS[kind]
            valid = f"valid: 0 to {high - 1}" if high else "there are none"
            return _corrupt(f"node_{'abc'[position]}[{node}] is {value}, not {what} ({valid})")
    raise AssertionError(f"node {node} has no operand out of range")


def _walk_key_depth(t: Tables, walk: int, depth: list[int]) -> int:
    """The depth of the walk's deepest key node, each checked to come before the walk."""
    deepest = 0
    for step in range(t.node_b[walk], t.node_b[walk] + t.node_c[walk]):
        if t.step_kind[step] == op.STEP_DYNAMIC:
            key = t.step_key[step]
            if key >= walk:
                raise _corrupt(f"step_key[{step}] is {key}, not a node before walk node {walk}, "
                               "which takes its key")
            deepest = max(deepest, depth[key])
    return deepest


def _check_rules_and_layers(t: Tables) -> None:
    """Rules name a layer, an effect and a condition root or -1; each layer's index is sorted
    and points at buckets of existing rules."""
    _check_parallel(t, "rule_ids", "rule_layer", "rule_effect", "rule_cond",
                    "rule_uses_elevation")
    _check_range("rule_layer", t.rule_layer, 0, len(t.layer_names), "a layer")
    _check_codes("rule_effect", t.rule_effect, (op.EFFECT_ALLOW, op.EFFECT_DENY), "an effect")
    _check_range("rule_cond", t.rule_cond, -1, len(t.node_op), "a node or -1")
    for rule, node in enumerate(t.rule_cond):  # (a condition's value is tested to be a bool)
        if node >= 0 and t.node_op[node] != op.TRUTH:
            raise _corrupt(f"rule_cond[{rule}] is node {node}, not a condition's truth test")
    _check_codes("rule_uses_elevation", t.rule_uses_elevation, (0, 1), "0 or 1")
    _check_starts("layer_key_start", t.layer_key_start, len(t.layer_names), "index_keys",
                  len(t.index_keys))
    _check_parallel(t, "index_keys", "index_bucket")
    _check_range("index_keys", t.index_keys, 0, _INT64, "an index key")
    for start, end in pairwise(t.layer_key_start):
        _check_increasing("index_keys", t.index_keys, start, end)
    _check_starts("bucket_start", t.bucket_start, None, "bucket_rules", len(t.bucket_rules))
    _check_range("index_bucket", t.index_bucket, 0, len(t.bucket_start) - 1, "a bucket")
    _check_range("bucket_rules", t.bucket_rules, 0, len(t.rule_ids), "a rule")
    _check_rules_per_request(t)


def _check_rules_per_request(t: Tables) -> None:
    """A request evaluates one bucket per layer, and the Cython evaluator keeps room for one
    error per rule: the largest buckets of the layers hold no more rules together than there
    are rules (the compiler's buckets hold distinct rules of their layer)."""
    sizes = list(map(sub, t.bucket_start[1:], t.bucket_start))
    most = sum(max(map(sizes.__getitem__, set(t.index_bucket[start:end])), default=0)
               for start, end in pairwise(t.layer_key_start))
    if most > len(t.rule_ids):
        raise _corrupt(f"bucket_start gives the layers' largest buckets {most} rules in all, "
                       f"more than the {len(t.rule_ids)} rules: a request could evaluate a "
                       "rule twice")
